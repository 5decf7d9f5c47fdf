"""The watch list: which (country, label) forecasts for a day depart most from the country's usual.

This module owns the ``watchlist`` lake table (``watchlist/model=<run>/<D>``,
``WATCHLIST_SCHEMA``): :func:`write_watchlist` is the stage that computes it from
the lake (``forecasts`` and ``futures``; ``scores`` to pick the reference
baseline) after the day's forecasts, and :func:`read_watchlist` its one reader,
used by the morning page, ``gdelt-forecast inspect watchlist --date D`` and the
demo's summary, so the page holds nothing the lake does not (the report also
writes the rows beside the page as ``watchlist.csv``). Each row carries the
country's UN region (:mod:`pipeline.cameo.regions`) for the page's region filter.

For a target day D, a forecast run (see :func:`primary_run`: the model, else ``baseline-learned``, else
climatology) and each label ℓ of country c at the ``root``, ``event`` and ``quad`` levels, with
p the run's probability:

- ``climatology`` u_c = P(ℓ) of ``baseline-climatology`` for D (the country's
  long-run frequency; a missing sparse row is 0);
- ``baseline`` u_b = P(ℓ) of the reference baseline for D: ``baseline-learned``
  when its partition exists, else the baseline (not climatology) with the
  lowest mean root-level Brier score in the ``scores`` table over the
  ``score_days`` days before D, else none (u_b = u_c); never the run itself (the page of
  ``baseline-learned`` has the best-scoring other baseline beside it);
- with ``usual = "climatology"`` (the default since session 14): a **rise** when p > u_c, ``difference`` =
  p − u_c, ``usual`` = u_c; a **fall** when p < u_c (``difference`` negative). The country's long-run usual:
  what tomorrow is expected to bring that the country does not usually see, whether the departure is new or
  has lasted some days (u_b, shown beside it, tells which);
- with ``usual = "both"`` (issue 11's first design): a **rise** when p > max(u_c, u_b): ``difference`` =
  p − max(u_c, u_b) and ``usual`` = max(u_c, u_b); a **fall** when p < min(u_c, u_b):
  ``difference`` = p − min(u_c, u_b) (negative) and ``usual`` = min(u_c, u_b);
  otherwise the forecast is within the usual range and not listed. So a row is
  unusual against both references, and ``difference`` is the smaller departure. Since the published forecast
  starts from ``baseline-learned`` (``train.calibration_form: residual``), that leaves only the small share of
  the model's difference the calibration keeps, and the largest of those came true no more often than their
  usual said (``bench/watchlist_hits.py``, docs/report.md), which is why it is no longer the default.
- ``ratio`` = (p + ε) / (usual + ε) with ε = 0.01, so a label that never
  happened (usual 0) shows a finite ratio.

Rows are ranked by |difference| (ties: larger ratio departure, then country,
code). A label is **conflict** when its root code is 13–20 (threaten, protest
14, exhibit force, reduce relations, coerce, assault, fight, mass violence) or
it is QuadClass 3 or 4 at the quad level. Each row carries the run's most
likely actor pairs and up to ``n_phrases`` phrases of the sampled futures that
were projected onto the label (most frequent first; baselines have none).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.cameo import codes as cameo
from pipeline.cameo import regions
from pipeline.core.config import EvaluateConfig
from pipeline.core.errors import UserError
from pipeline.core.lake import DateLike, Lake, as_date
from pipeline.core.schemas import WATCHLIST_SCHEMA
from pipeline.core.status import page_baseline
from pipeline.forecast.futures import phrase_codes
from pipeline.scoring.actors import pair_text, shown_pairs
from pipeline.forecast.table import baseline_run, is_baseline

CLIMATOLOGY = baseline_run("climatology")
LEARNED = baseline_run("learned")
CONFLICT_ROOTS: frozenset[str] = frozenset(f"{r}" for r in range(13, 21))
LEVELS: tuple[str, ...] = ("root", "event", "quad")
EPS = 0.01
LISTS: dict[str, tuple[str, bool | None]] = {"rises": ("rise", None), "falls": ("fall", None),
                                             "conflict rises": ("rise", True), "conflict falls": ("fall", True)}
"""The four lists: name → (direction, conflict labels only?), in the order they are stacked."""
TABLE = "watchlist"
COLUMNS: list[str] = ["rank", "direction", "conflict", "country", "country_name", "region", "level", "code",
                      "description", "probability", "usual", "difference", "ratio", "climatology", "baseline",
                      "baseline_run", "against",
                      "actors", "phrases", "phrase_shares", "model_run"]


USUALS: tuple[str, ...] = ("climatology", "both")
"""What a forecast can depart from (:attr:`WatchlistConfig.usual`)."""


@dataclass(frozen=True)
class WatchlistConfig:
    """How long the watch list is and what goes on each row."""

    top: int = 10
    """Rows per list (rises overall, falls overall, rises in conflict, falls in conflict)."""
    n_phrases: int = 3
    """Phrases from the futures shown per row."""
    n_pairs: int = 3
    """Actor pairs shown per row."""
    score_days: int = 30
    """Days of ``scores`` before D used to pick the best baseline when ``baseline-learned`` is absent."""
    min_difference: float = 0.0
    """Rows with |difference| at or below this are left out."""
    usual: str = "climatology"
    """What a forecast departs from: ``climatology`` (the country's long-run frequency) or ``both`` (outside the
    range of climatology and the reference baseline); module doc."""

    actor_run_weight: float = 0.0
    """Weight of the run's own actor pairs against the history's (``pipeline.scoring.actors.shown_pairs``)."""
    actor_days: int = 30
    """Days of history the shown actor pairs are read from."""
    actor_backoff: float = 0.1
    """Back-off of the history's actor pairs to a label's parents and the country."""

    def __post_init__(self) -> None:
        if self.usual not in USUALS:
            raise UserError(f"watch list: usual must be one of {', '.join(USUALS)}, not {self.usual!r}")
        if not isinstance(self.top, int) or self.top < 1:
            raise UserError(f"watch list: top (rows per list) must be a whole number ≥ 1, not {self.top!r}")

    @classmethod
    def of(cls, ev: EvaluateConfig, **kw) -> "WatchlistConfig":
        """The watch list a config's ``evaluate`` section asks for (``kw`` overrides, e.g. ``top``)."""
        return cls(**{"usual": ev.watchlist_usual, "actor_run_weight": ev.actor_run_weight,
                      "actor_days": ev.actor_days, "actor_backoff": ev.actor_backoff, **kw})


def runs_for(lake: Lake, day: dt.date) -> list[str]:
    """Every forecast run with a partition for ``day`` (model runs first, then baselines, each sorted)."""
    base = lake.table_dir("forecasts")
    runs = [p.name.split("=", 1)[1] for p in base.glob("model=*")] if base.exists() else []
    runs = [r for r in runs if lake.has_partition("forecasts", day, model=r)]
    return sorted(runs, key=lambda r: (is_baseline(r), r))


def primary_run(lake: Lake, day: DateLike, run: str | None = None) -> str:
    """The run the page is about: ``run`` if given, else the first model run for ``day``, else
    ``baseline-learned``, else climatology (:func:`pipeline.core.status.page_baseline`), else a baseline."""
    day = as_date(day)
    if run:
        if not lake.has_partition("forecasts", day, model=run):
            raise FileNotFoundError(f"no forecasts/model={run}/date={day} in {lake.root}; "
                                    f"run `gdelt-forecast forecast --date {day}` first")
        return run
    runs = runs_for(lake, day)
    if not runs:
        raise FileNotFoundError(f"no forecasts for {day} in {lake.root}; run `gdelt-forecast forecast --date {day}` "
                                f"or `gdelt-forecast baselines --date {day}` first")
    return runs[0] if not is_baseline(runs[0]) else (page_baseline(lake, day) or runs[0])


def reference_baseline(lake: Lake, day: DateLike, score_days: int = 30, exclude: str | None = None) -> str | None:
    """``baseline-learned`` when it has a partition for ``day``, else the best-scoring other baseline, else None;
    never ``exclude`` (the page's run: a reference beside a run is another forecast).

    "Best" = lowest mean root-level Brier over the ``scores`` rows of the
    ``score_days`` days before ``day`` (every country-day each run was scored on).
    """
    day = as_date(day)
    runs = [r for r in runs_for(lake, day) if is_baseline(r) and r not in (CLIMATOLOGY, exclude)]
    if LEARNED in runs:
        return LEARNED
    if not runs:
        return None
    briers: dict[str, float] = {}
    first, last = day - dt.timedelta(days=score_days), day - dt.timedelta(days=1)
    for r in runs:
        try:
            s = lake.read("scores", first, last, columns=["level", "brier"], model=r).to_pandas()
        except FileNotFoundError:
            continue
        s = s[s.level == "root"]
        if len(s):
            briers[r] = float(s.brier.mean())
    return min(briers, key=lambda r: (briers[r], r)) if briers else None


def _probs(lake: Lake, run: str, day: dt.date) -> pd.DataFrame:
    t = lake.read("forecasts", day, day, model=run,
                  columns=["country", "level", "code", "description", "root_code", "quad_class", "probability",
                           "actor_pairs"])
    return t.to_pandas()


def is_conflict(level: str, code: str, root_code: str | None) -> bool:
    """Root codes 13–20 (any level below quad), or QuadClass 3/4 at the quad level."""
    if level == "quad":
        return code in ("3", "4")
    return (root_code or code[:2]) in CONFLICT_ROOTS


def future_phrases(lake: Lake, run: str, day: dt.date, keys: set[tuple[str, str, str]] | None = None
                   ) -> dict[tuple[str, str, str], list[tuple[str, float]]]:
    """(country, level, code) → [(phrase, share of the country's futures it appears in)], most frequent first.

    A phrase counts for its event code, that code's base (3 digits) and root
    (2 digits) labels, once per future. ``keys`` limits the work to those
    labels (the watch list's rows). Empty when the run has no futures.
    """
    if keys is not None and not keys:
        return {}
    countries = sorted({k[0] for k in keys}) if keys is not None else None
    counts: dict[tuple[str, str, str], Counter] = {}
    n_futures: Counter = Counter()  # per country
    for country, phrases, codes in phrase_codes(lake, run, day, countries):
        n_futures[country] += 1
        seen: set[tuple[str, str, str, str]] = set()
        for phrase, code in zip(phrases, codes):
            if not code:
                continue
            for level, key in (("event", code), ("base", code[:3]), ("root", code[:2])):
                k = (country, level, key)
                if (keys is None or k in keys) and (k + (phrase,)) not in seen:
                    seen.add(k + (phrase,))
                    counts.setdefault(k, Counter())[phrase] += 1
    return {key: [(ph, n / n_futures[key[0]]) for ph, n in sorted(c.items(), key=lambda x: (-x[1], x[0]))]
            for key, c in counts.items()}


def phrase_text(phrases, shares=None, sep: str = " · ") -> str:
    """Phrases for a reader, each with the share of the country's futures it appears in when recorded: a phrase in
    1 of 100 futures came true about a third of the time, one in over a quarter of them about 4 in 5
    (docs/report.md "Actor pairs")."""
    phrases, shares = list(phrases), list(shares) if shares is not None else []
    if len(shares) < len(phrases):
        return sep.join(phrases)
    return sep.join(f"{ph} ({sh:.0%})" for ph, sh in zip(phrases, shares))


def departures(lake: Lake, day: DateLike, run: str | None = None, cfg: WatchlistConfig | None = None) -> pd.DataFrame:
    """Every (country, label) of ``run`` on ``day`` with its usual values and departure, unranked.

    Columns: ``COLUMNS`` less ``rank``/``actors``/``phrases``, plus ``actor_pairs``
    (the raw list). Countries absent from climatology are left out (no usual).
    """
    cfg = cfg or WatchlistConfig()
    day = as_date(day)
    run = primary_run(lake, day, run)
    fc = _probs(lake, run, day)
    fc = fc[fc.level.isin(LEVELS)]
    key = ["country", "level", "code"]
    if not lake.has_partition("forecasts", day, model=CLIMATOLOGY):
        raise FileNotFoundError(f"watch list: no forecasts/model={CLIMATOLOGY}/date={day} in {lake.root}; "
                                f"run `gdelt-forecast baselines --date {day}` first")
    clim = _probs(lake, CLIMATOLOGY, day)[key + ["probability"]].rename(columns={"probability": "climatology"})
    base_run = reference_baseline(lake, day, cfg.score_days, exclude=run)
    if base_run:
        base = _probs(lake, base_run, day)[key + ["probability"]].rename(columns={"probability": "baseline"})
    else:
        base = clim.rename(columns={"climatology": "baseline"})
    df = fc.merge(clim, on=key, how="left").merge(base, on=key, how="left")
    known = set(clim.country)  # sparse rows: a country in climatology but without the label has P = 0
    df = df[df.country.isin(known)].copy()
    df[["climatology", "baseline"]] = df[["climatology", "baseline"]].fillna(0.0)
    if cfg.usual == "both":
        hi, lo = np.maximum(df.climatology, df.baseline), np.minimum(df.climatology, df.baseline)
    else:
        hi = lo = df.climatology
    p = df.probability
    df["direction"] = np.where(p > hi, "rise", np.where(p < lo, "fall", ""))
    df["usual"] = np.where(p > hi, hi, np.where(p < lo, lo, df.climatology))
    df["difference"] = np.where(df.direction == "", 0.0, p - df.usual)
    df["ratio"] = (p + EPS) / (df.usual + EPS)
    quad = df.level == "quad"  # vectorised is_conflict
    df["conflict"] = (quad & df.code.isin(["3", "4"])) | (~quad & df.root_code.isin(CONFLICT_ROOTS))
    names = {c: cameo.country_name(c) or c for c in df.country.unique()}
    df["country_name"] = df.country.map(names)
    df["region"] = df.country.map({c: regions.region(c) for c in names})
    df["baseline_run"] = base_run or CLIMATOLOGY
    df["against"] = cfg.usual
    df["model_run"] = run
    return df.reset_index(drop=True)


def shown_actor_pairs(lake: Lake, day: DateLike, rows: pd.DataFrame, cfg: WatchlistConfig) -> list:
    """The actor pairs shown for ``rows`` (of :func:`departures`): the history's, or the run's as ``cfg`` says
    (:func:`pipeline.scoring.actors.shown_pairs`; docs/report.md "Actor pairs")."""
    return shown_pairs(lake, day, rows, cfg.actor_run_weight, cfg.actor_days, cfg.actor_backoff)


def rank(df: pd.DataFrame, direction: str, conflict: bool | None, top: int, min_difference: float = 0.0
         ) -> pd.DataFrame:
    """The ``top`` rows of ``df`` in ``direction`` ("rise"/"fall"), optionally only conflict labels."""
    g = df[(df.direction == direction) & (df.difference.abs() > min_difference)]
    if conflict is not None:
        g = g[g.conflict == conflict]
    g = g.assign(_abs=g.difference.abs(), _lr=np.abs(np.log(g.ratio)))
    g = g.sort_values(["_abs", "_lr", "country", "level", "code"], ascending=[False, False, True, True, True])
    return g.drop(columns=["_abs", "_lr"]).head(top)


def watchlist(lake: Lake, day: DateLike, run: str | None = None, cfg: WatchlistConfig | None = None,
              frame: pd.DataFrame | None = None) -> pd.DataFrame:
    """The day's watch list: four ranked lists stacked, with a ``list`` column.

    ``list`` is one of ``rises``, ``falls``, ``conflict rises``, ``conflict falls``;
    ``rank`` is 1-based within each list. ``frame`` reuses a :func:`departures` result.
    """
    cfg = cfg or WatchlistConfig()
    day = as_date(day)
    df = frame if frame is not None else departures(lake, day, run, cfg)
    run = str(df.model_run.iloc[0]) if len(df) else primary_run(lake, day, run)
    parts = []
    for name, (direction, conflict) in LISTS.items():
        g = rank(df, direction, conflict, cfg.top, cfg.min_difference).copy()
        g.insert(0, "list", name)
        g["rank"] = np.arange(1, len(g) + 1)
        parts.append(g)
    out = pd.concat(parts, ignore_index=True) if parts else df.head(0)
    phrases = future_phrases(lake, run, day, set(zip(out.country, out.level, out.code)))
    out["actors"] = [pair_text(p, cfg.n_pairs) for p in shown_actor_pairs(lake, day, out, cfg)]
    shown = [phrases.get((c, lv, code), [])[:cfg.n_phrases] for c, lv, code in zip(out.country, out.level, out.code)]
    out["phrases"] = [[ph for ph, _ in p] for p in shown]
    out["phrase_shares"] = [[share for _, share in p] for p in shown]
    return out[["list"] + COLUMNS].reset_index(drop=True)


# ================================================================ the ``watchlist`` table
def write_watchlist(lake: Lake, day: DateLike, run: str | None = None, cfg: WatchlistConfig | None = None,
                    frame: pd.DataFrame | None = None) -> pd.DataFrame:
    """The stage: compute :func:`watchlist` for ``day`` and replace ``watchlist/model=<run>/<day>``; returns the rows.

    Idempotent: the rows depend only on the lake (``forecasts``, ``futures``,
    ``scores``) and ``cfg``, so a re-run writes the same rows.
    """
    day = as_date(day)
    w = watchlist(lake, day, run, cfg, frame=frame)
    run = str(w.model_run.iloc[0]) if len(w) else primary_run(lake, day, run)
    cols = {f.name: w[f.name].tolist() for f in WATCHLIST_SCHEMA}
    cols["phrases"] = [list(p) for p in w.phrases]
    cols["phrase_shares"] = [list(p) for p in w.phrase_shares]
    table = pa.Table.from_pydict(cols, schema=WATCHLIST_SCHEMA)
    lake.write_partition(TABLE, table, day, schema=WATCHLIST_SCHEMA, model=run)
    return w


def read_watchlist(lake: Lake, day: DateLike, run: str | None = None, top: int | None = None) -> pd.DataFrame:
    """``watchlist/model=<run>/<day>`` (run: :func:`primary_run`) as written, with at most ``top`` rows per list.

    Raises ``FileNotFoundError`` naming the command that writes it when the partition is absent.
    """
    day = as_date(day)
    run = primary_run(lake, day, run)
    if not lake.has_partition(TABLE, day, model=run):
        raise FileNotFoundError(f"no {TABLE}/model={run}/{day} in {lake.root}; run `gdelt-forecast watchlist "
                                f"--date {day}` (the daily flow and `gdelt-forecast report` write it)")
    stored = set(pq.read_schema(lake.files(TABLE, day, day, model=run)[0]).names)
    w = lake.read(TABLE, day, day, columns=[c for c in WATCHLIST_SCHEMA.names if c in stored], model=run).to_pandas()
    if "against" not in w:  # written before the column existed: what its rows tell ("" when they fit either)
        w["against"] = _inferred_against(w) or ""
    # written before the column existed (absent, or null after `lake upgrade`): not recorded
    w["phrase_shares"] = [[] if p is None else list(p) for p in w.get("phrase_shares", [None] * len(w))]
    order = {name: i for i, name in enumerate(LISTS)}
    w = w.sort_values(["list", "rank"], key=lambda s: s.map(order) if s.name == "list" else s, kind="stable")
    if top is not None:
        w = w[w["rank"] <= top]
    w["phrases"] = [list(p) for p in w.phrases]
    return w[["list"] + COLUMNS].reset_index(drop=True)


def stored_top(w: pd.DataFrame) -> int:
    """The longest list of a stored watch list (≤ the ``top`` it was written with)."""
    return int(w["rank"].max()) if len(w) else 0


def ensure_watchlist(lake: Lake, day: DateLike, run: str | None = None, cfg: WatchlistConfig | None = None,
                     frame: pd.DataFrame | None = None, usual: str | None = None) -> pd.DataFrame:
    """The stored watch list of ``day``, written first when absent or older than its inputs (or when ``cfg`` is given).

    What the report calls: after the daily flow's watch-list stage it only reads;
    ``gdelt-forecast report --top N`` (an explicit ``cfg``) rewrites the partition with N rows per list.
    ``usual``: the usual the list should be against (``frame``'s); a stored list written against the other
    one (before ``evaluate.watchlist_usual`` changed) is rewritten, keeping its length.
    """
    from pipeline.core.status import LakeStatus

    day = as_date(day)
    run = primary_run(lake, day, run)
    if cfg is not None or not LakeStatus(lake).done(TABLE, day, model_run=run):
        write_watchlist(lake, day, run, cfg, frame=frame)
        return read_watchlist(lake, day, run)
    stored = read_watchlist(lake, day, run)
    if usual is not None and written_against(stored) not in (usual, None):
        write_watchlist(lake, day, run, WatchlistConfig(top=stored_top(stored) or WatchlistConfig.top, usual=usual),
                        frame=frame)
        stored = read_watchlist(lake, day, run)
    return stored


def written_against(w: pd.DataFrame) -> str | None:
    """Which usual a watch list was written against: its ``against`` column; for a partition written before that
    column, as far as its rows tell (None when they fit either, or the list is empty)."""
    if "against" in w and len(w) and (w.against != "").all():
        return str(w.against.iloc[0])
    return _inferred_against(w)


def _inferred_against(w: pd.DataFrame) -> str | None:
    """``both`` when some row's usual is not its climatology, ``climatology`` when some row departs from
    climatology in a way ``both`` would not list (between climatology and the baseline), None when the rows fit
    either."""
    if w.empty:
        return None
    usual, clim, base = (w[c].to_numpy(float) for c in ("usual", "climatology", "baseline"))
    if not np.allclose(usual, clim):
        return "both"
    p = w.probability.to_numpy(float)
    inside = (p > np.minimum(clim, base)) & (p < np.maximum(clim, base))
    return "climatology" if inside.any() else None


def headline(w: pd.DataFrame, n: int = 8, falls: int = 2) -> pd.DataFrame:
    """The first screen of a watch list: the ``n − falls`` largest rises and the ``falls`` largest falls.

    One row per (country, root) — an event row and its root say the same thing
    — from the ``rises``, ``conflict rises`` and ``falls`` lists. The falls have their own slots (so many small
    rises never hide them); the rows come largest |difference| first, whatever their direction.
    """
    g = w[w.list.isin(["rises", "conflict rises", "falls"])]
    g = g.assign(_root=[c if lv == "quad" else c[:2] for lv, c in zip(g.level, g.code)])
    g = g.assign(_abs=g.difference.abs()).sort_values(["_abs", "country", "level", "code"],
                                                      ascending=[False, True, True, True], kind="stable")
    g = g.drop_duplicates(["country", "_root"])
    out = pd.concat([g[g.direction == "rise"].head(n - falls), g[g.direction == "fall"].head(falls)])
    out = out.sort_values(["_abs", "country", "level", "code"], ascending=[False, True, True, True], kind="stable")
    return out.drop(columns=["_root", "_abs"]).reset_index(drop=True)


def happened(rows: pd.DataFrame, outcomes, day: DateLike) -> np.ndarray:
    """Did each row's (country, level, code) occur on ``day``? (``outcomes``: :class:`Outcomes` holding ``day``;
    a float array, NaN where the country or the day has no ``country`` rows.)"""
    from pipeline.cameo.labels import label_space

    labels, at = label_space(), outcomes.country_index()
    di = outcomes.day_index(as_date(day))
    out = np.full(len(rows), np.nan)
    if di is None:
        return out
    for i, (c, lv, code) in enumerate(zip(rows.country, rows.level, rows.code)):
        if c in at:
            out[i] = float(outcomes.y[lv][di, at[c], labels[lv].index[code]])
    return out


def record(lake: Lake, days: list[dt.date], run: str, outcomes) -> pd.DataFrame:
    """The watch lists of ``run`` stored for ``days`` against what happened: per list, the rows listed on days that
    are over (``outcomes``), their mean ``usual`` and ``probability`` and the share that ``happened``. A list worth
    reading has its rises happen more often than their usual said and its falls less often. Days without a
    stored watch list or outcomes are left out (``days``: how many were scored)."""
    parts = []
    for d in days:
        if not lake.has_partition(TABLE, d, model=run) or outcomes is None or outcomes.day_index(d) is None:
            continue
        w = read_watchlist(lake, d, run)
        parts.append(w.assign(happened=happened(w, outcomes, d), day=d))
    cols = ["list", "rows", "days", "usual", "probability", "happened"]
    if not parts:
        return pd.DataFrame(columns=cols)
    w = pd.concat(parts, ignore_index=True).dropna(subset=["happened"])
    g = w.groupby("list", sort=False)
    out = pd.DataFrame({"rows": g.size(), "days": g.day.nunique(), "usual": g.usual.mean(),
                        "probability": g.probability.mean(), "happened": g.happened.mean()})
    return out.reindex([n for n in LISTS if n in out.index]).reset_index()[cols]
