"""Deployments: the daily run on a cron schedule, backfill and training on demand.

    prefect server start                      # terminal 1 (UI on http://127.0.0.1:4200)
    PREFECT_API_URL=http://127.0.0.1:4200/api gdelt-forecast serve --config configs/daily.yaml
    prefect deployment run 'daily/daily'      # trigger one now (or from the UI)
"""

from __future__ import annotations

from typing import Any

from flows.backfill import backfill
from flows.daily import daily
from flows.train import train_flow
from pipeline.core.config import Config


def build_deployments(cfg: Config, config_path: str | None = None) -> list[Any]:
    """``RunnerDeployment`` objects: ``daily`` on ``cfg.flow.cron`` (``cfg.flow.timezone``), ``backfill`` and ``train``.

    Each carries only ``config`` and ``lake``: the source, its path and everything else are read from
    the config when the run starts, so ``prefect deployment run 'backfill/backfill' -p start=… -p end=…``
    needs nothing more.
    """
    from prefect.client.schemas.schedules import CronSchedule

    params = {"config": config_path, "lake": str(cfg.lake.root)}
    return [
        daily.to_deployment(name="daily", schedule=CronSchedule(cron=cfg.flow.cron, timezone=cfg.flow.timezone),
                            parameters=params,
                            description="Yesterday's GDELT in, tomorrow's forecast out."),
        backfill.to_deployment(name="backfill", parameters=params,
                               description="The daily stages over a date range (pass start/end)."),
        train_flow.to_deployment(name="train", parameters={"config": config_path, "lake": str(cfg.lake.root)},
                                 description="Dataset → train → evaluate → register models/latest."),
    ]


def serve(cfg: Config, config_path: str | None = None) -> None:
    """Serve the deployments from this process until interrupted (needs a Prefect server / PREFECT_API_URL)."""
    from prefect import serve as prefect_serve

    prefect_serve(*build_deployments(cfg, config_path))
