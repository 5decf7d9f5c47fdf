"""Score forecasts against what happened, and compare every forecaster on the same country-days.

For a target day d the truth is the ``country`` partition d: the events added
to GDELT on d, located by ActionGeo (:func:`pipeline.cameo.labels.load_outcomes`).
Every forecaster (the model runs and the ``baseline-*`` runs) is scored on the
same labels and, for the skill table, on the same country-days.

Metrics, per level (``event``, ``base``, ``root``, ``quad``, and ``rare`` = the
root codes 14 protest, 18 assault, 19 fight), with p the forecast probability
and y ∈ {0, 1} the outcome of one (country-day, label):

- Brier score BS = mean (p − y)² and log loss = mean −[y log p + (1−y) log(1−p)]
  (p clipped to [ε, 1−ε]), per label and averaged over labels; both via
  ``scoringrules``. Brier skill score BSS = 1 − BS / BS_ref against
  ``baseline-climatology``, ``baseline-learned`` and the best (lowest-BS)
  baseline, each with a 95 % cluster-bootstrap interval (by days or countries).
- Reliability: 10 equal-width bins of p; ECE = Σ_b (n_b / n) |mean p_b − mean y_b|.
- Glean protocol (scikit-learn's definitions, multi-label, labels as columns,
  read off per-label counts): weighted recall, F1, F2 and Hamming loss of the
  thresholded forecast p ≥ t, where t is tuned per forecaster and level on
  the validation days (the ``val_days`` days before ``start``) to maximise
  weighted F1 — every forecaster alike.
- MIRAI per-day precision / recall / F1 (sklearn's ``average="samples"``) and
  the QuadClass KL divergence KL(q ‖ q̂), where q is the share of the day's
  distinct event codes in each QuadClass and q̂ ∝ Σ_codes p (expected distinct
  codes per QuadClass), both smoothed as (share + 1e-3) / (1 + 4e-3).
- ROUGE-1/2/L (``rouge-score``, F-measure) of each sampled future against the
  day's target phrases (``descriptor_days``), averaged over futures; for
  ``baseline-persistence``, yesterday's target phrases.

Outputs: the ``scores`` table (one row per country × level of every evaluated
forecast) and ``reports/eval-<start>_<end>/`` (summary, per-label, reliability
and thresholds as CSV + JSON).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import scoringrules as sr
from scipy.stats import entropy

from pipeline.core.config import EvaluateConfig
from pipeline.cameo.labels import LEVELS, RARE_ROOTS, LabelSpace, Outcomes, label_space, load_outcomes
from pipeline.core.lake import DateLike, Lake, as_date, date_range
from pipeline.core.progress import console, track
from pipeline.core.errors import UserError
from pipeline.core.schemas import SCORES_SCHEMA
from pipeline.forecast.futures import futures_by_country, has_futures
from pipeline.forecast.table import Stack, baseline_run, collect, is_baseline
from pipeline.cameo.phrases import phrase_rouge
from pipeline.scoring.actors import evaluate_pairs

SUMMARY_LEVELS: tuple[str, ...] = LEVELS + ("rare",)
GROUPS: tuple[str, ...] = ("all", "busy", "small")
CLIMATOLOGY = baseline_run("climatology")
LEARNED = baseline_run("learned")
WEEKDAY = baseline_run("weekday")
_KL_SMOOTH = 1e-3


# ====================================================================== metrics
def brier_per_label(P: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """(n, L) probabilities and outcomes → (L,) mean Brier score per label."""
    return np.asarray(sr.brier_score(Y.astype(np.float64), P.astype(np.float64))).mean(axis=0)


def row_brier(P: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """(n, L) probabilities and outcomes → (n,) Brier score of each country-day, averaged over its labels.

    The one place a forecast's Brier score is computed: the ``scores`` rows, the
    summary (its mean) and the bootstrap intervals (its cluster sums) all use it.
    """
    return np.asarray(sr.brier_score(Y.astype(np.float64), P.astype(np.float64))).mean(axis=1)


def log_loss_per_label(P: np.ndarray, Y: np.ndarray, eps: float = 1e-3) -> np.ndarray:
    """(n, L) → (L,) mean binary log loss in nats, p clipped to [eps, 1 − eps]."""
    return np.asarray(sr.log_score(Y.astype(np.float64), np.clip(P, eps, 1 - eps))).mean(axis=0)


def bootstrap_bss(b_run: np.ndarray, b_ref: np.ndarray, clusters: Sequence, n_boot: int = 2000, seed: int = 0,
                  alpha: float = 0.05) -> tuple[float, float, float]:
    """Cluster-bootstrap interval of BSS = 1 − Σ b_run / Σ b_ref.

    ``b_run``/``b_ref``: per-country-day Brier scores of the two forecasters on the
    same rows; ``clusters``: each row's resampling unit (its day, or its country).
    Whole clusters are drawn with replacement ``n_boot`` times, so correlated rows
    move together. Returns (low, high, share of resamples with BSS > 0). With few
    clusters (3 test days) the interval is coarse: that is the honest answer.
    """
    _, inv = np.unique(np.asarray(clusters, dtype=object).astype(str), return_inverse=True)
    k = int(inv.max()) + 1
    s_run = np.bincount(inv, weights=b_run, minlength=k)
    s_ref = np.bincount(inv, weights=b_ref, minlength=k)
    w = np.random.default_rng(seed).multinomial(k, np.full(k, 1.0 / k), size=n_boot).astype(float)
    num, den = w @ s_run, w @ s_ref
    ok = den > 0
    if not ok.any():
        return np.nan, np.nan, np.nan
    bss = 1.0 - num[ok] / den[ok]
    lo, hi = np.quantile(bss, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi), float((bss > 0).mean())


def reliability(P: np.ndarray, Y: np.ndarray, n_bins: int = 10) -> tuple[pd.DataFrame, float]:
    """Reliability diagram data and the expected calibration error over all entries of (n, L).

    Returns a frame with one row per bin (``lo``, ``hi``, ``count``, ``mean_p``,
    ``freq``; empty bins have NaN means) and ECE = Σ_b (n_b/n) |mean_p_b − freq_b|.
    The last bin is closed on the right (p = 1 falls in it).
    """
    p = P.ravel().astype(np.float64)
    y = Y.ravel().astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    b = np.clip(np.digitize(p, edges[1:-1], right=False), 0, n_bins - 1)
    count = np.bincount(b, minlength=n_bins).astype(np.float64)
    sum_p = np.bincount(b, weights=p, minlength=n_bins)
    sum_y = np.bincount(b, weights=y, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p, freq = sum_p / count, sum_y / count
    ece = float(np.nansum(count / max(len(p), 1) * np.abs(mean_p - freq)))
    frame = pd.DataFrame({"lo": edges[:-1], "hi": edges[1:], "count": count.astype(np.int64),
                          "mean_p": mean_p, "freq": freq})
    return frame, ece


def per_row_prf(pred: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MIRAI per-day precision, recall, F1 of predicted label sets (n, L) bool vs outcomes; 0 when undefined."""
    tp = (pred & Y).sum(axis=1).astype(np.float64)
    n_pred, n_true = pred.sum(axis=1), Y.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(n_pred > 0, tp / n_pred, 0.0)
        recall = np.where(n_true > 0, tp / n_true, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    return precision, recall, f1


def glean_metrics(Y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Glean protocol, labels as columns: weighted recall / F1 / F2 and Hamming loss — scikit-learn's
    ``recall_score`` / ``fbeta_score(average="weighted", zero_division=0)`` and ``hamming_loss``, to rounding
    (tested), read off the per-label counts (:func:`_weighted_fbeta`, as :func:`weighted_f1`)."""
    Y, pred = Y.astype(bool), pred.astype(bool)
    counts = _label_counts(Y, pred)
    support = counts[2]
    return {
        "recall_w": float(counts[0].sum() / support.sum()) if support.sum() > 0 else 0.0,
        "f1_w": _weighted_fbeta(*counts, beta=1.0),
        "f2_w": _weighted_fbeta(*counts, beta=2.0),
        "hamming": float((Y != pred).mean()) if Y.size else 0.0,
    }


def mirai_metrics(Y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """MIRAI: per-day (per country-day) precision / recall / F1, averaged — scikit-learn's
    ``precision_recall_fscore_support(average="samples", zero_division=0)`` (tested), from :func:`per_row_prf`."""
    p, r, f = per_row_prf(pred.astype(bool), Y.astype(bool))
    return {"precision": float(p.mean()), "recall": float(r.mean()), "f1": float(f.mean())}


def quad_kl(P_event: np.ndarray, Y_event: np.ndarray, labels: LabelSpace | None = None) -> np.ndarray:
    """(n,) KL(q ‖ q̂) between QuadClass distributions of distinct event codes; NaN when nothing occurred.

    q = share of the occurred event codes in each QuadClass, q̂ ∝ Σ p over each
    QuadClass's event codes; both then smoothed: (share + 1e-3) / (1 + 4e-3).
    """
    labels = labels or label_space()
    M = labels.parent_matrix("event", "quad")  # (L_event, 4)
    q_true = Y_event.astype(np.float64) @ M
    q_pred = P_event.astype(np.float64) @ M
    out = np.full(len(q_true), np.nan)
    ok = q_true.sum(axis=1) > 0
    if ok.any():
        qt = _smooth(q_true[ok])
        qp = _smooth(q_pred[ok])
        out[ok] = entropy(qt, qp, axis=1)
    return out


def _smooth(q: np.ndarray) -> np.ndarray:
    """Rows → distributions mixed with 1e-3 of uniform mass per class: (q/Σq + ε) / (1 + 4ε); all-zero rows → uniform."""
    tot = q.sum(axis=1, keepdims=True)
    share = np.divide(q, tot, out=np.zeros_like(q), where=tot > 0)
    return (share + _KL_SMOOTH) / (1 + q.shape[1] * _KL_SMOOTH)


def _label_counts(Y: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per label (column): true positives, predicted, support, as float64; ``Y`` and ``pred`` bool."""
    return ((Y & pred).sum(axis=0).astype(np.float64), pred.sum(axis=0).astype(np.float64),
            Y.sum(axis=0).astype(np.float64))


def _weighted_fbeta(tp: np.ndarray, n_pred: np.ndarray, support: np.ndarray, beta: float) -> float:
    """F_β,l = (1 + β²)·TP_l / (β²·support_l + predicted_l) (0 where undefined), weighted by support_l."""
    if support.sum() == 0:
        return 0.0
    b2 = beta * beta
    denom = b2 * support + n_pred
    f = np.divide((1 + b2) * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    return float(f @ support / support.sum())


def weighted_f1(Y: np.ndarray, pred: np.ndarray) -> float:
    """Glean's weighted F1 (scikit-learn's ``f1_score(average="weighted", zero_division=0)``, to rounding) from
    the per-label counts alone: F1_l = 2·TP_l / (predicted_l + support_l), weighted by support_l. The threshold
    search calls it once per threshold and level, where scikit-learn's input checks cost ~70 times the sums
    (``bench/evaluate_metrics.py``)."""
    return _weighted_fbeta(*_label_counts(Y.astype(bool), pred.astype(bool)), beta=1.0)


def tune_threshold(P: np.ndarray, Y: np.ndarray, grid: Sequence[float]) -> float:
    """The threshold of ``grid`` maximising Glean weighted F1 of (P ≥ t) (the smallest on ties)."""
    best_t, best_f = float(grid[0]), -1.0
    for t in grid:
        f = weighted_f1(Y, P >= t)
        if f > best_f + 1e-12:
            best_t, best_f = float(t), f
    return best_t


def rouge_scores(futures: Sequence[Sequence[str]], target: Sequence[str]) -> tuple[float, float, float]:
    """Mean over futures of ROUGE-1/2/L F-measure of each future's phrases vs the target phrases
    (:func:`pipeline.cameo.phrases.phrase_rouge`); NaN without futures or target."""
    if not futures or not " ".join(target).strip():
        return (float("nan"),) * 3
    r1, r2, rl = np.array([phrase_rouge(target, f) for f in futures]).mean(axis=0)
    return float(r1), float(r2), float(rl)


def _level_arrays(stack: Stack, level: str, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(P, Y) of a summary level; ``rare`` = the root columns 14, 18, 19."""
    if level == "rare":
        root = label_space()["root"]
        cols = [root.index[c] for c in RARE_ROOTS]
        P, Y = stack.P["root"][:, cols], stack.Y["root"][:, cols]
    else:
        P, Y = stack.P[level], stack.Y[level]
    if rows is not None:
        P, Y = P[rows], Y[rows]
    return P, Y


# ================================================================ ROUGE inputs
def _target_phrases(lake: Lake, day: dt.date) -> dict[str, list[str]]:
    if not lake.has_partition("descriptor_days", day):
        return {}
    t = lake.read("descriptor_days", day, day, columns=["country", "target_phrases"]).to_pylist()
    return {r["country"]: list(r["target_phrases"] or []) for r in t}


def _attach_rouge(lake: Lake, stack: Stack) -> None:
    """Fill ``stack.rouge`` for model runs (``futures`` table) and baseline-persistence (yesterday's targets)."""
    days = sorted({d for d, _ in stack.keys})
    index = {k: i for i, k in enumerate(stack.keys)}
    for day in days:
        targets = _target_phrases(lake, day)
        if not targets:
            continue
        if stack.run == baseline_run("persistence"):
            prev = _target_phrases(lake, day - dt.timedelta(days=1))
            generated = {c: [p] for c, p in prev.items()}
        elif not is_baseline(stack.run) and has_futures(lake, stack.run, day):
            generated = futures_by_country(lake, stack.run, day)
        else:
            continue
        for country, futures in generated.items():
            i = index.get((day, country))
            if i is not None and targets.get(country):
                stack.rouge[i] = rouge_scores(futures, targets[country])


# ================================================================ evaluate
@dataclass
class Evaluation:
    """What :func:`evaluate` found; ``summary`` is the skill table (one row per run × group × level)."""

    start: dt.date
    end: dt.date
    runs: list[str]
    thresholds: dict[str, dict[str, float]]
    summary: pd.DataFrame
    per_label: pd.DataFrame
    reliability: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    bootstrap_unit: str = "day"
    actors: pd.DataFrame = field(default_factory=pd.DataFrame)
    """The runs' actor pairs against the history's (:func:`pipeline.scoring.actors.evaluate_pairs`)."""
    also: dict[str, pd.DataFrame] = field(default_factory=dict)
    """The skill table again with its intervals by another bootstrap unit (``evaluate(also_by=…)``)."""
    unscored: list[str] = field(default_factory=list)
    """Why target days were not scored (too thin to read, no ``country`` partition yet): the notes that say so."""

    def table(self, group: str = "all", level: str = "root") -> pd.DataFrame:
        s = self.summary[(self.summary.group == group) & (self.summary.level == level)]
        return s.set_index("run")


def busy_countries(outcomes: Outcomes, before: dt.date, top: int) -> set[str]:
    """The ``top`` countries with the most events on outcome days before ``before`` (all days if none)."""
    idx = [i for i, d in enumerate(outcomes.days) if d < before] or list(range(len(outcomes.days)))
    totals = outcomes.n_events[idx].sum(axis=0)
    order = np.argsort(-totals, kind="stable")[:top]
    return {outcomes.countries[i] for i in order if totals[i] > 0}


def forecast_runs(lake: Lake) -> list[str]:
    """Every ``model=<run>`` folder of the ``forecasts`` table, sorted (baselines last)."""
    base = lake.table_dir("forecasts")
    runs = sorted(p.name.split("=", 1)[1] for p in base.glob("model=*")) if base.exists() else []
    return sorted(runs, key=lambda r: (is_baseline(r), r))


def evaluate(
    lake: Lake,
    start: DateLike,
    end: DateLike,
    runs: Sequence[str] | None = None,
    cfg: EvaluateConfig | None = None,
    write: bool = True,
    actor_pairs: bool = True,
    also_by: Sequence[str] = (),
) -> Evaluation:
    """Score ``runs`` (default: every forecast run in the lake) on the target days [start, end].

    Thresholds are tuned on the ``cfg.val_days`` days before ``start``. The
    ``scores`` partitions of the evaluated days are replaced; with ``write`` the
    summary tables go to ``cfg.reports_dir/eval-<start>_<end>/``. ``actor_pairs``: also score the model runs'
    actor pairs against the recent events' (``Evaluation.actors``, ``actors.csv``). ``also_by``: other bootstrap
    units (``"day"``, ``"country"``) to give the skill table's intervals by as well, from the same forecasts
    (``Evaluation.also``; the backtest reports both).
    """
    cfg = cfg or EvaluateConfig()
    for unit in (cfg.bootstrap_unit, *also_by):
        if unit not in ("day", "country"):
            raise ValueError(f"evaluate.bootstrap_unit must be 'day' or 'country', not {unit!r}")
    labels = label_space()
    start, end = as_date(start), as_date(end)
    test_days = date_range(start, end)
    val_days = [start - dt.timedelta(days=i) for i in range(cfg.val_days, 0, -1)]
    known = forecast_runs(lake)
    if not known:
        raise FileNotFoundError(f"no forecasts in {lake.root}: run `gdelt-forecast baselines` / `forecast` first")
    unknown = [r for r in runs or () if r not in known]
    if unknown:
        raise UserError(f"no forecasts of run {unknown[0]!r} in {lake.root}; runs there: {', '.join(known)}")
    runs = list(runs) if runs else known
    outcomes = load_outcomes(lake, None, end, labels)
    unscored: list[str] = []
    thin = [d for d in test_days if d in outcomes.left_out]
    if thin:
        unscored.append(f"{len(thin)} target day(s) hold too few of their usual GDELT exports and are not scored, "
                        f"their outcomes read low: {', '.join(map(str, thin[:5]))} (lake.leave_out_share)")
        if write:  # scores written before the day was found thin (or the share was raised) are not the truth
            for d in thin:
                for run in runs:
                    lake.delete_partition("scores", d, model=run)
    no_truth = [d for d in test_days if outcomes.day_index(d) is None and d not in thin]
    if no_truth:
        unscored.append(f"{len(no_truth)} target day(s) have no 'country' partition yet and are not scored: "
                        f"{', '.join(map(str, no_truth[:5]))}")
    notes: list[str] = list(unscored)
    if outcomes.dropped:
        notes.append("events not counted as labels: " + ", ".join(f"{k}={v}" for k, v in outcomes.dropped.items()))
    busy = busy_countries(outcomes, val_days[0] if val_days else start, cfg.top_countries)

    # ---- thresholds, tuned on validation days for every run alike
    thresholds: dict[str, dict[str, float]] = {}
    for run in runs:
        val = collect(lake, run, val_days, outcomes, labels)
        thresholds[run] = {}
        for lv in SUMMARY_LEVELS:
            if val.keys:
                thresholds[run][lv] = tune_threshold(*_level_arrays(val, lv), cfg.thresholds)
            else:
                thresholds[run][lv] = cfg.default_threshold
        if not val.keys:
            notes.append(f"{run}: no forecasts on the validation days {val_days[0] if val_days else '-'}…"
                         f"{val_days[-1] if val_days else '-'}; threshold {cfg.default_threshold} used")

    # ---- test stacks and per-country-day scores
    stacks: dict[str, Stack] = {}
    for run in track(runs, "evaluate"):
        st = collect(lake, run, test_days, outcomes, labels)
        if not st.keys:
            notes.append(f"{run}: no forecasts with outcomes in {start}…{end}")
            continue
        _attach_rouge(lake, st)
        stacks[run] = st
        if write:
            _write_scores(lake, st, thresholds[run], busy, cfg)

    summary, per_label, rel, also = _summarise(stacks, thresholds, busy, cfg, labels, also_by)
    pairs = evaluate_pairs(lake, [r for r in stacks if not is_baseline(r)], test_days, window=cfg.actor_days,
                           backoff=cfg.actor_backoff, n_boot=cfg.bootstrap) if actor_pairs else pd.DataFrame()
    ev = Evaluation(start, end, list(stacks), thresholds, summary, per_label, rel, notes, cfg.bootstrap_unit, pairs,
                    also, unscored)
    if write:
        write_evaluation(ev, cfg.reports_dir)
    return ev


def _write_scores(lake: Lake, st: Stack, thr: dict[str, float], busy: set[str], cfg: EvaluateConfig) -> None:
    days = np.array([d for d, _ in st.keys])
    kl = quad_kl(st.P["event"], st.Y["event"])
    for day in sorted(set(days)):
        rows = np.nonzero(days == day)[0]
        parts = []
        for lv in LEVELS:
            P, Y = st.P[lv][rows], st.Y[lv][rows]
            pred = P >= thr[lv]
            prec, rec, f1 = per_row_prf(pred, Y)
            countries = [st.keys[i][1] for i in rows]
            parts.append(pa.table({
                "country": countries, "level": [lv] * len(rows), "n_events": st.n_events[rows],
                "busy": [c in busy for c in countries],
                "n_true": Y.sum(1).astype(np.int32), "n_pred": pred.sum(1).astype(np.int32),
                "threshold": np.full(len(rows), thr[lv]),
                "brier": row_brier(P, Y),
                "log_loss": np.asarray(sr.log_score(Y.astype(float), np.clip(P, cfg.log_loss_eps,
                                                                              1 - cfg.log_loss_eps))).mean(1),
                "precision": prec, "recall": rec, "f1": f1,
                "quad_kl": pa.array(kl[rows] if lv == "quad" else [None] * len(rows), pa.float64(),
                                    from_pandas=True),
                "rouge1": pa.array(st.rouge[rows, 0], from_pandas=True),
                "rouge2": pa.array(st.rouge[rows, 1], from_pandas=True),
                "rougeL": pa.array(st.rouge[rows, 2], from_pandas=True),
                "model_run": [st.run] * len(rows),
            }))
        lake.write_partition("scores", pa.concat_tables(parts), day, schema=SCORES_SCHEMA, model=st.run)


def _summarise(stacks: dict[str, Stack], thresholds: dict[str, dict[str, float]], busy: set[str],
               cfg: EvaluateConfig, labels: LabelSpace, also_by: Sequence[str] = ()
               ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, pd.DataFrame]]:
    """Skill table on the country-days every run (covering the group) shares.

    Per group and level: each run's row Brier scores (:func:`row_brier`) on those
    country-days; their mean is the run's Brier score; the best baseline is the
    ``baseline-*`` run with the lowest; every run's BSS against climatology,
    ``baseline-learned`` and the best baseline, each with its 95 % cluster-bootstrap
    interval (``cfg.bootstrap_unit``); then calibration, thresholded and per-label metrics. ``also_by``: other
    bootstrap units; for each, the same table with only the intervals (and shares above 0) drawn by that unit
    (the fourth value), every other column computed once.
    """
    rows, per_label, rel_rows = [], [], []
    also_rows: dict[str, list[dict]] = {unit: [] for unit in also_by}
    for group in GROUPS:
        in_group = (lambda c: True) if group == "all" else (lambda c: (c in busy) == (group == "busy"))
        covered = {r: {k for k in st.keys if in_group(k[1])} for r, st in stacks.items()}
        active = [r for r, ks in covered.items() if ks]
        if not active:
            continue
        common = sorted(set.intersection(*(covered[r] for r in active)))
        if not common:
            continue
        idx = {r: stacks[r].rows(common) for r in active}
        clusters = {unit: [k[0] if unit == "day" else k[1] for k in common] for unit in (cfg.bootstrap_unit, *also_by)}
        for lv in SUMMARY_LEVELS:
            arrays = {r: _level_arrays(stacks[r], lv, idx[r]) for r in active}  # run → (P, Y), (n, L)
            b = {r: row_brier(P, Y) for r, (P, Y) in arrays.items()}  # run → (n,)
            bs = {r: float(v.mean()) for r, v in b.items()}
            base_bs = {r: v for r, v in bs.items() if is_baseline(r)}
            best = min(base_bs, key=base_bs.get) if base_bs else None

            def skill(r: str, unit: str) -> dict[str, object]:  # BSS against each reference, intervals by ``unit``
                return {**_skill(b, r, CLIMATOLOGY, "climatology", clusters[unit], cfg),
                        **_skill(b, r, LEARNED, "learned", clusters[unit], cfg),
                        **_skill(b, r, WEEKDAY, "weekday", clusters[unit], cfg),
                        "best_baseline": best,
                        **_skill(b, r, best, "best_baseline", clusters[unit], cfg)}

            for r in active:
                P, Y = arrays[r]
                pred = P >= thresholds[r][lv]
                rel, ece = reliability(P, Y, cfg.n_bins)
                row = {
                    "run": r, "group": group, "level": lv, "n_country_days": len(common),
                    "n_labels": P.shape[1], "base_rate": float(Y.mean()),
                    "brier": bs[r], "log_loss": float(log_loss_per_label(P, Y, cfg.log_loss_eps).mean()),
                    **skill(r, cfg.bootstrap_unit),
                    "ece": ece, "threshold": thresholds[r][lv],
                    **{f"glean_{k}": v for k, v in glean_metrics(Y, pred).items()},
                    **{f"mirai_{k}": v for k, v in mirai_metrics(Y, pred).items()},
                    "quad_kl": float(np.nanmean(quad_kl(stacks[r].P["event"][idx[r]], stacks[r].Y["event"][idx[r]])))
                    if lv == "quad" else np.nan,
                }
                rg = stacks[r].rouge[idx[r]]
                for j, name in enumerate(("rouge1", "rouge2", "rougeL")):
                    row[name] = float(np.nanmean(rg[:, j])) if np.isfinite(rg[:, j]).any() else np.nan
                rows.append(row)
                for unit in also_by:  # the same row, its intervals drawn by another unit (the columns keep their order)
                    also_rows[unit].append({**row, **skill(r, unit)})
                if group == "all":
                    rel["run"], rel["level"] = r, lv
                    rel_rows.append(rel)
                    if lv != "rare":
                        codes = labels[lv].codes
                        per_label.append(pd.DataFrame({
                            "run": r, "level": lv, "code": codes,
                            "description": [labels.description[c] for c in codes],
                            "base_rate": Y.mean(0), "mean_p": P.mean(0),
                            "brier": brier_per_label(P, Y), "log_loss": log_loss_per_label(P, Y, cfg.log_loss_eps),
                        }))
    summary = pd.DataFrame(rows)
    return (summary,
            pd.concat(per_label, ignore_index=True) if per_label else pd.DataFrame(),
            pd.concat(rel_rows, ignore_index=True) if rel_rows else pd.DataFrame(),
            {unit: pd.DataFrame(r) for unit, r in also_rows.items()})


_SKILL_COLUMNS = {  # reference name → (BSS column, interval low, high, P(BSS > 0)) of the summary
    "climatology": ("bss_climatology", "bss_climatology_lo", "bss_climatology_hi", "p_beats_climatology"),
    "learned": ("bss_learned", "bss_learned_lo", "bss_learned_hi", "p_beats_learned"),
    "weekday": ("bss_weekday", "bss_weekday_lo", "bss_weekday_hi", "p_beats_weekday"),
    "best_baseline": ("bss_best_baseline", "bss_best_lo", "bss_best_hi", "p_beats_best"),
}


def _skill(b: dict[str, np.ndarray], run: str, ref: str | None, name: str, clusters: list,
           cfg: EvaluateConfig) -> dict[str, float]:
    """BSS = 1 − Σ b_run / Σ b_ref of ``run`` against ``ref`` (row Brier scores ``b``), with the 95 %
    cluster-bootstrap interval and the share of resamples with BSS > 0 (NaN when ``ref`` is absent, is
    ``run`` itself for the interval, or bootstrapping is off)."""
    col, lo_col, hi_col, p_col = _SKILL_COLUMNS[name]
    out = {col: np.nan, lo_col: np.nan, hi_col: np.nan, p_col: np.nan}
    if ref is None or ref not in b or b[ref].sum() <= 0:
        return out
    out[col] = 1.0 - b[run].sum() / b[ref].sum()
    if cfg.bootstrap and run != ref:
        out[lo_col], out[hi_col], out[p_col] = bootstrap_bss(b[run], b[ref], clusters, cfg.bootstrap)
    return out


def evaluation_dir(reports_dir: Path, start: dt.date, end: dt.date) -> Path:
    return Path(reports_dir) / f"eval-{start}_{end}"


def write_evaluation(ev: Evaluation, reports_dir: Path) -> Path:
    """Write summary / per_label / reliability CSVs and ``evaluation.json`` (thresholds, notes)."""
    out = evaluation_dir(reports_dir, ev.start, ev.end)
    out.mkdir(parents=True, exist_ok=True)
    ev.summary.to_csv(out / "summary.csv", index=False)
    ev.per_label.to_csv(out / "per_label.csv", index=False)
    ev.reliability.to_csv(out / "reliability.csv", index=False)
    if not ev.actors.empty:
        ev.actors.to_csv(out / "actors.csv", index=False)
    (out / "evaluation.json").write_text(json.dumps({
        "start": str(ev.start), "end": str(ev.end), "runs": ev.runs,
        "thresholds": ev.thresholds, "notes": ev.notes,
    }, indent=2))
    return out


def print_summary(ev: Evaluation, levels: Sequence[str] = ("root", "base", "rare"), groups: Sequence[str] = GROUPS
                  ) -> None:
    """A rich table per group × level: Brier, BSS, log loss, ECE, Glean F1/F2, MIRAI F1."""
    from rich.table import Table

    for note in ev.notes:
        console.print(f"[yellow]note:[/] {note}")
    for group in groups:
        for lv in levels:
            s = ev.summary[(ev.summary.group == group) & (ev.summary.level == lv)]
            if s.empty:
                continue
            t = Table(title=f"{group} countries · {lv} level · {int(s.n_country_days.iloc[0])} country-days "
                            f"· {ev.start}…{ev.end}")
            unit = f"95% ({ev.bootstrap_unit}s)"
            for col in ("run", "Brier", "BSS clim", "BSS learned", unit, "BSS best", unit + " ", "log loss", "ECE",
                        "thr", "F1w", "F2w", "Hamming", "MIRAI F1"):
                t.add_column(col, justify="left" if col == "run" else "right")
            ci = lambda lo, hi: "" if pd.isna(lo) else f"{lo:+.3f} … {hi:+.3f}"  # noqa: E731
            for r in s.sort_values("brier").itertuples():
                t.add_row(r.run, f"{r.brier:.4f}", f"{r.bss_climatology:+.3f}", f"{r.bss_learned:+.3f}",
                          ci(r.bss_learned_lo, r.bss_learned_hi), f"{r.bss_best_baseline:+.3f}",
                          ci(r.bss_best_lo, r.bss_best_hi), f"{r.log_loss:.4f}", f"{r.ece:.4f}",
                          f"{r.threshold:.2f}", f"{r.glean_f1_w:.3f}", f"{r.glean_f2_w:.3f}",
                          f"{r.glean_hamming:.4f}", f"{r.mirai_f1:.3f}")
            console.print(t)
    if not ev.actors.empty:
        t = Table(title=f"actor pairs · coverage of the day's events by the 3 pairs shown / top-1 · {ev.start}…{ev.end}")
        for col in ("run", "level", "rows", "run's pairs", "recent events' pairs", "run − recent (95 %, countries)"):
            t.add_column(col, justify="left" if col in ("run", "level") else "right")
        for r in ev.actors.itertuples():
            t.add_row(r.run, r.level, str(r.rows), f"{r.coverage:.3f} / {r.top1:.3f}",
                      f"{r.history_coverage:.3f} / {r.history_top1:.3f}",
                      f"{r.diff:+.3f} ({r.diff_lo:+.3f} … {r.diff_hi:+.3f})")
        console.print(t)
