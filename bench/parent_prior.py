"""Would the parent level's forecast help baseline-learned at event level? Appends to every event label's row the
logit of the bar's own base-level probability of its parent code (out-of-fold on the training days, so the event
trees learn from parent forecasts as good as they will be on a test day) and compares with the shipped features,
side by side on the same split (the protocol of bench/label_features.py). The event rows already carry the
parent's yesterday and 7-day share; the parent's *forecast* sums up all of its 22 features, its world prevalence
and its mentions included, in one column.

Variants: ``none`` (the shipped features), ``parent`` (+ the out-of-fold parent logit at event level and at base
level, the root level's for base; a zero column elsewhere), ``parent-insample`` (the same from the parent fit on
every training day, as a check of how much the out-of-fold rule matters).

    PYTHONPATH=. OMP_NUM_THREADS=1 python bench/parent_prior.py --split 2025-06-01 [--folds 4] [--variants none parent]
"""

from __future__ import annotations

import datetime as dt
import time

import numpy as np

from bench.label_features import fit_and_score, split_days, split_parser
from pipeline.cameo.labels import Outcomes, label_space, load_outcomes
from pipeline.core.lake import Lake
from pipeline.features import history as H
from pipeline.model import learned

PARENT_OF = {"event": "base", "base": "root"}  # the levels that get their parent's forecast


def fit_level(o: Outcomes, days: list[dt.date], level: str):
    """The shipped bar's estimator of one level, fitted on ``days``."""
    X, y = learned.training_rows(o, days, level, 1_000_000, 0)
    return learned.make_estimator("hgb", 0).fit(X, y)


def with_parent(variant: str, o: Outcomes, split: dt.date, folds: int):
    shipped, labels = H.history_features, label_space()
    if variant == "none":
        return shipped
    train = learned.training_days(o, split)
    models: dict[str, dict[dt.date | None, object]] = {}
    for child, parent in PARENT_OF.items():
        t0 = time.perf_counter()
        full = fit_level(o, train, parent)
        by_day: dict[dt.date | None, object] = {None: full}
        if variant == "parent":
            for block in np.array_split(np.array(train, dtype=object), folds):
                held = set(block.tolist())
                m = fit_level(o, [d for d in train if d not in held], parent)
                by_day.update({d: m for d in held})
        models[child] = by_day
        print(f"  {parent} fits for {child}: {time.perf_counter() - t0:.0f} s", flush=True)

    def features(outcomes: Outcomes, targets, level, labels_=None, countries=None) -> H.History:
        h = shipped(outcomes, targets, level, labels_, countries)
        extra = np.zeros(h.X.shape[:3] + (1,), np.float32)
        if level in PARENT_OF:
            parent = PARENT_OF[level]
            hp = shipped(outcomes, h.targets, parent, labels_, countries)
            cols = labels.parent_matrix(level, parent).argmax(axis=1)
            for i, t in enumerate(h.targets):
                est = models[level].get(t, models[level][None])  # out-of-fold on a training day, else the full fit
                Xp = hp.X[i].reshape(-1, hp.X.shape[-1])
                p = est.predict_proba(Xp)[:, 1].reshape(hp.X.shape[1:3])  # (C, L_parent)
                p = np.clip(p, 1e-4, 1 - 1e-4)
                extra[i, :, :, 0] = H._logit(p)[:, cols]
        return H.History(targets=h.targets, countries=h.countries, X=np.concatenate([h.X, extra], axis=-1), seen=h.seen,
                         n_days=h.n_days, world=h.world)

    return features


def main() -> None:
    ap = split_parser(__doc__)
    ap.add_argument("--variants", nargs="+", default=["none", "parent"], choices=["none", "parent", "parent-insample"])
    ap.add_argument("--folds", type=int, default=4)
    args = ap.parse_args()
    o = load_outcomes(Lake(args.lake))
    split, test, order = split_days(o, args)
    for variant in args.variants:
        fit_and_score(o, split, test, with_parent(variant, o, split, args.folds), order, args.top, f"{variant:16s}")


if __name__ == "__main__":
    main()
