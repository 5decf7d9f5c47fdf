"""baseline-learned: LogisticRegression vs HistGradientBoosting, and the trees' size, on held-out real days
(docs/forecast.md).

Fits each estimator on the outcome days before ``--split`` and prints its BSS against climatology
on the days from ``--split`` on (before ``--end`` when given), for the ``--top`` busiest countries
(by events before the split). ``--hgb LEAVES:MIN_LEAF …`` also fits HGB with other tree sizes, side by
side with the shipped one (``pipeline.model.learned.HGB_LEAVES`` / ``HGB_MIN_LEAF``).

    PYTHONPATH=. OMP_NUM_THREADS=1 python bench/learned_estimators.py --lake data/experiment/lake --split 2025-06-01
    PYTHONPATH=. OMP_NUM_THREADS=1 python bench/learned_estimators.py --split 2025-05-27 --end 2025-06-01 \\
        --estimators hgb --hgb 31:50 7:2000
    … --estimators hgb --last-days 2 4 8 12                         # the learning curve of the shipped one
    … --estimators hgb --drop weekday_sin weekday_cos log_days      # the shipped one less one column each
    … --hgb 15:200:mono 15:200:recent7 15:200:mf0.7 15:200:bag4    # monotone, recency-weighted, feature- or
                                                                    # row-subsampled (the mean of 4 fits)
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import time
from unittest import mock

import numpy as np

from pipeline.cameo.labels import load_outcomes
from pipeline.core.config import ForecastConfig
from pipeline.core.lake import Lake
from pipeline.features.history import FEATURES, smoothed_climatology
from pipeline.model import learned
from pipeline.model.learned import ESTIMATORS, fit_learned, learned_probabilities, training_days


INCREASING = {"yesterday", "share3", "share7", "share30", "share_all", "logit_all", "logit7", "log_count1",
              "log_count7", "parent_yesterday", "parent_share7", "world_yesterday", "world_share7",
              "world_share_all", "log_mentions1", "log_mentions7", "log_volume1", "log_volume7"}
MONOTONE = [1 if name in INCREASING else 0 for name in FEATURES]
"""HGB ``monotonic_cst`` for ``…:mono``: +1 for the features above, unconstrained for weekday and history length."""


class _Weighted:
    """An estimator fitted with its rows' weights taken from the last column of X (``recentH``)."""

    def __init__(self, est) -> None:
        self.est = est

    def fit(self, X, y):
        self.est.fit(X[:, :-1], y, sample_weight=X[:, -1])
        return self

    def predict_proba(self, X):
        return self.est.predict_proba(X)


def with_age_weights(split: dt.date, half_life: float):
    """``history_features`` with a last column 0.5 ** ((split − target) / half_life), for ``training_rows``."""
    shipped = learned.history_features

    def features(outcomes, targets, level, labels=None, countries=None):
        h = shipped(outcomes, targets, level, labels, countries)
        age = np.array([(split - t).days for t in h.targets], np.float32)
        w = np.broadcast_to((0.5 ** (age / half_life))[:, None, None, None], h.X.shape[:3] + (1,))
        h.X = np.concatenate([h.X, w.astype(np.float32)], -1)
        return h

    return features


def without(column: int):
    """``history_features`` with one column held at 0 (``--drop``)."""
    shipped = learned.history_features

    def features(outcomes, targets, level, labels=None, countries=None):
        h = shipped(outcomes, targets, level, labels, countries)
        h.X[..., column] = 0.0
        return h

    return features


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
    ap.add_argument("--last-days", type=int, nargs="*", default=[], metavar="N",
                    help="also fit the shipped estimator on the last N training days only (a learning curve)")
    ap.add_argument("--drop", nargs="*", default=[], metavar="FEATURE", choices=FEATURES,
                    help="also fit the shipped estimator with this history feature held at 0 (one fit each)")
    args = ap.parse_args()
    o = load_outcomes(Lake(args.lake))
    split = dt.date.fromisoformat(args.split)
    end = dt.date.fromisoformat(args.end) if args.end else dt.date.max
    test = [d for d in o.days if split <= d < end]
    totals = o.n_events[[i for i, d in enumerate(o.days) if d < split]].sum(0)
    order = np.argsort(-totals, kind="stable")
    print(f"train: {len(training_days(o, split))} days before {split}; test: {test[0]} … {test[-1]}")
    variants = [(kind, None) for kind in args.estimators]
    variants += [("hgb", size.split(":")) for size in args.hgb]
    variants += [("hgb", ["last", str(n)]) for n in args.last_days]
    variants += [("hgb", ["drop", name]) for name in args.drop]
    for kind, size in variants:
        days, patches = training_days(o, split), {}
        if size and size[0] == "last":  # the shipped estimator on fewer, later days
            days, name, size = days[-int(size[1]):], f"hgb, last {int(size[1])} days", None
        elif size and size[0] == "drop":  # the shipped estimator with one column held constant (no split on it)
            patches["history_features"] = without(FEATURES.index(size[1]))
            name, size = f"hgb, no {size[1]}", None
        elif kind == "hgb" and size is None:
            name = f"hgb {learned.HGB_LEAVES}:{learned.HGB_MIN_LEAF} (shipped)"
        else:
            name = kind if size is None else f"hgb {':'.join(size)}"
        make = learned.make_estimator

        def sized(k, seed=0, size=size):
            if not size:
                return make(k, seed)
            est = make(k, seed, int(size[0]), int(size[1]))
            if size[2:] == ["mono"]:
                return est.set_params(monotonic_cst=MONOTONE)
            if size[2:] and size[2].startswith("mf"):  # each split sees a random share of the features
                return est.set_params(max_features=float(size[2][2:]))
            if size[2:] and size[2].startswith("bag"):  # the mean of N trees' ensembles, each on 70 % of the rows
                from sklearn.ensemble import BaggingClassifier
                return BaggingClassifier(est, n_estimators=int(size[2][3:]), max_samples=0.7, bootstrap=False,
                                         random_state=seed)
            return _Weighted(est) if size[2:] and size[2].startswith("recent") else est

        recent = size[2][len("recent"):] if size and size[2:] and size[2].startswith("recent") else None
        if recent:
            patches = {"history_features": with_age_weights(split, float(recent)), "N_FEATURES": learned.N_FEATURES + 1}
        with mock.patch.object(learned, "make_estimator", sized), \
                (mock.patch.multiple(learned, **patches) if patches else contextlib.nullcontext()):
            t0 = time.perf_counter()
            model = fit_learned(o, days, kind, args.max_rows)
            fit_s = time.perf_counter() - t0
        # outside the patches: ``recent`` fits read a weights column the forecast has not; a ``--drop`` column was
        # constant in training, so no tree splits on it and its real values at prediction change nothing
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
