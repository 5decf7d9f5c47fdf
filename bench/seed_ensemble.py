"""Is the model's margin over the bar seed noise, and does averaging seeds widen it? A walk-forward of an ensemble.

Takes two or more walk-forward backtests of the same config that differ only in ``train.seed`` (``bench/ablations.py
--walkforward … base seed1``) and writes a new backtest directory whose raw model run (``<train.run>-bt``) is the
mean of the members' raw probabilities on every day they all forecast (the same countries; a mean of forecasts whose
parents are ≥ their children keeps that order). Everything else in its lake (the baselines, ``baseline-learned``'s
daily fits) is the first member's, so the stack is refitted per test day exactly as the backtest fits it
(``bench/stack_prior.py --backtest OUT --only-shipped``), and its row compares with the members' own published runs:

    PYTHONPATH=. python bench/seed_ensemble.py -c configs/experiment-walkforward-100countries.yaml \\
        --members data/experiment/reports/backtest-2025-06-01_2025-06-06-exp22-wf100-100c \\
                  data/experiment/reports/backtest-2025-06-01_2025-06-06-exp22-wf100-seed1-100c \\
        --out data/experiment/reports/backtest-2025-06-01_2025-06-06-exp22-wf100-ens2-100c
    PYTHONPATH=. OMP_NUM_THREADS=1 python bench/stack_prior.py -c configs/experiment-walkforward-100countries.yaml \\
        --start 2025-06-01 --end 2025-06-06 --calibration-days 6 --only-shipped \\
        --backtest data/experiment/reports/backtest-2025-06-01_2025-06-06-exp22-wf100-ens2-100c
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import time
from pathlib import Path

import numpy as np

from pipeline.cameo.labels import LEVELS, label_space
from pipeline.core.config import load_config
from pipeline.core.lake import Lake
from pipeline.core.schemas import FORECASTS_SCHEMA
from pipeline.forecast.table import forecast_rows, load_forecast


def raw_run(lake: Lake) -> str:
    """The backtest lake's raw model run (``<run>-bt``: the one with a ``-bt-cal`` sibling)."""
    cal = [p.name.split("=", 1)[1] for p in lake.table_dir("forecasts").glob("model=*-bt-cal")]
    if len(cal) != 1:
        raise SystemExit(f"{lake.root}: expected one published run <run>-bt-cal, found {cal or 'none'}")
    return cal[0][: -len("-cal")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-c", "--config", required=True, help="the members' config (its train.run names the output's run)")
    ap.add_argument("--members", type=Path, nargs="+", required=True, help="backtest directories, the first the base")
    ap.add_argument("--out", type=Path, required=True, help="the ensemble's backtest directory (replaced)")
    args = ap.parse_args()
    if len(args.members) < 2:
        ap.error("--members needs two backtests or more")
    cfg, labels, t0 = load_config(args.config), label_space(), time.perf_counter()
    lakes = [Lake(m / "lake") for m in args.members]
    runs = [raw_run(lk) for lk in lakes]
    if runs[0] != f"{cfg.train.run}-bt":
        ap.error(f"the first member's raw run is {runs[0]}, not {cfg.train.run}-bt (this config's)")
    days = sorted(set.intersection(*(set(lk.partitions("forecasts", model=r)) for lk, r in zip(lakes, runs))))
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    shutil.copytree(args.members[0] / "lake", args.out / "lake", symlinks=True)  # the links to the source stay links
    out = Lake(args.out / "lake")
    for r in ("-bt", "-bt-cal"):  # only the mean raw run is the ensemble's; the stack bench refits the published one
        shutil.rmtree(out.table_dir("forecasts") / f"model={cfg.train.run}{r}", ignore_errors=True)
    for d in days:
        members = [load_forecast(lk, r, d, labels) for lk, r in zip(lakes, runs)]
        countries = sorted(set.intersection(*(set(cs) for cs, _ in members)))
        mean = {}
        for lv in LEVELS:
            rows = [P[lv][[cs.index(c) for c in countries]] for cs, P in members]
            mean[lv] = np.mean(rows, axis=0)
        table = forecast_rows(countries, mean, np.ones(len(countries), bool), runs[0], 0,
                              dt.datetime.now(dt.timezone.utc).replace(microsecond=0), labels)
        out.write_partition("forecasts", table, d, schema=FORECASTS_SCHEMA, model=runs[0])
    print(f"{args.out}: {runs[0]} = the mean of {', '.join(runs)} on {len(days)} days ({days[0]} … {days[-1]}), "
          f"{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
