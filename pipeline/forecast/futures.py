"""The ``futures`` table: its one writer and its one reader.

A ``futures`` partition is ``model=<run>/<target day>``: one row per (country,
future k) of the K futures a model sampled for the day, each the list of its
phrases and the event code each phrase was projected onto (``FUTURES_SCHEMA``).
:func:`pipeline.forecast.forecast.run_forecast` writes it; evaluate (ROUGE of the
futures against the day's targets), the watch list (phrases per label) and the
forecast itself (reusing futures sampled under the same ``sampling_key``) read it
through :func:`read_futures`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from pipeline.core.lake import DateLike, Lake, as_date
from pipeline.core.schemas import FUTURES_SCHEMA

TABLE = "futures"


# ==================================================================== writing
def futures_rows(countries: Sequence[str], futures: Sequence[Sequence[Sequence[str]]],
                 codes: Sequence[Sequence[Sequence[str]]], sampling_key: str | None = None) -> pa.Table:
    """Per-country futures → ``futures`` rows (``FUTURES_SCHEMA``), ordered by country then future.

    ``futures[i][k]`` is the phrase list of country ``countries[i]``'s future k and
    ``codes[i][k]`` the event code of each of those phrases (same length).
    """
    if not (len(countries) == len(futures) == len(codes)):
        raise ValueError(f"futures_rows: {len(countries)} countries, {len(futures)} future lists, "
                         f"{len(codes)} code lists")
    order = sorted(range(len(countries)), key=lambda i: countries[i])
    rows: dict[str, list] = {"country": [], "future": [], "phrases": [], "codes": []}
    for i in order:
        if len(futures[i]) != len(codes[i]):
            raise ValueError(f"futures_rows {countries[i]}: {len(futures[i])} futures but {len(codes[i])} code lists")
        for k, (ph, cs) in enumerate(zip(futures[i], codes[i])):
            if len(ph) != len(cs):
                raise ValueError(f"futures_rows {countries[i]} future {k}: {len(ph)} phrases but {len(cs)} codes")
            rows["country"].append(countries[i])
            rows["future"].append(k)
            rows["phrases"].append(list(ph))
            rows["codes"].append(list(cs))
    n = len(rows["country"])
    return pa.table({**rows, "sampling_key": pa.array([sampling_key] * n, pa.string())}, schema=FUTURES_SCHEMA)


def write_futures(lake: Lake, table: pa.Table, target: DateLike, run: str) -> None:
    """Replace ``futures/model=<run>/<target>`` with ``table`` (atomically)."""
    lake.write_partition(TABLE, table, as_date(target), schema=FUTURES_SCHEMA, model=run)


# ==================================================================== reading
def has_futures(lake: Lake, run: str, day: DateLike) -> bool:
    """Whether ``run`` has a ``futures`` partition for ``day`` (baselines never do)."""
    return lake.has_partition(TABLE, as_date(day), model=run)


def read_futures(lake: Lake, run: str, day: DateLike, columns: Sequence[str] | None = None,
                 countries: Iterable[str] | None = None) -> pa.Table:
    """``futures/model=<run>/<day>`` (``columns`` of it; only ``countries`` when given), by country then future.

    An absent partition reads as an empty table with ``FUTURES_SCHEMA``'s columns.
    A partition written before ``sampling_key`` existed has that column as nulls.
    """
    day = as_date(day)
    want = list(columns) if columns is not None else [f.name for f in FUTURES_SCHEMA]
    unknown = [c for c in want if c not in FUTURES_SCHEMA.names]
    if unknown:
        raise ValueError(f"read_futures: unknown columns {unknown}; the table has {FUTURES_SCHEMA.names}")
    schema = pa.schema([FUTURES_SCHEMA.field(c) for c in want])
    keep = sorted(set(countries)) if countries is not None else None
    if not has_futures(lake, run, day) or keep == []:
        return schema.empty_table()
    filt = pc.is_in(ds.field("country"), value_set=pa.array(keep, pa.string())) if keep is not None else None
    t = lake.read(TABLE, day, day, filter=filt, model=run)
    for f in FUTURES_SCHEMA:
        if f.name not in t.column_names:  # a partition written before the column existed (sampling_key)
            t = t.append_column(f, pa.nulls(t.num_rows, f.type))
    t = t.sort_by([("country", "ascending"), ("future", "ascending")])
    return t.select(want).cast(schema)


def futures_by_country(lake: Lake, run: str, day: DateLike, countries: Iterable[str] | None = None,
                       sampling_key: str | None = None) -> dict[str, list[list[str]]]:
    """country → its futures' phrase lists, in future order ({} when the run has no futures for ``day``).

    ``sampling_key`` keeps only the futures sampled under that key.
    """
    t = read_futures(lake, run, day, ["country", "phrases", "sampling_key"], countries)
    out: dict[str, list[list[str]]] = {}
    for c, ph, key in zip(*(t.column(n).to_pylist() for n in ("country", "phrases", "sampling_key"))):
        if sampling_key is None or key == sampling_key:
            out.setdefault(c, []).append(list(ph))
    return out


def phrase_codes(lake: Lake, run: str, day: dt.date, countries: Iterable[str] | None = None
                 ) -> list[tuple[str, list[str], list[str]]]:
    """(country, phrases, codes) of every future of ``run`` on ``day``, by country then future."""
    t = read_futures(lake, run, day, ["country", "phrases", "codes"], countries)
    return list(zip(*(t.column(n).to_pylist() for n in ("country", "phrases", "codes"))))
