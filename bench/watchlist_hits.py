"""Do the watch list's calls come true? The top rises and falls of each day against what happened.

For every day in [start, end] with outcomes, the watch list of ``--run`` (``pipeline.scoring.watchlist``) is
computed against each ``usual`` (``climatology``: the country's long-run frequency, the default since
session 14; ``both``: outside climatology and the reference baseline, before; ``bar``: against the reference
baseline alone, ``baseline-learned`` — where the model departs from the frequency model, not a list the page shows)
and its ``--top`` largest rises and falls per level are kept, as the page lists them (one list per level here). Per usual × level × direction it
prints the mean usual value, the mean forecast and the share that happened, with the 95 % bootstrap interval of
(happened − usual) by rows: a list worth reading has its rises happen more often than their usual value says,
its falls less often, and its forecasts near what happened.

    B=data/experiment/reports/backtest-2025-06-01_2025-06-06-exp22-wf100-100c
    PYTHONPATH=. python bench/watchlist_hits.py --lake $B/lake --run exp22-wf100-bt-cal \\
        --start 2025-06-01 --end 2025-06-06 --top 10
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from pipeline.cameo.labels import load_outcomes
from pipeline.core.lake import Lake, date_range
from pipeline.scoring.watchlist import LEVELS, USUALS, WatchlistConfig, departures, happened


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lake", required=True)
    ap.add_argument("--run", required=True, help="the forecast run whose watch list is scored")
    ap.add_argument("--start", required=True)
    ap.add_argument("--end", required=True)
    ap.add_argument("--top", type=int, default=10, help="rows per day, level and direction")
    ap.add_argument("--boot", type=int, default=2000)
    args = ap.parse_args()
    lake = Lake(args.lake)
    days = date_range(args.start, args.end)
    outcomes = load_outcomes(lake, None, days[-1])
    at = outcomes.country_index()
    rng = np.random.default_rng(0)
    print(f"{args.run}, {days[0]} … {days[-1]}, top {args.top} per day, level and direction")
    print(f"{'usual':12s} {'level':6s} {'dir':5s} {'rows':>5s} {'usual':>6s} {'P':>6s} {'happened':>8s}  "
          "happened − usual [95 %]")
    for usual in (*USUALS, "bar"):
        parts = []
        for d in days:
            df = departures(lake, d, args.run, WatchlistConfig(usual="climatology" if usual == "bar" else usual))
            if usual == "bar":  # departures from the reference baseline (baseline-learned) instead of climatology
                if (df.baseline_run == "baseline-climatology").all():
                    continue  # no reference baseline that day (never the run itself: reference_baseline excludes it)
                p = df.probability.to_numpy(float)
                df = df.assign(usual=df.baseline, difference=p - df.baseline,
                               direction=np.where(p > df.baseline, "rise", np.where(p < df.baseline, "fall", "")))
            df = df[(df.direction != "") & df.country.isin(list(at))]
            df = df.assign(day=d, happened=happened(df, outcomes, d))
            parts.append(df.assign(size=df.difference.abs()).sort_values("size", ascending=False)
                         .groupby(["level", "direction"]).head(args.top))
        if not parts:
            continue
        top = pd.concat(parts)
        for lv in LEVELS:
            for direction in ("rise", "fall"):
                g = top[(top.level == lv) & (top.direction == direction)]
                if g.empty:
                    continue
                gap = g.happened.to_numpy(float) - g.usual.to_numpy(float)
                boot = gap[rng.integers(0, len(gap), (args.boot, len(gap)))].mean(1)
                lo, hi = np.percentile(boot, [2.5, 97.5])
                print(f"{usual:12s} {lv:6s} {direction:5s} {len(g):5d} {g.usual.mean():6.3f} {g.probability.mean():6.3f} "
                      f"{g.happened.mean():8.3f}  {gap.mean():+.3f} [{lo:+.3f}, {hi:+.3f}]", flush=True)


if __name__ == "__main__":
    main()
