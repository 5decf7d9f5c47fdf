"""Backfill: the daily stages over a date range, resumable, with bounded concurrency.

    gdelt-forecast backfill --start 2025-05-16 --end 2025-06-06 [--source local --path data/sample/gdelt-v2]
                            [--force] [--dry-run] [--runner local|dask|ray]

Each day is a chain ``ingest → reduce → descriptors``, and, once a model is
registered, ``forecast(d+1)``; days run side by side up to
``flow.backfill_concurrency``. The baselines of d+1 (stage ``baselines``, which ``--stages forecast`` brings
along) run in blocks of the days whose targets share ``baseline-learned``'s refit origin
(``forecast.learned_refit_days``, a week by default): one read of the history and at most one fit a block, each
block once the reduce of every day up to its last has finished; a block runs when one of its days has baselines
missing or older than its ``country`` partition, or a reduce to run. Finished steps (``pipeline.core.status``) are not
submitted at all, so a second run does no work; ``--force`` redoes them. A
failed day (or baselines block: each of its days) does not stop the others: the flow finishes every day it can,
then fails with the list of failed days. Forecasts are evaluated at the end.

A day the source has no data for (GDELT has holes) is not a failure: once its
ingest finishes without an ``events`` partition and without a failed file it is
recorded in the ``gaps`` table (``pipeline.core.status.record_gaps``), reduce and
descriptors skip it, forecasts use the other days of their window, the summary
lists it under ``gaps``, and a second run does nothing for it.

Runners: Prefect's thread pool by default; ``--runner dask`` (``pip install
'gdelt-forecast[dask]'``) starts a local Dask cluster or joins
``--address tcp://scheduler:8786``; ``--runner ray`` (``[ray]``) likewise.
Workers must see the same lake path (a shared file system).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.futures import PrefectFuture
from prefect.task_runners import ThreadPoolTaskRunner

from flows.observe import publish_summary
from flows.tasks import (baselines_task, descriptors_task, evaluate_task, forecast_task_for, ingest_for,
                         lake_of, reduce_task)
from pipeline.core.config import Config, load_config
from pipeline.core.errors import UserError
from pipeline.core.lake import date_range
from pipeline.core.registry import resolve, run_name
from pipeline.core.status import STAGES, Step, gap_days, plan, record_gaps
from pipeline.core.coverage import left_out_days, thin_days


class BackfillFailed(RuntimeError):
    """Some days failed; the others were completed. ``.summary`` says which."""

    def __init__(self, summary: "BackfillSummary"):
        super().__init__(f"backfill: {len(summary.failed)} day(s) failed: "
                         + "; ".join(f"{d}: {why}" for d, why in summary.failed.items()))
        self.summary = summary


@dataclass
class BackfillSummary:
    start: str
    end: str
    submitted: list[str] = field(default_factory=list)
    """``<stage>:<day>`` of every task run (none on a finished range)."""
    skipped: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    """day → first error of that day."""
    gaps: list[str] = field(default_factory=list)
    """Days of the range without source data (recorded in the ``gaps`` table; skipped by every stage)."""
    thin: list[str] = field(default_factory=list)
    """Days of the range holding fewer GDELT exports than ``flow.min_day_share`` of their usual
    (``pipeline/core/coverage.py``): forecasts made from them read low, but for those also in ``left_out``."""
    left_out: list[str] = field(default_factory=list)
    """Days of the range holding fewer than ``lake.leave_out_share`` of their usual: left out of the forecasts'
    windows, training and the scores, as gaps are."""
    model_run: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def current_model(cfg: Config) -> Path | None:
    """The model directory to forecast with (``forecast.model``, default ``models/latest``), if one exists."""
    try:
        return resolve(cfg.forecast.model)
    except FileNotFoundError:
        return None


MODEL_STAGES = ("forecast", "evaluate")
"""Stages that need a registered model: left out of the plan (not counted "done") when there is none."""


def stages_of(stages: list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """The stages a backfill runs, in :data:`STAGES` order: every one by default; ``forecast`` brings ``baselines``
    (the model's forecasts and the baselines' are one table: ``--stages forecast --force`` remakes both)."""
    asked = set(stages or STAGES)
    if "forecast" in asked:
        asked.add("baselines")
    return tuple(s for s in STAGES if s in asked)


def baseline_blocks(cfg: Config, steps: list[Step], stages: tuple[str, ...]) -> list[list[dt.date]]:
    """The blocks of days (:func:`refit_blocks`) whose baselines the backfill runs: those holding a day whose
    baselines are not done (missing, older than its ``country`` partition) or whose reduce is to run (it makes
    them stale). Each block is one task: every day of it is forecast again from one read of the history."""
    if "baselines" not in stages:
        return []
    todo = {(s.day, s.stage) for s in steps if not s.done}
    days = sorted({s.day for s in steps})
    return [b for b in refit_blocks(days, cfg.forecast.learned_refit_days)
            if any({(d, "reduce"), (d, "baselines")} & todo for d in b)]


def make_plan(cfg: Config, start: dt.date, end: dt.date, force: bool, stages: tuple[str, ...]) -> list[Step]:
    model_dir = current_model(cfg)
    if model_dir is None:
        stages = tuple(s for s in stages if s not in MODEL_STAGES)
    return plan(lake_of(cfg), date_range(start, end), stages, force=force,
                model_run=run_name(model_dir) if model_dir else None, model_dir=model_dir)


def dry_run_plan(cfg: Config, start: dt.date, end: dt.date, force: bool = False,
                 stages: list[str] | None = None) -> dict[str, Any]:
    """What a backfill would run (``submitted``) and what is done (``skipped``), from the lake alone.

    No Prefect run and no server: ``gdelt-forecast backfill --dry-run`` calls this directly.
    """
    stages_t = stages_of(stages)
    steps = make_plan(cfg, start, end, force, stages_t)
    model_dir = current_model(cfg)
    runs = _runs(steps, baseline_blocks(cfg, steps, stages_t))
    summary = BackfillSummary(str(start), str(end), submitted=[f"{s.stage}:{s.day}" for s in steps if s in runs],
                              skipped=sum(s not in runs for s in steps),
                              model_run=run_name(model_dir) if model_dir else None)
    summary.gaps = [str(d) for d in gap_days(lake_of(cfg), start, end)]
    summary.thin, summary.left_out = _thin(cfg, start, end, summary.gaps)
    return summary.to_dict()


def _runs(steps: list[Step], blocks: list[list[dt.date]]) -> set[Step]:
    """The steps a backfill runs: those not done, and the baselines of every day of a block it runs."""
    rerun = {d for b in blocks for d in b}
    return {s for s in steps if not s.done or s.stage == "baselines" and s.day in rerun}


def _thin(cfg: Config, start: dt.date, end: dt.date, gaps: list[str]) -> tuple[list[str], list[str]]:
    """The thin days of the range (below ``flow.min_day_share``), and those left out (``lake.leave_out_share``)."""
    lake = lake_of(cfg)
    thin = [str(c.day) for c in thin_days(lake, start, end, cfg.flow.min_day_share,
                                          skip=[dt.date.fromisoformat(g) for g in gaps])]
    return thin, [str(d) for d in left_out_days(lake, start, end) if str(d) not in gaps]


@flow(name="backfill", log_prints=True, task_runner=ThreadPoolTaskRunner(max_workers=4))
def backfill(
    start: dt.date,
    end: dt.date,
    config: str | None = None,
    lake: str | None = None,
    source: str | None = None,
    path: str | None = None,
    force: bool = False,
    dry_run: bool = False,
    keep_going: bool = False,
    stages: list[str] | None = None,
) -> dict[str, Any]:
    """Run ``stages`` (default all) for every day in [start, end]; see the module docstring.

    ``source``/``path`` default to ``flow.source``/``flow.path`` of the config, so a deployment run
    needs only ``start`` and ``end``.
    """
    logger = get_run_logger()
    cfg = load_config(config, {"lake.root": lake})
    source, src_path = cfg.flow.resolve_source(source, path)
    path = str(src_path) if src_path else None
    stages_t = stages_of(stages)
    steps = make_plan(cfg, start, end, force, stages_t)
    blocks = baseline_blocks(cfg, steps, stages_t)
    runs = _runs(steps, blocks)
    todo = {(s.day, s.stage) for s in runs}
    model_dir = current_model(cfg)
    if model_dir is None and set(stages_t) & set(MODEL_STAGES):
        logger.warning("no model at %s: forecast and evaluate left out (train one: gdelt-forecast train)",
                       cfg.forecast.model)
    summary = BackfillSummary(str(start), str(end), skipped=len(steps) - len(todo),
                              model_run=run_name(model_dir) if model_dir else None)
    if dry_run:
        for s in steps:
            logger.info("%s %-12s %s", s.day, s.stage, "would run" if s in runs else "done")
        return dry_run_plan(cfg, start, end, force, list(stages_t))

    c = cfg.to_dict()
    futures: dict[tuple[dt.date, str], PrefectFuture] = {}

    def submit(day: dt.date, stage: str, task: Any, *args: Any, after: list[PrefectFuture]) -> None:
        if (day, stage) in todo:  # not done in the lake: run it, whatever Prefect's cache holds
            futures[(day, stage)] = task.with_options(refresh_cache=True).submit(c, *args, wait_for=after)
            summary.submitted.append(f"{stage}:{day}")

    def upstream(day: dt.date, *names: str) -> list[PrefectFuture]:
        return [futures[(day, n)] for n in names if (day, n) in futures]

    days = date_range(start, end)
    ingest = ingest_for(source)
    for d in days:
        if (d, "ingest") in todo:
            futures[(d, "ingest")] = ingest.submit(c, source, d, path, force, keep_going)
            summary.submitted.append(f"ingest:{d}")
        submit(d, "reduce", reduce_task, d, after=upstream(d, "ingest"))
        submit(d, "descriptors", descriptors_task, d, after=upstream(d, "reduce"))
    def reduced_by(day: dt.date) -> list[PrefectFuture]:
        """The reduce of every day up to ``day``: a forecast of day+1 reads all of them (climatology, the
        history features), not only its own day's, however the days' ingests finish."""
        return [f for x in days if x <= day for f in upstream(x, "reduce")]

    if model_dir is not None:
        forecast = forecast_task_for(cfg.dataset.context_days)
        window = range(cfg.dataset.context_days)
        for d in days:
            after = [f for k in window for f in upstream(d - dt.timedelta(days=k), "descriptors")] + reduced_by(d)
            submit(d, "forecast", forecast, d, str(model_dir), after=after)
    # the baselines in blocks of the days whose targets share baseline-learned's refit origin: one history read
    # and (without a stored artefact before them) one fit a block, not one a day
    baseline_futures = {tuple(b): baselines_task.submit(c, b[0], b[-1], wait_for=reduced_by(b[-1])) for b in blocks}
    summary.submitted += [f"baselines:{d}" for b in blocks for d in b]

    # ---- collect: a failed day is reported, the others stand
    facts: dict[str, dict[str, Any]] = {str(d): {"day": str(d)} for d in days}
    for (d, stage), fut in sorted(futures.items(), key=lambda kv: (kv[0][0], STAGES.index(kv[0][1]))):
        fut.wait()
        state = fut.state
        if not state.is_completed():
            facts[str(d)][stage] = "failed"
            if str(d) not in summary.failed:
                summary.failed[str(d)] = f"{stage}: {state.message or state.name}"
        else:
            facts[str(d)].update(_facts(stage, fut.result()))
    for block, fut in baseline_futures.items():  # a failed block fails each of its days; a re-run redoes them
        fut.wait()
        if not fut.state.is_completed():
            for d in block:
                facts[str(d)]["baselines"] = "failed"
                summary.failed.setdefault(str(d), f"baselines: {fut.state.message or fut.state.name}")
    ingested = [d for (d, stage), fut in futures.items() if stage == "ingest" and fut.state.is_completed()]
    record_gaps(lake_of(cfg), ingested, source)
    summary.gaps = [str(d) for d in gap_days(lake_of(cfg), start, end)]
    if summary.gaps:
        logger.warning("backfill %s … %s: %d day(s) without source data (gaps, skipped): %s", start, end,
                       len(summary.gaps), ", ".join(summary.gaps))
    summary.thin, summary.left_out = _thin(cfg, start, end, summary.gaps)
    if read_low := [d for d in summary.thin if d not in summary.left_out]:
        logger.warning("backfill %s … %s: %d day(s) hold fewer GDELT exports than %.0f%% of their usual (thin; "
                       "forecasts made from them read low; ingest their missing exports and run them again): %s",
                       start, end, len(read_low), 100 * cfg.flow.min_day_share, ", ".join(read_low))
    if summary.left_out:
        logger.warning("backfill %s … %s: %d day(s) hold fewer than %.0f%% (lake.leave_out_share) and are left "
                       "out of the forecasts, training and scores, as gaps are, until their missing exports are "
                       "ingested: %s", start, end, len(summary.left_out), 100 * lake_of(cfg).leave_out_share,
                       ", ".join(summary.left_out))
    skill = None
    if model_dir is not None and "evaluate" in stages_t and any(k[1] == "forecast" for k in futures):
        ev = evaluate_task.submit(c, start, end)
        ev.wait()
        if not ev.state.is_completed():
            logger.warning("evaluation failed: %s", ev.state.message)
        else:
            skill = ev.result().get("skill")
    publish_summary("backfill-summary", f"backfill {start} … {end}: {len(summary.submitted)} steps run, "
                    f"{summary.skipped} already done, {len(summary.failed)} days failed",
                    list(facts.values()), skill, [f"{d}: {why}" for d, why in summary.failed.items()])
    if summary.failed:
        raise BackfillFailed(summary)
    logger.info("backfill %s … %s: %d steps run, %d already done", start, end, len(summary.submitted),
                summary.skipped)
    return summary.to_dict()


def _facts(stage: str, result: dict[str, Any]) -> dict[str, Any]:
    """The columns a finished task adds to its day's row of the run summary."""
    if stage == "ingest":
        return {"rows in": result.get("rows"), "quarantined": result.get("quarantined")}
    if stage == "reduce":
        return {"country rows": result.get("rows")}
    if stage == "descriptors":
        return {"countries": result.get("countries")}
    if stage == "forecast":
        return {"forecasts written": result.get("rows")}
    return {}


def refit_blocks(days: list[dt.date], every: int) -> list[list[dt.date]]:
    """``days`` (data days, sorted) in runs whose targets (day + 1) fall in the same block of ``every`` days of
    ``baseline-learned``'s refit calendar (:func:`pipeline.forecast.baselines.calendar_origin`)."""
    from pipeline.forecast.baselines import calendar_origin

    blocks: dict[dt.date, list[dt.date]] = {}
    for d in days:
        blocks.setdefault(calendar_origin(d + dt.timedelta(days=1), every), []).append(d)
    return list(blocks.values())


def with_runner(runner: str = "local", address: str | None = None, workers: int | None = None):
    """The backfill flow on a chosen task runner: ``local`` (threads), ``dask`` or ``ray``."""
    if runner == "local":
        return backfill.with_options(task_runner=ThreadPoolTaskRunner(max_workers=workers or 4))
    if runner == "dask":
        try:
            from prefect_dask import DaskTaskRunner
        except ImportError as exc:
            raise UserError("--runner dask needs prefect-dask: pip install 'gdelt-forecast[dask]'") from exc
        kwargs: dict[str, Any] = {"address": address} if address else {
            "cluster_kwargs": {"n_workers": workers or 2, "threads_per_worker": 1, "processes": True,
                               "dashboard_address": None}}
        return backfill.with_options(task_runner=DaskTaskRunner(**kwargs))
    if runner == "ray":
        try:
            from prefect_ray import RayTaskRunner
        except ImportError as exc:
            raise UserError("--runner ray needs prefect-ray: pip install 'gdelt-forecast[ray]'") from exc
        if address:
            return backfill.with_options(task_runner=RayTaskRunner(address=address))
        return backfill.with_options(task_runner=RayTaskRunner(init_kwargs={
            "num_cpus": workers or 2, "include_dashboard": False, "log_to_driver": False}))
    raise UserError(f"unknown --runner {runner!r}: local, dask or ray")
