"""Does the occurrence head add to its prior? After a walk-forward of a ``model.occurrence_prior`` config, scores on
the test days, side by side: the saved prior of each origin's model alone, the trained head (the raw run) and the
backtest's ``baseline-learned`` (refitted every day), as BSS against climatology (docs/forecast.md, session 8).

    B=data/experiment/reports/backtest-2025-06-01_2025-06-06-exp22-wf100-prior-100c
    PYTHONPATH=. python bench/prior_vs_head.py --lake $B/lake --models $B/models --run exp22-wf100-prior-bt \
        --start 2025-06-01 --end 2025-06-06
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

import numpy as np

from pipeline.cameo.labels import LEVELS, label_space, load_outcomes
from pipeline.core.lake import Lake, date_range
from pipeline.features.dataset import label_history
from pipeline.forecast.table import baseline_run, load_forecast
from pipeline.model.forecaster import PRIOR_DIR
from pipeline.model.learned import LearnedBaseline


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lake", required=True, help="the backtest's lake, reports/backtest-…/lake")
    ap.add_argument("--models", required=True, help="the backtest's origin models, reports/backtest-…/models")
    ap.add_argument("--run", required=True, help="the raw backtest run, e.g. exp22-wf100-prior-bt")
    ap.add_argument("--start", default="2025-06-01")
    ap.add_argument("--end", default="2025-06-06")
    args = ap.parse_args()
    lake, labels = Lake(args.lake), label_space()
    days = date_range(args.start, args.end)
    outcomes = load_outcomes(lake, None, days[-1])
    origins = sorted(dt.date.fromisoformat(p.name[-10:]) for p in Path(args.models).glob(f"{args.run}-????-??-??"))
    sq = {k: {lv: 0.0 for lv in LEVELS} for k in ("prior", "head", "learned", "climatology")}
    row = {c: i for i, c in enumerate(outcomes.countries)}
    for d in days:
        origin = max(o for o in origins if o <= d)
        prior = LearnedBaseline.load(Path(args.models) / f"{args.run}-{origin}" / PRIOR_DIR)
        countries, head = load_forecast(lake, args.run, d)
        P = {"head": head}
        for name in ("learned", "climatology"):
            cs, p = load_forecast(lake, baseline_run(name), d)
            at = {c: i for i, c in enumerate(cs)}
            P[name] = {lv: p[lv][[at[c] for c in countries]] for lv in LEVELS}
        h = label_history(lake, countries, [d])
        z = prior.logits(np.stack([h[(c, d)] for c in countries]))  # (C, L_all)
        P["prior"] = labels.split(1 / (1 + np.exp(-z.astype(float))))
        Y = {lv: outcomes.y[lv][outcomes.day_index(d)][[row[c] for c in countries]] for lv in LEVELS}
        for name in sq:
            for lv in LEVELS:
                sq[name][lv] += float(((P[name][lv] - Y[lv]) ** 2).sum())
    print(f"{args.run}: BSS against climatology in %, {days[0]} … {days[-1]} (origins {', '.join(map(str, origins))})")
    for lv in ("event", "base", "root"):
        print(f"{lv:6s} " + " | ".join(f"{name} {100 * (1 - sq[name][lv] / sq['climatology'][lv]):+.2f}"
                                      for name in ("prior", "head", "learned")))


if __name__ == "__main__":
    main()
