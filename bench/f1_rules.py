"""Weighted F1 under three decision rules, every forecaster of a lake alike (issue 10: "weighted F1 better
than every baseline").

``evaluate`` scores the Glean protocol: one threshold per forecaster and level, tuned on the days before the
test days to maximise weighted F1, every label predicted when p ≥ t. Beside it, on the same forecasts:

- ``tuned``: that rule (the number in ``summary.csv``'s ``glean_f1_w``; checked against it when given);
- ``best t``: the best single threshold *on the test days themselves* (an upper bound of the global rule);
- ``plug-in``: no tuning at all — for each day and label, predict the k countries of highest p that maximise the
  expected F1 of calibrated probabilities, 2 Σ_{i ≤ k} p_(i) / (k + Σ_i p_i) (Jansche 2007, Nan et al. 2012):
  each label gets its own decision from the forecast alone, so a better-calibrated, sharper forecast decides
  better. Nothing about the day's outcomes is read.

Then the model run against ``baseline-learned`` under the plug-in rule, paired on the same country-days, with a
95 % interval by countries (F1 is not a mean of rows, so each resample recomputes it).

    PYTHONPATH=. python bench/f1_rules.py --lake data/experiment/reports/backtest-2025-06-01_2025-06-06-exp22-wf100-100c/lake \
        --start 2025-06-01 --end 2025-06-06 --model exp22-wf100-bt-cal
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score

from pipeline.cameo.labels import label_space, load_outcomes
from pipeline.core.config import EvaluateConfig
from pipeline.core.lake import Lake, as_date, date_range
from pipeline.forecast.table import collect
from pipeline.scoring.evaluate import _level_arrays, forecast_runs, glean_metrics, tune_threshold

LEVELS = ("event", "base", "root", "rare")


def plugin_decisions(P: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """(n, L) bool: within each group of rows (a day) and for each label, the k rows of highest p maximising
    2 Σ_{i ≤ k} p_(i) / (k + Σ_i p_i), the expected F1 when the p are calibrated (k ≥ 1)."""
    pred = np.zeros(P.shape, dtype=bool)
    for g in np.unique(groups):
        rows = np.flatnonzero(groups == g)
        order = np.argsort(-P[rows], axis=0, kind="stable")
        cum = np.cumsum(np.take_along_axis(P[rows], order, axis=0), axis=0)
        k = np.arange(1, len(rows) + 1)[:, None]
        best = (2 * cum / (k + cum[-1][None, :])).argmax(axis=0) + 1
        take = k <= best[None, :]  # (rows, L): the first best_l rows of each label's order
        pred[rows[order[take]], np.nonzero(take)[1]] = True
    return pred


def f1w(Y: np.ndarray, pred: np.ndarray) -> float:
    return float(f1_score(Y, pred, average="weighted", zero_division=0))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lake", type=Path, required=True, help="a lake with forecasts and outcomes (a backtest's)")
    ap.add_argument("--start", required=True)
    ap.add_argument("--end", required=True)
    ap.add_argument("--model", required=True, help="the run paired against baseline-learned")
    ap.add_argument("--val-days", type=int, default=EvaluateConfig().val_days,
                    help="days before --start that tune the threshold (evaluate.val_days)")
    ap.add_argument("--boot", type=int, default=500, help="bootstrap resamples (by countries)")
    ap.add_argument("--summary", type=Path, help="a summary.csv to check the tuned rule against")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    lake, start, end = Lake(args.lake), as_date(args.start), as_date(args.end)
    labels = label_space()
    outcomes = load_outcomes(lake, None, end, labels)
    test, val = date_range(start, end), [start - dt.timedelta(days=i) for i in range(args.val_days, 0, -1)]
    grid = EvaluateConfig().thresholds
    ref = pd.read_csv(args.summary).query("group == 'all'") if args.summary else None

    rows, stacks, vals = [], {}, {}
    for run in forecast_runs(lake):
        st = collect(lake, run, test, outcomes, labels)
        if st.keys:
            stacks[run], vals[run] = st, collect(lake, run, val, outcomes, labels)
    # every run on the country-days they all forecast, as evaluate scores them (a backtest's baselines may
    # cover countries its model has no descriptors for)
    common = sorted(set.intersection(*(set(st.keys) for st in stacks.values())))
    idx = {run: st.rows(common) for run, st in stacks.items()}
    days, countries = np.array([k[0] for k in common]), np.array([k[1] for k in common])
    for run, st in stacks.items():
        va = vals[run]
        for lv in LEVELS:
            P, Y = _level_arrays(st, lv, idx[run])
            t = tune_threshold(*_level_arrays(va, lv), grid) if va.keys else EvaluateConfig().default_threshold
            row = {"level": lv, "run": run, "t": t, "tuned": glean_metrics(Y, P >= t)["f1_w"],
                   "best t": max(glean_metrics(Y, P >= g)["f1_w"] for g in grid),
                   "plug-in": f1w(Y, plugin_decisions(P, days))}
            if ref is not None:
                hit = ref[(ref.run == run) & (ref.level == lv)]
                row["summary"] = float(hit.glean_f1_w.iloc[0]) if len(hit) else np.nan
            rows.append(row)
    table = pd.DataFrame(rows).sort_values(["level", "plug-in"], ascending=[True, False])
    print(f"# Weighted F1 by decision rule, {start} … {end}, {args.lake}")
    print("| " + " | ".join(table.columns) + " |\n|" + "---|" * len(table.columns))
    for r in table.itertuples(index=False):
        print("| " + " | ".join(f"{v:.4f}" if isinstance(v, float) else str(v) for v in r) + " |")

    a, b = args.model, "baseline-learned"
    by_country = [np.flatnonzero(countries == c) for c in np.unique(countries)]
    rng = np.random.default_rng(0)
    print(f"\n# plug-in F1w, {args.model} − baseline-learned [95 % by countries, {args.boot} resamples]")
    for lv in LEVELS:
        (Pa, Y), (Pb, _) = _level_arrays(stacks[a], lv, idx[a]), _level_arrays(stacks[b], lv, idx[b])
        da, db = plugin_decisions(Pa, days), plugin_decisions(Pb, days)
        diffs = []
        for _ in range(args.boot):
            r = np.concatenate([by_country[i] for i in rng.integers(len(by_country), size=len(by_country))])
            diffs.append(f1w(Y[r], da[r]) - f1w(Y[r], db[r]))
        lo, hi = np.percentile(diffs, [2.5, 97.5])
        print(f"{lv}: {f1w(Y, da) - f1w(Y, db):+.4f} [{lo:+.4f}, {hi:+.4f}]", flush=True)
    print(f"\n{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
