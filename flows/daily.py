"""The daily run: yesterday's GDELT in, tomorrow's forecast out.

    ingest(d) → reduce(d) → descriptors(d) → forecast(d+1) + baselines(d+1) → evaluate(d)
              → watchlist(d+1) → report(d+1)

``d`` defaults to yesterday (UTC) — or, for a scheduled run, the day before its
scheduled start time — so the 06:00 UTC run forecasts today from the complete
yesterday. ``evaluate(d)`` scores the forecasts made for ``d`` by earlier runs,
now that ``d`` has been observed.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from prefect import flow, get_run_logger

from flows.backfill import current_model
from flows.observe import publish_report_link, publish_summary
from flows.tasks import (baselines_task, descriptors_task, evaluate_task, forecast_task_for, ingest_for,
                         lake_of, reduce_task, report_task, unless_done, watchlist_task)
from pipeline.cameo.labels import remembered_outcomes
from pipeline.core.config import load_config
from pipeline.core.registry import run_name
from pipeline.core.coverage import day_coverage


def default_day() -> dt.date:
    """The day before the scheduled start time of this flow run, or before today (UTC) when run by hand."""
    try:
        from prefect.runtime import flow_run

        scheduled = flow_run.scheduled_start_time
    except Exception:  # noqa: BLE001 - outside a flow run
        scheduled = None
    now = scheduled.in_timezone("UTC") if hasattr(scheduled, "in_timezone") else dt.datetime.now(dt.timezone.utc)
    return now.date() - dt.timedelta(days=1)


@flow(name="daily", log_prints=True)
def daily(
    day: dt.date | None = None,
    config: str | None = None,
    lake: str | None = None,
    source: str | None = None,
    path: str | None = None,
    model: str | None = None,
    report: bool = True,
) -> dict[str, Any]:
    """Run the whole day; returns small facts (counts, the forecast run, the report path)."""
    logger = get_run_logger()
    cfg = load_config(config, {"lake.root": lake, "forecast.model": model})
    d = day or default_day()
    src, src_path = cfg.flow.resolve_source(source, path)  # flow.source / flow.path unless given
    c = cfg.to_dict()
    out: dict[str, Any] = {"day": str(d), "target": str(d + dt.timedelta(days=1))}

    out["ingest"] = ingest_for(src)(c, src, d, str(src_path) if src_path else None)
    if out["ingest"]["failed"]:
        raise RuntimeError(f"daily {d}: ingest failed for {out['ingest']['failed']}")
    out["reduce"] = unless_done(reduce_task, cfg, "reduce", d)(c, d)
    lake = lake_of(cfg)
    cov = day_coverage(lake, d)  # after reduce: a BigQuery day's exports are counted from its country rows
    verdict = "" if cov is None else cov.verdict(cfg.flow.min_day_share, lake.leave_out_share)
    if cov is not None:
        out["coverage"] = {"exports": cov.exports, "usual": cov.usual, "thin": cov.thin(cfg.flow.min_day_share),
                           "left_out": verdict == "left out"}
        if verdict:
            logger.warning(cov.message(lake.leave_out_share))
    out["descriptors"] = unless_done(descriptors_task, cfg, "descriptors", d)(c, d)
    # baselines, the forecast's climatology blend, evaluate and the report each read the outcomes of every day
    # so far: once, not four times
    with remembered_outcomes():
        out["baselines"] = baselines_task(c, d)
        model_dir = current_model(cfg)
        if model_dir is None:
            logger.warning("no model registered (%s): baselines only, the page shows baseline-learned. "
                           "Train one: gdelt-forecast train", cfg.forecast.model)
        else:
            out["model_run"] = run_name(model_dir)
            forecast = unless_done(forecast_task_for(cfg.dataset.context_days), cfg, "forecast", d,
                                   out["model_run"], model_dir)
            out["forecast"] = forecast(c, d, str(model_dir))
        if lake_of(cfg).has_partition("forecasts", d, model="baseline-climatology"):
            out["evaluate"] = evaluate_task(c, d, d)
        if lake_of(cfg).has_partition("forecasts", d + dt.timedelta(days=1), model="baseline-climatology"):
            target = d + dt.timedelta(days=1)
            out["watchlist"] = unless_done(watchlist_task, cfg, "watchlist", target, out.get("model_run"))(
                c, target, out.get("model_run"))
        if report:
            out["report"] = report_task(c, d + dt.timedelta(days=1))
            publish_report_link(out["report"], key="daily-report")
    publish_summary("daily-summary", f"daily {d}: forecast for {out['target']}", [{
        "day": str(d), "rows in": out["ingest"]["rows"], "quarantined": out["ingest"]["quarantined"],
        "GDELT exports": (f"{cov.exports} (usual {cov.usual:g}{', ' + verdict if verdict else ''})"
                          if cov is not None else "not counted"),
        "country rows": out["reduce"]["rows"], "countries": out["descriptors"]["countries"],
        "forecasts written": (out.get("forecast") or {}).get("rows", 0),
        "model": out.get("model_run") or "baselines only"}],
        (out.get("evaluate") or {}).get("skill"), (out.get("evaluate") or {}).get("notes"))
    logger.info("daily %s done: forecast for %s%s", d, out["target"],
                f", report {out['report']}" if report else "")
    return out
