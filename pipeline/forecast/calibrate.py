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

    p''_l = σ(a · logit p'_l + b · logit c_l + k)        a, b ≥ 0

with c_l the country's smoothed climatology ((count + ½) / (days + 1), the days
before the target), by default moved to the target day's weekend/weekday volume as
``baseline-weekday`` does (1 − (1 − c)^r_c, :func:`pipeline.forecast.baselines.volume_ratio`;
``train.calibration_climatology: plain`` keeps the all-day share; stored in the calibration). The model knows the news cycle; climatology knows each
country's base rate, which a few validation days and one map per level cannot
teach the model for 100 countries (measured effect: docs/forecast.md).

With a **stack** (``baseline-learned`` fitted on days before the validation days only, stored with
the calibration in ``<model dir>/stack/``), the blend has a third input, the learned baseline's
probability r_l of the same country-day::

    p''_l = σ(a · logit p'_l + b · logit c_l + s · logit r_l + k)

a stacked ensemble fitted on held-out days: the model has to add to what a frequency model of each
label's history already knows (a > 0 with a better score than r alone is that evidence), and the
published forecast is never much worse than the learned bar where the model knows less.

That is the ``logistic`` form (``train.calibration_form: logistic``, every calibration before session 13).
The default, ``residual``, starts from the bar itself and moves only as far toward the model and
climatology as the validation days paid for, with no isotonic maps in front (p is the model's raw
probability) and no intercept::

    p''_l = σ(logit r_l + a · (logit p_l − logit r_l) + b · (logit c_l − logit r_l))     a, b ≥ 0

(:func:`residual_logistic`; stored as the stack's (a, b, 1 − a − b, 0)). a = b = 0 is ``baseline-learned``
exactly; a per-level intercept and isotonic map fitted on a few validation days are what cost the logistic
form at root level on the next days (docs/forecast.md "Session 13": 100 countries, against the bar, root
+0.31 → +0.41 with the country interval above 0 at every level).

The maps (knots of each piecewise-linear g, the blend's a, b, k) are stored
with the model (``<model dir>/calibration.json``) and applied by
``pipeline.forecast.forecast`` to every later forecast of that model.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.isotonic import IsotonicRegression

from pipeline.cameo.labels import LEVELS, LabelSpace, Outcomes, label_space
from pipeline.model.hierarchy import HIERARCHY, PROB_FLOOR, logit as _logit, restore_hierarchy
from pipeline.model.learned import LearnedBaseline, learned_probabilities

__all__ = ["Calibration", "fit", "fit_blend", "fit_from_lake", "climatology", "blend_inputs", "weekday_prior_of",
           "form_of", "nonnegative_logistic", "residual_logistic", "logistic_loss", "FORMS",
           "restore_hierarchy", "PROB_FLOOR", "HIERARCHY", "FILE", "STACK_DIR"]

FILE = "calibration.json"
STACK_DIR = "stack"
"""Sub-folder of the model directory holding the stacked ``baseline-learned`` (``learned.joblib``/``.json``)."""
FORMS = ("residual", "logistic")
"""The stacked blend's forms (``train.calibration_form``, module doc)."""
CLIMATOLOGY_ALPHA = 0.5
"""Additive smoothing of the climatology the blend uses (never exactly 0 or 1)."""


@dataclass
class Calibration:
    """Per level, the knots (x, y) of a non-decreasing piecewise-linear map [0, 1] → [0, 1]."""

    knots: dict[str, tuple[list[float], list[float]]]
    fitted_on: list[str]
    """The validation days the maps were fitted on (ISO dates)."""
    n: dict[str, int]
    """Country-day × label pairs per level behind each map."""
    blend: dict[str, list[float]] | None = None
    """Per level, (a, b, k) of σ(a·logit p + b·logit climatology + k), or (a, b, s, k) with the stack's
    s·logit r; None: no blend."""
    stack: LearnedBaseline | None = None
    """The ``baseline-learned`` whose probabilities r are the blend's third input (fitted before
    ``fitted_on``); None: a two-input blend."""
    weekday_prior: float | None = None
    """The blend's climatology: at the target day's weekend/weekday volume with the country's ratio shrunk
    toward the world's by this many days (``baseline-weekday``), or None: the all-day share."""
    form: str = "logistic"
    """How the blend was fitted (:data:`FORMS`): ``residual``, the stack's bar plus shrunk differences, no maps
    (identity knots) and no intercept; ``logistic``, the maps and a free logistic stack (files before session 13)."""

    def apply(self, probs: dict[str, np.ndarray], labels: LabelSpace | None = None,
              climatology: dict[str, np.ndarray] | None = None,
              learned: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """Calibrate ``{level: (..., L_level)}`` probabilities and restore parent ≥ child.

        ``climatology`` (same shapes, from :func:`blend_inputs`) is needed for the blend, and
        ``learned`` (the stack's probabilities, same shapes) for a stacked blend; a level whose
        inputs are missing gets the isotonic map only.
        """
        out = {lv: np.interp(p, *self.knots[lv]) if lv in self.knots else np.asarray(p, float)
               for lv, p in probs.items()}
        for lv, coef in (self.blend or {}).items():
            if lv not in out or climatology is None or lv not in climatology:
                continue
            if len(coef) == 4 and (learned is None or lv not in learned):
                continue
            z = coef[0] * _logit(out[lv]) + coef[1] * _logit(climatology[lv]) + coef[-1]
            if len(coef) == 4:
                z = z + coef[2] * _logit(learned[lv])
            out[lv] = np.clip(1.0 / (1.0 + np.exp(-z)), PROB_FLOOR, 1.0 - PROB_FLOOR)
        return restore_hierarchy(out, labels)

    def save(self, directory: str | Path) -> Path:
        """``<directory>/calibration.json`` and, with a stack, ``<directory>/stack/`` (each written atomically;
        the stack first, so a calibration that names one always finds it)."""
        import shutil

        stack_dir = Path(directory) / STACK_DIR
        if self.stack is not None:
            self.stack.save(stack_dir)
        path = Path(directory) / FILE
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps({"knots": self.knots, "fitted_on": self.fitted_on, "n": self.n,
                                   "blend": self.blend, "blend_weekday_prior_days": self.weekday_prior,
                                   "blend_form": self.form,
                                   "stack": None if self.stack is None else {
                                       "estimator": self.stack.estimator, "fitted_on": self.stack.fitted_on}},
                                  indent=1) + "\n")
        tmp.replace(path)
        if self.stack is None and stack_dir.exists():
            shutil.rmtree(stack_dir)  # an earlier calibration's stack: this one has none
        return path

    @property
    def needs_history(self) -> bool:
        """True when applying it needs the lake's history before the target (a blend)."""
        return bool(self.blend)

    @classmethod
    def load(cls, directory: str | Path) -> Calibration | None:
        """The calibration stored in a model directory, or None when it has none."""
        path = Path(directory) / FILE
        if not path.exists():
            return None
        data = json.loads(path.read_text())
        stack = None
        if data.get("stack"):
            stack = LearnedBaseline.load(Path(directory) / STACK_DIR)
            if stack is None:
                from pipeline.core.errors import UserError

                raise UserError(f"{path} names a stacked baseline-learned but {Path(directory) / STACK_DIR} "
                                      "has none: calibrate the model again (`gdelt-forecast calibrate`)")
        return cls({k: (list(v[0]), list(v[1])) for k, v in data["knots"].items()}, data["fitted_on"], data["n"],
                   data.get("blend"), stack, data.get("blend_weekday_prior_days"), data.get("blend_form", "logistic"))


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
              C: dict[str, np.ndarray], R: dict[str, np.ndarray] | None = None,
              stack: LearnedBaseline | None = None, form: str = "logistic") -> Calibration:
    """Add the blend to ``cal``: per level, a logistic regression with non-negative weights
    (:func:`nonnegative_logistic`) of the outcome on (logit of the calibrated score, logit of
    climatology ``C[level]``[, logit of the stack's probability ``R[level]``]), fitted on the same rows
    as the maps. ``R`` and ``stack`` go together (the stack is stored with ``cal``). ``form="residual"``
    (needs the stack): :func:`residual_logistic` instead, the stack's probability plus shrunk differences and
    no intercept; a level with nothing to learn then gets the stack's probability itself."""
    if (R is None) != (stack is None):
        raise ValueError("fit_blend: pass the stack's probabilities R and the stack together")
    if form not in FORMS:
        raise ValueError(f"fit_blend: form must be one of {', '.join(FORMS)}, not {form!r}")
    if form == "residual" and R is None:
        raise ValueError("fit_blend: the residual form moves away from the stack's probabilities: pass R and the stack")
    blend = {}
    for lv in cal.knots:
        if lv not in C or (R is not None and lv not in R):
            continue
        x = [_logit(np.interp(np.asarray(P[lv], float), *cal.knots[lv])).ravel(), _logit(C[lv]).ravel()]
        if R is not None:
            x.append(_logit(R[lv]).ravel())
        y = np.asarray(Y[lv], bool).ravel()
        if y.all() or not y.any():  # nothing to learn (e.g. every QuadClass every day)
            if form == "residual":
                blend[lv] = [0.0, 0.0, 1.0, 0.0]  # the stack's own probability
            continue
        fitter = residual_logistic if form == "residual" else nonnegative_logistic
        blend[lv] = [float(c) for c in fitter(np.stack(x, axis=1), y)]
    cal.blend = blend or None
    cal.stack = stack if blend else None
    cal.form = form if blend else "logistic"
    return cal


def logistic_loss(z: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """The mean log loss of σ(z) against ``y`` (both (n,), y in {0, 1}) and σ(z) − y, its gradient in z times n:
    what every logistic fit here minimises (the fit's own parameters chain onto it)."""
    from scipy.special import expit, log_expit

    return float(-np.mean(y * log_expit(z) + (1 - y) * log_expit(-z))), expit(z) - y


def residual_logistic(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Weights of P(y) = σ(x_r + Σ_j w_j · (x_j − x_r)), w ≥ 0 and no intercept, with x_r the last column of
    ``X`` (n, f) (the reference's logit) and x_j the others, fitted by L-BFGS-B (scipy) on the mean log loss.
    w = 0 is the reference itself, so a fit moves away from it only as far as the differences paid on these
    rows. Returns, in :func:`nonnegative_logistic`'s form, (w_1 … w_{f−1}, 1 − Σ w, 0): the same
    σ(X·coef + k) with the reference's weight 1 − Σ w and k = 0."""
    from scipy.optimize import minimize

    y = np.asarray(y, float)
    ref, D = X[:, -1], X[:, :-1] - X[:, -1:]  # (n,), (n, f − 1): differences from the reference

    def loss_and_grad(w: np.ndarray) -> tuple[float, np.ndarray]:
        loss, g = logistic_loss(ref + D @ w, y)
        return loss, D.T @ g / len(y)

    res = minimize(loss_and_grad, np.zeros(D.shape[1]), jac=True, method="L-BFGS-B",
                   bounds=[(0.0, None)] * D.shape[1], options={"maxiter": 500})
    return np.concatenate([res.x, [1.0 - res.x.sum(), 0.0]])


def nonnegative_logistic(X: np.ndarray, y: np.ndarray, C: float = 1.0) -> np.ndarray:
    """Weights w ≥ 0 and intercept k of P(y) = σ(X·w + k) (``X`` (n, f), ``y`` (n,) bool), fitted by
    L-BFGS-B (scipy) on the mean log loss + ‖w‖² / (2·C·n), scikit-learn's L2 penalty at ``C``.
    Returns (w_1 … w_f, k).

    Why non-negative: every input is a probability of the same event, so a negative weight is the
    fit exploiting the inputs' collinearity on a few validation days, which does not carry to later
    days (measured at root level on the 30 busiest countries, docs/forecast.md: BSS against
    ``baseline-learned`` −1.7 % unconstrained → −1.1 % with the bounds, same forecasts).
    """
    from scipy.optimize import minimize

    n, f = X.shape
    y = np.asarray(y, float)

    def loss_and_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, k = theta[:f], theta[f]
        loss, g = logistic_loss(X @ w + k, y)
        return loss + w @ w / (2 * C * n), np.concatenate([X.T @ g / n + w / (C * n), [g.mean()]])

    start = np.concatenate([np.full(f, 1.0 / f), [0.0]])
    res = minimize(loss_and_grad, start, jac=True, method="L-BFGS-B",
                   bounds=[(0.0, None)] * f + [(None, None)], options={"maxiter": 500})
    return res.x


def climatology(lake, target: dt.date, countries: Sequence[str],
                labels: LabelSpace | None = None) -> dict[str, np.ndarray] | None:
    """Smoothed climatology of ``countries`` for ``target`` from the ``country`` days before it.

    ``{level: (len(countries), L)}``; a country never seen gets ½ / (days + 1).
    None when there is no history before ``target``.
    """
    return blend_inputs(lake, target, countries, labels)[0]


def _climatologies(outcomes, countries: dict[dt.date, list[str]],
                   weekday_prior: float | None = None) -> dict[dt.date, dict[str, np.ndarray]]:
    """``climatology`` of several targets from one ``Outcomes`` (one pass over its days); targets without
    history before them are left out. ``weekday_prior``: moved to each target's weekend/weekday volume
    (``baseline-weekday``, a country without events gets the world's ratio)."""
    from pipeline.features.history import smoothed_climatology
    from pipeline.forecast.baselines import at_volume, volume_ratio

    targets = sorted(countries)
    row = {c: i for i, c in enumerate(outcomes.countries)}
    out: dict[dt.date, dict[str, np.ndarray]] = {t: {} for t in targets}
    for lv in LEVELS:
        P, n_days = smoothed_climatology(outcomes, targets, lv, CLIMATOLOGY_ALPHA)  # (n_t, C, L), (n_t,)
        for i, target in enumerate(targets):
            unseen = np.full(P.shape[2], CLIMATOLOGY_ALPHA / (n_days[i] + 2 * CLIMATOLOGY_ALPHA))
            cs = countries[target]
            out[target][lv] = np.stack([P[i, row[c]] if c in row else unseen for c in cs]) if cs else P[i, :0]
    if weekday_prior is not None:
        for target in targets:
            r = volume_ratio(outcomes, target, weekday_prior, countries[target])
            out[target] = {lv: at_volume(P, r) for lv, P in out[target].items()}
    return {t: out[t] for t, n in zip(targets, n_days) if n > 0}


def _learned_rows(stack: LearnedBaseline, outcomes, countries: dict[dt.date, list[str]],
                  labels: LabelSpace) -> dict[dt.date, dict[str, np.ndarray]]:
    """The stack's probabilities ``{target: {level: (len(countries[target]), L)}}`` (rows in the order given;
    a country without any event in the outcomes gets PROB_FLOOR)."""
    P = learned_probabilities(stack, outcomes, sorted(countries), labels)
    row = {c: i for i, c in enumerate(outcomes.countries)}
    out: dict[dt.date, dict[str, np.ndarray]] = {}
    for t, per_level in P.items():
        out[t] = {}
        for lv in LEVELS:
            probs = per_level[lv][0]  # (C, L) over outcomes.countries
            never = np.full(probs.shape[1], PROB_FLOOR)
            out[t][lv] = np.stack([probs[row[c]] if c in row else never for c in countries[t]]) \
                if countries[t] else probs[:0]
    return out


def _outcomes_until(lake, last_day: dt.date, labels: LabelSpace | None, outcomes: Outcomes | None) -> Outcomes:
    """The ``country`` days up to ``last_day``: sliced from ``outcomes`` when given (one read serving many
    targets), else read from the lake. ``FileNotFoundError`` when there is none."""
    from pipeline.cameo.labels import load_outcomes

    return outcomes.until(last_day) if outcomes is not None else load_outcomes(lake, None, last_day, labels)


def blend_inputs(lake, target: dt.date, countries: Sequence[str], labels: LabelSpace | None = None,
                 stack: LearnedBaseline | None = None, outcomes: Outcomes | None = None,
                 weekday_prior: float | None = None,
                 ) -> tuple[dict[str, np.ndarray] | None, dict[str, np.ndarray] | None]:
    """What a blend needs for ``target``: the countries' climatology (at the day's weekend/weekday volume
    with ``weekday_prior``, :attr:`Calibration.weekday_prior`) and, with a ``stack``, its
    probabilities (each ``{level: (len(countries), L)}``), from one read of the ``country`` days before
    ``target`` (or from ``outcomes``, already read, sliced to those days). (None, None) when there is no
    history before it."""
    labels = labels or label_space()
    try:
        outcomes = _outcomes_until(lake, target - dt.timedelta(days=1), labels, outcomes)
    except FileNotFoundError:
        return None, None
    clim = _climatologies(outcomes, {target: list(countries)}, weekday_prior).get(target)
    if clim is None or stack is None:
        return clim, None
    return clim, _learned_rows(stack, outcomes, {target: list(countries)}, labels).get(target)


def weekday_prior_of(cfg) -> float | None:
    """The ``weekday_prior`` of :func:`fit_from_lake` that a :class:`~pipeline.core.config.Config` asks for."""
    return cfg.forecast.weekday_prior_days if cfg.train.calibration_climatology == "weekday" else None


def form_of(cfg) -> str:
    """The blend ``form`` of :func:`fit_from_lake` that a :class:`~pipeline.core.config.Config` asks for:
    ``train.calibration_form``, except ``logistic`` for a model whose probabilities are the share of its futures
    (``forecast.probabilities: futures``), which underestimates occurrence and needs the isotonic maps."""
    return cfg.train.calibration_form if cfg.forecast.probabilities == "occurrence" else "logistic"


def stack_for(lake, first: dt.date, cfg, outcomes: Outcomes | None = None,
              fits: dict | None = None) -> LearnedBaseline | None:
    """The ``baseline-learned`` to stack for validation days from ``first`` on (``cfg``: the
    ``ForecastConfig``): the artefact in ``cfg.learned_dir`` when it was fitted on days before ``first``,
    else one fitted (in memory) on the outcome days before ``first`` (of ``outcomes`` when given, else
    read; ``fits``: see :func:`pipeline.forecast.baselines.learned_model`); None when there is no such day."""
    from pipeline.forecast.baselines import learned_model

    if fits is not None and first in fits:  # fitted already: no need to slice the outcomes again
        return fits[first]
    try:
        outcomes = _outcomes_until(lake, first - dt.timedelta(days=1), None, outcomes)
    except FileNotFoundError:
        return None
    return learned_model(outcomes, first, cfg, fits)


def fit_from_lake(lake, run: str, days: Sequence[dt.date], labels: LabelSpace | None = None,
                  blend: bool = True, stack: LearnedBaseline | None = None,
                  outcomes: Outcomes | None = None,
                  stacks: Mapping[dt.date, LearnedBaseline] | None = None,
                  weekday_prior: float | None = None, form: str = "logistic") -> Calibration:
    """Fit on the forecasts of ``run`` for ``days`` (validation target days) against what happened.

    With ``blend``, also fits the climatology blend when every validation day has history before it;
    with a ``stack`` (a ``baseline-learned`` fitted on days before the first of ``days`` only, else
    ``ValueError``: its validation-day probabilities would be in-sample) the blend has its third input.
    ``stacks`` instead gives each validation day its own ``baseline-learned``, fitted on the days before
    that day (a walk-forward's daily fits; ``ValueError`` otherwise): the weights are then learned on
    probabilities as fresh as the ones they are applied to (the stored stack is the last day's).
    ``outcomes``: the ``country`` table already read (sliced to the days up to the last of ``days``).
    ``weekday_prior``: the blend's climatology at each day's weekend/weekday volume (``baseline-weekday`` with
    this prior; stored in the calibration and used again when it is applied); None: the all-day share.
    ``form``: the stacked blend's form (:data:`FORMS`, module doc); ``residual`` without a stack, or when a
    validation day has no history, falls back on the maps (and the logistic two-input blend).
    """
    from pipeline.forecast.table import collect

    labels = labels or label_space()
    if stack is not None and stacks is not None:
        raise ValueError("fit_from_lake: pass one stack or one per day, not both")
    if stack is not None and stack.last_day >= min(days):
        raise ValueError(f"calibrate: the stacked baseline-learned was fitted on days up to {stack.last_day}, "
                         f"not before the first validation day {min(days)}; refit it on earlier days")
    per_day = dict(stacks) if stacks is not None else ({d: stack for d in days} if stack is not None else None)
    for d, s in (stacks or {}).items():
        if s.last_day >= d:
            raise ValueError(f"calibrate: the stacked baseline-learned of {d} was fitted on days up to "
                             f"{s.last_day}, not before that validation day; refit it on earlier days")
    # all days up to the last validation day: the outcomes to fit on, and the history of each day's climatology
    outcomes = _outcomes_until(lake, max(days), labels, outcomes)
    stack_rows = collect(lake, run, list(days), outcomes, labels)
    if not stack_rows.keys:
        raise ValueError(f"calibrate: no forecasts of {run!r} with outcomes on {', '.join(map(str, days))}; "
                         "forecast the validation days first")
    fitted_days = sorted({d for d, _ in stack_rows.keys})
    cal = fit(stack_rows.P, stack_rows.Y, fitted_days)
    if not blend:
        return cal
    rows = {d: [i for i, (k, _) in enumerate(stack_rows.keys) if k == d] for d in fitted_days}
    countries = {d: [stack_rows.keys[i][1] for i in rows[d]] for d in fitted_days}
    clim = _climatologies(outcomes, countries, weekday_prior)
    if set(clim) != set(fitted_days):
        return cal  # a validation day without history: no blend
    order = np.concatenate([rows[d] for d in fitted_days])
    R = None
    if per_day is not None:
        if not set(fitted_days) <= set(per_day):
            raise ValueError(f"calibrate: no stacked baseline-learned for {sorted(set(fitted_days) - set(per_day))}")
        learned = {}
        for fit_ in {id(per_day[d]): per_day[d] for d in fitted_days}.values():  # one pass per distinct fit
            mine = {d: countries[d] for d in fitted_days if per_day[d] is fit_}
            learned.update(_learned_rows(fit_, outcomes, mine, labels))
        R = {lv: np.concatenate([learned[d][lv] for d in fitted_days]) for lv in LEVELS}
        stack = per_day[fitted_days[-1]]
    form = form if R is not None else "logistic"
    if form == "residual":  # the model's raw probabilities: no maps in front of the blend
        cal.knots = {lv: ([0.0, 1.0], [0.0, 1.0]) for lv in cal.knots}
    cal = fit_blend(cal, {lv: stack_rows.P[lv][order] for lv in LEVELS},
                    {lv: stack_rows.Y[lv][order] for lv in LEVELS},
                    {lv: np.concatenate([clim[d][lv] for d in fitted_days]) for lv in LEVELS}, R, stack, form)
    cal.weekday_prior = weekday_prior if cal.blend else None
    return cal
