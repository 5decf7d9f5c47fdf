"""Training: dataset → train → evaluate on held-out days against the baselines → register.

The new run becomes ``models/latest`` (``register=True``) — the model the daily
run forecasts with. Evaluation forecasts every test-split target day with the
new model and the baselines, then scores them all alike (``scores`` table and
``reports/eval-<start>_<end>/``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows.tasks import baselines_task, evaluate_task, forecast_task, lake_of
from pipeline.config import config_from_dict, load_config
from pipeline.registry import register


@task(name="dataset", cache_policy=NO_CACHE)
def dataset_task(cfg: dict[str, Any]) -> dict[str, Any]:
    """Build the windows index and its manifest (counts per split)."""
    from pipeline.dataset import build_dataset

    c = config_from_dict(cfg)
    return build_dataset(lake_of(c), c.dataset)


@task(name="train", cache_policy=NO_CACHE)
def train_task(cfg: dict[str, Any], resume: bool = False) -> dict[str, Any]:
    from pipeline.train import train

    c = config_from_dict(cfg)
    result = train(c, lake_of(c), resume=resume)
    return {"run_dir": str(result.run_dir), "metrics": result.metrics}


@flow(name="train", log_prints=True)
def train_flow(config: str | None = None, lake: str | None = None, run: str | None = None,
               resume: bool = False, register_model: bool = True, evaluate: bool = True) -> dict[str, Any]:
    logger = get_run_logger()
    cfg = load_config(config, {"lake.root": lake, "train.run": run})
    c = cfg.to_dict()
    out: dict[str, Any] = {"dataset": dataset_task(c)}
    out.update(train_task(c, resume))
    if evaluate:
        targets = out["dataset"]["target_days"]
        test_days = sorted(targets.get("test") or [])
        if test_days:
            # validation days tune the decision thresholds (every forecaster alike), test days are scored
            days = [dt.date.fromisoformat(t) - dt.timedelta(days=1) for t in sorted(targets.get("val", [])) + test_days]
            for d in days:  # data day d → forecast for d+1
                forecast_task(c, d, out["run_dir"])
                baselines_task(c, d)
            out["evaluation"] = evaluate_task(c, test_days[0], test_days[-1])
        else:
            logger.warning("no test days in the dataset manifest: evaluation skipped")
    if register_model:
        out["registered"] = str(register(out["run_dir"], cfg.train.models_dir))
        logger.info("registered %s as models/latest", out["run_dir"])
    return out
