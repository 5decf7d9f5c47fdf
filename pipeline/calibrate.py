"""Recalibration of a model's label probabilities on validation days.

Why: a future holds the day's 3–10 *salient* phrases, while a label occurs
when *any* event of the day carries it. The share of futures containing a
label therefore underestimates how often it occurs (measured on the sample:
root-level reliability error ≈ 0.25 before calibration). A monotone map per
level, fitted on the validation days only (never the test days), turns the
model's scores into probabilities:

    p'_l = g_level(p_l)          g_level: isotonic regression of outcome on score
                                 (scikit-learn, pooled over labels and country-days,
                                 bounded to [0.001, 0.999])

then restores the hierarchy, bottom up (event → base → root → quad), so that a
parent is at least as likely as any of its children::

    p'_parent = max(p'_parent, max_{child ⊂ parent} p'_child)

The maps are stored with the model (``<model dir>/calibration.json``: the knots
of each piecewise-linear g) and applied by ``pipeline.forecast`` to every later
forecast of that model.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.isotonic import IsotonicRegression

from pipeline.labels import LEVELS, LabelSpace, label_space

FILE = "calibration.json"
PROB_FLOOR = 1e-3
"""Calibrated probabilities stay within [PROB_FLOOR, 1 − PROB_FLOOR]."""
HIERARCHY: tuple[tuple[str, str], ...] = (("event", "base"), ("base", "root"), ("root", "quad"))


@dataclass
class Calibration:
    """Per level, the knots (x, y) of a non-decreasing piecewise-linear map [0, 1] → [0, 1]."""

    knots: dict[str, tuple[list[float], list[float]]]
    fitted_on: list[str]
    """The validation days the maps were fitted on (ISO dates)."""
    n: dict[str, int]
    """Country-day × label pairs per level behind each map."""

    def apply(self, probs: dict[str, np.ndarray], labels: LabelSpace | None = None) -> dict[str, np.ndarray]:
        """Calibrate ``{level: (..., L_level)}`` probabilities and restore parent ≥ child."""
        out = {lv: np.interp(p, *self.knots[lv]) if lv in self.knots else np.asarray(p, float)
               for lv, p in probs.items()}
        return restore_hierarchy(out, labels)

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / FILE
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps({"knots": self.knots, "fitted_on": self.fitted_on, "n": self.n}, indent=1) + "\n")
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, directory: str | Path) -> Calibration | None:
        """The calibration stored in a model directory, or None when it has none."""
        path = Path(directory) / FILE
        if not path.exists():
            return None
        data = json.loads(path.read_text())
        return cls({k: (list(v[0]), list(v[1])) for k, v in data["knots"].items()}, data["fitted_on"], data["n"])


def restore_hierarchy(probs: dict[str, np.ndarray], labels: LabelSpace | None = None) -> dict[str, np.ndarray]:
    """Bottom up (event → base → root → quad): ``p(parent) = max(p(parent), max p(child))``, {level: (..., L)}."""
    labels = labels or label_space()
    out = dict(probs)
    for child, parent in HIERARCHY:
        if child in out and parent in out:
            m = labels.parent_matrix(child, parent).astype(bool)  # (L_child, L_parent)
            under = np.where(m, out[child][..., :, None], 0.0).max(axis=-2)  # (..., L_parent)
            out[parent] = np.maximum(out[parent], under)
    return out


def fit(P: dict[str, np.ndarray], Y: dict[str, np.ndarray], days: Sequence[dt.date | str] = ()) -> Calibration:
    """Fit one isotonic map per level from scores ``P[level]`` (n, L) and outcomes ``Y[level]`` (n, L) in {0, 1}."""
    knots, n = {}, {}
    for lv in LEVELS:
        if lv not in P or P[lv].size == 0:
            continue
        x, y = np.asarray(P[lv], float).ravel(), np.asarray(Y[lv], float).ravel()
        # never exactly 0 or 1: a few validation days cannot justify certainty
        iso = IsotonicRegression(y_min=PROB_FLOOR, y_max=1.0 - PROB_FLOOR, out_of_bounds="clip",
                                 increasing=True).fit(x, y)
        xs, ys = iso.X_thresholds_, iso.y_thresholds_
        # anchor both ends so scores outside the fitted range map to the nearest fitted value
        xs = np.concatenate([[0.0], xs, [1.0]]) if len(xs) else np.array([0.0, 1.0])
        ys = np.concatenate([[ys[0]], ys, [ys[-1]]]) if len(ys) else np.array([y.mean(), y.mean()])
        knots[lv] = ([float(v) for v in xs], [float(v) for v in ys])
        n[lv] = int(x.size)
    return Calibration(knots, [str(d) for d in days], n)


def fit_from_lake(lake, run: str, days: Sequence[dt.date], labels: LabelSpace | None = None) -> Calibration:
    """Fit on the forecasts of ``run`` for ``days`` (validation target days) against what happened."""
    from pipeline.evaluate import collect
    from pipeline.labels import load_outcomes

    labels = labels or label_space()
    outcomes = load_outcomes(lake, min(days), max(days), labels)
    stack = collect(lake, run, list(days), outcomes, labels)
    if not stack.keys:
        raise ValueError(f"calibrate: no forecasts of {run!r} with outcomes on {', '.join(map(str, days))}; "
                         "forecast the validation days first")
    return fit(stack.P, stack.Y, sorted({d for d, _ in stack.keys}))
