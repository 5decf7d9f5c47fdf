"""Evaluation metrics: ours (vectorised, scoringrules) vs scikit-learn per-label / per-row loops; the
decision-threshold search (weighted F1 at each of the 22 thresholds of ``evaluate.thresholds``) and the Glean /
MIRAI summary metrics from per-label / per-row counts vs scikit-learn's ``f1_score``, ``recall_score``,
``fbeta_score``, ``hamming_loss`` and ``precision_recall_fscore_support(average="samples")`` (what ``evaluate``
called before); and ROUGE of sampled futures with the memoised stemmer (``phrase_rouge``) vs a plain
``rouge_score.RougeScorer(use_stemmer=True)``.

    python bench/evaluate_metrics.py [--rows 3000] [--labels 291] [--futures 300]

Same inputs, same numbers (asserted); prints seconds and the speed ratio.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.metrics import (brier_score_loss, f1_score, fbeta_score, hamming_loss, log_loss,
                             precision_recall_fscore_support, recall_score)

from pipeline.cameo.phrases import join_phrases, phrase_rouge, vocabulary
from pipeline.core.config import EvaluateConfig
from pipeline.scoring.evaluate import (brier_per_label, glean_metrics, log_loss_per_label, mirai_metrics,
                                       per_row_prf, weighted_f1)


def timed(fn, repeat: int = 3):
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def rouge_case(n: int, rng: np.random.Generator):
    """ROUGE-1/2/L of ``n`` sampled futures against their day's target phrases, as ``evaluate`` scores them:
    phrases of the closed vocabulary (a name, a verb, a name), 5 … 40 per list."""
    from rouge_score import rouge_scorer

    names, verbs = vocabulary()
    phrases = lambda k: [f"{rng.choice(names)} {rng.choice(verbs)} {rng.choice(names)}"  # noqa: E731
                         for _ in range(k)]
    pairs = [(phrases(rng.integers(5, 40)), phrases(rng.integers(5, 40))) for _ in range(n)]
    plain = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    phrase_rouge(*pairs[0])  # rouge-score and NLTK imported outside the timing, as the peer's are
    return (f"ROUGE, {n} futures", lambda: np.array([phrase_rouge(t, g) for t, g in pairs]),
            lambda: np.array([[s[k].fmeasure for k in ("rouge1", "rouge2", "rougeL")]
                              for s in (plain.score(join_phrases(t), join_phrases(g)) for t, g in pairs)]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=3000, help="country-days")
    ap.add_argument("--labels", type=int, default=291, help="labels (291 = event level)")
    ap.add_argument("--futures", type=int, default=300,
                    help="(target, future) phrase lists for ROUGE (a 100-country day at K = 3 is 300)")
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
        ("Glean + MIRAI summary",
         lambda: np.array([*glean_metrics(Y, pred).values(), *mirai_metrics(Y, pred).values()]),
         lambda: np.array([recall_score(Y, pred, average="weighted", zero_division=0),
                           f1_score(Y, pred, average="weighted", zero_division=0),
                           fbeta_score(Y, pred, beta=2, average="weighted", zero_division=0),
                           hamming_loss(Y, pred),
                           *precision_recall_fscore_support(Y, pred, average="samples", zero_division=0)[:3]])),
    ]
    cases.append(rouge_case(args.futures, rng))
    print(f"{args.rows} rows x {args.labels} labels")
    print(f"{'metric':<22} {'ours s':>9} {'peer s':>10} {'speed-up':>9}")
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
