"""baseline-learned: LogisticRegression vs HistGradientBoosting on held-out real days (docs/forecast.md).

Fits each estimator on the outcome days before ``--split`` and prints its BSS against climatology
on the days from ``--split`` on, for the ``--top`` busiest countries (by events before the split).

    PYTHONPATH=. OMP_NUM_THREADS=1 python bench/learned_estimators.py --lake data/experiment/lake --split 2025-06-01
"""

from __future__ import annotations

import argparse
import datetime as dt
import time

import numpy as np

from pipeline.cameo.labels import load_outcomes
from pipeline.core.config import ForecastConfig
from pipeline.core.lake import Lake
from pipeline.features.history import smoothed_climatology
from pipeline.model.learned import ESTIMATORS, fit_learned, learned_probabilities, training_days


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lake", default="data/experiment/lake")
    ap.add_argument("--split", default="2025-06-01")
    ap.add_argument("--top", type=int, nargs="+", default=[30, 100])
    ap.add_argument("--max-rows", type=int, default=ForecastConfig().learned_max_rows)
    args = ap.parse_args()
    o = load_outcomes(Lake(args.lake))
    split = dt.date.fromisoformat(args.split)
    test = [d for d in o.days if d >= split]
    totals = o.n_events[[i for i, d in enumerate(o.days) if d < split]].sum(0)
    order = np.argsort(-totals, kind="stable")
    print(f"train: {len(training_days(o, split))} days before {split}; test: {test[0]} … {test[-1]}")
    for kind in ESTIMATORS:
        t0 = time.perf_counter()
        model = fit_learned(o, training_days(o, split), kind, args.max_rows)
        fit_s = time.perf_counter() - t0
        P = learned_probabilities(model, o, test)
        for top in args.top:
            cs = order[:top]
            cells = []
            for lv in ("event", "base", "root"):
                Pm = np.stack([P[d][lv][0][cs] for d in test])
                Y = np.stack([o.y[lv][o.day_index(d)][cs] for d in test])
                C = smoothed_climatology(o, test, lv, 0.0)[0][:, cs]
                cells.append(f"{lv} BSS {1 - ((Pm - Y) ** 2).mean() / ((C - Y) ** 2).mean():+.4f}")
            print(f"{kind:8s} top {top:3d}  fit {fit_s:5.0f} s  " + " | ".join(cells), flush=True)


if __name__ == "__main__":
    main()
