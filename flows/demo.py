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


def unusual_tomorrow(lake: Lake, day: dt.date, run: str | None = None, n: int = 10) -> list[dict[str, Any]]:
    """The top of the day's watch list (the ``watchlist`` table): what departs most from the usual tomorrow.

    One dict per line — country, label, level, code, p, usual, difference,
    direction, actors, phrase — the ``n − 2`` largest rises and the 2 largest
    falls, largest departure first (:func:`pipeline.scoring.watchlist.headline`).
    """
    from pipeline.scoring.watchlist import headline, phrase_text, read_watchlist

    g = headline(read_watchlist(lake, day, run), n, falls=2)
    return [{"country": r.country_name, "fips": r.country, "label": _sentence(r.description), "level": r.level,
             "code": r.code, "p": float(r.probability), "usual": float(r.usual),
             "difference": float(r.difference), "direction": r.direction,
             "actors": r.actors.split("; ")[0] if r.actors else "",
             "phrase": phrase_text(list(r.phrases)[:1], r.phrase_shares)}
            for r in g.itertuples()]


def _sentence(text: Any) -> str:
    """CAMEO root descriptions are upper case ("FIGHT"): sentence case them."""
    t = str(text)
    return t.capitalize() if t.isupper() else t
