"""What is already done for a day, stage by stage: the basis of resumable runs.

A stage is *done* for a day when its output partition exists and is at least
as new as the partition it was built from (so re-ingesting a day makes its
reduction, descriptors, forecasts and scores stale again):

| stage        | output                                   | built from                     |
|--------------|------------------------------------------|--------------------------------|
| ingest       | ``manifest`` rows ``ok`` for the day      | source files                   |
| reduce       | ``country/date=d``                        | ``events/date=d``              |
| descriptors  | ``descriptor_days/date=d``                | ``country/date=d``             |
| forecast     | ``forecasts/model=<run>/date=d+1``        | ``descriptor_days/date=d``, the model files |
| baselines    | ``forecasts/model=baseline-*/date=d+1``   | ``country/date=d``             |
| evaluate     | ``scores/model=<run>/date=d``             | ``forecasts`` and ``country`` of d |

A day ``d`` of a run means "the data added on day d": its forecast is for d+1
and its evaluation scores the forecasts whose target day is d.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from pipeline.core.lake import DateLike, Lake, as_date
from pipeline.core.registry import model_mtime

STAGES: tuple[str, ...] = ("ingest", "reduce", "descriptors", "forecast", "evaluate")


def _mtime(lake: Lake, table: str, day: dt.date, **keys: str) -> float | None:
    d = lake.partition_dir(table, day, **keys)
    files = list(d.glob("*.parquet")) if d.exists() else []
    return max((f.stat().st_mtime for f in files), default=None)


def _fresh(out: float | None, *inputs: float | None) -> bool:
    return out is not None and all(i is None or out >= i for i in inputs)


def ingested_days(lake: Lake) -> set[dt.date]:
    """Days with an ``events`` partition (what the manifest's finished files produced)."""
    return set(lake.partitions("events"))


def stage_done(lake: Lake, stage: str, day: DateLike, model_run: str | None = None,
               model_dir: Path | None = None) -> bool:
    """Is ``stage`` done (and up to date) for ``day``? See the module table."""
    d = as_date(day)
    nxt = d + dt.timedelta(days=1)
    if stage == "ingest":
        return lake.has_partition("events", d)
    if stage == "reduce":
        return _fresh(_mtime(lake, "country", d), _mtime(lake, "events", d))
    if stage == "descriptors":
        return _fresh(_mtime(lake, "descriptor_days", d), _mtime(lake, "country", d))
    if stage == "forecast":
        if model_run is None:
            return True  # no model: nothing to do
        model_time = model_mtime(model_dir) if model_dir is not None else None
        return _fresh(_mtime(lake, "forecasts", nxt, model=model_run), _mtime(lake, "descriptor_days", d), model_time)
    if stage == "baselines":
        return _fresh(_mtime(lake, "forecasts", nxt, model="baseline-climatology"), _mtime(lake, "country", d))
    if stage == "evaluate":
        if model_run is None:
            return True
        fc = _mtime(lake, "forecasts", d, model=model_run)
        if fc is None:
            return True  # nothing forecast for d: nothing to score
        return _fresh(_mtime(lake, "scores", d, model=model_run), fc, _mtime(lake, "country", d))
    raise ValueError(f"unknown stage {stage!r}; known: {', '.join(STAGES)}")


@dataclass(frozen=True)
class Step:
    day: dt.date
    stage: str
    done: bool


def plan(lake: Lake, days: list[dt.date], stages: tuple[str, ...] = STAGES, *, force: bool = False,
         model_run: str | None = None, model_dir: Path | None = None) -> list[Step]:
    """Every (day, stage) with whether it is done; ``force`` marks everything to do."""
    return [
        Step(d, s, (not force) and stage_done(lake, s, d, model_run, model_dir))
        for d in days for s in stages
    ]
