"""Which per-label columns help baseline-learned? Appends columns to the 19 history features of session 8 and
compares, side by side on the same split (docs/forecast.md, sessions 9 and 10). The shipped
:data:`pipeline.features.history.FEATURES` are ``mentions+mentions7+actor`` (the 19 + ``log_mentions1``,
``log_mentions7`` since session 9, + ``log_actor1`` since session 10).

Variants:
- ``none``: the 19 features before session 9 (the shipped ones less the two mention columns);
- ``root``: + the label's root code as a categorical feature (20 values; the QuadClass at quad level), so the
  pooled trees can learn root-specific dynamics (protests are bursty, statements are not);
- ``base``: ``root`` + the label's base code as a second categorical (147 values; the root at root level);
- ``surge``: + the label's event count yesterday and over the last 7 days against its all-history daily mean,
  log(1 + n_1) − log(1 + mean n) and log(1 + mean_7 n) − log(1 + mean n): the change against the country's usual
  in counts, which the shares (0/1 a day) cannot see once a label occurs every day;
- ``root+surge``: both;
- ``late``: + log(1 + the label's events yesterday published in the last 6 hours of the day, DATEADDED ≥ 18:00 UTC):
  a story still running at the end of the day is more likely tomorrow;
- ``mentions``: + log(1 + the mentions of the label's events yesterday, Σ NumMentions): big stories have follow-ups;
- ``fresh``: + log(1 + the label's events yesterday whose SQLDATE is that day or the one before): new events, not
  old ones re-reported;
- ``mentions+mentions7``: ``mentions`` and the same over the last 7 days (daily mean);
- ``…+lead+lead7``: + the label's events yesterday and 7-day mean that are their article's lead event (IsRootEvent);
- ``…+cmentions``: + the country's mentions over all labels, yesterday and the 7-day mean;
- ``mpe``: + the mentions per event of the label (log (1 + m) / (1 + n)), yesterday and over 7 days (scale-free);
- ``…+pmentions``: + the parent label's mentions, yesterday and the 7-day mean;
- ``…+wmentions``: + the label's mentions over every country, yesterday and the 7-day mean;
- ``…+actor(+actor7)``: + the label's events yesterday (and 7-day mean) that involve the country as an actor (an
  actor's geography, Actor1Geo or Actor2Geo, is the country) but are located in another country
  (``Outcomes.actor``): the country's part in the label's events abroad, which GDELT's geolocation may place at
  home tomorrow;
- ``…+partner(+partner7)``: + the label's share yesterday (and over 7 days) among the country's partners, each
  partner weighted by the events linking the two (located in one, an actor's geography in the other) on the days
  before the target;
- ``…+dyad(+dyad7)``: + the label's events yesterday (7-day mean) located in the country with an actor from another
  country (its cross-border share of the label);
- ``…+pois``, ``…+wpois``, ``…+pois7``, ``…+prate`` (session 11): expected counts, the product of a rate and the
  country's volume (mean events a day over the last 7 days) that axis-aligned trees cannot form from the two:
  ``pois`` log(rate · volume), rate = the label's share of the country's events over all history, shrunk toward
  the world's share by :data:`POIS_PRIOR` events; ``wpois`` log(the world's share · volume), what a country of
  this volume would see if it were like the world; ``pois7`` the same with the last 7 days' share shrunk toward
  the all-history rate; ``prate`` log(rate) alone;
- ``…+wkvol``, ``…+wkkind`` (session 11): the country's own weekly cycle, log(1 + its mean events on the earlier
  days of the target's weekday (``wkvol``) or kind, weekend or not (``wkkind``)) − log(1 + its mean events on all
  earlier days): weekends differ by country (Friday–Saturday in much of the Middle East), and the weekday is
  most of what the bar knows over climatology (``bench/learned_estimators.py --drop weekday_sin``);
- ``weekly``: + the label yesterday-a-week (same weekday as the target, 7 days before it) and its share over the
  earlier days of the target's kind (weekend or weekday; the lake's volume halves on weekends).

- ``…+tone(+tone7)``, ``…+ctone``, ``…+neg(+neg7)`` (session 18): the mean AvgTone of the label's events yesterday
  (and over 7 days; NaN on a day without any, which the trees handle), the country's mean tone yesterday against
  its all-history tone, and the label's events of markedly negative tone (AvgTone < −5); read from the ``events``
  table (``country`` has no AvgTone).

``late``, ``mentions`` and ``fresh`` read the ``country`` table once more (DuckDB) for counts the outcomes do not keep.

    PYTHONPATH=. OMP_NUM_THREADS=1 python bench/label_features.py --split 2025-06-01 [--end D] [--variants ...]
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from unittest import mock

import numpy as np

from pipeline.cameo.labels import Outcomes, label_space, load_outcomes
from pipeline.core.lake import Lake
from pipeline.features import history as H
from pipeline.model import learned

VARIANTS = ("none", "root", "base", "surge", "root+surge", "late", "mentions", "fresh", "weekly", "late+mentions+fresh",
            "mentions+mentions7", "mentions+mentions7+lead+lead7", "mentions+mentions7+cmentions",
            "mentions+mentions7+cmentions+wmentions", "mentions+mentions7+pmentions", "mpe",
            "mentions+mentions7+mpe", "mentions+mentions7+actor", "mentions+mentions7+actor+actor7",
            "mentions+mentions7+partner", "mentions+mentions7+partner+partner7",
            "mentions+mentions7+actor+actor7+partner+partner7", "mentions+mentions7+dyad", "mentions+mentions7+dyad+dyad7",
            "mentions+mentions7+actor+partner", "mentions+mentions7+actor+pois", "mentions+mentions7+actor+wpois",
            "mentions+mentions7+actor+pois+wpois", "mentions+mentions7+actor+pois+pois7",
            "mentions+mentions7+actor+prate", "mentions+mentions7+actor+pois+wpois+pois7+prate",
            "mentions+mentions7+actor+wkvol", "mentions+mentions7+actor+wkkind", "mentions+mentions7+actor+wkvol+wkkind",
            "mentions+mentions7+actor+tone", "mentions+mentions7+actor+tone+tone7", "mentions+mentions7+actor+ctone",
            "mentions+mentions7+actor+tone+tone7+ctone", "mentions+mentions7+actor+neg+neg7",
            "mentions+mentions7+actor+places", "mentions+mentions7+actor+sources",
            "mentions+mentions7+actor+places+sources", "mentions+mentions7+actor+places+places7+sources+sources7")
BEFORE = H.FEATURES.index("log_mentions1")
"""The history features before session 9 (the columns this bench appends to; ``mentions+mentions7+actor`` is
what ships since session 10)."""
SQL_EXTRA = ("late", "mentions", "fresh", "lead", "dyad")
"""The per-label counts ``extra_counts`` reads from the ``country`` table."""
POIS_PRIOR = 200.0
"""Events of prior weight toward the world's rate in the expected-count columns (``pois``, ``pois7``, ``prate``)."""
TONE_EXTRA = ("tone_sum", "neg")
"""The per-label sums ``extra_counts`` reads from the ``events`` table (``AvgTone`` is not in ``country``): the sum of
the events' AvgTone, and the events of markedly negative tone (AvgTone < −5)."""
BREADTH_EXTRA = ("places", "sources")
"""How widely the label's events spread (session 21), read from the ``events`` table at each level: the distinct
places they are located at (ActionGeo_FeatureID) and the distinct web sites reporting them (SOURCEURL's host)."""
EXTRA = SQL_EXTRA + ("actor",) + TONE_EXTRA + BREADTH_EXTRA
"""Every per-label count of ``extra_counts`` (``actor`` is ``Outcomes.actor``, behind the shipped ``log_actor1``)."""


def label_ids(level: str, kind: str) -> np.ndarray:
    """(L,) integer id of each label's root (``kind="root"``) or base code, at ``level``."""
    ls = label_space()
    codes = ls[level].codes
    if level == "quad":
        return np.arange(len(codes))
    if kind == "root" or level == "root":
        return np.array([ls["root"].index[ls.root_of[c]] for c in codes])
    return np.array([ls["base"].index[c[:3]] for c in codes])


def extra_counts(lake: Lake, outcomes: Outcomes, tone: bool = False,
                 breadth: bool = False) -> dict[str, dict[str, np.ndarray]]:
    """{name of :data:`EXTRA`: {level: (Dy, C, L) float64}} on the outcomes' day and country axes; the
    :data:`TONE_EXTRA` sums only with ``tone`` and the :data:`BREADTH_EXTRA` counts only with ``breadth`` (they scan
    the larger ``events`` table)."""
    import duckdb

    df = duckdb.connect().execute(
        """SELECT CAST(date AS DATE) AS day, ActionGeo_CountryCode AS country, EventCode AS event,
                  EventBaseCode AS base, EventRootCode AS root,
                  sum(CASE WHEN hour(DATEADDED) >= 18 THEN 1 ELSE 0 END) AS late,
                  sum(NumMentions) AS mentions,
                  sum(CASE WHEN SQLDATE >= CAST(date AS DATE) - 1 THEN 1 ELSE 0 END) AS fresh,
                  sum(CASE WHEN IsRootEvent THEN 1 ELSE 0 END) AS lead,
                  sum(CASE WHEN coalesce(Actor1Geo_CountryCode, ActionGeo_CountryCode) <> ActionGeo_CountryCode
                           OR coalesce(Actor2Geo_CountryCode, ActionGeo_CountryCode) <> ActionGeo_CountryCode
                           THEN 1 ELSE 0 END) AS dyad
           FROM read_parquet(?, hive_partitioning = true) GROUP BY ALL""",
        [[f.as_posix() for f in lake.files("country")]]).df()
    sums = SQL_EXTRA
    if tone:
        by_tone = duckdb.connect().execute(
            """SELECT CAST(date AS DATE) AS day, ActionGeo_CountryCode AS country, EventCode AS event,
                      EventBaseCode AS base, EventRootCode AS root, sum(coalesce(AvgTone, 0)) AS tone_sum,
                      sum(CASE WHEN AvgTone < -5 THEN 1 ELSE 0 END) AS neg
               FROM read_parquet(?, hive_partitioning = true) GROUP BY ALL""",
            [[f.as_posix() for f in lake.files("events")]]).df()
        keys = ["day", "country", "event", "base", "root"]
        df = df.merge(by_tone, on=keys, how="left", validate="one_to_one").fillna({n: 0.0 for n in TONE_EXTRA})
        sums = SQL_EXTRA + TONE_EXTRA
    di = {d: i for i, d in enumerate(outcomes.days)}
    ci = {c: i for i, c in enumerate(outcomes.countries)}
    df = df[df["country"].isin(ci.keys())]
    d_ix = np.array([di[d.date() if hasattr(d, "date") else d] for d in df["day"]])
    c_ix = df["country"].map(ci).to_numpy()
    ls = label_space()
    out: dict[str, dict[str, np.ndarray]] = {name: {} for name in EXTRA}
    out["actor"] = {lv: a.astype(np.float64) for lv, a in outcomes.actor.items()}
    for level in ("event", "base", "root", "quad"):
        if level == "quad":
            l_ix = np.array([ls["quad"].index[str(ls.quad_of_root.get(str(r), 0))] if str(r) in ls.quad_of_root
                             else -1 for r in df["root"]])
        else:
            l_ix = np.array([ls[level].index.get(str(c), -1) for c in df[level]])
        for name, a in add_into_cube(df, sums, outcomes.y[level].shape, d_ix, c_ix, l_ix).items():
            out[name][level] = a
    if breadth:
        out.update(breadth_counts(lake, outcomes, di, ci))
    return out


def breadth_counts(lake: Lake, outcomes: Outcomes, di: dict, ci: dict) -> dict[str, dict[str, np.ndarray]]:
    """{name of :data:`BREADTH_EXTRA`: {level: (Dy, C, L)}}: distinct places and reporting sites of the label's
    events each day, counted at each level itself (a distinct count does not sum from event to base)."""
    import duckdb

    ls = label_space()
    out: dict[str, dict[str, np.ndarray]] = {name: {} for name in BREADTH_EXTRA}
    con = duckdb.connect()
    files = [f.as_posix() for f in lake.files("events")]
    for level, col in (("event", "EventCode"), ("base", "EventBaseCode"), ("root", "EventRootCode"),
                       ("quad", "QuadClass")):
        df = con.execute(
            f"""SELECT CAST(date AS DATE) AS day, ActionGeo_CountryCode AS country, {col} AS code,
                       count(DISTINCT ActionGeo_FeatureID) AS places,
                       count(DISTINCT regexp_extract(SOURCEURL, '^[a-z]+://(?:www[.])?([^/:]+)', 1)) AS sources
                FROM read_parquet(?, hive_partitioning = true) GROUP BY ALL""", [files]).df()
        df = df[df["country"].isin(ci.keys())]
        l_ix = np.array([ls[level].index.get(str(c), -1) for c in df["code"]])
        d_ix = np.array([di[d.date() if hasattr(d, "date") else d] for d in df["day"]])
        c_ix = df["country"].map(ci).to_numpy()
        for name, a in add_into_cube(df, BREADTH_EXTRA, outcomes.y[level].shape, d_ix, c_ix, l_ix).items():
            out[name][level] = a
    return out


def add_into_cube(df, names, shape: tuple[int, ...], d_ix: np.ndarray, c_ix: np.ndarray,
                  l_ix: np.ndarray) -> dict[str, np.ndarray]:
    """{name: (Dy, C, L) float64}: each column ``name`` of ``df``'s rows added at its (day, country, label) index;
    rows whose label index is −1 (a code outside the label space) are skipped."""
    ok = l_ix >= 0
    out = {}
    for name in names:
        a = np.zeros(shape, np.float64)
        np.add.at(a, (d_ix[ok], c_ix[ok], l_ix[ok]), df[name].to_numpy(np.float64)[ok])
        out[name] = a
    return out


def partner_weights(lake: Lake, outcomes: Outcomes) -> np.ndarray:
    """(Dy + 1, C, C) cumulative links between countries: [k, c, c'] = the events on the first k outcome days
    located in c' with an actor's geography in c, or located in c with an actor's geography in c' (c' ≠ c)."""
    import duckdb

    df = duckdb.connect().execute(
        """SELECT CAST(date AS DATE) AS day, ActionGeo_CountryCode AS g, a, count(*) AS n FROM (
               SELECT date, ActionGeo_CountryCode, Actor1Geo_CountryCode AS a FROM read_parquet(?, hive_partitioning = true)
               UNION ALL
               SELECT date, ActionGeo_CountryCode, Actor2Geo_CountryCode FROM read_parquet(?, hive_partitioning = true))
           WHERE a IS NOT NULL AND g IS NOT NULL AND a <> g GROUP BY ALL""",
        [[f.as_posix() for f in lake.files("country")]] * 2).df()
    di = {d: i for i, d in enumerate(outcomes.days)}
    ci = {c: i for i, c in enumerate(outcomes.countries)}
    df = df[df["g"].isin(ci.keys()) & df["a"].isin(ci.keys())]
    W = np.zeros((len(outcomes.days), len(ci), len(ci)))
    d_ix = np.array([di[d.date() if hasattr(d, "date") else d] for d in df["day"]])
    g_ix, a_ix = df["g"].map(ci).to_numpy(), df["a"].map(ci).to_numpy()
    np.add.at(W, (d_ix, a_ix, g_ix), df["n"].to_numpy(np.float64))
    W = W + W.transpose(0, 2, 1)
    return H.prefix_sums(W)


def mean_tone(tone: np.ndarray, n: np.ndarray, k: np.ndarray, w: int | None) -> np.ndarray:
    """Mean tone of the events over the last ``w`` of the first ``k`` days (all of them with ``w`` None) from prefix
    sums of the tone and of the events; NaN where there was no event."""
    s_w, n_w = (c[k] if w is None else H._window(c, k, w)[0] for c in (tone, n))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_w > 0, s_w / n_w, np.nan)


def with_columns(variant: str, extra: dict[str, dict[str, np.ndarray]] | None = None, links: np.ndarray | None = None):
    """``history_features`` with the variant's columns appended; returns (features, number of categorical columns)."""
    shipped = H.history_features
    parts = variant.split("+")

    def features(outcomes: Outcomes, targets, level, labels=None, countries=None) -> H.History:
        h = shipped(outcomes, targets, level, labels, countries)
        h.X = h.X[..., :BEFORE]
        n_t, C, L, _ = h.X.shape
        cols = []
        if "root" in parts or "base" in parts:
            cols.append(np.broadcast_to(label_ids(level, "root")[None, None], (n_t, C, L)))
        if "base" in parts:
            cols.append(np.broadcast_to(label_ids(level, "base")[None, None], (n_t, C, L)))
        if "surge" in parts:
            k = H.days_before(outcomes, sorted(set(targets)))
            wanted = set(outcomes.countries if countries is None else countries)
            rows = np.array([i for i, c in enumerate(outcomes.countries) if c in wanted], np.int64)
            cum = H.prefix_sums(outcomes.counts[level][:, rows].astype(np.float64))  # (Dy+1, C, L)
            n1, _ = H._window(cum, k, 1)
            n7, w7 = H._window(cum, k, 7)
            usual = np.log1p(cum[k] / np.maximum(k, 1)[:, None, None])
            cols += [np.log1p(n1) - usual, np.log1p(n7 / np.maximum(w7, 1)[:, None, None]) - usual]
        k = H.days_before(outcomes, sorted(set(targets)))
        rows = np.array([i for i, c in enumerate(outcomes.countries)
                         if countries is None or c in set(countries)], np.int64)
        for name in SQL_EXTRA + ("actor", "neg") + BREADTH_EXTRA:
            if name in parts:
                cum = H.prefix_sums(extra[name][level][:, rows])
                cols.append(np.log1p(H._window(cum, k, 1)[0]))
                if f"{name}7" in parts:
                    s7, w7 = H._window(cum, k, 7)
                    cols.append(np.log1p(s7 / np.maximum(w7, 1)[:, None, None]))
        if "mpe" in parts:  # mentions per event (scale-free), yesterday and over the last 7 days
            cm, cn = (H.prefix_sums(a[:, rows].astype(np.float64)) for a in (outcomes.mentions[level], outcomes.counts[level]))
            for w in (1, 7):
                m, _ = H._window(cm, k, w)
                n, _ = H._window(cn, k, w)
                cols.append(np.log((m + 1) / (n + 1)))
        if "pmentions" in parts:  # the parent label's mentions (event → base → root → quad), yesterday and 7-day mean
            parent = H.PARENT[level]
            cols_of = (label_space().parent_matrix(level, parent).argmax(axis=1) if parent != level
                       else np.arange(outcomes.y[level].shape[-1]))
            cum = H.prefix_sums(extra["mentions"][parent][:, rows])[..., cols_of]
            s7, w7 = H._window(cum, k, 7)
            cols += [np.log1p(H._window(cum, k, 1)[0]), np.log1p(s7 / np.maximum(w7, 1)[:, None, None])]
        if "wmentions" in parts:  # the label's mentions over every country of the lake, yesterday and 7-day mean
            cum = H.prefix_sums(extra["mentions"][level].sum(1))  # (Dy+1, L)
            s7, w7 = H._window(cum, k, 7)
            for v in (H._window(cum, k, 1)[0], s7 / np.maximum(w7, 1)[:, None]):
                cols.append(np.broadcast_to(np.log1p(v)[:, None, :], h.X.shape[:3]))
        if "partner" in parts:  # the label among the country's partners, weighted by the links before the target
            y = outcomes.y[level].astype(np.float64)  # (Dy, C_all, L)
            cum = H.prefix_sums(y)
            for w in ((1, 7) if "partner7" in parts else (1,)):
                s_w, n_w = H._window(cum, k, w)  # (n_t, C_all, L): occurrences over the last w days, and w
                Wk = links[k][:, rows]  # (n_t, C, C_all): links before each target
                share = np.matmul(Wk, s_w / np.maximum(n_w, 1)[:, None, None])  # (n_t, C, L)
                cols.append(share / np.maximum(Wk.sum(-1), 1e-9)[..., None])
        if {"pois", "wpois", "pois7", "prate"} & set(parts):  # expected counts: the label's rate × the country's volume
            cn = H.prefix_sums(outcomes.counts[level].astype(np.float64))  # (Dy+1, C_all, L)
            ce = H.prefix_sums(outcomes.n_events.astype(np.float64))  # (Dy+1, C_all)
            world_rate = cn[k].sum(1) / np.maximum(ce[k].sum(1), 1.0)[:, None]  # (n_t, L) share of the world's events
            N, V = cn[k][:, rows], ce[k][:, rows]
            rate = (N + POIS_PRIOR * world_rate[:, None]) / (V[..., None] + POIS_PRIOR)  # shrunk to the world's
            v7, n7 = H._window(ce[:, rows], k, 7)
            vol7 = (v7 / np.maximum(n7, 1.0)[:, None])[..., None]  # (n_t, C, 1) mean events a day
            if "pois" in parts:
                cols.append(np.log(rate * vol7 + 1e-4))
            if "wpois" in parts:
                cols.append(np.log(world_rate[:, None] * vol7 + 1e-4))
            if "pois7" in parts:
                N7, _ = H._window(cn[:, rows], k, 7)
                cols.append(np.log((N7 + POIS_PRIOR * rate) / (v7[..., None] + POIS_PRIOR) * vol7 + 1e-4))
            if "prate" in parts:
                cols.append(np.log(rate + 1e-9))  # a label never seen anywhere has rate 0
        if "wkvol" in parts or "wkkind" in parts:  # the country's own weekly cycle of volume (session 11)
            ev = outcomes.n_events[:, rows].astype(np.float64)  # (Dy, C)
            wd = np.array([d.weekday() for d in outcomes.days])
            for part, same in (("wkvol", lambda a, b: a == b), ("wkkind", lambda a, b: (a >= 5) == (b >= 5))):
                if part in parts:
                    ratio = []
                    for i, t in enumerate(sorted(set(targets))):
                        mask = same(wd[:k[i]], t.weekday())
                        usual = ev[:k[i]].mean(0) if k[i] else np.zeros(ev.shape[1])
                        ratio.append(np.log1p(ev[:k[i]][mask].mean(0)) - np.log1p(usual) if mask.any()
                                     else np.zeros(ev.shape[1]))
                    cols.append(np.broadcast_to(np.stack(ratio)[:, :, None], h.X.shape[:3]))
        if "weekly" in parts:
            y = outcomes.y[level][:, rows].astype(np.float64)
            cum = H.prefix_sums(y)
            cols.append(np.where((k >= 7)[:, None, None], cum[np.maximum(k - 6, 0)] - cum[np.maximum(k - 7, 0)], 0.5))
            weekend = np.array([d.weekday() >= 5 for d in outcomes.days])
            same = []
            for i, t in enumerate(sorted(set(targets))):
                mask = (weekend == (t.weekday() >= 5))[:k[i]]
                same.append(y[:k[i]][mask].mean(0) if mask.any() else y[:k[i]].mean(0) if k[i] else y[0] * 0)
            cols.append(np.stack(same))
        if "tone" in parts:  # the mean AvgTone of the label's events (NaN on days without any)
            ct, cn = (H.prefix_sums(a[:, rows].astype(np.float64))
                      for a in (extra["tone_sum"][level], outcomes.counts[level]))
            cols += [mean_tone(ct, cn, k, w) for w in ((1, 7) if "tone7" in parts else (1,))]
        if "ctone" in parts:  # the country's tone yesterday (every event has a quad), against its all-history tone
            ct, cn = (H.prefix_sums(a[:, rows].sum(-1).astype(np.float64))
                      for a in (extra["tone_sum"]["quad"], outcomes.counts["quad"]))
            d1 = mean_tone(ct, cn, k, 1) - mean_tone(ct, cn, k, None)
            cols.append(np.broadcast_to(d1[:, :, None], h.X.shape[:3]))
        if "cmentions" in parts:  # the country's mentions over all labels, yesterday and the 7-day mean
            cum = H.prefix_sums(extra["mentions"]["quad"][:, rows].sum(-1))
            s7, w7 = H._window(cum, k, 7)
            for v in (H._window(cum, k, 1)[0], s7 / np.maximum(w7, 1)[:, None]):
                cols.append(np.broadcast_to(np.log1p(v)[:, :, None], h.X.shape[:3]))
        if cols:
            h.X = np.concatenate([h.X, np.stack(cols, -1).astype(np.float32)], -1)
        return h

    n_cat = ("root" in parts or "base" in parts) + ("base" in parts)
    return features, n_cat


def split_parser(doc: str) -> argparse.ArgumentParser:
    """The arguments of the split protocol (sessions 9–12): the lake, the first and last test day, the country sets."""
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("--lake", default="data/experiment/lake")
    ap.add_argument("--split", default="2025-06-01")
    ap.add_argument("--end", default=None, help="last test day (default: the lake's last)")
    ap.add_argument("--top", type=int, nargs="+", default=[30, 100, 246])
    return ap


def split_days(o: Outcomes, args) -> tuple[dt.date, list, np.ndarray]:
    """The split day, the test days [split, end] and the countries by events before the split, busiest first."""
    split = dt.date.fromisoformat(args.split)
    end = dt.date.fromisoformat(args.end) if args.end else o.days[-1]
    order = np.argsort(-o.n_events[[i for i, d in enumerate(o.days) if d < split]].sum(0), kind="stable")
    return split, [d for d in o.days if split <= d <= end], order


def main() -> None:
    ap = split_parser(__doc__)
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    args = ap.parse_args()
    o = load_outcomes(Lake(args.lake))
    split, test, order = split_days(o, args)
    extra = links = None
    for variant in args.variants:
        if extra is None and any(name in variant for name in EXTRA):
            extra = extra_counts(Lake(args.lake), o, tone=any("tone" in v or "neg" in v for v in args.variants),
                                 breadth=any(n in v for n in BREADTH_EXTRA for v in args.variants))
        if links is None and "partner" in variant:
            links = partner_weights(Lake(args.lake), o)
        features, n_cat = with_columns(variant, extra, links)
        cats = list(range(BEFORE, BEFORE + n_cat))  # the categorical columns come first
        shipped_estimator = learned.make_estimator

        def make(kind, seed=0, **kw):
            est = shipped_estimator(kind, seed, **kw)
            return est.set_params(categorical_features=cats) if cats else est

        fit_and_score(o, split, test, features, order, args.top, f"{variant:10s}", make)


def fit_and_score(o: Outcomes, split: dt.date, test: list, features, order: np.ndarray, tops: list[int],
                  name: str, make=None) -> None:
    """Fit baseline-learned on the days before ``split`` with ``features`` in place of ``history_features`` (and
    ``make`` in place of ``make_estimator``), then print its BSS against climatology on ``test`` for the ``tops``
    busiest countries of ``order``."""
    F = features(o, [o.days[3]], "root").X.shape[-1]
    names = tuple(f"f{i}" for i in range(F))
    with mock.patch.object(learned, "history_features", features), \
            mock.patch.object(learned, "N_FEATURES", F), mock.patch.object(learned, "FEATURES", names), \
            mock.patch.object(learned, "make_estimator", make or learned.make_estimator):
        t0 = time.perf_counter()
        model = learned.fit_learned(o, learned.training_days(o, split), "hgb")
        fit_s = time.perf_counter() - t0
        model.features = list(names)
        P = learned.learned_probabilities(model, o, test)
    for top in tops:
        cs, cells = order[:top], []
        for lv in ("event", "base", "root"):
            Pm = np.stack([P[d][lv][0][cs] for d in test])
            Y = np.stack([o.y[lv][o.day_index(d)][cs] for d in test])
            C = H.smoothed_climatology(o, test, lv, 0.0)[0][:, cs]
            cells.append(f"{lv} {100 * (1 - ((Pm - Y) ** 2).mean() / ((C - Y) ** 2).mean()):+.2f} %")
        print(f"{name} F={F:2d} top {top:3d}  fit {fit_s:4.0f} s  " + " | ".join(cells), flush=True)

if __name__ == "__main__":
    main()
