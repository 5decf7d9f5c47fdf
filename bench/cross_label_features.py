"""Would cross-label context help baseline-learned? Appends features of the country's whole day to every label's
row and compares with the shipped features, side by side (docs/forecast.md, session 8: 19 features then, 21 since
session 9; not shipped: no gain).

Variants: ``none`` (the shipped features), ``quad`` (+7: yesterday's share of the country's events in each
QuadClass, the conflict QuadClasses' (3, 4) share yesterday minus their all-history share, and the log-volume
surge yesterday against the all-history mean), ``roots`` (``quad`` + yesterday's share of each of the 20 roots).

    PYTHONPATH=. OMP_NUM_THREADS=1 python bench/cross_label_features.py --split 2025-06-01 [--variants none quad roots]
"""

from __future__ import annotations

import argparse
import datetime as dt

import numpy as np

from bench.label_features import fit_and_score
from pipeline.cameo.labels import Outcomes, load_outcomes
from pipeline.core.lake import Lake
from pipeline.features import history as H


def with_context(variant: str):
    """``history_features`` with the variant's columns appended (the same value for every label of a country-day)."""
    shipped = H.history_features

    def features(outcomes: Outcomes, targets, level, labels=None, countries=None) -> H.History:
        h = shipped(outcomes, targets, level, labels, countries)
        if variant == "none":
            return h
        k = H.days_before(outcomes, sorted(set(targets)))
        wanted = set(outcomes.countries if countries is None else countries)
        rows = np.array([i for i, c in enumerate(outcomes.countries) if c in wanted], np.int64)
        q = H.prefix_sums(outcomes.quad_counts[:, rows].astype(np.float64))  # (Dy+1, C, 4)
        ne = H.prefix_sums(outcomes.n_events[:, rows].astype(np.float64))  # (Dy+1, C)
        q1, _ = H._window(q, k, 1)
        n1, _ = H._window(ne, k, 1)
        share1 = q1 / np.maximum(n1, 1)[..., None]  # (n_t, C, 4)
        share_all = q[k] / np.maximum(ne[k], 1)[..., None]
        cols = [share1[..., i] for i in range(4)] + [share1[..., i] - share_all[..., i] for i in (2, 3)]
        cols.append(np.log1p(n1) - np.log1p(ne[k] / np.maximum(k, 1)[:, None]))
        if variant == "roots":
            r1, _ = H._window(H.prefix_sums(outcomes.counts["root"][:, rows].astype(np.float64)), k, 1)
            cols += [r1[..., i] / np.maximum(n1, 1) for i in range(r1.shape[-1])]
        n_t, C, L, _ = h.X.shape
        extra = np.stack([np.broadcast_to(c[:, :, None], (n_t, C, L)) for c in cols], -1).astype(np.float32)
        h.X = np.concatenate([h.X, extra], -1)
        return h

    return features


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lake", default="data/experiment/lake")
    ap.add_argument("--split", default="2025-06-01")
    ap.add_argument("--top", type=int, nargs="+", default=[30, 100, 246])
    ap.add_argument("--variants", nargs="+", default=["none", "quad", "roots"], choices=["none", "quad", "roots"])
    args = ap.parse_args()
    o = load_outcomes(Lake(args.lake))
    split = dt.date.fromisoformat(args.split)
    test = [d for d in o.days if d >= split]
    order = np.argsort(-o.n_events[[i for i, d in enumerate(o.days) if d < split]].sum(0), kind="stable")
    for variant in args.variants:
        fit_and_score(o, split, test, with_context(variant), order, args.top, f"{variant:6s}")

if __name__ == "__main__":
    main()
