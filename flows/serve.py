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
from pipeline.core.errors import UserError


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


def check_api(url: str | None) -> str:
    """``url`` (the ``PREFECT_API_URL`` this process would serve to), checked to be set and to answer
    ``/health``; ``UserError`` otherwise.

    Without one, Prefect would start a temporary server that lives as long as this process and does not run
    the scheduler service (an ephemeral server runs only the few services marked for it): the deployments would
    print as served, yet the daily cron would never fire."""
    import urllib.request

    if not url:
        raise UserError("serve needs a running Prefect server: start one (`prefect server start`) and set "
                        "PREFECT_API_URL=http://127.0.0.1:4200/api (without it no schedule would ever fire)")
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/health", timeout=10) as r:
            r.read()
    except OSError as exc:  # refused, unreachable, timed out, or an HTTP error
        raise UserError(f"no Prefect server answers at PREFECT_API_URL={url} ({exc}); start it with "
                        "`prefect server start`, or point PREFECT_API_URL at a running one") from exc
    return url


def serve(cfg: Config, config_path: str | None = None) -> None:
    """Serve the deployments from this process until interrupted; needs a running Prefect server
    (:func:`check_api`: PREFECT_API_URL, from the environment or the active Prefect profile)."""
    from prefect import serve as prefect_serve
    from prefect.settings import get_current_settings

    check_api(get_current_settings().api.url)
    prefect_serve(*build_deployments(cfg, config_path))
