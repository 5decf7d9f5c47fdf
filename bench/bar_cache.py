"""A walk-forward's ``baseline-learned`` fits, made afresh against read back (``pipeline.model.learned.fit_cached``).

    PYTHONPATH=. OMP_NUM_THREADS=1 python bench/bar_cache.py -c data/full-days-check/walkforward-30.yaml \
        --start 2025-06-04 --end 2025-06-06 [--refit-every 3 --calibration-days 6]

Runs the same backtest three times, side by side in one process, each into a scratch reports folder: with
``bar_cache=False`` (the peer: every fit made, none saved), with an empty cache (every fit made and saved), and
again (every fit read back). Prints the seconds of each and asserts the three summaries are equal to the last digit
(``summary.csv``), so the cache changes nothing but the time. docs/forecast.md "Session 23" has the numbers.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import pandas as pd

from pipeline.core.config import load_config
from pipeline.scoring.backtest import backtest


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-c", "--config", required=True)
    ap.add_argument("--start", required=True)
    ap.add_argument("--end", required=True)
    ap.add_argument("--refit-every", type=int, default=None, help="Also the model (default: baselines only).")
    ap.add_argument("--calibration-days", type=int, default=3)
    args = ap.parse_args()
    cfg = load_config(args.config)
    lake = cfg.lake.open()
    scratch = Path(tempfile.mkdtemp(prefix="bench-bar-cache-"))
    rows, summaries = [], {}
    for name, cached in (("no cache (peer)", False), ("empty cache", True), ("warm cache", True)):
        c = dataclasses.replace(cfg, evaluate=dataclasses.replace(cfg.evaluate, reports_dir=scratch / "reports"),
                                train=dataclasses.replace(cfg.train, models_dir=scratch / "models"))
        t = time.perf_counter()
        bt = backtest(lake, args.start, args.end, c, args.refit_every, args.calibration_days, bar_cache=cached)
        rows.append((name, time.perf_counter() - t))
        summaries[name] = pd.read_csv(bt.directory / "summary.csv")
    cache = scratch / "reports" / "cache" / "baseline-learned"
    fits = len(list(cache.iterdir())) if cache.exists() else 0
    print(f"\nbacktest {args.start} … {args.end} ({'model every %d days' % args.refit_every if args.refit_every else 'baselines'}), "
          f"{fits} fits in the cache ({scratch}):")
    for name, seconds in rows:
        print(f"  {name:<16} {seconds:8.1f} s")
    first = summaries["no cache (peer)"]
    for name, s in summaries.items():
        pd.testing.assert_frame_equal(s, first, check_exact=True, obj=name)
    print("  summaries: identical")


if __name__ == "__main__":
    main()
