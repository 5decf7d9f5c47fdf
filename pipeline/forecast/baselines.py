"""Reference forecasters: what a forecast must beat to be worth reading.

Every baseline turns the label indicators of the days *before* the target day
(``country`` partitions < target, see :class:`pipeline.cameo.labels.Outcomes`) into
P(label occurs in country c on the target day), for every CAMEO label at the
four levels. With y_t ∈ {0, 1} the indicator on history day t (t = 1 the most
recent of the n available days, days without a ``country`` partition are not
counted) and α the additive smoothing (0 by default):

| name          | P(label)                                             |
|---------------|------------------------------------------------------|
| `climatology` | (Σ_{t≤n} y_t + α) / (n + 2α)  — all history          |
| `persistence` | y_1  — yesterday (the latest day with data)          |
| `freq7`       | (Σ_{t≤7} y_t + α) / (min(n, 7) + 2α)                 |
| `freq30`      | (Σ_{t≤30} y_t + α) / (min(n, 30) + 2α)               |
| `ewm`         | (Σ_t λ^(t−1) y_t + α) / (Σ_t λ^(t−1) + 2α), λ = 2^(−1/h) |
| `weekday`     | 1 − (1 − climatology)^r_c — climatology at the target day's volume (below) |

| `learned`     | g_level(history features), fitted on earlier days (:mod:`pipeline.model.learned`) |

``weekday`` is climatology for the *kind* of day the target is: GDELT's volume
falls at weekends (fewer articles), and with it the chance that a label is
reported at all. Reading climatology as a Poisson rate λ = −log(1 − p) per
average day of the country, the target day's rate is λ·r_c, with r_c the
country's mean volume on history days of the target's kind (Saturday–Sunday,
or Monday–Friday) over its mean volume on all history days, shrunk toward the
world's ratio r_w by m = ``forecast.weekday_prior_days`` days:
r_c = (Σ_{t∈kind} v_ct + m·v̄_c·r_w) / ((n_kind + m)·v̄_c). No day of the
target's kind yet: r = 1 (climatology). It is the reference that knows the
weekly cycle and nothing else (docs/forecast.md, "Session 12").

Because each is a (weighted) frequency of the indicator, a parent label's
probability is at least any child's, like the model's (``learned`` restores
the hierarchy explicitly). Output: the
``forecasts`` table under ``model=baseline-<name>``, one partition per target
day, replaced atomically; ``n_futures`` holds the number of history days used.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import deque
from collections.abc import Sequence

import numpy as np

from pipeline.core.config import ForecastConfig
from pipeline.cameo.labels import LEVELS, Outcomes, load_outcomes
from pipeline.core.lake import DateLike, Lake, as_date, date_range
from pipeline.core.progress import track
from pipeline.core.schemas import FORECASTS_SCHEMA
from pipeline.forecast.table import baseline_run, forecast_rows

BASELINES: tuple[str, ...] = ("climatology", "persistence", "freq7", "freq30", "ewm", "weekday")
"""The frequency baselines computed here in one pass over the history."""
LEARNED = "learned"
"""The fitted baseline (:mod:`pipeline.model.learned`), written as ``baseline-learned``."""
REFIT_ANCHOR = dt.date(2000, 1, 3)
"""A Monday: ``baseline-learned``'s refit origins are the days k·n after it (``forecast.learned_refit_days`` = k;
k = 7: Mondays)."""
LEARNED_CHUNK = 8
"""Targets whose history features ``run_baselines`` holds at once for ``baseline-learned`` (a year's would
be ~2 GB at event level for every country)."""


class _History:
    """Running sums over history days for one level: (C, L) arrays, updated one day at a time."""

    def __init__(self, shape: tuple[int, int], halflife: float):
        self.n = 0
        self.count = np.zeros(shape, dtype=np.int64)  # Σ y over all days
        self.window: deque[np.ndarray] = deque(maxlen=30)  # the last 30 days, most recent last
        self.lam = 0.5 ** (1.0 / halflife)
        self.ewm_num = np.zeros(shape, dtype=np.float64)
        self.ewm_den = 0.0

    def add(self, y: np.ndarray) -> None:
        self.n += 1
        self.count += y
        self.window.append(y)
        self.ewm_num = self.lam * self.ewm_num + y
        self.ewm_den = self.lam * self.ewm_den + 1.0

    def probability(self, name: str, alpha: float) -> np.ndarray:
        """(C, L) float64 probabilities of baseline ``name`` from the days added so far."""
        if name == "climatology":
            return (self.count + alpha) / (self.n + 2 * alpha)
        if name == "persistence":
            return self.window[-1].astype(np.float64)
        if name in ("freq7", "freq30"):
            k = 7 if name == "freq7" else 30
            recent = list(self.window)[-k:]
            return (np.sum(recent, axis=0, dtype=np.float64) + alpha) / (len(recent) + 2 * alpha)
        if name == "ewm":
            return (self.ewm_num + alpha) / (self.ewm_den + 2 * alpha)
        raise ValueError(f"unknown baseline {name!r}; known: {list(BASELINES)}")

    def days_used(self, name: str) -> int:
        return {"climatology": self.n, "persistence": 1, "freq7": min(self.n, 7),
                "freq30": min(self.n, 30), "ewm": self.n, "weekday": self.n}[name]


def is_weekend(day: dt.date) -> bool:
    """Saturday or Sunday: the low-volume kind of GDELT day."""
    return day.weekday() >= 5


class _Volume:
    """Each country's event volume over the history days, in total and on weekend / weekday days."""

    def __init__(self, n_countries: int):
        self.total = np.zeros(n_countries, dtype=np.float64)
        self.by_kind = np.zeros((2, n_countries), dtype=np.float64)
        self.days = np.zeros(2, dtype=np.int64)

    def add(self, day: dt.date, n_events: np.ndarray) -> None:
        k = int(is_weekend(day))
        self.total += n_events
        self.by_kind[k] += n_events
        self.days[k] += 1

    def world(self, target: dt.date) -> float:
        """r_w: the world's volume on days of the target's kind against its mean day (1 without such a day)."""
        k, n = int(is_weekend(target)), int(self.days.sum())
        if self.days[k] == 0 or self.total.sum() == 0:
            return 1.0
        return float((self.by_kind[k].sum() / self.days[k]) / (self.total.sum() / n))

    def ratio(self, target: dt.date, prior_days: float) -> np.ndarray:
        """(C,) r_c: the countries' volume on days of the target's kind against their mean day (module doc)."""
        k, n = int(is_weekend(target)), int(self.days.sum())
        if self.days[k] == 0 or self.total.sum() == 0:
            return np.ones_like(self.total)
        mean, world = self.total / n, self.world(target)
        r = (self.by_kind[k] + prior_days * mean * world) / np.where(mean > 0, (self.days[k] + prior_days) * mean, 1)
        return np.where(mean > 0, r, world)


def volume_ratio(outcomes: Outcomes, target: dt.date, prior_days: float = 8.0,
                 countries: Sequence[str] | None = None) -> np.ndarray:
    """r_c of ``baseline-weekday`` for ``target`` from the days before it: over ``outcomes.countries``, or over
    ``countries`` in their order (one without events in ``outcomes``: the world's ratio)."""
    volume = _Volume(len(outcomes.countries))
    for day, n_events in zip(outcomes.days, outcomes.n_events):
        if day < target:
            volume.add(day, n_events)
    r = volume.ratio(target, prior_days)
    if countries is None:
        return r
    row = outcomes.country_index()
    return np.array([r[row[c]] if c in row else volume.world(target) for c in countries], dtype=np.float64)


def at_volume(climatology: np.ndarray, ratio: np.ndarray) -> np.ndarray:
    """1 − (1 − p)^r per country: occurrence probability p of an average day at r times its volume."""
    return 1.0 - np.power(1.0 - climatology, ratio[:, None])

def baseline_probabilities(
    outcomes: Outcomes,
    targets: Sequence[DateLike],
    names: Sequence[str] = BASELINES,
    halflife: float = 7.0,
    alpha: float = 0.0,
    weekday_prior: float = 8.0,
) -> dict[dt.date, dict[str, dict[str, tuple[np.ndarray, np.ndarray, int]]]]:
    """Baseline probabilities for each target day from the outcome days strictly before it.

    Returns ``{target: {name: {level: (P, seen, n_days)}}}`` with ``P`` (C, L)
    float64 over ``outcomes.countries`` × the level's labels, ``seen`` (C,)
    bool marking countries with at least one event before the target (only
    those get a forecast), and ``n_days`` the history days the baseline used.
    Targets with no history are left out. One pass over the days: O(Dy·C·L).
    """
    for name in names:
        if name not in BASELINES:
            raise ValueError(f"unknown baseline {name!r}; known: {list(BASELINES)}")
    if halflife <= 0:
        raise ValueError(f"ewm_halflife_days must be > 0, got {halflife}")
    targets = sorted({as_date(t) for t in targets})
    C = len(outcomes.countries)
    if weekday_prior < 0:
        raise ValueError(f"weekday_prior_days must be ≥ 0, got {weekday_prior}")
    hist = {lv: _History((C, outcomes.y[lv].shape[2]), halflife) for lv in LEVELS}
    volume = _Volume(C)
    seen = np.zeros(C, dtype=bool)
    out: dict[dt.date, dict] = {}
    i = 0
    for target in targets:
        while i < len(outcomes.days) and outcomes.days[i] < target:
            for lv in LEVELS:
                hist[lv].add(outcomes.y[lv][i])
            volume.add(outcomes.days[i], outcomes.n_events[i])
            seen |= outcomes.n_events[i] > 0
            i += 1
        if hist["event"].n == 0:
            continue
        ratio = volume.ratio(target, weekday_prior) if "weekday" in names else None

        def probability(lv: str, name: str) -> np.ndarray:
            if name == "weekday":
                return at_volume(hist[lv].probability("climatology", alpha), ratio)
            return hist[lv].probability(name, alpha)

        out[target] = {
            name: {lv: (probability(lv, name), seen.copy(), hist[lv].days_used(name)) for lv in LEVELS}
            for name in names
        }
    return out

def run_baselines(
    lake: Lake,
    start: DateLike,
    end: DateLike | None = None,
    cfg: ForecastConfig | None = None,
    outcomes: Outcomes | None = None,
    learned_fits: dict | None = None,
) -> dict[str, int]:
    """Write the baselines' forecasts for every target day in [start, end].

    Each target day is forecast from the ``country`` partitions before it
    (the target day itself may not exist yet: forecasting tomorrow). Replaces
    ``forecasts/model=baseline-<name>/date=<day>/`` for each name in
    ``cfg.baselines``. ``cfg.countries`` restricts the countries (default:
    every country with an event before the day). ``learned_fits``: see
    :func:`learned_model`. Returns rows written per run.
    """
    cfg = cfg or ForecastConfig()
    start = as_date(start)
    end = as_date(end) if end is not None else start
    targets = date_range(start, end)  # end before start: a one-line error before any read or fit
    unknown = [n for n in cfg.baselines if n not in BASELINES + (LEARNED,)]
    if unknown:
        raise ValueError(f"unknown baseline {unknown[0]!r}; known: {list(BASELINES + (LEARNED,))}")
    if outcomes is None:
        outcomes = load_outcomes(lake, None, end - dt.timedelta(days=1))
    names = [n for n in cfg.baselines if n != LEARNED]
    probs = baseline_probabilities(outcomes, targets, names or ["climatology"], cfg.ewm_halflife_days,
                                   cfg.baseline_smoothing, cfg.weekday_prior_days)
    missing = [t for t in targets if t not in probs]
    if missing:
        raise FileNotFoundError(
            f"baselines: no 'country' partition before {missing[0]} in {lake.root}; "
            "ingest and reduce earlier days first"
        )
    probs = {t: {n: v for n, v in by_name.items() if n in names} for t, by_name in probs.items()}
    if LEARNED in cfg.baselines:
        from pipeline.model.learned import learned_probabilities

        groups: dict[int, tuple[object, list[dt.date]]] = {}
        for t, model in learned_models(outcomes, targets, cfg, learned_fits).items():
            groups.setdefault(id(model), (model, []))[1].append(t)
        for model, days in groups.values():
            for lo in range(0, len(days), LEARNED_CHUNK):  # features of a few targets at a time, not of a year
                for t, per_level in learned_probabilities(model, outcomes, days[lo:lo + LEARNED_CHUNK]).items():
                    probs[t][LEARNED] = per_level
    wanted = np.isin(outcomes.countries, cfg.countries) if cfg.countries else np.ones(len(outcomes.countries), bool)
    if cfg.countries:
        unknown = sorted(set(cfg.countries) - set(outcomes.countries))
        if unknown:
            raise ValueError(f"baselines: --countries {unknown} have no events in the lake's 'country' table")
    issued = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    written: dict[str, int] = {}
    for target in track(targets, "baselines"):
        # climatology last: its partition is what tells the stage done for the target (pipeline.core.status), so
        # a run stopped between two baselines' writes is not taken for a finished one
        for name, per_level in sorted(probs[target].items(), key=lambda kv: kv[0] == "climatology"):
            seen, n_days = per_level["event"][1], per_level["event"][2]
            table = forecast_rows(
                outcomes.countries, {lv: per_level[lv][0] for lv in LEVELS}, seen & wanted,
                baseline_run(name), n_days, issued,
            )
            lake.write_partition("forecasts", table, target, schema=FORECASTS_SCHEMA, model=baseline_run(name))
            written[baseline_run(name)] = written.get(baseline_run(name), 0) + table.num_rows
    return written


def calendar_origin(target: dt.date, every: int) -> dt.date:
    """The latest day ≤ ``target`` of the refit calendar: one origin every ``every`` days from
    :data:`REFIT_ANCHOR` (``every`` = 7: the Monday of the target's week)."""
    return target - dt.timedelta(days=(target - REFIT_ANCHOR).days % every)


def refit_origin(outcomes: Outcomes, target: dt.date, every: int, from_days: int = 1) -> dt.date:
    """The day before which ``baseline-learned`` of ``target`` is fitted when no stored artefact precedes it.

    The latest day ≤ ``target`` of a fixed calendar (:func:`calendar_origin`; ``every`` = 7: the Monday of the
    target's week; 1: the target itself, a refit for every day), so a day's forecast is the same whether the
    daily flow made it or a backfill did with the other days of its week.
    The target itself while fewer than ``from_days`` outcome days with history precede that origin: on a short
    history a week is much of what the fit learns from (docs/forecast.md, "Session 25").
    """
    if every < 1 or from_days < 1:
        raise ValueError(f"forecast.learned_refit_days and learned_refit_from_days must be ≥ 1, got {every}, "
                         f"{from_days}")
    origin = calendar_origin(target, every)
    if origin == target:
        return target
    from pipeline.model.learned import training_days

    return origin if len(training_days(outcomes, origin)) >= from_days else target


def learned_models(outcomes: Outcomes, targets: Sequence[dt.date], cfg: ForecastConfig,
                   fits: dict | None = None) -> dict[dt.date, object]:
    """``baseline-learned`` of each target day, leak-free: the stored artefact (``cfg.learned_dir``) where it
    was fitted on days before the target only, else a fit on the outcome days before the target's
    :func:`refit_origin` (one fit per origin, through :func:`learned_model`). Targets without either (no
    training day before them) are left out."""
    from pipeline.core.progress import console
    from pipeline.model.learned import LearnedBaseline

    stored = LearnedBaseline.load(cfg.learned_dir) if cfg.learned_dir else None
    refit = sorted(t for t in targets if stored is None or stored.last_day >= t)
    if stored is not None and refit:
        console.print(f"[yellow]baseline-learned: {cfg.learned_dir} was fitted on days up to {stored.last_day} "
                      f"(≥ {refit[0]}); refitted for the {len(refit)} target day(s) from {refit[0]} on the days before "
                      f"their refit origin (every {cfg.learned_refit_days} days)[/]")
    fresh = dataclasses.replace(cfg, learned_dir=None)
    by_origin: dict[dt.date, object] = {}
    out: dict[dt.date, object] = {}
    for t in targets:
        if stored is not None and stored.last_day < t:
            out[t] = stored
            continue
        origin = refit_origin(outcomes, t, cfg.learned_refit_days, cfg.learned_refit_from_days)
        if origin not in by_origin:
            by_origin[origin] = learned_model(outcomes, origin, fresh, fits)
        if by_origin[origin] is not None:
            out[t] = by_origin[origin]
    return out


def learned_model(outcomes: Outcomes, start: dt.date, cfg: ForecastConfig, fits: dict | None = None):
    """The ``baseline-learned`` model for forecasts from ``start`` on, leak-free.

    The artefact in ``cfg.learned_dir`` when it was fitted on days before
    ``start`` only; otherwise a fit (in memory, not saved) on the outcome days
    before ``start``. None, with a printed note, when there is no such day.
    ``fits``: in-memory fits by ``start`` of one read of the outcomes, reused and
    added to (the walk-forward backtest forecasts and stacks with the same fit).
    """
    if fits is not None:
        if start not in fits:
            fits[start] = learned_model(outcomes, start, cfg)
        return fits[start]
    from pipeline.core.progress import console
    from pipeline.model.learned import LearnedBaseline, fit_cached, training_days

    stored = LearnedBaseline.load(cfg.learned_dir) if cfg.learned_dir else None
    if stored is not None and stored.last_day < start:
        return stored
    days = training_days(outcomes, start)
    if not days:
        console.print(f"[yellow]baseline-learned: no training day with history before {start}; not written[/]")
        return None
    if stored is not None:
        console.print(f"[yellow]baseline-learned: {cfg.learned_dir} was fitted on days up to {stored.last_day} "
                      f"(≥ {start}); refitted on the {len(days)} days before {start}[/]")
    return fit_cached(outcomes, days, cfg.learned_estimator, cfg.learned_max_rows, cfg.seed,
                      cache=cfg.learned_cache_dir)
