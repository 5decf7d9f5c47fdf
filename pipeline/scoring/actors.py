"""Who does it: the actor pairs behind a label, observed, from history, and scored.

A forecast row carries its most likely ``(actor1, actor2)`` country pairs (``forecasts.actor_pairs``; the watch
list and the page show them). For a model run they come from the sampled futures (docs/forecast.md, step 6);
:func:`history_pairs` gives the same thing from the label's own past: the pairs of the country's events of that
label over the days before the target, most frequent first. :func:`pair_scores` says how well either named the
pairs of the events that then happened:

- ``coverage`` — the share of the label's events on the day (those with at least one actor country known) whose
  pair is among the row's first ``k`` pairs (``k`` = what a page shows, 3 by default);
- ``top1`` — 1 when the row's first pair is the day's most frequent pair (any of them, on a tie).

Only rows whose label occurred that day with a known pair are scored (an actor pair is a forecast of *who*, given
that it happens). The pairs are actor *geographies* (``Actor1Geo_CountryCode``, ``Actor2Geo_CountryCode``), the
countries the phrases name; a pair with neither country known says nothing and is left out on both sides, as on
the page. The history's pairs name more of the next day's events than the futures' (docs/report.md "Actor
pairs"), so the page shows them (:func:`shown_pairs`); :func:`evaluate_pairs` scores both in every evaluation and
``bench/actor_pairs.py`` compares variants of them on held-out days.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.cameo import codes as cameo
from pipeline.core.lake import DateLike, Lake, as_date
from pipeline.core.schemas import FORECASTS_SCHEMA
from pipeline.forecast.table import MIN_PAIR_SHARE

LEVELS: tuple[str, ...] = ("event", "base", "root")
"""The levels with actor pairs (a QuadClass has none)."""
KEY: list[str] = ["country", "level", "code"]
PAIR: list[str] = ["actor1", "actor2"]

PAIRS_SQL = """
    WITH e AS (
        SELECT CAST(date AS DATE) AS day, ActionGeo_CountryCode AS country, EventCode, EventBaseCode, EventRootCode,
               coalesce(Actor1Geo_CountryCode, '') AS actor1, coalesce(Actor2Geo_CountryCode, '') AS actor2
        FROM read_parquet($paths, hive_partitioning = true)
        WHERE {located} AND ActionGeo_CountryCode <> ''
          AND (coalesce(Actor1Geo_CountryCode, '') <> '' OR coalesce(Actor2Geo_CountryCode, '') <> ''))
    SELECT day, country, 'event' AS level, EventCode AS code, actor1, actor2, count(*) AS n FROM e
        WHERE EventCode <> '' GROUP BY ALL
    UNION ALL
    SELECT day, country, 'base', EventBaseCode, actor1, actor2, count(*) FROM e WHERE EventBaseCode <> '' GROUP BY ALL
    UNION ALL
    SELECT day, country, 'root', EventRootCode, actor1, actor2, count(*) FROM e WHERE EventRootCode <> '' GROUP BY ALL
"""
"""Events with at least one actor country known, by (day, location, level, code, actor geographies): each event
once at each of the levels event, base and root. ``{located}``: which locations (:func:`observed_pairs`)."""


def observed_pairs(lake: Lake, start: DateLike | None = None, end: DateLike | None = None,
                   countries: Iterable[str] | None = None, by_day: bool = True) -> pd.DataFrame:
    """Columns ``day, country, level, code, actor1, actor2, n``: events per pair, label and country-day.

    One DuckDB pass over the ``country`` partitions in [start, end] (:data:`PAIRS_SQL`), located in
    ``countries`` (default: all). An unknown actor country is ``""``. ``by_day=False`` sums the days (no ``day``
    column; what :func:`history_pairs` needs for one target, read in a fraction of the time).
    """
    files = lake.files("country", start, end)
    if not files:
        raise FileNotFoundError(f"no partitions of table 'country' in {lake.root} for {start or '-inf'} … "
                                f"{end or '+inf'}: run `gdelt-forecast ingest` and `reduce` for those days first")
    import duckdb

    with duckdb.connect() as con:
        params = {"paths": [f.as_posix() for f in files]}
        if countries is None:
            sql = PAIRS_SQL.format(located="ActionGeo_CountryCode IS NOT NULL")
        else:
            sql = PAIRS_SQL.format(located="list_contains($countries, ActionGeo_CountryCode)")
            params["countries"] = sorted(set(countries))
        if not by_day:
            sql = f"SELECT {', '.join(KEY + PAIR)}, sum(n) AS n FROM ({sql}) GROUP BY ALL"
        df = con.execute(sql, params).df()
    for c in KEY + PAIR:
        df[c] = df[c].astype(object)
    if not by_day:
        return df[KEY + PAIR + ["n"]]
    df["day"] = pd.to_datetime(df["day"]).dt.date
    return df[["day"] + KEY + PAIR + ["n"]]


def _ranked(g: pd.DataFrame, key: list[str], top: int) -> pd.DataFrame:
    """Rows ``key + PAIR + share`` ranked by share within ``key`` (ties: by actor codes), the first ``top`` kept."""
    g = g.sort_values(key + ["share"] + PAIR, ascending=[True] * len(key) + [False, True, True], kind="stable")
    g = g.assign(rank=g.groupby(key).cumcount())
    return g[g["rank"] < top].reset_index(drop=True)


def _window(observed: pd.DataFrame, target: dt.date, days: int | None) -> pd.DataFrame:
    past = observed[observed.day < target]
    return past if days is None else past[past.day >= target - dt.timedelta(days=days)]


PARENTS: dict[str, tuple[tuple[str, int], ...]] = {
    "event": (("base", 3), ("root", 2)), "base": (("root", 2),), "root": ()}
"""A label's parents in the back-off: (level, length of the code prefix)."""


def history_pairs(observed: pd.DataFrame, target: DateLike, days: int | None = None, top: int = 5,
                  backoff: float = 0.0, keys: pd.DataFrame | None = None) -> pd.DataFrame:
    """The ``top`` pairs of each (country, label) over the ``days`` days before ``target`` (None: all before).

    Columns ``country, level, code, rank, actor1, actor2, share``, ``rank`` 0 the most likely. ``share`` is the
    pair's part of the label's events with a known pair in the window. With ``backoff`` β > 0 a label also reads
    its parents (an event code its base and root code, then the country's events of any label):
    score = share(label) + β·share(parent) + β²·share(grandparent) …, renormalised over the kept candidates —
    so a label seen rarely (or never) in the country still gets the pairs its family has. ``keys`` (columns ``country,
    level, code``) says which labels to give pairs (default: those seen in the window). Only days strictly before
    ``target`` are read; an ``observed`` without a ``day`` column (``observed_pairs(by_day=False)``) is taken as
    the window already.
    """
    past = _window(observed, as_date(target), days) if "day" in observed else observed
    own = past.groupby(KEY + PAIR, as_index=False, sort=False)["n"].sum()
    own["share"] = own.n / own.groupby(KEY)["n"].transform("sum")
    if backoff <= 0:
        out = _ranked(own, KEY, top)
        if keys is not None:
            out = out.merge(keys[KEY].drop_duplicates(), on=KEY)
        return out[KEY + ["rank"] + PAIR + ["share"]]
    keys = own[KEY].drop_duplicates() if keys is None else keys[KEY].drop_duplicates()
    country = past[past.level == "root"].groupby(["country"] + PAIR, as_index=False)["n"].sum()
    country["share"] = country.n / country.groupby("country")["n"].transform("sum")
    country = _ranked(country, ["country"], top)[["country"] + PAIR + ["share"]]
    parts = []
    for level in LEVELS:
        k = keys[keys.level == level]
        if k.empty:
            continue
        cands = [k.merge(own[own.level == level][KEY + PAIR + ["share"]], on=KEY)]
        for i, (parent, n) in enumerate(PARENTS[level], start=1):
            p = _ranked(own[own.level == parent], KEY, top)[["country", "code"] + PAIR + ["share"]]
            cands.append(k.assign(_p=k.code.str[:n]).merge(p.rename(columns={"code": "_p"}), on=["country", "_p"])
                         .drop(columns="_p").assign(share=lambda d, w=backoff ** i: d.share * w))
        depth = len(PARENTS[level]) + 1
        cands.append(k.merge(country, on="country").assign(share=lambda d: d.share * backoff ** depth))
        g = pd.concat(cands, ignore_index=True).groupby(KEY + PAIR, as_index=False)["share"].sum()
        g["share"] = g.share / g.groupby(KEY)["share"].transform("sum")
        parts.append(_ranked(g, KEY, top))
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=KEY + ["rank"] + PAIR + ["share"])
    return out[KEY + ["rank"] + PAIR + ["share"]].reset_index(drop=True)


def as_pair_lists(pairs: pd.DataFrame) -> dict[tuple[str, str, str], list[dict]]:
    """(country, level, code) → ``[{"actor1", "actor2", "share"}, …]``, best first (the ``actor_pairs`` form)."""
    out: dict[tuple[str, str, str], list[dict]] = {}
    p = pairs.sort_values(KEY + ["rank"])
    cols = [p[c].to_numpy(object) for c in KEY + PAIR] + [p["share"].to_numpy(float)]
    for country, level, code, a1, a2, share in zip(*cols):
        out.setdefault((country, level, code), []).append(
            {"actor1": a1 or None, "actor2": a2 or None, "share": float(share)})
    return out


def forecast_pairs(lake: Lake, run: str, day: DateLike, levels: Sequence[str] = LEVELS) -> pd.DataFrame:
    """A run's ``actor_pairs`` on ``day`` as rows ``country, level, code, rank, actor1, actor2, share``."""
    t = lake.read("forecasts", day, day, model=run, columns=KEY + ["actor_pairs"])
    return pairs_frame(t.filter(pc.is_in(t["level"], value_set=pa.array(list(levels), pa.string()))))


def pairs_frame(rows: pd.DataFrame | pa.Table) -> pd.DataFrame:
    """Rows with ``country, level, code, actor_pairs`` (lists of ``{"actor1", "actor2", "share"}``) → a row a pair.

    Pairs with neither country are left out (the page leaves them out too) and the rest re-ranked. Flattened by
    pyarrow (a day's forecasts hold ~10⁵ pairs).
    """
    pairs_type = FORECASTS_SCHEMA.field("actor_pairs").type
    t = rows if isinstance(rows, pa.Table) else pa.table(
        {**{c: pa.array(rows[c].to_numpy(object), pa.string()) for c in KEY},
         "actor_pairs": pa.array(list(rows["actor_pairs"]), pairs_type)})
    lists = t["actor_pairs"].combine_chunks() if t.num_rows else pa.array([], pairs_type)
    flat = pc.list_flatten(lists)
    a1, a2 = (pc.fill_null(flat.field(f), "").to_numpy(zero_copy_only=False).astype(object) for f in PAIR)
    keep = (a1 != "") | (a2 != "")
    parent = pc.list_parent_indices(lists).to_numpy()[keep]
    rank = np.arange(len(parent)) - np.searchsorted(parent, parent, side="left")  # parents are in order
    out = {c: t[c].to_numpy().astype(object)[parent] if len(parent) else np.array([], object) for c in KEY}
    share = pc.fill_null(flat.field("share"), 0.0).to_numpy(zero_copy_only=False).astype(np.float64)[keep]
    return pd.DataFrame({**out, "rank": rank.astype(np.int64), "actor1": a1[keep], "actor2": a2[keep],
                         "share": share}, columns=KEY + ["rank"] + PAIR + ["share"])


def shown_pairs(lake: Lake, day: DateLike, rows: pd.DataFrame, run_weight: float = 0.0, days: int = 30,
                backoff: float = 0.1, top: int = 5) -> list:
    """The actor pairs to show for each of ``rows`` (``country, level, code, actor_pairs``), in the same order.

    ``run_weight``·(the row's own pairs) + (1 − ``run_weight``)·(:func:`history_pairs` over the ``days`` before
    ``day``, with ``backoff``), as lists in the ``actor_pairs`` form; after the first, pairs under
    ``MIN_PAIR_SHARE`` are left out (as the futures' are: they would read "0 %"). A row the history has nothing
    for keeps its own pairs; QuadClass rows, and every row when ``run_weight`` is 1 or the lake has no ``country``
    partition in the window, keep theirs unchanged.
    """
    day = as_date(day)
    own = list(rows.actor_pairs)
    scored = rows[rows.level.isin(LEVELS)]
    if run_weight >= 1 or scored.empty:
        return own
    try:
        obs = observed_pairs(lake, day - dt.timedelta(days=days), day - dt.timedelta(days=1), set(scored.country),
                             by_day=False)
    except FileNotFoundError:
        return own
    hist = history_pairs(obs, day, days, top=top, backoff=backoff, keys=scored)
    mixed = mix_pairs(pairs_frame(scored), hist, run_weight, top)
    mixed = as_pair_lists(mixed[(mixed["rank"] == 0) | (mixed.share >= MIN_PAIR_SHARE)])
    return [mixed.get((c, lv, code), p) for c, lv, code, p in zip(rows.country, rows.level, rows.code, own)]


UNPLACED = "(unplaced)"
"""How a pair names an actor whose country GDELT does not know (its geography empty)."""


def pair_text(pairs, n: int = 3) -> str:
    """``"Nigeria → Chad (40%); Nigeria → (unplaced) (25%)"``: the first ``n`` pairs that name at least one actor
    country (a pair with neither placed says nothing and is left out), as the page and the watch list show them."""
    if pairs is None or len(pairs) == 0:
        return ""
    out = []
    for p in list(pairs):
        if not p["actor1"] and not p["actor2"]:
            continue
        a1, a2 = (cameo.country_name(a) or a if a else UNPLACED for a in (p["actor1"], p["actor2"]))
        out.append(f"{a1} → {a2} ({p['share']:.0%})")
    return "; ".join(out[:n])


def mix_pairs(a: pd.DataFrame, b: pd.DataFrame, weight: float, top: int = 5) -> pd.DataFrame:
    """Pairs ranked by ``weight``·share in ``a`` + (1 − ``weight``)·share in ``b``.

    A pair absent from one side has 0 there; pairs that end at 0 are left out, so weight 0 gives ``b``'s alone.
    """
    m = pd.concat([a.assign(share=a.share * weight), b.assign(share=b.share * (1.0 - weight))])
    m = m.groupby(KEY + PAIR, as_index=False)["share"].sum()
    return _ranked(m[m.share > 0], KEY, top)[KEY + ["rank"] + PAIR + ["share"]]


def pair_scores(predicted: pd.DataFrame, observed_day: pd.DataFrame, k: int = 3,
                rows: Iterable[tuple[str, str, str]] | None = None) -> pd.DataFrame:
    """Per scored row (country, level, code): ``coverage`` of the day's events by the first ``k`` pairs, ``top1``.

    ``observed_day``: :func:`observed_pairs` rows of one day. ``rows`` limits the scoring to those labels
    (default: every label of ``predicted`` that occurred); a label with no predicted pair scores 0.
    Columns ``country, level, code, n, coverage, top1``.
    """
    obs = observed_day.groupby(KEY + PAIR, as_index=False)["n"].sum()
    keys = (pd.DataFrame(list(rows), columns=KEY) if rows is not None
            else predicted[KEY].drop_duplicates())
    obs = obs.merge(keys.drop_duplicates(), on=KEY)
    if obs.empty:
        return pd.DataFrame(columns=KEY + ["n", "coverage", "top1"])
    total = obs.groupby(KEY)["n"].sum().rename("n")
    best = obs[obs.n == obs.groupby(KEY)["n"].transform("max")]
    shown = predicted[predicted["rank"] < k]
    hit = obs.merge(shown[KEY + PAIR], on=KEY + PAIR).groupby(KEY)["n"].sum().rename("hit")
    first = predicted[predicted["rank"] == 0][KEY + PAIR]
    top1 = best.merge(first, on=KEY + PAIR)[KEY].drop_duplicates().assign(top1=1.0).set_index(KEY)["top1"]
    out = pd.concat([total, hit, top1], axis=1).fillna({"hit": 0.0, "top1": 0.0})
    out["coverage"] = out.hit / out.n
    return out.reset_index()[KEY + ["n", "coverage", "top1"]]


def paired_difference(a: np.ndarray, b: np.ndarray, clusters: Sequence, n_boot: int = 2000, seed: int = 0,
                      alpha: float = 0.05) -> tuple[float, float, float]:
    """Mean of ``a − b`` over rows, with a cluster-bootstrap interval (whole clusters, e.g. countries, redrawn).

    ``a``, ``b``: two forecasters' per-row scores on the same rows. Returns (difference, low, high).
    """
    d = np.asarray(a, float) - np.asarray(b, float)
    if d.size == 0:
        return float("nan"), float("nan"), float("nan")
    if n_boot == 0:  # no interval asked for (evaluate.bootstrap: 0)
        return float(d.mean()), float("nan"), float("nan")
    _, inv = np.unique(np.asarray(clusters, dtype=object).astype(str), return_inverse=True)
    k = int(inv.max()) + 1
    s, n = np.bincount(inv, weights=d, minlength=k), np.bincount(inv, minlength=k).astype(float)
    w = np.random.default_rng(seed).multinomial(k, np.full(k, 1.0 / k), size=n_boot).astype(float)
    boot = (w @ s) / np.maximum(w @ n, 1.0)
    lo, hi = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
    return float(d.mean()), float(lo), float(hi)


def evaluate_pairs(lake: Lake, runs: Sequence[str], days: Sequence[dt.date], k: int = 3, window: int = 30,
                   backoff: float = 0.1, n_boot: int = 2000) -> pd.DataFrame:
    """Score the actor pairs of each run that has some on ``days``, beside the history's on the same rows.

    Rows scored: each (country, label, day) the run gives pairs for that happened with a known pair. One row per
    run × level: ``run, level, rows, countries, coverage, top1, history_coverage, history_top1`` and the run's
    coverage minus the history's with its interval by countries (``diff``, ``diff_lo``, ``diff_hi``). Empty when no
    run has pairs (baselines have none) or the days have no events yet.
    """
    days = sorted(days)
    if not days:
        return pd.DataFrame()
    try:
        obs = observed_pairs(lake, days[0], days[-1])
    except FileNotFoundError:
        return pd.DataFrame()
    per_run: dict[str, list[pd.DataFrame]] = {run: [] for run in runs}
    for day in days:
        today = obs[obs.day == day]
        if today.empty:
            continue
        preds = {run: forecast_pairs(lake, run, day) for run in runs if lake.has_partition("forecasts", day, model=run)}
        preds = {run: p for run, p in preds.items() if not p.empty}
        if not preds:
            continue
        # one history for every run's rows (a backtest's raw and published runs carry the same pairs), from the
        # window summed by DuckDB (a third of the rows a by-day read gives pandas to group)
        keys = pd.concat([p[KEY] for p in preds.values()]).drop_duplicates()
        try:
            past = observed_pairs(lake, day - dt.timedelta(days=window), day - dt.timedelta(days=1),
                                  set(keys.country), by_day=False)
        except FileNotFoundError:  # nothing before the day: every row's history is empty
            past = pd.DataFrame({c: pd.Series(dtype=object) for c in KEY + PAIR} | {"n": pd.Series(dtype=np.int64)})
        hist = history_pairs(past, day, window, backoff=backoff, keys=keys)
        for run, pred in preds.items():
            rows = list(pred[KEY].drop_duplicates().itertuples(index=False, name=None))
            per_run[run].append(pair_scores(pred, today, k, rows).merge(pair_scores(hist, today, k, rows),
                                                                         on=KEY + ["n"], suffixes=("", "_h")))
    out = []
    for run, per_day in per_run.items():
        if not per_day:
            continue
        s = pd.concat(per_day, ignore_index=True)
        for level in LEVELS:
            x = s[s.level == level]
            if x.empty:
                continue
            d, lo, hi = paired_difference(x.coverage.to_numpy(), x.coverage_h.to_numpy(), x.country.to_numpy(),
                                          n_boot=n_boot)
            out.append({"run": run, "level": level, "rows": len(x), "countries": x.country.nunique(),
                        "coverage": x.coverage.mean(), "top1": x.top1.mean(),
                        "history_coverage": x.coverage_h.mean(), "history_top1": x.top1_h.mean(),
                        "diff": d, "diff_lo": lo, "diff_hi": hi})
    return pd.DataFrame(out)
