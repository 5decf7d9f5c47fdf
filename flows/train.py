"""Training: dataset → refit baseline-learned → train → calibrate on validation days → evaluate on test days
against the baselines → register.

``baseline-learned`` (:mod:`pipeline.model.learned`) is refitted on the outcome days before the first
validation day (it needs no T-day descriptor context, so it may use the earliest days too) and saved to ``<train.models_dir>/baseline-learned/``; the flow's baselines use that artefact.

The new run becomes ``models/latest`` (``register=True``) — the model the daily
run forecasts with. Evaluation forecasts every test-split target day with the
new model and the baselines, then scores them all alike (``scores`` table and
``reports/eval-<start>_<end>/``).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows.observe import publish_summary
from flows.tasks import baselines_task, evaluate_task, forecast_task_for, lake_of
from pipeline.core.config import config_from_dict, load_config
from pipeline.core.registry import register


@task(name="dataset", cache_policy=NO_CACHE)
def dataset_task(cfg: dict[str, Any]) -> dict[str, Any]:
    """Build the windows index and its manifest (counts per split)."""
    from pipeline.features.dataset import build_dataset

    c = config_from_dict(cfg)
    return build_dataset(lake_of(c), c.dataset)


class _ToRunLogger(logging.Handler):
    """Re-emits ``pipeline.*`` records (per-epoch metrics, warnings) on the Prefect run's logger."""

    def __init__(self, run_logger: Any) -> None:
        super().__init__(logging.INFO)
        self.run_logger = run_logger

    def emit(self, record: logging.LogRecord) -> None:
        self.run_logger.log(record.levelno, "%s: %s", record.name, record.getMessage())


@contextmanager
def pipeline_logs_to(run_logger: Any, name: str = "pipeline") -> Iterator[None]:
    """Inside the block, INFO and above from the ``name`` loggers go to ``run_logger`` (the flow's log) instead
    of on up to the root logger, whose console handler would print every line a second time."""
    source = logging.getLogger(name)
    handler, level, propagate = _ToRunLogger(run_logger), source.level, source.propagate
    source.addHandler(handler)
    source.propagate = False
    if source.getEffectiveLevel() > logging.INFO:
        source.setLevel(logging.INFO)
    try:
        yield
    finally:
        source.removeHandler(handler)
        source.setLevel(level)
        source.propagate = propagate


@task(name="train", cache_policy=NO_CACHE)
def train_task(cfg: dict[str, Any], resume: bool = False) -> dict[str, Any]:
    from pipeline.model.train import train

    c = config_from_dict(cfg)
    with pipeline_logs_to(get_run_logger()):  # per-epoch metrics and samples/s in the flow's log
        result = train(c, lake_of(c), resume=resume)
    return {"run_dir": str(result.run_dir), "metrics": result.metrics}


@task(name="calibrate", cache_policy=NO_CACHE)
def calibrate_task(cfg: dict[str, Any], model_dir: str, days: list[str]) -> dict[str, Any]:
    """Fit the model's calibration maps on its forecasts for the validation ``days``; saved in ``model_dir``."""
    from pipeline.forecast.calibrate import fit_from_lake, form_of, stack_for, weekday_prior_of

    c = config_from_dict(cfg)
    lake, dates = lake_of(c), [dt.date.fromisoformat(d) for d in days]
    stack = stack_for(lake, min(dates), c.forecast) if c.train.calibration_blend and c.train.calibration_stack else None
    cal = fit_from_lake(lake, Path(model_dir).name, dates, blend=c.train.calibration_blend, stack=stack,
                        weekday_prior=weekday_prior_of(c), form=form_of(c))
    return {"path": str(cal.save(model_dir)), "days": cal.fitted_on, "n": cal.n, "blend": cal.blend,
            "stack": None if cal.stack is None else cal.stack.fitted_on}


@task(name="baseline-learned", cache_policy=NO_CACHE)
def learned_task(cfg: dict[str, Any], before: str) -> dict[str, Any]:
    """Refit ``baseline-learned`` on the outcome days before ``before`` (the first validation or test
    target day) and save it to ``forecast.learned_dir``."""
    from pipeline.cameo.labels import load_outcomes
    from pipeline.model.learned import fit_learned, training_days

    c = config_from_dict(cfg)
    first = dt.date.fromisoformat(before)
    outcomes = load_outcomes(lake_of(c), None, first - dt.timedelta(days=1))
    train_days = training_days(outcomes, first)
    model = fit_learned(outcomes, train_days, c.forecast.learned_estimator, c.forecast.learned_max_rows,
                        c.forecast.seed)
    return {"path": str(model.save(c.forecast.learned_dir)), "days": model.fitted_on, "rows": model.n_rows}


@flow(name="train", log_prints=True)
def train_flow(config: str | None = None, lake: str | None = None, run: str | None = None,
               resume: bool = False, register_model: bool = True, evaluate: bool = True) -> dict[str, Any]:
    logger = get_run_logger()
    cfg = load_config(config, {"lake.root": lake, "train.run": run})
    if cfg.forecast.learned_dir is None:  # the daily flow refits it in memory; training still saves one
        cfg.forecast.learned_dir = Path(cfg.train.models_dir) / "baseline-learned"
    c = cfg.to_dict()
    out: dict[str, Any] = {"dataset": dataset_task(c)}
    held_out = sorted((out["dataset"]["target_days"].get("val") or []) + (out["dataset"]["target_days"].get("test") or []))
    if "learned" in cfg.forecast.baselines and held_out:
        out["learned"] = learned_task(c, held_out[0])
    out.update(train_task(c, resume))
    if evaluate:
        targets = out["dataset"]["target_days"]
        val_days, test_days = sorted(targets.get("val") or []), sorted(targets.get("test") or [])
        data_day = lambda t: dt.date.fromisoformat(t) - dt.timedelta(days=1)  # noqa: E731 - forecasts t from t−1
        forecast_task = forecast_task_for(cfg.dataset.context_days)  # cached on the whole context window
        if val_days and cfg.train.calibrate:
            # validation days: raw forecasts → calibration maps stored with the model
            for t in val_days:
                forecast_task(c, data_day(t), out["run_dir"])
            out["calibration"] = calibrate_task(c, out["run_dir"], val_days)
        if test_days:
            # validation days (calibrated) tune the decision thresholds of every forecaster alike; test days are scored
            for t in val_days + test_days:
                forecast_task(c, data_day(t), out["run_dir"])
                baselines_task(c, data_day(t))
            out["evaluation"] = evaluate_task(c, test_days[0], test_days[-1])
        else:
            logger.warning("no test days in the dataset manifest: evaluation skipped")
    if register_model:
        out["registered"] = str(register(out["run_dir"], cfg.train.models_dir))
        logger.info("registered %s as models/latest", out["run_dir"])
    publish_train_summary(out)
    return out


def publish_train_summary(out: dict[str, Any]) -> None:
    """The run's Markdown artifact: the dataset splits, the final metrics, the test-day skill table."""
    splits = out["dataset"].get("target_days") or {}
    rows = [{"split": k, "sequences": (out["dataset"].get("sequences") or {}).get(k), "target days": len(v),
             "first": v[0] if v else "", "last": v[-1] if v else ""} for k, v in splits.items()]
    metrics = {k: v for k, v in (out.get("metrics") or {}).items() if isinstance(v, (int, float))}
    publish_summary("train-summary", f"train {Path(out['run_dir']).name}"
                    + (f" (registered {out['registered']})" if out.get("registered") else ""),
                    rows + [{"split": "final metrics", **metrics}] if metrics else rows,
                    (out.get("evaluation") or {}).get("skill"), (out.get("evaluation") or {}).get("notes"))
