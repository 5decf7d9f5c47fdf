"""Evaluation metrics: ours (vectorised, scoringrules) vs scikit-learn per-label / per-row loops, and the
decision-threshold search (weighted F1 at each of the 22 thresholds of ``evaluate.thresholds``) from per-label
counts vs scikit-learn's ``f1_score`` (what ``tune_threshold`` called before).

    python bench/evaluate_metrics.py [--rows 3000] [--labels 291]

Same inputs, same numbers (asserted); prints seconds and the speed ratio.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.metrics import brier_score_loss, f1_score, log_loss, precision_recall_fscore_support

from pipeline.core.config import EvaluateConfig
from pipeline.scoring.evaluate import brier_per_label, log_loss_per_label, per_row_prf, weighted_f1


def timed(fn, repeat: int = 3):
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=3000, help="country-days")
    ap.add_argument("--labels", type=int, default=291, help="labels (291 = event level)")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    P = rng.random((args.rows, args.labels)) ** 3
    Y = rng.random((args.rows, args.labels)) < P
    pred = P >= 0.3
    grid = EvaluateConfig().thresholds
    cases = [
        ("Brier per label", lambda: brier_per_label(P, Y),
         lambda: np.array([brier_score_loss(Y[:, j], P[:, j], labels=[0, 1]) for j in range(P.shape[1])])),
        ("log loss per label", lambda: log_loss_per_label(P, Y, 1e-3),
         lambda: np.array([log_loss(Y[:, j], np.clip(P[:, j], 1e-3, 1 - 1e-3), labels=[0, 1])
                           for j in range(P.shape[1])])),
        ("MIRAI per-row P/R/F1", lambda: np.stack(per_row_prf(pred, Y)),
         lambda: np.stack([np.array(precision_recall_fscore_support(Y[i], pred[i], average="binary",
                                                                     zero_division=0)[:3])
                           for i in range(min(len(P), 500))]).T),
        ("weighted F1, 22 thr.", lambda: np.array([weighted_f1(Y, P >= t) for t in grid]),
         lambda: np.array([f1_score(Y, P >= t, average="weighted", zero_division=0) for t in grid])),
    ]
    print(f"{args.rows} rows x {args.labels} labels")
    print(f"{'metric':<22} {'ours s':>9} {'sklearn s':>10} {'speed-up':>9}")
    for name, ours, peer in cases:
        t1, a = timed(ours)
        t2, b = timed(peer, repeat=1)
        if name.startswith("MIRAI"):
            a = a[:, : b.shape[1]]
            t2 *= len(P) / b.shape[1]  # extrapolated from 500 rows
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
        print(f"{name:<22} {t1:>9.4f} {t2:>10.4f} {t2 / t1:>8.0f}x")


if __name__ == "__main__":
    main()
