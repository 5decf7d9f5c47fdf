"""How should the calibration stack sit on the bar? Refits the walk-forward's stack from its stored forecasts.

The published forecast of ``backtest --refit-every k`` is, per test day d, the model's raw forecast through
the calibration fitted on the raw forecasts of the ``--calibration-days`` before d, stacked with r, the
``baseline-learned`` of the same day (from its own fit on the days before it). Two forms
(``train.calibration_form``, ``pipeline.forecast.calibrate``): ``logistic`` (sessions 4–12) puts isotonic maps
in front of p = σ(a·logit p_cal + b·logit climatology + s·logit r + k), and ``nonnegative_logistic`` penalises
‖w‖² toward w = 0, i.e. toward *no* forecast; ``residual`` (session 13, shipped) is
σ(logit r + a·(logit p − logit r) + b·(logit c − logit r)) on the raw p, no intercept, so that with little
evidence it falls back on the bar. This bench refits the stack of every test day in several forms side by side:
the shipped one, ``logistic``, and ``logistic`` with the penalty λ/2 · ‖(a, b, s − 1)‖² toward the bar (mean
log loss units) for several λ, from what the walk-forward stored: the raw forecasts ``<train.run>-bt`` and the
``baseline-learned`` forecasts of the calibration and test days, in the backtest's own lake
(``<evaluate.reports_dir>/backtest-<start>_<end>-<train.run>-<N>c/lake``, or ``--backtest DIR``; the calibration
days before the backtest's first day are forecast there, each from its own past, as the backtest's ``stack_for``
fits them). No model is trained.

    PYTHONPATH=. OMP_NUM_THREADS=1 python bench/stack_prior.py -c configs/experiment-walkforward-100countries.yaml \
        --start 2025-06-01 --end 2025-06-06 --calibration-days 6 --lambdas 0.001 0.01 0.1

The blend's climatology is the one the config asks for (``train.calibration_climatology``, by default at the
day's weekend/weekday volume as ``baseline-weekday``). ``--weekday-climatology``: only the shipped stack, with
that climatology and with the plain all-day share (``plain``, before session 12), side by side.

``--residual``: the shipped form, ``logistic``, and the residual form's parts: the bar plus a shrunk share of
the model's difference from it (no intercept, a = 0 is the bar), with and without climatology's difference,
with and without the isotonic maps in front.

A last variant chooses λ per level (among 0 and ``--lambdas``) by leave-one-day-out on each test day's
calibration days, the only honest way to pick it here (``--only-by-day``: that one and the shipped stack).

Prints, per λ, BSS against climatology and against ``baseline-learned`` (95 % interval by countries) at
event, base, root level and on the rare roots, over the test days [start, end]. The shipped row reproduces
the backtest's ``<run>-bt-cal`` forecasts; a warning names the test days where it does not (the config's
calibration differs from the backtest's).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import functools
from pathlib import Path
from unittest import mock

import numpy as np

from pipeline.cameo.labels import LEVELS, RARE_ROOTS, label_space, load_outcomes
from pipeline.core.config import load_config
from pipeline.core.lake import Lake, date_range
from pipeline.forecast import calibrate
from pipeline.forecast.baselines import run_baselines
from pipeline.forecast.table import collect, load_forecast
from pipeline.scoring.backtest import backtest_lake, backtests_of, model_days

LEARNED = "baseline-learned"
PLAIN = "plain climatology in the blend (before session 12)"
RAW = "raw model (no isotonic maps)"


def toward_bar(lam: float):
    """``nonnegative_logistic`` with the penalty λ/2 · ‖w − w₀‖², w₀ = (0, 0, 1): the bar, r itself."""
    from scipy.optimize import minimize

    def fit(X: np.ndarray, y: np.ndarray, C: float = 1.0) -> np.ndarray:
        n, f = X.shape
        y = np.asarray(y, float)
        w0 = np.zeros(f)
        w0[-1] = 1.0 if f == 3 else 0.0

        def loss_and_grad(theta):
            w, k = theta[:f], theta[f]
            loss, g = calibrate.logistic_loss(X @ w + k, y)
            return loss + lam / 2 * (w - w0) @ (w - w0), np.concatenate([X.T @ g / n + lam * (w - w0), [g.mean()]])

        res = minimize(loss_and_grad, np.concatenate([w0 if f == 3 else np.full(f, 1.0 / f), [0.0]]), jac=True,
                       method="L-BFGS-B", bounds=[(0.0, None)] * f + [(None, None)], options={"maxiter": 500})
        return res.x

    return fit


GROUPS: list = []
"""The calibration day of each forecast row the stack is fitted on (set per test day; ``by_day`` reads it)."""


def by_day(lams: tuple[float, ...]):
    """``toward_bar`` with λ chosen per level among ``lams`` by leave-one-day-out on the calibration days
    (the Brier score of each held-out day; the rows of a level are ``GROUPS`` repeated L times, row-major)."""
    from scipy.special import expit

    def fit(X: np.ndarray, y: np.ndarray, C: float = 1.0) -> np.ndarray:
        days = np.repeat(np.asarray(GROUPS), len(X) // len(GROUPS))
        best, best_err = None, np.inf
        for lam in lams:
            err = 0.0
            for d in np.unique(days):
                out = days == d
                w = toward_bar(lam)(X[~out], y[~out])
                err += float(((expit(X[out] @ w[:-1] + w[-1]) - y[out]) ** 2).sum())
            if err < best_err:
                best, best_err = lam, err
        CHOSEN.append(best)
        return toward_bar(best)(X, y)

    return fit


CHOSEN: list = []
"""The λ ``by_day`` chose, in the order of its fits (per test day: event, base, root, quad)."""


def residual(with_climatology: bool):
    """``calibrate.residual_logistic`` (the bar plus shrunk differences, no intercept: the shipped ``residual``
    form with climatology), or the same on the model's difference alone."""

    def fit(X: np.ndarray, y: np.ndarray, C: float = 1.0) -> np.ndarray:
        if with_climatology:
            return calibrate.residual_logistic(X, y)
        a = calibrate.residual_logistic(X[:, [0, 2]], y)[0]
        return np.array([a, 0.0, 1.0 - a, 0.0])

    return fit


_RESIDUAL_LOGISTIC = calibrate.residual_logistic


def recorded_residual(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``calibrate.residual_logistic``, its (a, b) appended to ``RESIDUAL`` (b = 0 without climatology)."""
    w = _RESIDUAL_LOGISTIC(X, y)
    RESIDUAL.append((round(float(w[0]), 3), round(float(w[1]), 3) if len(w) == 4 else 0.0))
    return w


RESIDUAL: list = []
"""The (a, b) ``residual`` fitted, in the order of its fits (per test day: event, base, root, quad)."""


def rows_of(lake: Lake, run: str, day: dt.date, countries: list[str], labels) -> dict[str, np.ndarray]:
    """A stored forecast's rows in the order of ``countries`` (a country it lacks: ``PROB_FLOOR``; ``main`` checks
    that the baselines cover the model's countries first)."""
    cs, probs = load_forecast(lake, run, day, labels)
    at = {c: i for i, c in enumerate(cs)}
    out = {}
    for lv in LEVELS:
        P = np.full((len(countries), len(labels[lv])), calibrate.PROB_FLOOR)
        for j, c in enumerate(countries):
            if c in at:
                P[j] = probs[lv][at[c]]
        out[lv] = P
    return out


@dataclasses.dataclass
class Stored:
    """What a walk-forward backtest stored, opened for refitting its stack (:func:`open_backtest`)."""

    lake: Lake
    labels: object
    outcomes: object
    run: str
    """The raw model run, ``<train.run>-bt``."""
    countries: list[str]
    days: list[dt.date]
    """The threshold-tuning and test days."""
    raw_days: list[dt.date]
    """``days`` and the calibration days before them."""


def open_backtest(cfg, start: dt.date, end: dt.date, calibration_days: int, directory: Path | None = None) -> Stored:
    """The backtest of ``cfg``'s ``train.run`` over [start, end] (``directory``, or the one in
    ``evaluate.reports_dir``): its lake, with ``baseline-learned`` forecast (each from its own past) on the
    calibration days before the backtest's first, which the backtest's ``stack_for`` fitted but did not store."""
    found = [directory] if directory else backtests_of(cfg.evaluate.reports_dir, start, end, cfg.train.run)
    if len(found) != 1 or not (found[0] / "lake").is_dir():
        raise SystemExit(f"{'several' if len(found) > 1 else 'no'} backtests of {cfg.train.run} over {start} … {end} "
                         f"in {cfg.evaluate.reports_dir}: run it first, or name one with --backtest "
                         f"({', '.join(map(str, found)) or 'none'})")
    lake, labels = backtest_lake(found[0], Lake(cfg.lake.root)), label_space()
    print(f"reading the backtest's lake {lake.root}")
    days = date_range(start - dt.timedelta(days=cfg.evaluate.val_days), end)
    raw_days, _ = model_days(days, 1, calibration_days)
    run = f"{cfg.train.run}-bt"
    outcomes = load_outcomes(lake, None, end)
    have = set(lake.partitions("forecasts", model=run))
    if not set(raw_days) <= have:
        raise SystemExit(f"no raw forecasts of {run} for {sorted(set(raw_days) - have)}: run the backtest first")
    countries = sorted(load_forecast(lake, run, raw_days[0], labels)[0])

    @functools.cache
    def stored(run_: str) -> frozenset:
        return frozenset(lake.partitions("forecasts", model=run_))

    @functools.cache
    def lacks(run_: str, d: dt.date) -> bool:  # no forecast of run_ on d for some of the model's countries
        return d not in stored(run_) or bool(set(countries) - set(load_forecast(lake, run_, d, labels)[0]))

    stale = [d for d in days if lacks(LEARNED, d) or (start <= d and lacks("baseline-climatology", d))]
    if stale:
        raise SystemExit(f"the stored baselines of {', '.join(map(str, stale))} lack some of the {len(countries)} "
                         f"countries of {run}: run this config's backtest again")
    missing = [d for d in raw_days if lacks(LEARNED, d)]
    if missing:  # the calibration days before the backtest's first: baseline-learned from each day's own past
        fcfg = dataclasses.replace(cfg.forecast, countries=countries, learned_dir=None, baselines=("learned",))
        for d in missing:
            run_baselines(lake, d, d, fcfg, outcomes)
    return Stored(lake, labels, outcomes, run, countries, days, raw_days)


def backtest_parser(description: str) -> argparse.ArgumentParser:
    """The arguments of a bench that reads a walk-forward's stored forecasts (:func:`open_backtest`)."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("-c", "--config", required=True)
    ap.add_argument("--start", required=True)
    ap.add_argument("--end", required=True)
    ap.add_argument("--calibration-days", type=int, default=6)
    ap.add_argument("--backtest", type=Path, help="the backtest's directory (default: the one of this config's "
                                                  "train.run over --start … --end in evaluate.reports_dir)")
    ap.add_argument("--boot", type=int, default=1000)
    return ap


def main() -> None:
    ap = backtest_parser(__doc__.split("\n")[0])
    ap.add_argument("--lambdas", type=float, nargs="+", default=[0.001, 0.01, 0.1])
    ap.add_argument("--no-maps", action="store_true", help="no isotonic maps before the stack")
    ap.add_argument("--only-by-day", action="store_true", help="only the shipped stack and the λ chosen by day")
    ap.add_argument("--weekday-climatology", action="store_true",
                    help="only the shipped stack, with the config's and with the plain climatology in the blend")
    ap.add_argument("--only-shipped", action="store_true", help="only the shipped stack (bench/seed_ensemble.py)")
    ap.add_argument("--residual", action="store_true",
                    help="only the shipped stack and the bar plus the model's shrunk difference (no intercept), "
                         "with and without the isotonic maps")
    args = ap.parse_args()
    cfg = load_config(args.config)
    start, end = dt.date.fromisoformat(args.start), dt.date.fromisoformat(args.end)
    bt = open_backtest(cfg, start, end, args.calibration_days, args.backtest)
    lake, labels, outcomes, run, days, raw_days = bt.lake, bt.labels, bt.outcomes, bt.run, bt.days, bt.raw_days
    test = [d for d in days if start <= d <= end]
    shipped = f"shipped (train.calibration_form: {cfg.train.calibration_form})"
    logistic = "logistic: isotonic maps, σ(a·p + b·c + s·r + k) (sessions 4–12)"
    nnl = calibrate.nonnegative_logistic
    # name → (the blend's fitter patched in for nonnegative_logistic, None: the form's own; form; no maps)
    variants = {shipped: (None, cfg.train.calibration_form, cfg.train.calibration_form == "residual"),
                logistic: (nnl, "logistic", False),
                **{f"logistic toward the bar, λ = {lam:g}": (toward_bar(lam), "logistic", False) for lam in args.lambdas},
                "logistic toward the bar, λ per level by leave-one-day-out": (by_day((0.0, *args.lambdas)),
                                                                             "logistic", False)}
    if args.only_by_day:
        variants = {k: v for k, v in variants.items() if "λ =" not in k}
    if args.weekday_climatology:
        variants = {shipped: variants[shipped], PLAIN: variants[shipped]}
    if args.only_shipped:
        variants = {shipped: variants[shipped]}
    if args.residual:
        variants = {shipped: variants[shipped], logistic: variants[logistic],
                    "bar + a·(model − bar)": (residual(False), "logistic", False),
                    "bar + a·(model − bar) + b·(clim − bar)": (residual(True), "logistic", False),
                    f"bar + a·(model − bar), {RAW}": (residual(False), "logistic", True),
                    f"bar + a·(model − bar) + b·(clim − bar), {RAW} (the residual form)": (None, "residual", True)}
    scored = {}  # variant → {level: (days, C, L) squared errors}
    ref = {name: {lv: [] for lv in LEVELS + ("rare",)} for name in ("climatology", LEARNED)}
    differs: list[dt.date] = []  # test days whose shipped row is not the stored <run>-cal forecast
    for name, (fitter, form, raw) in variants.items():
        err = {lv: [] for lv in LEVELS + ("rare",)}
        prior = None if name == PLAIN else calibrate.weekday_prior_of(cfg)
        for d in test:
            past = [p for p in raw_days if p < d][-args.calibration_days:]
            o = outcomes.until(past[-1])
            st = collect(lake, run, past, o, labels)
            cal = calibrate.fit(st.P, st.Y, past)
            if args.no_maps or raw:  # the stack reads the raw model probabilities (identity maps)
                cal.knots = {lv: ([0.0, 1.0], [0.0, 1.0]) for lv in cal.knots}
            per = {p: [c for q, c in st.keys if q == p] for p in past}
            clim = calibrate._climatologies(o, per, prior)
            R = {lv: np.concatenate([rows_of(lake, LEARNED, p, per[p], labels)[lv] for p in past]) for lv in LEVELS}
            C = {lv: np.concatenate([clim[p][lv] for p in past]) for lv in LEVELS}
            GROUPS[:] = [p for p, _ in st.keys]
            with mock.patch.object(calibrate, "nonnegative_logistic", fitter or nnl), \
                    mock.patch.object(calibrate, "residual_logistic", recorded_residual):
                cal = calibrate.fit_blend(cal, st.P, st.Y, C, R, stack=object(), form=form)
            cs, probs = load_forecast(lake, run, d, labels)
            clim_d, _ = calibrate.blend_inputs(lake, d, cs, labels, None, outcomes, prior)
            out = cal.apply(probs, labels, clim_d, rows_of(lake, LEARNED, d, cs, labels))
            if name == shipped and not args.no_maps and lake.has_partition("forecasts", d, model=f"{run}-cal"):
                # the backtest's own published forecast of d, as stored (bench/seed_ensemble.py's lake has none)
                stored = rows_of(lake, f"{run}-cal", d, cs, labels)
                if not all(np.allclose(stored[lv], out[lv], atol=1e-6) for lv in LEVELS):
                    differs.append(d)
            di, oc = outcomes.day_index(d), outcomes.country_index()
            Y = {lv: np.stack([outcomes.y[lv][di, oc[c]] if c in oc else np.zeros(len(labels[lv]), bool)
                               for c in cs]) for lv in LEVELS}
            rare = [labels["root"].index[c] for c in RARE_ROOTS]
            for lv in LEVELS + ("rare",):
                y = Y["root"][:, rare] if lv == "rare" else Y[lv]
                pick = (lambda P: P["root"][:, rare]) if lv == "rare" else (lambda P, lv=lv: P[lv])  # noqa: E731
                err[lv].append((pick(out) - y) ** 2)
                if name == next(iter(variants)):
                    for r, runname in (("climatology", "baseline-climatology"), (LEARNED, LEARNED)):
                        ref[r][lv].append((pick(rows_of(lake, runname, d, cs, labels)) - y) ** 2)
        scored[name] = {lv: np.stack(v) for lv, v in err.items()}
        print(name, summary(scored[name], {r: {lv: np.stack(v) for lv, v in ref[r].items()} for r in ref},
                            args.boot), flush=True)
        if name == shipped and differs:
            print(f"  warning: on {', '.join(map(str, differs))} this row is not the stored {run}-cal forecast: the "
                  "config's calibration settings differ from the backtest's; rerun the backtest to compare")
        if RESIDUAL:  # quad is absent on test days where every QuadClass occurred on every calibration day
            print("  (a, b) fitted (event, base, root[, quad] per test day):", RESIDUAL)
            RESIDUAL.clear()
        if CHOSEN:
            print("  λ chosen (event, base, root, quad per test day):", CHOSEN)
            CHOSEN.clear()


def summary(err: dict, ref: dict, boot: int) -> str:
    """BSS against climatology and baseline-learned per level, with the 95 % interval by countries."""
    rng = np.random.default_rng(0)
    cells = []
    for lv, e in err.items():
        per_c = e.sum(axis=(0, 2))  # (C,) summed squared error
        c_clim, c_bar = ref["climatology"][lv].sum(axis=(0, 2)), ref[LEARNED][lv].sum(axis=(0, 2))
        idx = rng.integers(0, len(per_c), (boot, len(per_c)))
        bs = 100 * (1 - per_c[idx].sum(1) / c_bar[idx].sum(1))
        lo, hi = np.percentile(bs, [2.5, 97.5])
        cells.append(f"{lv} {100 * (1 - per_c.sum() / c_clim.sum()):+.2f} / "
                     f"{100 * (1 - per_c.sum() / c_bar.sum()):+.2f} [{lo:+.2f}, {hi:+.2f}]")
    return " | ".join(cells)


if __name__ == "__main__":
    main()
