"""How much of a day the lake holds, and whether a day is too thin to forecast from as usual.

GDELT 2.0 publishes a day as 96 fifteen-minute exports (``YYYYMMDDHHMMSS.export.CSV.zip``). A day that holds
fewer of them than the lake's other days (an outage at GDELT, files that failed and were not retried, a local
folder with gaps) has fewer events in every country, so every "yesterday" feature of the next forecast reads low
and the forecast with them: with half its usual exports in the day before each test day, ``baseline-learned``'s
BSS against climatology falls from +4.4 … +5.8 % to +0.4 … +2.1 % at event level on the 30 busiest countries, and
with a quarter to −2.3 … −7.9 %, its probabilities 2 … 6 points too low (``bench/coverage.py --yesterday``,
docs/forecast.md session 19).

The exports a day holds are counted from the ``manifest`` (files ingested ``ok``, by name, whichever source
read them: ``gdelt2`` or a ``local`` folder of GDELT 2.0 files), and for a day read without export files (BigQuery)
from the distinct ``DATEADDED`` stamps of its events, one per fifteen-minute export; a day is compared with its
*usual*, the median of the days before it in the lake, so a lake built from a sample of each day (the shipped
sample holds 3 exports a day) is not flagged every day. GDELT 1.0 days (one daily file, one stamp) have no exports
to count: no coverage.

Two thresholds act on the share: below ``flow.min_day_share`` (0.8) a day is *thin* and flagged (``daily`` warns,
the report says so, ``backfill`` lists it) so its missing exports get fetched; below ``lake.leave_out_share``
(0.65, :data:`pipeline.core.lake.LEAVE_OUT_SHARE`) it is also *left out* of everything that reads what happened
(:func:`left_out_days`: the outcomes behind the baselines, the history features, the model's context, training
targets and the scores), as a recorded gap is: the forecasts after it read the days before it instead. Below about
two thirds of a day that is the better forecast (+3.31 against +2.57 at three fifths, +1.24 at a half; a tie at two
thirds), and a thin target day's outcomes would score every forecaster against counts that read low.
"""

from __future__ import annotations

import datetime as dt
import re
import statistics
from collections.abc import Iterable
from dataclasses import dataclass

from pipeline.core.lake import DateLike, Lake, as_date

EXPORTS_A_DAY = 96
"""GDELT 2.0's fifteen-minute exports in a full day."""
EXPORT_NAME = re.compile(r"^\d{14}\.export\.csv", re.IGNORECASE)
"""A GDELT 2.0 fifteen-minute export's file name (zipped or not)."""
USUAL_DAYS = 28
"""Days before a day whose median is its usual count: a partial outage (some exports each day) is flagged on its
first 15 days before it becomes the usual, and so is a lasting change in how many exports a day holds (another
sample of each day). With 14 days, a partial outage stopped being flagged on its 9th day."""
MIN_USUAL_DAYS = 2
"""Fewer earlier days than this with exports: no usual, no verdict."""


@dataclass(frozen=True)
class DayCoverage:
    """The GDELT 2.0 exports ``day`` holds, against the median of up to :data:`USUAL_DAYS` days before it."""

    day: dt.date
    exports: int
    usual: float
    usual_days: int

    @property
    def share(self) -> float:
        """The day's exports over its usual count (1.0: as full as the days before; the usual is a median of days
        holding at least one)."""
        return self.exports / self.usual

    def thin(self, min_share: float) -> bool:
        return self.share < min_share

    def verdict(self, min_share: float, leave_out_share: float) -> str:
        """How the day is read: ``"left out"`` below ``leave_out_share`` (the lake's), ``"thin"`` below
        ``min_share`` (``flow.min_day_share``: flagged, read as it is), ``""`` otherwise."""
        return "left out" if self.thin(leave_out_share) else "thin" if self.thin(min_share) else ""

    def message(self, leave_out_share: float = 0.0) -> str:
        """What a user should know of a thin day, and do: below ``leave_out_share`` (the lake's) it is left out."""
        head = (f"{self.day} holds {self.exports} of GDELT's {EXPORTS_A_DAY} daily exports against a usual "
                f"{self.usual:g} ({self.share:.0%}; the median of the {self.usual_days} days before): ")
        fix = (f"ingest its missing exports (gdelt-forecast ingest --start {self.day} --end {self.day}) and run the "
               "day again")
        if self.thin(leave_out_share):
            return (f"{head}too few to read, so forecasts, training and scores leave it out as a gap until they are "
                    f"there: {fix}")
        return f"{head}its counts read low, and so do the forecasts made from it: {fix}"


def exports_per_day(lake: Lake, start: DateLike | None, end: DateLike | None) -> dict[dt.date, int]:
    """{day: GDELT 2.0 fifteen-minute exports it holds} for the days in [start, end] (None: open) that have any:
    the distinct export files the ``manifest`` records as ingested ``ok``; for a day read without export files (a
    BigQuery day), the distinct ``DATEADDED`` stamps of its ``country`` rows, one per export (a GDELT 1.0 day, a
    single stamp at midnight, has none).

    DuckDB passes over the files, remembered while none of them changes: every reader of the ``country`` table
    asks (:func:`left_out_days`), several times a run. 1,000 days of 192 manifest files each: 0.39 s, then
    0.03 s, against 1.15 s for an Arrow read and a Python loop (``bench/coverage_speed.py``)."""
    counts = _remembered(lake.files("manifest", start, end), _MANIFEST_SQL, {"pattern": EXPORT_NAME.pattern})
    others = [f for f in lake.files("country", start, end) if partition_day(f) not in counts]
    return dict(sorted((counts | _remembered(others, _STAMPS_SQL, {})).items())) if others else counts


_MANIFEST_SQL = ("SELECT day, count(DISTINCT lower(split_part(name, '.', 1))) "
                 "FROM read_parquet($paths, union_by_name = true) "
                 "WHERE status = 'ok' AND day IS NOT NULL AND regexp_matches(name, $pattern, 'i') GROUP BY day")
_STAMPS_SQL = ("SELECT date, count(DISTINCT DATEADDED) AS n FROM read_parquet($paths, union_by_name = true) "
               "GROUP BY date HAVING n > 1 OR max(extract('epoch' FROM DATEADDED)) % 86400 <> 0")


def partition_day(path) -> dt.date | None:
    """The day of a partition file ``…/<table>/YYYY-MM-DD/<file>.parquet`` (None outside a day folder)."""
    try:
        return dt.date.fromisoformat(path.parent.name)
    except ValueError:
        return None


def _remembered(files: list, sql: str, params: dict) -> dict[dt.date, int]:
    """{day: n} from ``sql`` over ``files`` (``$paths``), remembered while none of them changes."""
    if not files:
        return {}
    key = (sql, tuple((f.as_posix(), f.stat().st_mtime_ns) for f in files))
    if key not in _EXPORTS:
        import duckdb

        with duckdb.connect() as con:
            rows = con.execute(sql, {"paths": [f.as_posix() for f in files], **params}).fetchall()
        if len(_EXPORTS) >= 16:
            _EXPORTS.clear()
        _EXPORTS[key] = {d: int(n) for d, n in sorted(rows)}
    return dict(_EXPORTS[key])


_EXPORTS: dict[tuple, dict[dt.date, int]] = {}


def _coverage(counts: dict[dt.date, int], day: dt.date, usual_days: int) -> DayCoverage | None:
    before = [n for k in range(usual_days, 0, -1) if (n := counts.get(day - dt.timedelta(days=k))) is not None]
    if len(before) < MIN_USUAL_DAYS:
        return None
    return DayCoverage(day, counts.get(day, 0), float(statistics.median(before)), len(before))


def day_coverage(lake: Lake, day: DateLike, usual_days: int = USUAL_DAYS) -> DayCoverage | None:
    """How full ``day`` is against the days before it; None when the lake does not count exports for it (fewer
    than :data:`MIN_USUAL_DAYS` of the ``usual_days`` days before hold GDELT 2.0 exports)."""
    day = as_date(day)
    return _coverage(exports_per_day(lake, day - dt.timedelta(days=usual_days), day), day, usual_days)


def thin_days(lake: Lake, start: DateLike, end: DateLike, min_share: float, usual_days: int = USUAL_DAYS,
              skip: Iterable[dt.date] = ()) -> list[DayCoverage]:
    """The days of [start, end] (less ``skip``, e.g. recorded gaps) holding fewer exports than ``min_share`` of
    their usual, from one count of the exports (:func:`exports_per_day`)."""
    lo, hi, skip = as_date(start), as_date(end), set(skip)
    counts = exports_per_day(lake, lo - dt.timedelta(days=usual_days), hi)
    out = []
    for i in range((hi - lo).days + 1):
        day = lo + dt.timedelta(days=i)
        cov = None if day in skip else _coverage(counts, day, usual_days)
        if cov is not None and cov.thin(min_share):
            out.append(cov)
    return out


def coverages(lake: Lake, start: DateLike | None = None, end: DateLike | None = None) -> list[DayCoverage]:
    """The coverage of every day of [start, end] (None: open) that holds at least one GDELT 2.0 export and has a
    usual, from one count of the exports. A day with no export counted is not judged: a gap, or a day read from
    another source."""
    lo, hi = (None if start is None else as_date(start)), (None if end is None else as_date(end))
    counts = exports_per_day(lake, None if lo is None else lo - dt.timedelta(days=USUAL_DAYS), hi)
    return [cov for d in counts if (lo is None or d >= lo) and (cov := _coverage(counts, d, USUAL_DAYS)) is not None]


def left_out_days(lake: Lake, start: DateLike | None = None, end: DateLike | None = None) -> list[dt.date]:
    """The days of [start, end] (None: open) that readers of what happened leave out, as if they were gaps: those
    of :func:`coverages` holding fewer exports than ``lake.leave_out_share`` of their usual (none when it is 0).
    :func:`pipeline.cameo.labels.load_outcomes` and the model's context (:mod:`pipeline.features.dataset`) read the
    lake through it."""
    if not lake.leave_out_share:
        return []
    return [c.day for c in coverages(lake, start, end) if c.thin(lake.leave_out_share)]
