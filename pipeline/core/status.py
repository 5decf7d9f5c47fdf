"""What is already done for a day, stage by stage: the basis of resumable runs.

A stage is *done* for a day when its output partition exists and is at least
as new as every partition it is built from (so re-ingesting a day makes its
reduction, descriptors, forecasts and scores stale again). An input that is
missing is not "fresh": the stage is done only when the day is a recorded gap
(below) and its output is absent too.

| stage        | output                                   | built from (``STAGE_INPUTS``)  |
|--------------|------------------------------------------|--------------------------------|
| ingest       | ``events/d`` (or a ``gaps/d`` row), and no ``failed``/``partial`` file of d in the ``manifest`` | source files |
| reduce       | ``country/d``                             | ``events/d``                   |
| descriptors  | ``descriptor_days/d``                     | ``country/d``                  |
| forecast     | ``forecasts/model=<run>/d+1``             | ``descriptor_days/d``, the model files |
| baselines    | ``forecasts/model=baseline-*/d+1`` (climatology's, written last) | ``country/d``                  |
| evaluate     | ``scores/model=<run>/d``                  | ``forecasts`` and ``country`` of d |
| watchlist    | ``watchlist/model=<run>/D`` (run: the model's, else :func:`page_baseline`) | ``forecasts`` (every run) and ``futures`` of D |

A day ``d`` of a run means "the data added on day d": its forecast is for d+1
and its evaluation scores the forecasts whose target day is d. The watch list,
like evaluate, takes the target day D itself (``forecasts`` of D); the ``scores``
of the days before D only pick its reference baseline, and the ``country`` days before D only give the actor
pairs it shows (``pipeline.scoring.actors``): neither is checked.

**Gaps.** GDELT has days without any export. After an ingest, a day with no
``events`` partition and no failed file is recorded in the ``gaps`` table
(:func:`record_gaps`): its ingest is done, reduce and descriptors have nothing to
do (and remove outputs left from an earlier version of the day), forecasts use
the other days of their window, and a backfill lists the gaps in its summary.

**Thin days.** A day holding fewer GDELT exports than ``lake.leave_out_share`` of its usual is built like any
other, then left out of what the forecasts and scores read (:mod:`pipeline.core.coverage`): evaluate has nothing
to score on it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.core.coverage import left_out_days
from pipeline.core.lake import DateLike, Lake, as_date
from pipeline.core.registry import model_mtime
from pipeline.core.schemas import GAPS_SCHEMA

STAGES: tuple[str, ...] = ("ingest", "reduce", "descriptors", "baselines", "forecast", "evaluate")

STAGE_INPUTS: dict[str, tuple[str, ...]] = {
    "ingest": (),  # the source files; what was read is in the manifest
    "reduce": ("events",),
    "descriptors": ("country",),
    "forecast": ("descriptor_days",),
    "baselines": ("country",),
    "evaluate": ("forecasts", "country"),
    "watchlist": ("forecasts", "futures", "scores"),
}
"""The lake tables each stage reads for its day: used here and by the flows' cache keys."""

PAGE_BASELINES: tuple[str, ...] = ("baseline-learned", "baseline-climatology")
"""Without a model run, the run the morning page and its watch list are about: the first of these with forecasts
for the day. ``baseline-learned`` is the best forecaster there is without a model, and its departures from
climatology are real calls (docs/report.md "Without a model"); climatology's own departures from itself are none."""


def page_baseline(lake: Lake, day: DateLike) -> str | None:
    """The first of :data:`PAGE_BASELINES` with a ``forecasts`` partition for ``day``, else None."""
    return next((r for r in PAGE_BASELINES if lake.has_partition("forecasts", as_date(day), model=r)), None)


NOT_DONE_FILES = ("failed", "partial")
"""Manifest statuses that leave their day's ingest to do (a re-run retries the file)."""


def _mtime(lake: Lake, table: str, day: dt.date, **keys: str) -> float | None:
    d = lake.partition_dir(table, day, **keys)
    files = list(d.glob("*.parquet")) if d.exists() else []
    return max((f.stat().st_mtime for f in files), default=None)


def _fresh(out: float | None, *inputs: float | None) -> bool:
    """The output exists and is at least as new as every input (a missing input is not fresh)."""
    return out is not None and all(i is not None and out >= i for i in inputs)


# -------------------------------------------------------------------- gaps
def gap_days(lake: Lake, start: DateLike | None = None, end: DateLike | None = None) -> list[dt.date]:
    """Recorded gaps in [start, end] that still have no ``events`` partition."""
    return [d for d in lake.partitions("gaps", start, end) if not lake.has_partition("events", d)]


def record_gaps(lake: Lake, days: Iterable[DateLike], source: str,
                reason: str = "no source data for the day") -> list[dt.date]:
    """Record each of ``days`` that has no ``events`` partition and no unfinished file as a gap.

    Call it after ingesting ``days``. Returns the gap days (recorded now or before).
    """
    status = LakeStatus(lake)
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    out = []
    for d in sorted({as_date(x) for x in days}):
        if lake.has_partition("events", d) or status.unfinished(d):
            continue
        if not lake.has_partition("gaps", d):
            row = pa.Table.from_pylist([dict(source=source, reason=reason, recorded_at=now)], schema=GAPS_SCHEMA)
            lake.write_partition("gaps", row, d, schema=GAPS_SCHEMA)
        out.append(d)
    return out


# ------------------------------------------------------------------ status
class LakeStatus:
    """Stage status of many days, reading ``gaps`` once and the ``manifest`` partition of each day asked about.

    ``status`` sits below ``ingest``, so it reads the manifest through the lake, not
    through ``pipeline.ingest.manifest``.
    """

    def __init__(self, lake: Lake):
        self.lake = lake
        self._unfinished: dict[dt.date, bool] = {}
        self._undated: dict[dt.date, list[str]] | None = None
        self._gaps: set[dt.date] | None = None
        self._left_out: set[dt.date] | None = None
        self._has_events: bool | None = None
        self._first_country: dt.date | None = None

    def unfinished(self, day: DateLike) -> bool:
        """Has ``day`` a ``failed`` or ``partial`` file in the manifest? Reads that day's partition only."""
        d = as_date(day)
        if d not in self._unfinished:
            statuses = list(self._undated_statuses().get(d, []))
            if self.lake.has_partition("manifest", d):
                statuses += self.lake.read("manifest", d, d, columns=["status"]).column("status").to_pylist()
            self._unfinished[d] = any(s in NOT_DONE_FILES for s in statuses)
        return self._unfinished[d]

    def _undated_statuses(self) -> dict[dt.date, list[str]]:
        """Statuses by day of the rows in the manifest's own file (an older version's single file holds days)."""
        if self._undated is None:
            self._undated = {}
            for f in self.lake.undated_files("manifest"):
                m = pq.read_table(f, columns=["day", "status"]).to_pydict()
                for d, s in zip(m["day"], m["status"]):
                    if d is not None:
                        self._undated.setdefault(d, []).append(s)
        return self._undated

    @property
    def gaps(self) -> set[dt.date]:
        if self._gaps is None:
            self._gaps = set(self.lake.partitions("gaps"))
        return self._gaps

    @property
    def left_out(self) -> set[dt.date]:
        """The days too thin to score (:func:`pipeline.core.coverage.left_out_days`), from one read of the manifest."""
        if self._left_out is None:
            self._left_out = set(left_out_days(self.lake))
        return self._left_out

    def country_by(self, d: dt.date) -> bool:
        """Has the lake a ``country`` partition on or before ``d`` (something to forecast the day after from)?"""
        if self._first_country is None:
            days = self.lake.partitions("country")
            self._first_country = days[0] if days else dt.date.max
        return self._first_country <= d

    def is_gap(self, d: dt.date) -> bool:
        return d in self.gaps and not self.lake.has_partition("events", d)

    def done(self, stage: str, day: DateLike, model_run: str | None = None, model_dir: Path | None = None) -> bool:
        """Is ``stage`` done (and up to date) for ``day``? See the module table."""
        lake, d = self.lake, as_date(day)
        nxt = d + dt.timedelta(days=1)
        if stage == "ingest":
            return (lake.has_partition("events", d) or self.is_gap(d)) and not self.unfinished(d)
        if stage == "reduce":
            return self._follows(_mtime(lake, "country", d), _mtime(lake, "events", d), d, from_events=True)
        if stage == "descriptors":
            return self._follows(_mtime(lake, "descriptor_days", d), _mtime(lake, "country", d), d)
        if stage == "forecast":
            if model_run is None:
                return True  # no model: nothing to do
            out = _mtime(lake, "forecasts", nxt, model=model_run)
            extra = [model_mtime(model_dir)] if model_dir is not None else []
            src = _mtime(lake, "descriptor_days", d)
            return _fresh(out, *extra) if src is None and self.is_gap(d) else _fresh(out, src, *extra)
        if stage == "baselines":
            out, src = _mtime(lake, "forecasts", nxt, model="baseline-climatology"), _mtime(lake, "country", d)
            if src is None and self.is_gap(d):  # forecast from the days before; nothing to do before the first
                return out is not None or not self.country_by(d)
            return _fresh(out, src)
        if stage == "evaluate":
            if model_run is None:
                return True
            fc = _mtime(lake, "forecasts", d, model=model_run)
            if fc is None:
                return True  # nothing forecast for d: nothing to score
            obs = _mtime(lake, "country", d)
            if obs is None and self.is_gap(d) or d in self.left_out:
                return True  # nothing observed on a gap, and too little on a thin day: nothing to score
            return _fresh(_mtime(lake, "scores", d, model=model_run), fc, _mtime(lake, "country", d))
        if stage == "watchlist":
            run = model_run or page_baseline(lake, d) or PAGE_BASELINES[-1]
            fc = [_mtime(lake, "forecasts", d, model=p.parent.name.split("=", 1)[1])
                  for p in lake.table_dir("forecasts").glob(f"model=*/{d}")]
            if _mtime(lake, "forecasts", d, model=run) is None:
                return True  # nothing forecast for d by the run: no watch list to make
            fut = _mtime(lake, "futures", d, model=run)
            return _fresh(_mtime(lake, "watchlist", d, model=run), *fc, *([fut] if fut is not None else []))
        raise ValueError(f"unknown stage {stage!r}; known: {', '.join(STAGE_INPUTS)}")

    def _follows(self, out: float | None, src: float | None, d: dt.date, from_events: bool = False) -> bool:
        """A per-day output of one input partition: fresh, or both absent on a gap day."""
        if src is not None:
            return _fresh(out, src)
        if self.is_gap(d):
            return out is None  # an output left from an earlier version of the day is stale
        if from_events and not self.lake.table_dir("events").exists():
            return out is not None  # ``country`` built straight from BigQuery: no events to follow
        return False  # not built yet (its input comes first)


def stage_done(lake: Lake, stage: str, day: DateLike, model_run: str | None = None,
               model_dir: Path | None = None) -> bool:
    """Is ``stage`` done (and up to date) for ``day``? See the module table."""
    return LakeStatus(lake).done(stage, day, model_run, model_dir)


@dataclass(frozen=True)
class Step:
    day: dt.date
    stage: str
    done: bool


def plan(lake: Lake, days: list[dt.date], stages: tuple[str, ...] = STAGES, *, force: bool = False,
         model_run: str | None = None, model_dir: Path | None = None) -> list[Step]:
    """Every (day, stage) with whether it is done; ``force`` marks everything to do."""
    status = LakeStatus(lake)
    return [
        Step(d, s, (not force) and status.done(s, d, model_run, model_dir))
        for d in days for s in stages
    ]
