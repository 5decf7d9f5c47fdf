"""``baseline-learned``: a frequency model fitted on the history features, the bar a forecast must clear.

One classifier per level, pooled over labels and countries: each training row
is one (target day, country, label) with the :data:`pipeline.features.history.FEATURES`
of the days before that target and its outcome y ∈ {0, 1}::

    P(y_{d,c,l} = 1) = g_level(h(d, c, l))        h: history features (F = 22)

``g`` is scikit-learn's ``LogisticRegression`` on standardised features
(``estimator = "logistic"``) or ``HistGradientBoostingClassifier``
(``"hgb"``). Rows come from the training target days only (each with at least
one history day; countries with an event before the day), uniformly
subsampled to ``max_rows`` per level with a fixed seed. The forecast restores
the hierarchy (parent ≥ child, :func:`pipeline.model.hierarchy.restore_hierarchy`)
and keeps probabilities within [PROB_FLOOR, 1 − PROB_FLOOR].

The fitted model is a small artefact: ``learned.joblib`` (the estimators) and
``learned.json`` (its settings: estimator, features, the days it was fitted on,
rows per level), written by :meth:`LearnedBaseline.save`; the training flow
refits it on the dataset's training days.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.cameo.labels import LEVELS, LabelSpace, Outcomes, label_space
from pipeline.core.errors import UserError
from pipeline.features.history import (FEATURES, N_FEATURES, History, history_features, history_rows, prefix_sums,
                                       seen_before)
from pipeline.model.hierarchy import PROB_FLOOR, logit, restore_hierarchy

ESTIMATORS: tuple[str, ...] = ("logistic", "hgb")
MODEL_FILE = "learned.joblib"
SETTINGS_FILE = "learned.json"


HGB_LEAVES, HGB_MIN_LEAF = 15, 200
"""The trees' size: small, well-populated leaves. Chosen on held-out real days before the walk-forward's test
days (fitted before 2025-05-27, scored on 05-27 … 05-31; ``bench/learned_estimators.py --hgb``): larger trees
(31 leaves of ≥ 50 rows, the earlier setting) fit the training period's quirks."""


def make_estimator(kind: str, seed: int = 0, leaves: int = HGB_LEAVES, min_leaf: int = HGB_MIN_LEAF) -> Any:
    """A fresh scikit-learn classifier of ``kind`` (:data:`ESTIMATORS`); ``leaves`` / ``min_leaf`` size the trees
    of ``hgb``."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == "logistic":
        return make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=500))
    if kind == "hgb":
        return HistGradientBoostingClassifier(max_iter=150, learning_rate=0.1, max_leaf_nodes=leaves,
                                              min_samples_leaf=min_leaf, l2_regularization=1.0,
                                              early_stopping=False, random_state=seed)
    raise UserError(f"forecast.learned_estimator must be one of {list(ESTIMATORS)}, not {kind!r}")


@dataclass
class LearnedBaseline:
    """Per level a fitted classifier of the outcome on the history features, and how it was fitted."""

    estimators: dict[str, Any]
    estimator: str
    fitted_on: list[str]
    """The training target days (ISO dates)."""
    n_rows: dict[str, int] = field(default_factory=dict)
    features: list[str] = field(default_factory=lambda: list(FEATURES))

    @property
    def last_day(self) -> dt.date:
        return dt.date.fromisoformat(max(self.fitted_on))

    def probabilities(self, history: dict[str, History], labels: LabelSpace | None = None
                      ) -> dict[str, np.ndarray]:
        """{level: (n_t, C, L)} P(label occurs), parent ≥ child, from ``history_features`` of every level."""
        return self._predict({lv: history[lv].X for lv in LEVELS}, labels)  # X: (n_t, C, L, F)

    def logits(self, X: np.ndarray, labels: LabelSpace | None = None) -> np.ndarray:
        """(..., L_all, F) history features of every label, levels in :data:`LEVELS` order (as
        ``pipeline.features.dataset`` builds them) → (..., L_all) float32 logit of P(label occurs), parent ≥ child,
        P within [PROB_FLOOR, 1 − PROB_FLOOR]: the occurrence head's prior."""
        labels = labels or label_space()
        P = self._predict(labels.split(X, axis=-2), labels)
        return logit(np.concatenate([P[lv] for lv in LEVELS], axis=-1)).astype(np.float32)

    def _predict(self, X: dict[str, np.ndarray], labels: LabelSpace | None) -> dict[str, np.ndarray]:
        """{level: (..., L, F)} features → {level: (..., L)} P within [PROB_FLOOR, 1 − PROB_FLOOR], parent ≥ child."""
        out = {}
        for lv, x in X.items():
            x = x[..., :len(self.features)]  # FEATURES only grows at its end: an older fit reads the first F
            p = self.estimators[lv].predict_proba(x.reshape(-1, x.shape[-1]))[:, 1]
            out[lv] = np.clip(p.reshape(x.shape[:-1]), PROB_FLOOR, 1 - PROB_FLOOR)
        return restore_hierarchy(out, labels)

    def save(self, directory: str | Path) -> Path:
        """Write ``learned.joblib`` + ``learned.json`` into ``directory`` (atomically each)."""
        import joblib

        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        tmp = out / f".{MODEL_FILE}.tmp"
        joblib.dump(self.estimators, tmp)
        tmp.replace(out / MODEL_FILE)
        settings = {"estimator": self.estimator, "features": self.features, "fitted_on": self.fitted_on,
                    "n_rows": self.n_rows}
        tmp = out / f".{SETTINGS_FILE}.tmp"
        tmp.write_text(json.dumps(settings, indent=1) + "\n")
        tmp.replace(out / SETTINGS_FILE)
        return out

    @classmethod
    def load(cls, directory: str | Path) -> LearnedBaseline | None:
        """The artefact in ``directory``, or None when there is none."""
        import joblib

        src = Path(directory)
        if not (src / SETTINGS_FILE).exists() or not (src / MODEL_FILE).exists():
            return None
        s = json.loads((src / SETTINGS_FILE).read_text())
        if s["features"] != list(FEATURES)[:len(s["features"])]:  # an older artefact reads the first F features
            raise UserError(f"{src / SETTINGS_FILE}: fitted on features {s['features']}, this code computes "
                            f"{list(FEATURES)}; refit it (`gdelt-forecast retrain`, or delete {src})")
        return cls(joblib.load(src / MODEL_FILE), s["estimator"], s["fitted_on"], s.get("n_rows", {}), s["features"])


def training_rows(outcomes: Outcomes, days: Sequence[dt.date], level: str, max_rows: int | None = None,
                  seed: int = 0, labels: LabelSpace | None = None, chunk_bytes: int = 256 << 20
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(X (n, F) float32, y (n,) bool) of every (day, seen country, label) of ``level`` on outcome ``days``
    with history before them; uniformly subsampled to ``max_rows`` (seeded).

    The rows to keep are drawn first, over the index of all rows; the features are then computed for
    chunks of days of about ``chunk_bytes`` (their float64 feature columns), and assembled for the drawn rows only
    (:func:`~pipeline.features.history.history_rows`), so a year of history never holds every row's features
    at once. The result does not depend on ``chunk_bytes``."""
    days = sorted(d for d in set(days) if outcomes.day_index(d) is not None)
    idx = np.array([outcomes.day_index(d) for d in days], np.int64)
    y_all = outcomes.y[level]
    L = y_all.shape[2]
    keep = seen_before(prefix_sums(outcomes.n_events), idx) & (idx > 0)[:, None]  # (n_t, C): seen, with history
    per_day = keep.sum(axis=1) * L  # rows of each day
    pick = None
    if max_rows and per_day.sum() > max_rows:
        pick = np.sort(np.random.default_rng(seed).choice(int(per_day.sum()), max_rows, replace=False))
    step = max(1, chunk_bytes // max(1, y_all.shape[1] * L * N_FEATURES * 8))  # days per chunk: its float64 columns
    Xs, ys, offset = [], [], 0
    for lo in range(0, len(days), step):
        sl = slice(lo, lo + step)
        tc = np.argwhere(keep[sl])  # (day in chunk, country) of the rows kept, in (day, country) order
        n = len(tc) * L
        mine = np.arange(n) if pick is None else pick[(pick >= offset) & (pick < offset + n)] - offset
        offset += n
        t, c, lab = tc[mine // L, 0], tc[mine // L, 1], mine % L  # rows in (day, country, label) order
        Xs.append(history_rows(outcomes, days[sl], level, (t, c, lab), labels))  # only the drawn rows' features
        ys.append(y_all[idx[sl][t], c, lab])
    if not Xs:
        return np.zeros((0, N_FEATURES), np.float32), np.zeros(0, bool)
    return np.concatenate(Xs), np.concatenate(ys)


def usable_days(outcomes: Outcomes, days: Sequence[dt.date]) -> list[dt.date]:
    """The days of ``days`` a fit can learn from, sorted: outcome days with at least one day of history."""
    return sorted(d for d in set(days) if (i := outcomes.day_index(d)) is not None and i > 0)


def fit_learned(outcomes: Outcomes, days: Sequence[dt.date], estimator: str = "hgb",
                max_rows: int | None = 1_000_000, seed: int = 0, labels: LabelSpace | None = None) -> LearnedBaseline:
    """Fit one classifier per level on the target ``days`` (outcome days with history before them).

    Raises ``UserError`` when no such day exists. A level whose outcome never
    varies (e.g. every QuadClass every day) gets a constant model.
    """
    labels = labels or label_space()
    usable = usable_days(outcomes, days)
    if not usable:
        raise UserError("baseline-learned: no training day with history before it; "
                        "ingest and reduce at least two days before the first forecast day")
    estimators, n_rows = {}, {}
    for lv in LEVELS:
        X, y = training_rows(outcomes, usable, lv, max_rows, seed, labels)
        if y.all() or not y.any():
            est = _Constant(float(y.mean()) if len(y) else 0.0)
        else:
            est = make_estimator(estimator, seed).fit(X, y)
        estimators[lv], n_rows[lv] = est, int(len(y))
    return LearnedBaseline(estimators, estimator, [str(d) for d in usable], n_rows)


def fit_key(outcomes: Outcomes, days: Sequence[dt.date], estimator: str, max_rows: int | None, seed: int,
            labels: LabelSpace | None = None) -> str:
    """What a :func:`fit_learned` of ``days`` reads, as a sha256 hex digest: the outcome arrays of every day up to
    the last of ``days`` (the training rows' labels and their history; nothing later), the days and countries, the
    label space, the settings, the installed scikit-learn and NumPy, and the source of this module and of
    :mod:`pipeline.features.history` (so a change of how a feature is computed is a new key, not a stale fit)."""
    import hashlib

    import sklearn

    from pipeline.cameo.labels import ARRAY_FIELDS
    from pipeline.features import history

    labels = labels or label_space()
    o = outcomes.until(max(days))
    h = hashlib.sha256()

    def add(*parts: Any) -> None:
        for part in parts:
            h.update(part if isinstance(part, (bytes, memoryview)) else repr(part).encode())
            h.update(b"\x00")

    add(Path(__file__).read_bytes(), Path(history.__file__).read_bytes(), sklearn.__version__, np.__version__)
    add(estimator, max_rows, seed, HGB_LEAVES, HGB_MIN_LEAF, FEATURES, sorted(map(str, days)))
    add(*[list(labels[lv].codes) for lv in LEVELS], [str(d) for d in o.days], list(o.countries))
    for name in ARRAY_FIELDS:
        value = getattr(o, name)
        for key, a in sorted(value.items()) if isinstance(value, dict) else [(None, value)]:
            a = np.ascontiguousarray(a)
            add(name, key, a.dtype.str, a.shape, memoryview(a).cast("B"))
    return h.hexdigest()


def fit_cached(outcomes: Outcomes, days: Sequence[dt.date], estimator: str = "hgb", max_rows: int | None = 1_000_000,
               seed: int = 0, labels: LabelSpace | None = None, cache: str | Path | None = None) -> LearnedBaseline:
    """:func:`fit_learned`, read back from ``cache`` when a fit of the same inputs (:func:`fit_key`) was saved
    there, else fitted and saved there (``cache`` None: always fitted, nothing saved).

    A walk-forward fits the bar on the days before each of its days; a second backtest over the same days (the
    30- and 100-country checks, an ablation's variants) reads the first's fits instead of refitting them — the
    same estimators, not merely equal ones. The fit is made on the outcomes up to the last training day
    (:meth:`Outcomes.until`), which gives the same rows and features as the whole read: a country first seen
    later never has a row or a weight before it. Fits neither written nor read for :data:`CACHE_KEEP_DAYS` days
    are removed when a new one is saved (:func:`prune_cache`)."""
    usable = usable_days(outcomes, days)
    if cache is None or not usable:
        return fit_learned(outcomes, days, estimator, max_rows, seed, labels)
    from pipeline.core.progress import console

    outcomes = outcomes.until(usable[-1])  # sliced once: the key's arrays and the fit's rows
    folder = Path(cache) / fit_key(outcomes, usable, estimator, max_rows, seed, labels)[:32]
    try:
        if (hit := LearnedBaseline.load(folder)) is not None:
            os.utime(folder)  # read now: kept by prune_cache for CACHE_KEEP_DAYS more
            return hit
    except Exception as exc:  # a damaged entry (a disk fault, a hand edit): refitted and replaced, and said so
        console.print(f"[yellow]baseline-learned: cached fit {folder} unreadable ({type(exc).__name__}: {exc}); "
                      "refitted[/]")
        shutil.rmtree(folder, ignore_errors=True)
    fit = fit_learned(outcomes, usable, estimator, max_rows, seed, labels)
    tmp = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        fit.save(tmp)
        tmp.rename(folder)  # whole or absent: a reader never sees half a fit
        prune_cache(folder.parent)
    except OSError as exc:  # another process saved the same fit first, or the disk is full: the fit stands
        shutil.rmtree(tmp, ignore_errors=True)
        if not folder.exists():
            console.print(f"[yellow]baseline-learned: fit not cached in {folder.parent} ({exc})[/]")
    return fit


CACHE_KEEP_DAYS = 60
"""Days a cached fit is kept after it was last written or read (:func:`prune_cache`)."""


def prune_cache(cache: str | Path, keep_days: float = CACHE_KEEP_DAYS, now: float | None = None) -> list[Path]:
    """Remove the fits of ``cache`` not written or read (:func:`fit_cached` touches a fit it reads) in the last
    ``keep_days`` days, and leftovers of saves that died (``.*.tmp`` as old); returns what was removed.

    :func:`fit_cached` calls it after each fit it saves, so the cache holds what the recent days used (a fit is
    ~1 MB: the daily flow's weekly fit, a training's out-of-fold fits, a backtest's fit a day) instead of every
    fit ever made. A fit removed while another process reads it is refitted there (the damaged-entry path)."""
    limit = (time.time() if now is None else now) - keep_days * 86_400
    removed = []
    for entry in Path(cache).iterdir() if Path(cache).is_dir() else ():
        try:
            old = entry.is_dir() and entry.stat().st_mtime < limit
        except OSError:  # removed by another process meanwhile
            continue
        if old:
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def fit_out_of_fold(outcomes: Outcomes, days: Sequence[dt.date], targets: Sequence[dt.date], folds: int,
                    estimator: str = "hgb", max_rows: int | None = 1_000_000, seed: int = 0,
                    labels: LabelSpace | None = None, cache: str | Path | None = None
                    ) -> tuple[LearnedBaseline, dict[dt.date, LearnedBaseline]]:
    """The fit on every outcome day of ``days`` and, for each training target of ``targets``, a fit that never saw it.

    ``targets`` are cut into ``folds`` contiguous blocks (fewer when there are fewer targets); the block's fit
    uses ``days`` less the block's days. Returns (the full fit, {target: its out-of-fold fit}): the prior of
    :class:`pipeline.model.forecaster.OccurrenceHead` is the full fit's on validation days and later, the
    out-of-fold fit's on the training days, so what the head learns on top of it is what a fit that did not see
    the day misses (stacking's out-of-fold rule; Wolpert 1992). ``cache``: see :func:`fit_cached`."""
    full = fit_cached(outcomes, days, estimator, max_rows, seed, labels, cache)
    targets = sorted(set(targets))
    oof: dict[dt.date, LearnedBaseline] = {}
    for block in np.array_split(np.array(targets, dtype=object), min(folds, len(targets))):
        held = set(block.tolist())
        model = fit_cached(outcomes, [d for d in days if d not in held], estimator, max_rows, seed, labels, cache)
        oof.update({d: model for d in held})
    return full, oof


class _Constant:
    """A classifier that always answers the training rate (sklearn's ``predict_proba`` interface)."""

    def __init__(self, p: float) -> None:
        self.p = p

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return np.column_stack([np.full(len(X), 1 - self.p), np.full(len(X), self.p)])


def learned_probabilities(model: LearnedBaseline, outcomes: Outcomes, targets: Sequence[dt.date],
                          labels: LabelSpace | None = None
                          ) -> dict[dt.date, dict[str, tuple[np.ndarray, np.ndarray, int]]]:
    """``{target: {level: (P (C, L), seen (C,), n_days)}}`` like ``baselines.baseline_probabilities``;
    targets with no history are left out."""
    targets = sorted(set(targets))
    history = {lv: history_features(outcomes, targets, lv, labels) for lv in LEVELS}
    P = model.probabilities(history, labels)
    h = history["event"]
    return {t: {lv: (P[lv][i], h.seen[i], int(h.n_days[i])) for lv in LEVELS}
            for i, t in enumerate(targets) if h.n_days[i] > 0}


def training_days(outcomes: Outcomes, before: dt.date) -> list[dt.date]:
    """Outcome days strictly before ``before`` that have history (the leak-free training days of a forecast)."""
    return [d for i, d in enumerate(outcomes.days) if d < before and i > 0]
