"""Per-label history features: what the days before a target say about each label of each country.

For a target day d, country c and label l of one level, every feature is
computed from the outcome days strictly before d (the ``country`` partitions
< d, :class:`pipeline.cameo.labels.Outcomes`), so a forecast of d never sees
d's outcome. "The last w days" are the last w days *with a partition* before
d (as for the frequency baselines); with y_t ∈ {0, 1} the indicator and n_t the
label's event count on history day t (t = 1 the most recent of the n days):

| feature            | value                                                        |
|--------------------|--------------------------------------------------------------|
| `yesterday`        | y_1                                                          |
| `share3/7/30`      | (1/min(n, w)) Σ_{t≤w} y_t                                     |
| `share_all`        | (1/n) Σ_t y_t  — climatology                                   |
| `logit_all`        | logit((Σ_t y_t + ½) / (n + 1))  — smoothed climatology         |
| `logit7`           | logit((Σ_{t≤7} y_t + ½) / (min(n, 7) + 1))                     |
| `log_count1`       | log(1 + n_1)                                                 |
| `log_count7`       | log(1 + Σ_{t≤7} n_t)                                          |
| `log_volume1`      | log(1 + events of c on day 1)  (all labels)                  |
| `log_volume7`      | log(1 + mean events of c over the last 7 days)               |
| `parent_yesterday` | `yesterday` of l's parent (event → base → root → quad; quad: itself) |
| `parent_share7`    | `share7` of l's parent                                        |
| `weekday_sin/cos`  | sin, cos(2π · weekday(d) / 7)                                 |
| `log_days`         | log(1 + n)                                                   |
| `world_yesterday`  | Σ_c w_{1,c} y_{1,c} / Σ_c w_{1,c} over every country c of the lake, w_{t,c} = log(1 + events of c on day t) |
| `world_share7`     | the same over the last 7 days (Σ over t ≤ 7 and c)          |
| `world_share_all`  | the same over all n days — the label's volume-weighted world climatology |
| `log_mentions1`    | log(1 + m_1), m_t = Σ NumMentions of the label's events on history day t |
| `log_mentions7`    | log(1 + (1/min(n, 7)) Σ_{t≤7} m_t)                             |
| `log_actor1`       | log(1 + a_1), a_t = the label's events on history day t located in another country with an actor of c (`Outcomes.actor`) |

The three `world_*` features are the same for every country: they tell the
pooled estimators which label this is (its prevalence over the world, far less
noisy than one country's few days) and whether it is in the news everywhere
now. On the real days they lift `baseline-learned` from about +1 to +3 … +4 %
BSS against climatology at event and base level (docs/forecast.md,
"History features"). The two `log_mentions*` features tell a story that is
being covered (many mentions of few events) from routine reports; they add
about +0.2 … +0.3 points at event level (docs/forecast.md, session 9).
`log_actor1` tells what the country did (or had done to it) abroad yesterday,
which GDELT's geolocation often places at home the next day (a delegation's
visit, strikes across a border); it adds up to +0.5 points at root level and
never loses on either split of the real days (docs/forecast.md, session 10).

The result is a dense ``(targets, C, L, F)`` float32 array: the same function
feeds the learned baseline (:mod:`pipeline.model.learned`, pooled over
countries and labels) and the model's occurrence head
(:mod:`pipeline.features.dataset`). One pass of sums over the days: O(Dy·C·L) time, and memory for
the targets' rows only (:class:`PrefixAt`), not a float copy of every day's (C, L) cells.

>>> import numpy as np, datetime as dt
>>> from pipeline.cameo.labels import LEVELS, Outcomes, label_space
>>> days = [dt.date(2025, 1, 1) + dt.timedelta(days=i) for i in range(4)]
>>> y = {lv: np.zeros((4, 1, len(label_space()[lv])), bool) for lv in LEVELS}
>>> y["root"][[0, 2, 3], 0, 0] = True
>>> o = Outcomes(days, ["US"], y, np.ones((4, 1), np.int64), np.zeros((4, 1, 4), np.int64), {})
>>> h = history_features(o, [dt.date(2025, 1, 5)], "root")
>>> float(h.X[0, 0, 0, FEATURES.index("share_all")])
0.75
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.cameo.labels import LabelSpace, Outcomes, label_space

FEATURES: tuple[str, ...] = (
    "yesterday", "share3", "share7", "share30", "share_all", "logit_all", "logit7",
    "log_count1", "log_count7", "log_volume1", "log_volume7",
    "parent_yesterday", "parent_share7", "weekday_sin", "weekday_cos", "log_days",
    "world_yesterday", "world_share7", "world_share_all", "log_mentions1", "log_mentions7", "log_actor1",
)
"""Names of the F history features, in the order of the last axis of :attr:`History.X`.

The tuple only grows at its end: a model or ``baseline-learned`` artefact fitted when it was
shorter reads the first F columns, so upgrading never breaks a trained model."""
N_FEATURES = len(FEATURES)
WORLD: tuple[str, ...] = ("world_yesterday", "world_share7", "world_share_all")
"""The features that are the same for every country (over every country of the lake)."""
PARENT: dict[str, str] = {"event": "base", "base": "root", "root": "quad", "quad": "quad"}
"""The level whose label gives ``parent_*`` (quad labels have no parent: their own history)."""


@dataclass
class History:
    """History features of some target days.

    Attributes:
        targets: the target days (length n_t), sorted.
        countries: ``outcomes.countries``, or the ones asked for (length C).
        X: (n_t, C, L, F) float32 features (:data:`FEATURES`).
        seen: (n_t, C) bool, the country had an event before the target (only those are forecast).
        n_days: (n_t,) int, history days (partitions) before each target.
        world: (n_t, L, 3) float32, the ``world_*`` features (the same for every country, kept apart
            so a country without a row gets them too).
    """

    targets: list[dt.date]
    countries: list[str]
    X: np.ndarray
    seen: np.ndarray
    n_days: np.ndarray
    world: np.ndarray


def _logit(p: np.ndarray) -> np.ndarray:
    return np.log(p) - np.log1p(-p)


def prefix_sums(a: np.ndarray) -> np.ndarray:
    """Σ of ``a`` over its first axis up to each position: (Dy + 1, …) float64, row 0 zeros, row k = Σ_{t<k} a_t."""
    return np.concatenate([np.zeros((1,) + a.shape[1:]), np.cumsum(a, axis=0, dtype=np.float64)])


class PrefixAt:
    """``prefix_sums(a)`` read only at the rows some windows need: ``self[k]`` = Σ_{t<k} a_t for each k of
    ``rows``, float64.

    ``prefix_sums`` holds a (Dy + 1, C, L) float64 array, 8 bytes a cell: 0.4 GB a level for two years of
    246 countries' events, several times over for one day's forecast. This sums the runs of days between the
    rows asked for (no float copy of ``a``) and keeps only ``len(rows)`` cumulative rows.
    For integer-valued ``a`` (indicators, counts, mentions: every array of :class:`Outcomes`) each value is
    the same to the last bit as ``prefix_sums(a)[k]``: every partial sum is an integer below 2⁵³.

    >>> a = np.arange(12).reshape(6, 2)
    >>> p = PrefixAt(a, [2, 5, 6])
    >>> bool((p[np.array([6, 2, 5])] == prefix_sums(a)[[6, 2, 5]]).all())
    True
    """

    def __init__(self, a: np.ndarray, rows: np.ndarray | Sequence[int]) -> None:
        n = len(a)
        rows = np.unique(np.concatenate([[0], np.clip(np.asarray(rows, np.int64), 0, n)]))
        starts = rows[rows < n]
        ends = np.append(starts[1:], n)
        seg = np.zeros((len(starts),) + a.shape[1:])  # seg[j] = Σ a[starts[j]:ends[j]]: a sum casts in its buffer
        for j, (lo, hi) in enumerate(zip(starts, ends)):
            a[lo:hi].sum(axis=0, dtype=np.float64, out=seg[j])
        self.rows = np.append(starts, n)
        self.cum = np.concatenate([np.zeros((1,) + a.shape[1:]), np.cumsum(seg, axis=0)])  # at self.rows

    def __getitem__(self, k: np.ndarray) -> np.ndarray:
        at = np.searchsorted(self.rows, k)
        if not np.array_equal(self.rows[np.minimum(at, len(self.rows) - 1)], k):
            raise KeyError(f"rows {np.setdiff1d(k, self.rows)[:5]} were not asked for")
        return self.cum[at]


def window_rows(k: np.ndarray, windows: Sequence[int]) -> np.ndarray:
    """The prefix rows :func:`_window` reads for history lengths ``k`` and these windows (and ``k`` itself)."""
    return np.concatenate([k] + [np.maximum(k - w, 0) for w in windows])


def days_before(outcomes: Outcomes, targets: Sequence[dt.date]) -> np.ndarray:
    """(n_t,) int64: how many outcome days lie before each target (the row of ``prefix_sums`` to read)."""
    return np.searchsorted(np.asarray(outcomes.days, dtype=object).astype("datetime64[D]"),
                           np.asarray(targets, dtype="datetime64[D]"), side="left").astype(np.int64)


def seen_before(events_prefix: np.ndarray, k: np.ndarray) -> np.ndarray:
    """(n_t, C) bool from ``prefix_sums(n_events)``: the country had an event on one of the first ``k`` days
    (``History.seen``)."""
    return events_prefix[k] > 0


def _window(cum: np.ndarray | PrefixAt, k: np.ndarray, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Sums over the last ``w`` of the first ``k`` days from a prefix sum ``cum`` (Dy+1, …; or a
    :class:`PrefixAt` holding the rows ``window_rows(k, [w])``), and the day counts."""
    lo = np.maximum(k - w, 0)
    return cum[k] - cum[lo], (k - lo).astype(np.float64)


def _per_label(y: np.ndarray, counts: np.ndarray, k: np.ndarray, mentions: np.ndarray | None = None
               ) -> dict[str, np.ndarray]:
    """Indicator, count and mention features of one level: name → (n_t, C, L) float64, for history lengths
    ``k`` (n_t,); ``mentions`` None skips the mention features."""
    cy, cn = PrefixAt(y, window_rows(k, (1, 3, 7, 30))), PrefixAt(counts, window_rows(k, (1, 7)))
    d = lambda n: np.maximum(n, 1.0)[:, None, None]  # noqa: E731 - (n_t,) days → broadcastable denominators
    out: dict[str, np.ndarray] = {}
    s1, n1 = _window(cy, k, 1)
    out["yesterday"] = s1
    for w in (3, 7, 30):
        s, n = _window(cy, k, w)
        out[f"share{w}"] = s / d(n)
        if w == 7:
            out["logit7"] = _logit((s + 0.5) / (n[:, None, None] + 1.0))
    s_all, n_all = cy[k], k.astype(np.float64)
    out["share_all"] = s_all / d(n_all)
    out["logit_all"] = _logit((s_all + 0.5) / (n_all[:, None, None] + 1.0))
    c1, _ = _window(cn, k, 1)
    c7, _ = _window(cn, k, 7)
    out["log_count1"], out["log_count7"] = np.log1p(c1), np.log1p(c7)
    if mentions is not None:
        cm = PrefixAt(mentions, window_rows(k, (1, 7)))
        m1, _ = _window(cm, k, 1)
        m7, n7 = _window(cm, k, 7)
        out["log_mentions1"], out["log_mentions7"] = np.log1p(m1), np.log1p(m7 / d(n7))
    return out


def history_features(outcomes: Outcomes, targets: Sequence[dt.date], level: str,
                     labels: LabelSpace | None = None, countries: Sequence[str] | None = None) -> History:
    """The :data:`FEATURES` of every (target, country, label of ``level``) from the days before each target.

    Targets need not be outcome days (forecasting tomorrow). A target with no
    history gets zeros (``n_days`` 0, ``seen`` False). ``countries`` keeps only those rows of
    ``outcomes.countries`` (in its order; the ``world_*`` features still see every country), so a
    model of 30 countries does not hold the features of all of them.
    """
    targets = sorted(set(targets))
    columns, k, ce, world_only, rows = _columns(outcomes, targets, level, labels, countries)
    n_t, C, L = columns["yesterday"].shape
    X = np.empty((n_t, C, L, N_FEATURES), np.float32)  # filled column by column: no float64 stack of them all
    for i, name in enumerate(FEATURES):
        X[..., i] = columns[name]
    seen = seen_before(ce, k)  # (n_t, C)
    return History(targets=list(targets), countries=[outcomes.countries[i] for i in rows], X=X, seen=seen, n_days=k,
                   world=np.stack([world_only[name] for name in WORLD], axis=-1).astype(np.float32))


def history_rows(outcomes: Outcomes, targets: Sequence[dt.date], level: str,
                 at: tuple[np.ndarray, np.ndarray, np.ndarray], labels: LabelSpace | None = None) -> np.ndarray:
    """(n, F) float32: the features of the rows ``at`` = (target, country, label) positions (into the sorted
    ``targets``, ``outcomes.countries`` and the level's labels) only — ``history_features(...).X[at]``, without
    the (targets, C, L, F) array of every row (a fit draws its 1,000,000 rows from tens of millions)."""
    columns, *_ = _columns(outcomes, sorted(set(targets)), level, labels, None)
    X = np.empty((len(at[0]), N_FEATURES), np.float32)
    for i, name in enumerate(FEATURES):
        X[:, i] = columns[name][at]
    return X


def _columns(outcomes: Outcomes, targets: list[dt.date], level: str, labels: LabelSpace | None,
             countries: Sequence[str] | None) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray,
                                                       dict[str, np.ndarray], np.ndarray]:
    """Each feature of :func:`history_features` as a (n_t, C, L) float64 array (some broadcast views), with the
    history lengths ``k``, the volume prefix sums, the world features and the country rows kept."""
    labels = labels or label_space()
    k = days_before(outcomes, targets)
    parent = PARENT[level]
    counts = getattr(outcomes, "counts", None) or {}
    mentions = getattr(outcomes, "mentions", None) or {}
    abroad = getattr(outcomes, "actor", None) or {}
    wanted = set(outcomes.countries if countries is None else countries)
    rows = np.array([i for i, c in enumerate(outcomes.countries) if c in wanted], np.int64)
    pick = lambda a: a if len(rows) == len(outcomes.countries) else a[:, rows]  # noqa: E731 - (Dy, C, …) rows
    own_counts = pick(counts.get(level, outcomes.y[level]))
    own = _per_label(pick(outcomes.y[level]), own_counts, k, pick(mentions[level]) if level in mentions else own_counts)
    up = own if parent == level else _per_label(pick(outcomes.y[parent]),
                                                pick(counts.get(parent, outcomes.y[parent])), k)
    if parent != level:
        cols = labels.parent_matrix(level, parent).argmax(axis=1)  # (L,) parent column of each label
        up = {name: v[:, :, cols] for name, v in up.items() if name in ("yesterday", "share7")}
    # country volume (all labels): yesterday and the mean of the last 7 days
    ce = prefix_sums(pick(outcomes.n_events))
    v1, _ = _window(ce, k, 1)
    v7, n7 = _window(ce, k, 7)
    vol1 = np.log1p(v1)[:, :, None]
    vol7 = np.log1p(v7 / np.maximum(n7, 1.0)[:, None])[:, :, None]
    weekday = np.array([t.weekday() for t in targets], np.float64) * (2 * np.pi / 7)
    n_t, C, L = own["yesterday"].shape
    actor1 = (np.log1p(_window(PrefixAt(pick(abroad[level]), window_rows(k, (1,))), k, 1)[0]) if level in abroad
              else np.zeros((n_t, C, L)))  # hand-built outcomes: no events abroad
    full = lambda a: np.broadcast_to(a, (n_t, C, L))  # noqa: E731
    world_only = _world(outcomes.y[level], outcomes.n_events, k)
    world = {name: full(v[:, None, :]) for name, v in world_only.items()}
    columns = {
        **own, "log_volume1": full(vol1), "log_volume7": full(vol7),
        "parent_yesterday": up["yesterday"], "parent_share7": up["share7"],
        "weekday_sin": full(np.sin(weekday)[:, None, None]), "weekday_cos": full(np.cos(weekday)[:, None, None]),
        "log_days": full(np.log1p(k.astype(np.float64))[:, None, None]),
        **world, "log_actor1": actor1,
    }
    return columns, k, ce, world_only, rows


def _world(y: np.ndarray, n_events: np.ndarray, k: np.ndarray) -> dict[str, np.ndarray]:
    """The ``world_*`` features of one level: name → (n_t, L) float64, the log-volume-weighted share of the
    countries' days on which each label occurred, over the last 1 and 7 and all of the first ``k`` days."""
    w = np.log1p(n_events.astype(np.float64))  # (Dy, C)
    wy = np.einsum("dc,dcl->dl", w, y)  # y as it is (bool): einsum casts in its buffer, no (Dy, C, L) float copy
    cw, cwy = prefix_sums(w.sum(axis=1)), prefix_sums(wy)
    out = {}
    for name, window in zip(WORLD, (1, 7, len(w))):
        den, _ = _window(cw, k, window)
        num, _ = _window(cwy, k, window)
        out[name] = np.where(den[:, None] > 0, num / np.maximum(den, 1e-12)[:, None], 0.0)
    return out


def country_rows(history: History, countries: Sequence[str]) -> np.ndarray:
    """(n_t, len(countries), L, F) features of the given countries; a country without history gets
    the features of a country never seen (zeros, with the smoothed climatology of an empty history)."""
    row = {c: i for i, c in enumerate(history.countries)}
    out = np.zeros(history.X.shape[:1] + (len(countries),) + history.X.shape[2:], np.float32)
    unseen = _unseen_row(history)
    for j, c in enumerate(countries):
        out[:, j] = history.X[:, row[c]] if c in row else unseen
    return out


def _unseen_row(history: History) -> np.ndarray:
    """(n_t, L, F) features of a country with no events in the history."""
    n_t, _, L, _ = history.X.shape
    n = history.n_days.astype(np.float64)[:, None]
    x = np.zeros((n_t, L, N_FEATURES), np.float32)
    x[..., FEATURES.index("logit_all")] = _logit(0.5 / (n + 1.0))
    x[..., FEATURES.index("logit7")] = _logit(0.5 / (np.minimum(n, 7) + 1.0))
    weekday = np.array([t.weekday() for t in history.targets], np.float64)[:, None] * (2 * np.pi / 7)
    x[..., FEATURES.index("weekday_sin")], x[..., FEATURES.index("weekday_cos")] = np.sin(weekday), np.cos(weekday)
    x[..., FEATURES.index("log_days")] = np.log1p(n)
    x[..., [FEATURES.index(name) for name in WORLD]] = history.world
    return x


def smoothed_climatology(outcomes: Outcomes, targets: Sequence[dt.date], level: str,
                         alpha: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """(Σ_t y_t + α) / (n + 2α) over the days before each target: ((n_t, C, L) float64, (n_t,) days n)."""
    k = days_before(outcomes, sorted(set(targets)))
    cy = prefix_sums(outcomes.y[level])
    return (cy[k] + alpha) / (k[:, None, None] + 2 * alpha), k
