"""Where a whole ``evaluate`` spends its time, on a lake that has forecasts (a backtest's, or the demo's).

    python bench/evaluate_day.py \
        --lake data/full-days-check/reports/backtest-2025-05-29_2025-06-06-full-wf100-100c/lake \
        --start 2025-06-03 --end 2025-06-03 [--repeat 2]

Prints the seconds of ``load_outcomes`` (the lake's whole history, as evaluate reads it), of ``evaluate(write=False)``
and, inside it, of the actor pairs (``evaluate_pairs``) — the best of ``--repeat`` runs, the imports outside the
timing. The metrics' own peers (scikit-learn, rouge-score) are in ``bench/evaluate_metrics.py``; docs/forecast.md
("Evaluation", **Speed**) has the numbers of session 22, this script run from a checkout before (594a13a) and
after: one day 12.9 s → 5.6 s, nine days 67 s → 38 s.
"""

from __future__ import annotations

import argparse
import time

from pipeline.cameo.labels import load_outcomes
from pipeline.cameo.phrases import phrase_rouge
from pipeline.core.config import EvaluateConfig
from pipeline.core.lake import Lake, as_date, date_range
from pipeline.scoring.actors import evaluate_pairs
from pipeline.scoring.evaluate import evaluate, forecast_runs


def best_of(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lake", required=True)
    ap.add_argument("--start", required=True)
    ap.add_argument("--end", required=True)
    ap.add_argument("--val-days", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    lake = Lake(args.lake)
    start, end = as_date(args.start), as_date(args.end)
    runs = forecast_runs(lake)
    cfg = EvaluateConfig(val_days=args.val_days, reports_dir="/tmp/bench-evaluate-day")
    phrase_rouge(["United States make statement"], ["France make statement"])  # rouge-score, NLTK imported
    models = [r for r in runs if not r.startswith("baseline-")]
    rows = [
        ("load_outcomes (all days)", best_of(lambda: load_outcomes(lake, None, end), args.repeat)),
        ("evaluate_pairs", best_of(lambda: evaluate_pairs(lake, models, date_range(start, end)), args.repeat)),
        ("evaluate (write=False)", best_of(lambda: evaluate(lake, start, end, runs, cfg, write=False), args.repeat)),
    ]
    print(f"{lake.root}: {len(runs)} runs, {start} … {end}")
    for name, s in rows:
        print(f"{name:<28} {s:8.2f} s")


if __name__ == "__main__":
    main()
