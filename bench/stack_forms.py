"""Can the residual stack take more from the model? Richer forms of it, refitted from a walk-forward's stored forecasts.

The shipped stack (``train.calibration_form: residual``, ``pipeline.forecast.calibrate``) is, per level,
p = σ(logit r + a·(logit p_raw − logit r) + b·(logit c − logit r)), a, b ≥ 0, fitted on the raw forecasts of the
``--calibration-days`` before each test day: r is ``baseline-learned``, c the blend's climatology, p_raw the
occurrence head. Two weights per level is little; this bench refits, per test day and from the same stored
forecasts (``bench/stack_prior.py``'s :func:`open_backtest`; nothing is retrained), forms with more:

- ``shipped``: the form above;
- ``a, b ≤ 1``: the weights bounded, so the stack never extrapolates past the model or climatology;
- ``bar rescaled``: a free weight on logit r too (σ(s·logit r + …), a temperature on the bar);
- ``bar rescaled + intercept``: and a per-level intercept;
- ``|model − bar| term``: a third weight on (logit p_raw − logit r)·|logit p_raw − logit r| (large differences
  trusted more, or less);
- ``by bar band (3)`` / ``(5)``: a, b per band of the bar's probability (edges 0.1, 0.5 / 0.05, 0.2, 0.5, 0.8);
- ``by country volume (3)``: a, b per tertile of the country's mean climatology on the calibration days;
- ``by root``: a, b per CAMEO root (at root level: per root code); ``shrunk``: toward the level's own (a, b), with
  λ = 1000 / the root's rows (in mean log loss units).

Each is scored on the test days [start, end] like the backtest: BSS against climatology / against
``baseline-learned``, in %, with the 95 % interval by countries (``--boot`` resamples), at event, base and root
level and on the rare roots (protest, assault, fight). The probabilities are scored as fitted, before the
hierarchy is restored (parent ≥ child), so ``shipped`` can differ from the backtest's ``-cal`` run by a few
hundredths of a point; compare the rows with one another.

    PYTHONPATH=. OMP_NUM_THREADS=1 python bench/stack_forms.py -c configs/experiment-walkforward-100countries.yaml \\
        --start 2025-06-01 --end 2025-06-06 --calibration-days 6
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit

sys.path.insert(0, str(Path(__file__).parent))
from stack_prior import LEARNED, Stored, backtest_parser, open_backtest, rows_of, summary  # noqa: E402

from pipeline.cameo.labels import LEVELS, RARE_ROOTS  # noqa: E402
from pipeline.core.config import load_config  # noqa: E402
from pipeline.forecast import calibrate  # noqa: E402
from pipeline.forecast.table import collect, load_forecast  # noqa: E402

SCORED = ("event", "base", "root")
Rows = dict[str, np.ndarray]  # P, C, R: logits (n, L); Y (n, L) bool; on test days also "clim" (n, L) probabilities


def fit(F: np.ndarray, ref: np.ndarray, y: np.ndarray, bounds: list, l2: float = 0.0,
        w0: np.ndarray | None = None) -> np.ndarray:
    """w of P(y) = σ(ref + F·w) within ``bounds``, by L-BFGS-B on the mean log loss (+ l2/2·‖w − w0‖²)."""
    w0 = np.zeros(F.shape[1]) if w0 is None else w0

    def loss_and_grad(w: np.ndarray) -> tuple[float, np.ndarray]:
        loss, g = calibrate.logistic_loss(ref + F @ w, y)
        return loss + l2 / 2 * (w - w0) @ (w - w0), F.T @ g / len(y) + l2 * (w - w0)

    return minimize(loss_and_grad, w0.copy(), jac=True, method="L-BFGS-B", bounds=bounds,
                    options={"maxiter": 500}).x


def differences(r: Rows, extra: str = "") -> np.ndarray:
    """(n, L, k): the model's and climatology's differences from the bar [, the bar's logit, 1, the model's
    difference times its size]."""
    cols = [r["P"] - r["R"], r["C"] - r["R"]]
    if extra in ("scale", "scale+k"):
        cols.append(r["R"])
    if extra == "scale+k":
        cols.append(np.ones_like(r["R"]))
    if extra == "abs":
        cols.append((r["P"] - r["R"]) * np.abs(r["P"] - r["R"]))
    return np.stack(cols, -1)


def global_form(extra: str = "", upper: float | None = None) -> Callable[[Rows, Rows, list[str]], np.ndarray]:
    def form(cal: Rows, test: Rows, codes: list[str]) -> np.ndarray:
        F = differences(cal, extra)
        k = F.shape[-1]
        bounds = [(0.0, upper)] * 2 + [(None, None)] * (k - 2)
        w = fit(F.reshape(-1, k), cal["R"].ravel(), cal["Y"].ravel().astype(float), bounds)
        return expit(test["R"] + differences(test, extra) @ w)

    return form


def grouped_form(groups: Callable[[Rows, Rows, list[str]], tuple[np.ndarray, np.ndarray]], l2: float = 0.0
                 ) -> Callable[[Rows, Rows, list[str]], np.ndarray]:
    """(a, b) per group of cells (``groups(cal, test, codes)``: the group of each calibration and test cell, (n, L)
    ints each), each fitted on its cells alone; ``l2``: shrunk toward the level's own (a, b) with weight ``l2`` /
    the group's rows."""

    def form(cal: Rows, test: Rows, codes: list[str]) -> np.ndarray:
        F, Ft = differences(cal), differences(test)
        y = cal["Y"].astype(float)
        w_all = fit(F.reshape(-1, 2), cal["R"].ravel(), y.ravel(), [(0.0, None)] * 2)
        g, gt = groups(cal, test, codes)
        z = test["R"] + Ft @ w_all
        for k in np.unique(g):
            m = g == k
            if y[m].all() or not y[m].any():
                continue
            w = fit(F[m], cal["R"][m], y[m], [(0.0, None)] * 2, l2=l2 / m.sum() if l2 else 0.0, w0=w_all)
            z[gt == k] = test["R"][gt == k] + Ft[gt == k] @ w
        return expit(z)

    return form


def bar_bands(edges: list[float]) -> Callable[[Rows, Rows, list[str]], tuple[np.ndarray, np.ndarray]]:
    return lambda cal, test, codes: (np.digitize(expit(cal["R"]), edges), np.digitize(expit(test["R"]), edges))


def volume_tertiles(cal: Rows, test: Rows, codes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """A row's band of its country's mean climatology, the tertiles of the calibration rows."""
    vol = [expit(r["C"]).mean(1) for r in (cal, test)]
    edges = np.quantile(vol[0], [1 / 3, 2 / 3])
    return tuple(np.repeat(np.digitize(v, edges)[:, None], r["R"].shape[1], 1) for v, r in zip(vol, (cal, test)))


def by_root(cal: Rows, test: Rows, codes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    roots = sorted({c[:2] for c in codes})
    g = np.array([roots.index(c[:2]) for c in codes])
    return np.broadcast_to(g, cal["R"].shape), np.broadcast_to(g, test["R"].shape)


FORMS: dict[str, Callable[[Rows, Rows, list[str]], np.ndarray]] = {
    "shipped": global_form(),
    "a, b ≤ 1": global_form(upper=1.0),
    "bar rescaled": global_form("scale"),
    "bar rescaled + intercept": global_form("scale+k"),
    "|model − bar| term": global_form("abs"),
    "by bar band (3)": grouped_form(bar_bands([0.1, 0.5])),
    "by bar band (5)": grouped_form(bar_bands([0.05, 0.2, 0.5, 0.8])),
    "by country volume (3)": grouped_form(volume_tertiles),
    "by root": grouped_form(by_root),
    "by root, shrunk": grouped_form(by_root, l2=1e3),
}


def stack_rows(bt: Stored, d: dt.date, calibration_days: int, prior: float | None) -> tuple[dict, dict]:
    """Per level, the calibration rows of test day ``d`` (the ``calibration_days`` raw forecast days before it)
    and ``d``'s own rows, as the backtest's stack sees them."""
    lg = calibrate._logit
    past = [p for p in bt.raw_days if p < d][-calibration_days:]
    o = bt.outcomes.until(past[-1])
    st = collect(bt.lake, bt.run, past, o, bt.labels)
    per = {p: [c for q, c in st.keys if q == p] for p in past}
    clim = calibrate._climatologies(o, per, prior)
    cal = {}
    for lv in LEVELS:
        R = np.concatenate([rows_of(bt.lake, LEARNED, p, per[p], bt.labels)[lv] for p in past])
        C = np.concatenate([clim[p][lv] for p in past])
        cal[lv] = {"P": lg(np.asarray(st.P[lv], float)), "C": lg(C), "R": lg(R), "Y": np.asarray(st.Y[lv], bool)}
    cs, probs = load_forecast(bt.lake, bt.run, d, bt.labels)
    clim_d, _ = calibrate.blend_inputs(bt.lake, d, cs, bt.labels, None, bt.outcomes, prior)
    R, Cl = rows_of(bt.lake, LEARNED, d, cs, bt.labels), rows_of(bt.lake, "baseline-climatology", d, cs, bt.labels)
    di, oc = bt.outcomes.day_index(d), bt.outcomes.country_index()
    test = {}
    for lv in LEVELS:
        Y = np.stack([bt.outcomes.y[lv][di, oc[c]] if c in oc else np.zeros(len(bt.labels[lv]), bool) for c in cs])
        test[lv] = {"P": lg(np.asarray(probs[lv], float)), "C": lg(clim_d[lv]), "R": lg(R[lv]), "Y": Y,
                    "clim": Cl[lv]}
    return cal, test


def main() -> None:
    ap = backtest_parser(__doc__.split("\n")[0])
    ap.add_argument("--forms", nargs="+", choices=list(FORMS), default=list(FORMS))
    args = ap.parse_args()
    cfg = load_config(args.config)
    start, end = dt.date.fromisoformat(args.start), dt.date.fromisoformat(args.end)
    bt = open_backtest(cfg, start, end, args.calibration_days, args.backtest)
    prior = calibrate.weekday_prior_of(cfg)
    rows = {d: stack_rows(bt, d, args.calibration_days, prior) for d in bt.days if start <= d <= end}
    rare = [bt.labels["root"].index[c] for c in RARE_ROOTS]
    print(f"{len(rows)} test days, {len(bt.countries)} countries; BSS against climatology / against "
          f"{LEARNED} in %, [95 % by countries]")
    for name in args.forms:
        err, ref, clim = ({lv: [] for lv in SCORED + ("rare",)} for _ in range(3))
        for cal, test in rows.values():
            for lv in SCORED:
                t = test[lv]
                p, y = FORMS[name](cal[lv], t, bt.labels[lv].codes), t["Y"].astype(float)
                for out, q in ((err, p), (ref, expit(t["R"])), (clim, t["clim"])):
                    out[lv].append(((q - y) ** 2).sum(1))
                    if lv == "root":
                        out["rare"].append(((q - y) ** 2)[:, rare].sum(1))
        per_day = lambda x: {lv: np.stack(v)[..., None] for lv, v in x.items()}  # noqa: E731  (days, C, 1)
        print(f"{name:26s}", summary(per_day(err), {"climatology": per_day(clim), LEARNED: per_day(ref)}, args.boot),
              flush=True)


if __name__ == "__main__":
    main()
