"""baseline-learned: LogisticRegression vs HistGradientBoosting, and the trees' size, on held-out real days
(docs/forecast.md).

Fits each estimator on the outcome days before ``--split`` and prints its BSS against climatology
on the days from ``--split`` on (before ``--end`` when given), for the ``--top`` busiest countries
(by events before the split). ``--hgb LEAVES:MIN_LEAF …`` also fits HGB with other tree sizes, side by
side with the shipped one (``pipeline.model.learned.HGB_LEAVES`` / ``HGB_MIN_LEAF``).

    PYTHONPATH=. OMP_NUM_THREADS=1 python bench/learned_estimators.py --lake data/experiment/lake --split 2025-06-01
    PYTHONPATH=. OMP_NUM_THREADS=1 python bench/learned_estimators.py --split 2025-05-27 --end 2025-06-01 \\
        --estimators hgb --hgb 31:50 7:2000
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from unittest import mock

import numpy as np

from pipeline.cameo.labels import load_outcomes
from pipeline.core.config import ForecastConfig
from pipeline.core.lake import Lake
from pipeline.features.history import smoothed_climatology
from pipeline.model import learned
from pipeline.model.learned import ESTIMATORS, fit_learned, learned_probabilities, training_days


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lake", default="data/experiment/lake")
    ap.add_argument("--split", default="2025-06-01")
    ap.add_argument("--end", default=None, help="score the days before this one only (default: every day from --split)")
    ap.add_argument("--top", type=int, nargs="+", default=[30, 100])
    ap.add_argument("--max-rows", type=int, default=ForecastConfig().learned_max_rows)
    ap.add_argument("--estimators", nargs="+", default=list(ESTIMATORS), choices=ESTIMATORS)
    ap.add_argument("--hgb", nargs="*", default=[], metavar="LEAVES:MIN_LEAF",
                    help="more HGB tree sizes to fit beside the shipped one")
    args = ap.parse_args()
    o = load_outcomes(Lake(args.lake))
    split = dt.date.fromisoformat(args.split)
    end = dt.date.fromisoformat(args.end) if args.end else dt.date.max
    test = [d for d in o.days if split <= d < end]
    totals = o.n_events[[i for i, d in enumerate(o.days) if d < split]].sum(0)
    order = np.argsort(-totals, kind="stable")
    print(f"train: {len(training_days(o, split))} days before {split}; test: {test[0]} … {test[-1]}")
    variants = [(kind, None) for kind in args.estimators]
    variants += [("hgb", tuple(int(v) for v in size.split(":"))) for size in args.hgb]
    for kind, size in variants:
        name = kind if size is None else f"hgb {size[0]}:{size[1]}"
        if kind == "hgb" and size is None:
            name = f"hgb {learned.HGB_LEAVES}:{learned.HGB_MIN_LEAF} (shipped)"
        make = learned.make_estimator
        with mock.patch.object(learned, "make_estimator",
                               lambda k, seed=0: make(k, seed, *size) if size else make(k, seed)):
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
            print(f"{name:24s} top {top:3d}  fit {fit_s:5.0f} s  " + " | ".join(cells), flush=True)


if __name__ == "__main__":
    main()
