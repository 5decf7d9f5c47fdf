"""The label space every forecaster is scored on: CAMEO codes at four levels.

| level   | codes                                   | count |
|---------|-----------------------------------------|-------|
| `event` | every 3- and 4-digit CAMEO event code    | 291   |
| `base`  | the 3-digit base codes (``EventBaseCode``) | 147 |
| `root`  | the 20 root codes ``01`` … ``20``          | 20    |
| `quad`  | the 4 QuadClasses ``1`` … ``4``            | 4     |

Levels nest: event ``0211`` → base ``021`` → root ``02`` → quad ``1``. A label
"occurs" on a country-day when at least one event of that day carries it, so
the indicator of a parent is the OR of its children's indicators; every
forecaster in this project uses the same "contains" definition at every level,
which makes a parent's probability at least that of any of its children.

Codes and descriptions come from :mod:`pipeline.cameo.codes` (GDELT's
``CAMEO.eventcodes.txt``, repaired), the same table the phrases are made from.
Events whose code is not in it are counted, never silently dropped
(:attr:`Outcomes.dropped`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

LEVELS: tuple[str, ...] = ("event", "base", "root", "quad")
QUAD_NAMES: dict[str, str] = {
    "1": "Verbal cooperation",
    "2": "Material cooperation",
    "3": "Verbal conflict",
    "4": "Material conflict",
}
RARE_ROOTS: tuple[str, ...] = ("14", "18", "19")
"""Protest, assault, fight: rare root codes where skill over climatology shows."""


@dataclass(frozen=True)
class Level:
    """The codes of one level, in a fixed sorted order (the columns of every matrix)."""

    name: str
    codes: tuple[str, ...]
    index: dict[str, int] = field(repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.codes)

    def columns(self, codes) -> np.ndarray:
        """(n,) int64 columns of ``codes`` (a Series or array), −1 for a code outside this level (or none); one
        vectorised lookup, where a loop over ``index`` would iterate arrow-backed strings one by one."""
        return pd.Index(self.codes).get_indexer(pd.Series(codes).astype(str)).astype(np.int64)


@dataclass(frozen=True)
class LabelSpace:
    """All CAMEO labels with descriptions and parents. Build with :func:`label_space`."""

    levels: dict[str, Level]
    description: dict[str, str]
    """Description of every code of every level (quad codes get their QuadClass name)."""
    root_of: dict[str, str]
    """Root code of every event/base/root code."""
    quad_of_root: dict[str, int]
    """QuadClass (1–4) of every root code."""

    def __getitem__(self, level: str) -> Level:
        if level not in self.levels:
            raise KeyError(f"unknown label level {level!r}; levels are {list(self.levels)}")
        return self.levels[level]

    def quad_of(self, code: str) -> int:
        return self.quad_of_root[self.root_of[code]]

    def parent_code(self, code: str, level: str) -> str:
        """The ancestor of an event/base/root ``code`` at ``level``."""
        if level == "event":
            return code
        if level == "base":
            return code[:3]
        if level == "root":
            return code[:2]
        if level == "quad":
            return str(self.quad_of(code))
        raise KeyError(f"unknown label level {level!r}")

    def split(self, a: np.ndarray, axis: int = -1) -> dict[str, np.ndarray]:
        """An array whose ``axis`` holds every label, levels in :data:`LEVELS` order (L_all = Σ L_level, as the
        occurrence head and the dataset's history features lay them out) → {level: its slice (views)}."""
        bounds = np.cumsum([len(self[lv]) for lv in LEVELS])
        if a.shape[axis] != bounds[-1]:
            raise ValueError(f"split: {a.shape[axis]} labels on axis {axis}, expected {bounds[-1]} (every level)")
        return dict(zip(LEVELS, np.split(a, bounds[:-1], axis=axis)))

    def parent_matrix(self, child: str, parent: str) -> np.ndarray:
        """(L_child, L_parent) 0/1 matrix: entry (i, j) is 1 when child code i lies under parent code j."""
        c, p = self[child], self[parent]
        m = np.zeros((len(c), len(p)), dtype=np.float64)
        for i, code in enumerate(c.codes):
            m[i, p.index[self.parent_code(code, parent)]] = 1.0
        return m


@cache
def label_space() -> LabelSpace:
    """The project's CAMEO label space, from :func:`pipeline.cameo.codes.event_codes` (cached; immutable)."""
    from pipeline.cameo import codes as cameo

    table = cameo.event_codes()
    codes = sorted(table)
    orphans = [c for c in codes if len(c) == 4 and c[:3] not in table]
    if orphans:
        raise ValueError(f"CAMEO resources: 4-digit codes {orphans} have no 3-digit base code")
    desc = {c: table[c].description for c in codes}
    quad_of_root = {c: table[c].quad_class for c in codes if len(c) == 2}
    groups = {
        "event": [c for c in codes if len(c) >= 3],
        "base": [c for c in codes if len(c) == 3],
        "root": [c for c in codes if len(c) == 2],
        "quad": sorted(QUAD_NAMES),
    }
    for q, name in QUAD_NAMES.items():
        desc[q] = name
    levels = {k: Level(k, tuple(v), {c: i for i, c in enumerate(v)}) for k, v in groups.items()}
    root_of = {c: table[c].root for c in codes}
    return LabelSpace(levels=levels, description=desc, root_of=root_of, quad_of_root=quad_of_root)


# ------------------------------------------------------------------ outcomes
@dataclass
class Outcomes:
    """What happened: label indicators per country-day, read from the ``country`` table.

    Day d holds the events *added* on day d (the ``country`` partition d), so a
    forecast for d made from partitions before d never sees its outcome.

    Attributes:
        days: the days with a ``country`` partition, sorted (length Dy).
        countries: FIPS codes of the event locations seen on those days, sorted (length C).
        y: level → (Dy, C, L_level) bool, True when the label occurred.
        n_events: (Dy, C) int64 events located in the country that day.
        quad_counts: (Dy, C, 4) int64 events per QuadClass.
        dropped: reason → number of events not counted in ``y`` (no location,
            codes outside the CAMEO table); events are never dropped silently.
        counts: level → (Dy, C, L_level) int32 events per label (empty when built by hand:
            readers fall back to ``y``).
        mentions: level → (Dy, C, L_level) float32 Σ NumMentions of the label's events (empty when built
            by hand: readers fall back to ``counts``).
        actor: level → (Dy, C, L_level) int32 the label's events located in *another* country with an actor
            from this one (Actor1Geo or Actor2Geo, counted once per event and country): the country's part in
            the label's events abroad (empty when built by hand: readers take zeros).
        left_out: days of the read range whose ``country`` partition was left out, as a gap, because the day
            holds too few of its usual GDELT exports (:func:`pipeline.core.coverage.left_out_days`).
    """

    days: list
    countries: list[str]
    y: dict[str, np.ndarray]
    n_events: np.ndarray
    quad_counts: np.ndarray
    dropped: dict[str, int]
    counts: dict[str, np.ndarray] = field(default_factory=dict)
    mentions: dict[str, np.ndarray] = field(default_factory=dict)
    actor: dict[str, np.ndarray] = field(default_factory=dict)
    left_out: list = field(default_factory=list)

    def day_index(self, day) -> int | None:
        try:
            return self.days.index(day)
        except ValueError:
            return None

    def country_index(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.countries)}

    def until(self, last_day) -> "Outcomes":
        """The outcomes of the days up to ``last_day`` only, as :func:`load_outcomes` with ``end=last_day``
        would read them (the countries seen on those days); ``dropped`` stays the whole read's.

        Lets one read of the ``country`` table serve many targets (a backtest's days) with no leak from
        later days. ``FileNotFoundError`` when no day is that early (as for an empty read).
        """
        keep = [i for i, d in enumerate(self.days) if d <= last_day]
        if not keep:
            raise FileNotFoundError(f"no 'country' day on or before {last_day} in these outcomes")
        left_out = [d for d in self.left_out if d <= last_day]
        if len(keep) == len(self.days):
            return self if left_out == self.left_out else dataclasses.replace(self, left_out=left_out)
        seen = self.n_events[keep].sum(axis=0) > 0
        cols = np.flatnonzero(seen)
        return self.with_arrays(lambda _, a: a[keep][:, cols], days=[self.days[i] for i in keep],
                                countries=[self.countries[j] for j in cols], dropped=dict(self.dropped),
                                left_out=left_out)

    def array(self, key: tuple[str, str | None]) -> np.ndarray:
        """The (day, country, …) array ``key`` of :data:`ARRAY_FIELDS`: ``(field, level)``, level None for
        ``n_events`` and ``quad_counts``."""
        name, level = key
        v = getattr(self, name)
        return v if level is None else v[level]

    def with_arrays(self, f: Callable[[tuple[str, str | None], np.ndarray], np.ndarray], **changes) -> "Outcomes":
        """A copy with every (day, country, …) array ``a`` of :data:`ARRAY_FIELDS` replaced by ``f(key, a)`` (key as
        in :meth:`array`) and the other fields of ``changes`` set (e.g. ``days``, ``countries``): the one place that
        knows which arrays share the day and country axes."""
        new = {}
        for name in ARRAY_FIELDS:
            v = getattr(self, name)
            new[name] = {lv: f((name, lv), a) for lv, a in v.items()} if isinstance(v, dict) else f((name, None), v)
        return dataclasses.replace(self, **new, **changes)


ARRAY_FIELDS = ("y", "n_events", "quad_counts", "counts", "mentions", "actor")
"""The fields of :class:`Outcomes` indexed (day, country, …)."""


ABROAD_SQL = """
    SELECT CAST(date AS DATE) AS day, a AS country, EventCode AS event, EventBaseCode AS base, EventRootCode AS root,
           CAST(QuadClass AS VARCHAR) AS quad, count(*) AS n FROM (
        SELECT date, Actor1Geo_CountryCode AS a, ActionGeo_CountryCode AS g, EventCode, EventBaseCode,
               EventRootCode, QuadClass FROM read_parquet($paths, hive_partitioning = true)
        UNION ALL
        SELECT date, Actor2Geo_CountryCode, ActionGeo_CountryCode, EventCode, EventBaseCode, EventRootCode, QuadClass
        FROM read_parquet($paths, hive_partitioning = true)
        WHERE Actor2Geo_CountryCode IS DISTINCT FROM Actor1Geo_CountryCode)
    WHERE a IS NOT NULL AND a <> '' AND g IS NOT NULL AND g <> '' AND a <> g
    GROUP BY ALL
"""
"""Each event located in country g counted once per other country a of its actors' geographies (Actor1Geo, and
Actor2Geo when it is a third country), by (day, a, codes): the rows behind ``Outcomes.actor``. Two column scans
in a UNION ALL measured faster than one scan unnesting the two actors (0.87 against 0.96 s on the 22 days)."""


def load_outcomes(lake, start=None, end=None, labels: LabelSpace | None = None) -> Outcomes:
    """Label indicators of every country-day in the ``country`` table between ``start`` and ``end``.

    One DuckDB pass groups the partitions by (day, ActionGeo country, codes).
    Events without a location belong to no country: they are counted in
    ``Outcomes.dropped["no_location"]`` and nowhere else. Located events whose code
    is not a CAMEO code are counted in ``Outcomes.dropped`` (per level) and still
    count in their country's ``n_events``. A second pass over the events located
    away from an actor's country (:data:`ABROAD_SQL`) gives ``actor`` (for the
    countries seen as locations).

    Days holding too few of their usual GDELT exports (``lake.leave_out_share``,
    :func:`pipeline.core.coverage.left_out_days`) are left out, as gaps are, and
    listed in ``Outcomes.left_out``: their counts read low, and every reader of
    what happened (the forecasts' windows, training, the scores) is better
    without them.
    """
    labels = labels or label_space()
    files, left_out = _country_files(lake, start, end)
    if not files:
        raise FileNotFoundError(
            f"no partitions of table 'country' in {lake.root} for {start or '-inf'} … {end or '+inf'}"
            + (f" but {len(left_out)} left out as too thin" if left_out else "")
            + ": run `gdelt-forecast ingest` and `gdelt-forecast reduce` for those days first"
        )
    key = _memo.key_of(files, left_out, labels) if _memo.depth else None  # outside a block: no file stats
    if (hit := _memo.get(key)) is not None:
        return hit
    import duckdb

    con = duckdb.connect()
    paths = {"paths": [f.as_posix() for f in files]}
    located = _arrow(con.sql(
        """
        SELECT CAST(date AS DATE) AS day, ActionGeo_CountryCode AS country, EventCode AS event,
               EventBaseCode AS base, EventRootCode AS root, CAST(QuadClass AS VARCHAR) AS quad,
               count(*) AS n, CAST(sum(coalesce(NumMentions, 0)) AS DOUBLE) AS mentions
        FROM read_parquet($paths, hive_partitioning = true)
        GROUP BY ALL
        """,
        params=paths,
    ))
    abroad = _arrow(con.sql(ABROAD_SQL, params=paths))
    con.close()
    # Arrow all the way: the codes become column numbers in C++ (pyarrow.compute), the counts are summed
    # into the dense arrays by np.bincount (no pandas strings, no np.add.at).
    has_place = pc.fill_null(pc.greater(pc.utf8_length(located["country"]), 0), False)
    n_all = located["n"].to_numpy()
    dropped = {"no_location": int(n_all[~has_place.to_numpy(zero_copy_only=False)].sum())}
    located = located.filter(has_place)
    day_num = _day_numbers(located["day"])
    day_keys = np.unique(day_num)
    days = [dt.date(1970, 1, 1) + dt.timedelta(days=int(d)) for d in day_keys]  # sorted
    countries = sorted(pc.unique(located["country"]).to_pylist())
    shape = (len(days), len(countries))
    day_ix, c_ix = np.searchsorted(day_keys, day_num), _codes(located["country"], countries)
    n, m = located["n"].to_numpy(), located["mentions"].to_numpy()
    n_events = _scatter(shape, (day_ix, c_ix), n, np.int64)
    y: dict[str, np.ndarray] = {}
    counts: dict[str, np.ndarray] = {}
    mentions: dict[str, np.ndarray] = {}
    for level in LEVELS:
        l_ix = _codes(located[level], labels[level].codes)
        ok = l_ix >= 0
        if (~ok).any():
            dropped[f"unknown_{level}_code"] = int(n[~ok].sum())
        at = (day_ix[ok], c_ix[ok], l_ix[ok])
        counts[level] = _scatter(shape + (len(labels[level]),), at, n[ok], np.int32)
        y[level] = counts[level] > 0
        mentions[level] = _scatter(shape + (len(labels[level]),), at, m[ok], np.float32)
    # the countries' events abroad (a country seen only as an actor, never as a location, has no row)
    abroad = abroad.filter(pc.is_in(abroad["country"], value_set=pa.array(countries, pa.string())))
    a_day, a_c = np.searchsorted(day_keys, _day_numbers(abroad["day"])), _codes(abroad["country"], countries)
    a_n = abroad["n"].to_numpy()
    actor = {}
    for level in LEVELS:
        l_ix = _codes(abroad[level], labels[level].codes)
        ok = l_ix >= 0
        actor[level] = _scatter(shape + (len(labels[level]),), (a_day[ok], a_c[ok], l_ix[ok]), a_n[ok], np.int32)
    return _memo.put(key, Outcomes(days=days, countries=countries, y=y, n_events=n_events,
                                   quad_counts=counts["quad"].astype(np.int64), dropped=dropped, counts=counts,
                                   mentions=mentions, actor=actor, left_out=sorted(left_out)))


def _country_files(lake, start, end) -> tuple[list, set[dt.date]]:
    """The ``country`` partitions a read of [start, end] takes, and the days it leaves out as too thin."""
    from pipeline.core.coverage import left_out_days, partition_day

    left_out = set(left_out_days(lake, start, end))
    return [f for f in lake.files("country", start, end) if partition_day(f) not in left_out], left_out


def outcomes_key(lake, start=None, end=None, labels: LabelSpace | None = None) -> tuple:
    """What :func:`load_outcomes` of these arguments reads (each partition file's path, size and modification
    time, the days left out, the labels): two reads with equal keys give equal :class:`Outcomes`."""
    files, left_out = _country_files(lake, start, end)
    return _memo.key_of(files, left_out, labels or label_space())


class _Memo:
    """The last read of :func:`load_outcomes`, kept only inside :func:`remembered_outcomes`."""

    def __init__(self) -> None:
        self.lock, self.depth, self.key, self.value = threading.Lock(), 0, None, None

    @staticmethod
    def key_of(files, left_out, labels) -> tuple:
        """What a read depends on: each file's path, size and modification time, the days left out, the labels."""
        stats = tuple((f.as_posix(), (st := f.stat()).st_size, st.st_mtime_ns) for f in files)
        return stats, tuple(sorted(left_out)), tuple((lv, labels[lv].codes) for lv in LEVELS)

    def get(self, key) -> "Outcomes | None":
        with self.lock:
            return self.value if self.depth and key is not None and key == self.key else None

    def put(self, key, value: "Outcomes") -> "Outcomes":
        with self.lock:
            if self.depth and key is not None:
                for name in ARRAY_FIELDS:  # one reader cannot change what the next one reads
                    v = getattr(value, name)
                    for a in v.values() if isinstance(v, dict) else (v,):
                        a.setflags(write=False)
                self.key, self.value = key, value
        return value


_memo = _Memo()


@contextlib.contextmanager
def remembered_outcomes() -> Iterator[None]:
    """Inside this block a second :func:`load_outcomes` of the same files and days returns the first's
    :class:`Outcomes` (its arrays read-only) instead of reading the ``country`` table again.

    The daily run reads the whole history four times for one day (the baselines, the forecast's climatology
    blend and the bar's rows, evaluate, the report): two years of 246 countries take ~14 s and ~2 GB a read
    (bench/long_history.py).
    The key is every partition file's path, size and modification time, so a day re-reduced in between is read
    afresh; the last read is dropped when the outermost block ends."""
    with _memo.lock:
        _memo.depth += 1
    try:
        yield
    finally:
        with _memo.lock:
            _memo.depth -= 1
            if not _memo.depth:
                _memo.key = _memo.value = None


def _arrow(relation) -> pa.Table:
    """A DuckDB relation's rows as one Arrow table (``.arrow()`` gives a table in DuckDB 1, a reader in 2)."""
    out = relation.arrow()
    return out.read_all() if isinstance(out, pa.RecordBatchReader) else out


def _day_numbers(days: pa.ChunkedArray) -> np.ndarray:
    """(n,) int64 days since 1970-01-01 of an Arrow date32 column (no nulls: every partition row has its day)."""
    return pc.cast(days, pa.date32()).cast(pa.int32()).to_numpy().astype(np.int64)


def _codes(values: pa.ChunkedArray, keys: Sequence[str]) -> np.ndarray:
    """(n,) int64 position of each value among ``keys`` (−1 for one not among them, or null), in C++."""
    pos = pc.index_in(values.cast(pa.string()), value_set=pa.array(list(keys), pa.string()))
    return pc.fill_null(pos, -1).to_numpy().astype(np.int64)


def _scatter(shape: tuple[int, ...], at: tuple[np.ndarray, ...], values: np.ndarray, dtype) -> np.ndarray:
    """A zero array of ``shape`` with ``values`` summed at the index arrays ``at``: one ``np.bincount`` over the
    flat index (~10× ``np.add.at``). Its float64 sums of integer values (counts, mentions) are exact below 2⁵³."""
    flat = np.ravel_multi_index(at, shape)
    return np.bincount(flat, weights=np.asarray(values, np.float64), minlength=int(np.prod(shape))
                       ).astype(dtype).reshape(shape)
