"""Prefect tasks: one per stage, each a thin call into ``pipeline/``.

- Configs travel as plain dicts (``Config.to_dict``); results are small dicts
  (days, counts, paths): the data lives in the lake.
- Retries with exponential backoff only where the network is (ingest from
  GDELT's servers or BigQuery); local ingest and every other stage fail fast.
- Caching is keyed on the task's inputs, its code, and the fingerprints of the
  partitions it reads, taken when it is about to run (``PartitionState``), so
  a rewritten input partition runs it again; ``force`` refreshes the cache, and
  so does a missing or stale output (``unless_done``: the flows ask the lake).
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import INPUTS, NO_CACHE, TASK_SOURCE, CachePolicy
from prefect.tasks import exponential_backoff

from flows.observe import forward_pipeline_logs
from pipeline.core.config import Config, config_from_dict
from pipeline.core.lake import Lake, as_date
from pipeline.core.registry import model_fingerprint
from pipeline.core.status import STAGE_INPUTS, LakeStatus

NETWORK_SOURCES = {"gdelt1", "gdelt2", "bigquery"}
forward_pipeline_logs()  # pipeline.* records land in the task run's logs (also on Dask / Ray workers)


def lake_of(cfg: Config) -> Lake:
    return cfg.lake.open()


@dataclass
class PartitionState(CachePolicy):
    """Cache key part: the fingerprints of the partitions a task reads, taken when it is about to run.

    The task must take ``cfg`` (a ``Config.to_dict``) and ``day``; the partitions are
    ``<table>/<day+offset>`` of each table for each offset. ``model_dir``, when a task
    takes it, adds the model files' state too.
    """

    tables: tuple[str, ...] = ("events",)
    offsets: tuple[int, ...] = (0,)

    def compute_key(self, task_ctx: Any, inputs: dict[str, Any], flow_parameters: dict[str, Any],
                    **kwargs: Any) -> str | None:
        cfg, d = config_from_dict(inputs["cfg"]), as_date(inputs["day"])
        lake = lake_of(cfg)
        parts = [day_state(lake, t, d + dt.timedelta(days=o)) for t in self.tables for o in self.offsets]
        if inputs.get("model_dir"):
            parts.append(model_fingerprint(inputs["model_dir"]))
        return "|".join([*self.tables, *parts])


def day_state(lake: Lake, table: str, day: dt.date) -> str:
    """Fingerprint of ``table``'s partition for ``day``; for a table keyed by ``model=<run>`` (forecasts,
    futures, scores), of every run's partition for that day."""
    runs = sorted(p.name.split("=", 1)[1] for p in lake.table_dir(table).glob("model=*"))
    if not runs:
        return lake.fingerprint(table, day)
    return ",".join(f"{r}:{lake.fingerprint(table, day, model=r)}" for r in runs)


def cached_on(stage: str, offsets: tuple[int, ...] = (0,)) -> CachePolicy:
    """Key = inputs + the task's code + the state of the partitions ``stage`` reads (``STAGE_INPUTS``)."""
    return INPUTS + TASK_SOURCE + PartitionState(tables=STAGE_INPUTS[stage], offsets=offsets)


def unless_done(task: Any, cfg: Config, stage: str, day: dt.date, model_run: str | None = None,
                model_dir: str | Path | None = None) -> Any:
    """``task``, with its cache refreshed when the lake says ``stage`` is not done for ``day`` (``LakeStatus``).

    A cache key reads only the stage's *inputs*, so an output partition deleted (or lost) after a run would
    otherwise be a cache hit that leaves it missing; the lake, not Prefect's result store, says what is done.
    """
    done = LakeStatus(lake_of(cfg)).done(stage, day, model_run, Path(model_dir) if model_dir else None)
    return task if done else task.with_options(refresh_cache=True)


# ------------------------------------------------------------------ ingest
@task(name="ingest", retries=3, retry_delay_seconds=exponential_backoff(backoff_factor=10), retry_jitter_factor=0.5,
      cache_policy=NO_CACHE, task_run_name="ingest-{source}-{day}")
def ingest_task(cfg: dict[str, Any], source: str, day: dt.date, path: str | None = None,
                force: bool = False, keep_going: bool = False) -> dict[str, Any]:
    """Ingest one day (the manifest skips finished files, so a retry resumes)."""
    from pipeline.ingest.run import ingest

    c = config_from_dict(cfg)
    report = ingest(lake_of(c), source, day, day, c.ingest, path=path, force=force, keep_going=keep_going,
                    progress=False)
    out = {"day": str(day), "files": len(report.files), "rows": report.rows_kept,
           "quarantined": report.rows_quarantined, "missing": report.count("missing"),
           "failed": [f.name for f in report.failed]}
    get_run_logger().info("ingest %s %s: %d files, %d rows kept, %d quarantined, %d missing, %d failed",
                          source, day, out["files"], out["rows"], out["quarantined"], out["missing"], len(out["failed"]))
    return out


def ingest_for(source: str):
    """The ingest task with retries where the source is on the network, none for local files."""
    return ingest_task if source in NETWORK_SOURCES else ingest_task.with_options(retries=0)


# ------------------------------------------------------------------ reduce
@task(name="reduce", cache_policy=cached_on("reduce"), task_run_name="reduce-{day}")
def reduce_task(cfg: dict[str, Any], day: dt.date) -> dict[str, Any]:
    """``events/date=day`` → ``country/date=day``."""
    from pipeline.ingest.reduce import reduce

    report = reduce(lake_of(config_from_dict(cfg)), day, day)
    get_run_logger().info("reduce %s: %d country rows%s", day, report.rows, " (no events)" if report.missing else "")
    return {"day": str(day), "rows": report.rows, "missing": [str(d) for d in report.missing]}


# ------------------------------------------------------------- descriptors
@task(name="descriptors", cache_policy=cached_on("descriptors"), task_run_name="descriptors-{day}")
def descriptors_task(cfg: dict[str, Any], day: dt.date) -> dict[str, Any]:
    """``country/date=day`` → ``descriptors`` + ``descriptor_days`` of that day (embedding cache shared).

    A day without ``country`` (a gap) is skipped, and descriptors left from an earlier version removed.
    """
    from pipeline.features.descriptors import build_day

    c = config_from_dict(cfg)
    lake = lake_of(c)
    if not lake.has_partition("country", day):
        removed = [t for t in ("descriptors", "descriptor_days") if lake.delete_partition(t, day)]
        get_run_logger().info("descriptors %s: no country partition (a gap); removed %s", day, removed or "nothing")
        return {"day": str(day), "missing": True, "removed": removed}
    summary = build_day(lake, day, c.descriptors, _embedder(c))
    get_run_logger().info("descriptors %s: %d countries, %d points, %d phrases embedded (cache hit rate %.1f%%)",
                          day, summary.countries, summary.points, summary.cache.misses, 100 * summary.cache.hit_rate)
    return {"day": str(day), "countries": summary.countries, "points": summary.points}


_EMBEDDERS: dict[str, Any] = {}


def _embedder(c: Config):
    """One embedder per model per process (loading it takes seconds; tasks share it)."""
    from pipeline.features.embed import Embedder

    key = f"{c.embed.model}|{c.embed.device}"
    if key not in _EMBEDDERS:
        _EMBEDDERS[key] = Embedder(c.embed)
    return _EMBEDDERS[key]


# ---------------------------------------------------------------- forecast
def forecast_task_for(context_days: int):
    """The forecast task, cached on the ``context_days`` descriptor partitions up to ``day`` and the model."""
    return forecast_task.with_options(cache_policy=cached_on("forecast", tuple(range(-context_days + 1, 1))))


@task(name="forecast", cache_policy=cached_on("forecast"), task_run_name="forecast-{day}")
def forecast_task(cfg: dict[str, Any], day: dt.date, model_dir: str) -> dict[str, Any]:
    """Forecast day+1 with the model in ``model_dir`` from the T days of descriptors up to ``day``."""
    from pipeline.forecast.forecast import run_forecast

    c = config_from_dict(cfg)
    c.forecast.model = Path(model_dir)
    # One forecast at a time per process: model loading (transformers initialises on the meta
    # device, a process-wide patch) and seeded sampling (torch's global RNG) are not thread-safe.
    with _MODEL_LOCK:
        out = run_forecast(lake_of(c), day + dt.timedelta(days=1), c.forecast, model_run=_model_run(model_dir),
                           embedder=_embedder(c))
    get_run_logger().info("forecast %s with %s: %s countries, %s rows", out.get("date"), out.get("run"),
                          out.get("countries"), out.get("rows"))
    return {k: v for k, v in out.items() if isinstance(v, (int, float, str, list))}


_MODEL_LOCK = threading.Lock()
_MODELS: dict[tuple[str, str], Any] = {}


def _model_run(model_dir: str):
    """The loaded model of ``model_dir``, once per process (reloaded when its files change)."""
    from pipeline.forecast.forecast import load_model_run

    m = Path(model_dir).resolve()
    key = (str(m), model_fingerprint(m))
    if key not in _MODELS:
        _MODELS.clear()
        _MODELS[key] = load_model_run(m)
    return _MODELS[key]


def _baselines_run_name() -> str:
    from prefect.runtime import task_run

    p = task_run.parameters
    return f"baselines-{p['day']}" + (f"-{p['last']}" if p.get("last") not in (None, p["day"]) else "")


@task(name="baselines", cache_policy=NO_CACHE, task_run_name=_baselines_run_name)
def baselines_task(cfg: dict[str, Any], day: dt.date, last: dt.date | None = None) -> dict[str, Any]:
    """The baselines' forecasts for day+1 (climatology, persistence, 7/30-day, EWM, weekday, learned) from the
    days up to ``day``; with ``last``, for every target day+1 … last+1 from one read of the history (each
    target from the days before it)."""
    from pipeline.forecast.baselines import run_baselines

    c = config_from_dict(cfg)
    lake = lake_of(c)
    first, end = day + dt.timedelta(days=1), (last or day) + dt.timedelta(days=1)
    if last is not None:  # a backfill's block may start before the lake's first day (gaps): from there on
        known = lake.partitions("country", None, last)
        first = max(first, known[0] + dt.timedelta(days=1)) if known else end + dt.timedelta(days=1)
        if first > end:
            get_run_logger().info("baselines %s … %s: no 'country' day before them, nothing to forecast from",
                                  day + dt.timedelta(days=1), end)
            return {"target": str(first), "last": str(end), "rows": {}}
    rows = run_baselines(lake, first, end, c.forecast)
    span = str(first) if first == end else f"{first} … {end}"
    get_run_logger().info("baselines %s: %s", span, ", ".join(f"{k} {v} rows" for k, v in rows.items()))
    return {"target": str(first), "last": str(end), "rows": rows}


# ---------------------------------------------------------------- evaluate
@task(name="evaluate", cache_policy=NO_CACHE, task_run_name="evaluate-{start}-{end}")
def evaluate_task(cfg: dict[str, Any], start: dt.date, end: dt.date) -> dict[str, Any]:
    """Score every forecast run whose target days in [start, end] are observed."""
    from pipeline.scoring.evaluate import evaluate

    c = config_from_dict(cfg)
    ev = evaluate(lake_of(c), start, end, cfg=c.evaluate)
    skill = skill_rows(ev)
    get_run_logger().info("evaluate %s … %s: %s", start, end,
                          "; ".join(f"{r['run']} BSS {r['BSS clim']:+.3f}" for r in skill) or "nothing to score")
    return {"start": str(start), "end": str(end), "runs": ev.runs, "notes": ev.notes, "skill": skill}


def skill_rows(ev: Any, level: str = "root") -> list[dict[str, Any]]:
    """The skill table of an ``Evaluation`` (all countries, one level): run, country-days, Brier, BSS, F1."""
    s = ev.summary
    if s is None or len(s) == 0:
        return []
    s = s[(s.group == "all") & (s.level == level)].sort_values("brier")
    return [{"run": r.run, "level": level, "country-days": int(r.n_country_days), "Brier": float(r.brier),
             "BSS clim": float(r.bss_climatology), "BSS best": float(r.bss_best_baseline),
             "F1w": float(r.glean_f1_w)} for r in s.itertuples()]


# --------------------------------------------------------------- watchlist
@task(name="watchlist", cache_policy=cached_on("watchlist"), task_run_name="watchlist-{day}")
def watchlist_task(cfg: dict[str, Any], day: dt.date, run: str | None = None) -> dict[str, Any]:
    """The ``watchlist`` partition of target ``day`` (``run``: the model's, else ``baseline-learned``, else
    climatology); needs its forecasts."""
    from pipeline.scoring.watchlist import WatchlistConfig, write_watchlist

    c = config_from_dict(cfg)
    w = write_watchlist(lake_of(c), day, run, WatchlistConfig.of(c.evaluate))
    sizes = {str(k): int(n) for k, n in w.groupby("list", sort=False).size().items()}
    get_run_logger().info("watchlist %s: %s", day, ", ".join(f"{n} {k}" for k, n in sizes.items()) or "empty")
    return {"day": str(day), "run": str(w.model_run.iloc[0]) if len(w) else run, "rows": sizes}


@task(name="report", cache_policy=NO_CACHE, task_run_name="report-{day}")
def report_task(cfg: dict[str, Any], day: dt.date) -> str:
    from pipeline.scoring.report import build_report

    c = config_from_dict(cfg)
    return str(build_report(lake_of(c), day, c))

