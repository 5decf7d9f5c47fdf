"""baseline-learned refitted every k days (``forecast.learned_refit_days``) against every day, on held-out real days.

A backfill (or a morning without a stored fit) fits the bar on the days before the target's refit origin
(``pipeline.forecast.baselines.refit_origin``: the latest day ≤ the target on a calendar of every k days)
instead of the days before the target itself: up to k − 1 days staler. This prints what that costs: the
BSS of the k-day fits against the every-day fits (Brier summed over the ``--top`` busiest countries' labels,
per level, with a 95 % interval by bootstrapping the days), over two windows of target days.

    PYTHONPATH=. OMP_NUM_THREADS=2 python bench/refit_cadence.py --lake /tmp/long/base --every 3,7 \\
        --start 2025-05-22 --end 2025-06-06 --split 2025-05-29 [--cache /tmp/refit/cache]

Real days only (``../shared/data``, 40 % of each day's exports): every fit here has 3 … 20 training days, where
a week is a large share of what the bar learns from; on a lake of months the share, and the cost, shrink.
``--cache``: the fits, by what they read (``fit_cached``), so a second run refits nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt

import numpy as np

from pipeline.cameo.labels import LEVELS, load_outcomes
from pipeline.core.lake import Lake, date_range
from pipeline.forecast.baselines import refit_origin
from pipeline.model.learned import fit_cached, learned_probabilities, training_days


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lake", default="data/experiment/lake")
    ap.add_argument("--every", default="3,7", help="refit periods k to compare with k = 1, comma-separated")
    ap.add_argument("--start", type=dt.date.fromisoformat, default=dt.date(2025, 5, 22))
    ap.add_argument("--end", type=dt.date.fromisoformat, default=dt.date(2025, 6, 6))
    ap.add_argument("--split", type=dt.date.fromisoformat, default=dt.date(2025, 5, 29),
                    help="also report the target days from this one on")
    ap.add_argument("--top", type=int, default=100)
    ap.add_argument("--cache", default=None)
    ap.add_argument("--boot", type=int, default=2000)
    args = ap.parse_args()
    outcomes = load_outcomes(Lake(args.lake), None, args.end)
    targets = date_range(args.start, args.end)
    periods = [1] + [int(k) for k in args.every.split(",")]
    busy = np.argsort(-outcomes.n_events[[i for i, d in enumerate(outcomes.days) if d < args.start]].sum(0))[:args.top]
    probs: dict[int, dict] = {}
    for k in periods:
        origins: dict[dt.date, list[dt.date]] = {}
        for t in targets:  # from_days 1: every origin with a training day before it, as the calendar gives it
            origins.setdefault(refit_origin(outcomes, t, k), []).append(t)
        probs[k] = {}
        for origin, days in sorted(origins.items()):
            model = fit_cached(outcomes, training_days(outcomes, origin), cache=args.cache)
            probs[k].update(learned_probabilities(model, outcomes, days))
            print(f"k = {k}: origin {origin} ({len(training_days(outcomes, origin))} training days) → "
                  f"{days[0]} … {days[-1]}", flush=True)
    rng = np.random.default_rng(0)
    for window in (targets, [t for t in targets if t >= args.split]):
        print(f"\ntargets {window[0]} … {window[-1]} ({len(window)} days), {args.top} busiest: BSS of the k-day "
              "refit against refitting every day, 95 % interval by days")
        print("| level | " + " | ".join(f"k = {k}" for k in periods[1:]) + " |")
        print("|---|" + "---|" * (len(periods) - 1))
        picks = [rng.integers(0, len(window), len(window)) for _ in range(args.boot)]
        for lv in LEVELS:
            brier = {k: np.array([((probs[k][t][lv][0][busy] - outcomes.y[lv][outcomes.day_index(t)][busy]) ** 2)
                                  .sum() for t in window]) for k in periods}
            cells = []
            for k in periods[1:]:
                boots = np.percentile([1 - brier[k][p].sum() / brier[1][p].sum() for p in picks], [2.5, 97.5])
                cells.append(f"{100 * (1 - brier[k].sum() / brier[1].sum()):+.2f} % "
                             f"[{100 * boots[0]:+.2f}, {100 * boots[1]:+.2f}]")
            print(f"| {lv} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
