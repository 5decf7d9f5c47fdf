"""Recalibration of a model's label probabilities on validation days.

Why: by default the probabilities come from the model's occurrence head
(``forecast.probabilities = "occurrence"``), trained with BCE on a few weeks of
training days; its scores are not yet reliable probabilities on later days
(the news cycle shifts the base rates, and a small model over- or under-fits
them). With ``forecast.probabilities = "futures"`` the scores are the share of
the K futures containing a label, which underestimates occurrence: a future
holds the day's 3–10 *salient* phrases, while a label occurs when *any* event
carries it. Either way a monotone map per level, fitted on the validation days
only (never the test days), turns the scores into probabilities:

    p'_l = g_level(p_l)          g_level: isotonic regression of outcome on score
                                 (scikit-learn, pooled over labels and country-days,
                                 bounded to [0.001, 0.999])

then restores the hierarchy, bottom up (event → base → root → quad), so that a
parent is at least as likely as any of its children::

    p'_parent = max(p'_parent, max_{child ⊂ parent} p'_child)

Then, when the lake has history before the validation days, a blend with
climatology per level (logistic stacking, fitted on the same validation days)::

    p''_l = σ(a · logit p'_l + b · logit c_l + k)

with c_l the country's smoothed climatology ((count + ½) / (days + 1), the days
before the target). The model knows the news cycle; climatology knows each
country's base rate, which a few validation days and one map per level cannot
teach the model for 100 countries (measured effect: docs/forecast.md).

The maps (knots of each piecewise-linear g, the blend's a, b, k) are stored
with the model (``<model dir>/calibration.json``) and applied by
``pipeline.forecast.forecast`` to every later forecast of that model.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from pipeline.cameo.labels import LEVELS, LabelSpace, label_space

FILE = "calibration.json"
PROB_FLOOR = 1e-3
"""Calibrated probabilities stay within [PROB_FLOOR, 1 − PROB_FLOOR]."""
HIERARCHY: tuple[tuple[str, str], ...] = (("event", "base"), ("base", "root"), ("root", "quad"))
CLIMATOLOGY_ALPHA = 0.5
"""Additive smoothing of the climatology the blend uses (never exactly 0 or 1)."""


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, float), PROB_FLOOR, 1.0 - PROB_FLOOR)
    return np.log(p / (1.0 - p))


@dataclass
class Calibration:
    """Per level, the knots (x, y) of a non-decreasing piecewise-linear map [0, 1] → [0, 1]."""

    knots: dict[str, tuple[list[float], list[float]]]
    fitted_on: list[str]
    """The validation days the maps were fitted on (ISO dates)."""
    n: dict[str, int]
    """Country-day × label pairs per level behind each map."""
    blend: dict[str, list[float]] | None = None
    """Per level, (a, b, k) of σ(a·logit p + b·logit climatology + k); None: no blend."""

    def apply(self, probs: dict[str, np.ndarray], labels: LabelSpace | None = None,
              climatology: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """Calibrate ``{level: (..., L_level)}`` probabilities and restore parent ≥ child.

        ``climatology`` (same shapes, from :func:`climatology`) is needed for the
        blend; without it only the isotonic maps are applied.
        """
        out = {lv: np.interp(p, *self.knots[lv]) if lv in self.knots else np.asarray(p, float)
               for lv, p in probs.items()}
        if self.blend and climatology is not None:
            for lv, (a, b, k) in self.blend.items():
                if lv in out and lv in climatology:
                    z = a * _logit(out[lv]) + b * _logit(climatology[lv]) + k
                    out[lv] = np.clip(1.0 / (1.0 + np.exp(-z)), PROB_FLOOR, 1.0 - PROB_FLOOR)
        return restore_hierarchy(out, labels)

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / FILE
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps({"knots": self.knots, "fitted_on": self.fitted_on, "n": self.n,
                                   "blend": self.blend}, indent=1) + "\n")
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, directory: str | Path) -> Calibration | None:
        """The calibration stored in a model directory, or None when it has none."""
        path = Path(directory) / FILE
        if not path.exists():
            return None
        data = json.loads(path.read_text())
        return cls({k: (list(v[0]), list(v[1])) for k, v in data["knots"].items()}, data["fitted_on"], data["n"],
                   data.get("blend"))


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


def fit_blend(cal: Calibration, P: dict[str, np.ndarray], Y: dict[str, np.ndarray],
              C: dict[str, np.ndarray]) -> Calibration:
    """Add the climatology blend to ``cal``: per level, a logistic regression of the outcome on
    (logit of the calibrated score, logit of climatology ``C[level]``), fitted on the same rows as the maps."""
    blend = {}
    for lv in cal.knots:
        if lv not in C:
            continue
        x1 = _logit(np.interp(np.asarray(P[lv], float), *cal.knots[lv])).ravel()
        x2 = _logit(C[lv]).ravel()
        y = np.asarray(Y[lv], bool).ravel()
        if y.all() or not y.any():
            continue  # nothing to learn (e.g. every QuadClass every day)
        lr = LogisticRegression(C=1.0, max_iter=200).fit(np.stack([x1, x2], axis=1), y)
        blend[lv] = [float(lr.coef_[0, 0]), float(lr.coef_[0, 1]), float(lr.intercept_[0])]
    cal.blend = blend or None
    return cal


def climatology(lake, target: dt.date, countries: Sequence[str],
                labels: LabelSpace | None = None) -> dict[str, np.ndarray] | None:
    """Smoothed climatology of ``countries`` for ``target`` from the ``country`` days before it.

    ``{level: (len(countries), L)}``; a country never seen gets ½ / (days + 1).
    None when there is no history before ``target``.
    """
    from pipeline.cameo.labels import load_outcomes

    labels = labels or label_space()
    try:
        outcomes = load_outcomes(lake, None, target - dt.timedelta(days=1), labels)
    except FileNotFoundError:
        return None
    return _climatologies(outcomes, {target: list(countries)}).get(target)


def _climatologies(outcomes, countries: dict[dt.date, list[str]]) -> dict[dt.date, dict[str, np.ndarray]]:
    """``climatology`` of several targets from one ``Outcomes`` (one pass over its days); targets without
    history before them are left out."""
    from pipeline.features.history import smoothed_climatology

    targets = sorted(countries)
    row = {c: i for i, c in enumerate(outcomes.countries)}
    out: dict[dt.date, dict[str, np.ndarray]] = {t: {} for t in targets}
    for lv in LEVELS:
        P, n_days = smoothed_climatology(outcomes, targets, lv, CLIMATOLOGY_ALPHA)  # (n_t, C, L), (n_t,)
        for i, target in enumerate(targets):
            unseen = np.full(P.shape[2], CLIMATOLOGY_ALPHA / (n_days[i] + 2 * CLIMATOLOGY_ALPHA))
            cs = countries[target]
            out[target][lv] = np.stack([P[i, row[c]] if c in row else unseen for c in cs]) if cs else P[i, :0]
    return {t: out[t] for t, n in zip(targets, n_days) if n > 0}


def fit_from_lake(lake, run: str, days: Sequence[dt.date], labels: LabelSpace | None = None,
                  blend: bool = True) -> Calibration:
    """Fit on the forecasts of ``run`` for ``days`` (validation target days) against what happened.

    With ``blend``, also fits the climatology blend when every validation day has history before it.
    """
    from pipeline.forecast.table import collect
    from pipeline.cameo.labels import load_outcomes

    labels = labels or label_space()
    # all days up to the last validation day: the outcomes to fit on, and the history of each day's climatology
    outcomes = load_outcomes(lake, None, max(days), labels)
    stack = collect(lake, run, list(days), outcomes, labels)
    if not stack.keys:
        raise ValueError(f"calibrate: no forecasts of {run!r} with outcomes on {', '.join(map(str, days))}; "
                         "forecast the validation days first")
    fitted_days = sorted({d for d, _ in stack.keys})
    cal = fit(stack.P, stack.Y, fitted_days)
    if not blend:
        return cal
    rows = {d: [i for i, (k, _) in enumerate(stack.keys) if k == d] for d in fitted_days}
    clim = _climatologies(outcomes, {d: [stack.keys[i][1] for i in rows[d]] for d in fitted_days})
    if set(clim) != set(fitted_days):
        return cal  # a validation day without history: no blend
    order = np.concatenate([rows[d] for d in fitted_days])
    return fit_blend(cal, {lv: stack.P[lv][order] for lv in LEVELS}, {lv: stack.Y[lv][order] for lv in LEVELS},
                     {lv: np.concatenate([clim[d][lv] for d in fitted_days]) for lv in LEVELS})
