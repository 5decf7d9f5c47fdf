"""The demo: the whole system on the real sample the project ships, offline.

    gdelt-forecast demo

backfill (ingest → reduce → descriptors, 22 days) → train flow (dataset → tiny
T5 → forecast the validation and test days, with the baselines → evaluate →
register) → daily flow on the last day (forecast tomorrow, evaluate today's
forecasts, report). Everything is written under ``data/demo/`` (configs/demo.yaml).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from prefect import flow

from flows.backfill import with_runner
from flows.daily import daily
from flows.train import train_flow
from pipeline.core.config import load_config
from pipeline.core.lake import Lake

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample" / "gdelt-v2"
DEMO_CONFIG = REPO / "configs" / "demo.yaml"


def sample_days(sample: Path = SAMPLE) -> tuple[dt.date, dt.date]:
    """First and last DATEADDED day of the shipped sample (from its file names)."""
    days = sorted({dt.datetime.strptime(p.name[:8], "%Y%m%d").date() for p in sample.glob("*.export.CSV.zip")})
    if not days:
        raise FileNotFoundError(f"no GDELT 2.0 exports in {sample}")
    return days[0], days[-1]


@flow(name="demo", log_prints=True)
def demo(config: str = str(DEMO_CONFIG), sample: str = str(SAMPLE)) -> dict[str, Any]:
    cfg = load_config(config)
    first, last = sample_days(Path(sample))
    out: dict[str, Any] = {"lake": str(cfg.lake.root), "first": str(first), "last": str(last)}
    out["backfill"] = with_runner("local", workers=cfg.flow.backfill_concurrency)(
        first, last, config=config, source="local", path=sample, stages=["ingest", "reduce", "descriptors"])
    out["train"] = train_flow(config=config)
    out["daily"] = daily(day=last, config=config, source="local", path=sample)
    out["model"] = out["train"]["run_dir"]
    out["report"] = out["daily"].get("report")
    return out


def top_forecasts(lake: Lake, run: str, day: dt.date, n: int = 12) -> list[tuple[Any, ...]]:
    """The ``n`` most likely (country, event) forecasts of ``run`` for ``day``, busiest countries first."""
    con = lake.duckdb(["forecasts"])
    return con.execute(
        """
        SELECT country, code, description, round(probability, 2) AS p,
               list_transform(list_filter(actor_pairs, lambda x: x.actor1 IS NOT NULL OR x.actor2 IS NOT NULL)[1:2],
                              lambda x: coalesce(x.actor1, '·') || '→' || coalesce(x.actor2, '·')) AS actors
        FROM forecasts
        WHERE model = ? AND date = ? AND level = 'event'
        QUALIFY row_number() OVER (PARTITION BY country ORDER BY probability DESC, code) <= 2
        ORDER BY sum(probability) OVER (PARTITION BY country) DESC, country, probability DESC
        LIMIT ?
        """,
        [run, str(day), n],
    ).fetchall()
