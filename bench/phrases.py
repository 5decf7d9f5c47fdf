"""Which phrases come true: the futures' phrases on a label against the label's recent phrases.

The watch list shows beside each row up to 3 phrases "[actor1 country] verb [actor2 country]" of the sampled
futures projected onto the label, most frequent first (``pipeline.scoring.watchlist.future_phrases``). A phrase
is an event triple (actor1, CAMEO event code, actor2): the futures' code is the one the phrase was projected onto,
its actors the country names that open and close it. For every (country, label) that happened on a test day
(root and event level, the labels the run has phrases for), precision = the share of the shown phrases whose
triple happened in the country that day, and hit = whether any did. Beside them on the same rows: the label's
most frequent triples in the country over the ``--window`` days before (what happened recently), and the futures'
phrases re-ranked by how often their triple happened recently, and only those found in at least ``--min-share``
of the country's futures. Paired differences against the futures, 95 % interval by countries.

    PYTHONPATH=. python bench/phrases.py --lake data/experiment/lake --run exp22-c100 --start 2025-06-01 --end 2025-06-06
"""

from __future__ import annotations

import argparse
import datetime as dt
import time

import pandas as pd

from pipeline.cameo.phrases import split_actors
from pipeline.core.lake import Lake, as_date
from pipeline.forecast.futures import phrase_codes
from bench.actor_pairs import paired_table
from pipeline.scoring.actors import observed_pairs

LEVELS = {"event": None, "root": 2}
TRIPLE = ["actor1", "code", "actor2"]


def observed_triples(lake: Lake, start: dt.date, end: dt.date) -> pd.DataFrame:
    """Events by (day, location, actor1, EventCode, actor2), at least one actor country known: the event level of
    :func:`pipeline.scoring.actors.observed_pairs`."""
    obs = observed_pairs(lake, start, end)
    return obs[obs.level == "event"].drop(columns="level").reset_index(drop=True)


def label_of(code: str, level: str) -> str:
    return code if level == "event" else code[:LEVELS[level]]


def future_triples(lake: Lake, run: str, day: dt.date) -> pd.DataFrame:
    """(country, level, label, actor1, code, actor2, futures): the futures' phrases as triples, counted once a future."""
    rows = []
    for country, phrases, codes in phrase_codes(lake, run, day):
        seen = set()
        for phrase, code in zip(phrases, codes):
            if not code:
                continue
            a1, _, a2 = split_actors(phrase)
            for level in LEVELS:
                k = (level, label_of(code, level), a1 or "", code, a2 or "")
                if k not in seen:
                    seen.add(k)
                    rows.append((country,) + k)
    df = pd.DataFrame(rows, columns=["country", "level", "label"] + TRIPLE)
    return df.groupby(list(df.columns), as_index=False).size().rename(columns={"size": "futures"})


def futures_per_country(lake: Lake, run: str, day: dt.date) -> dict[str, int]:
    """K: the number of futures each country has on ``day``."""
    counts: dict[str, int] = {}
    for country, _, _ in phrase_codes(lake, run, day):
        counts[country] = counts.get(country, 0) + 1
    return counts


def shown(df: pd.DataFrame, by: str, k: int) -> pd.DataFrame:
    """The first ``k`` triples of each (country, level, label) by ``by`` (ties: by triple)."""
    df = df.sort_values(["country", "level", "label", by] + TRIPLE,
                        ascending=[True, True, True, False, True, True, True], kind="stable")
    return df[df.groupby(["country", "level", "label"]).cumcount() < k]


def scores(pred: pd.DataFrame, today: pd.DataFrame, keys: pd.DataFrame) -> pd.DataFrame:
    """Per key that happened: precision of the shown triples, whether any happened, how many were shown, and the
    share of the label's events that day whose triple is shown (coverage)."""
    key = ["country", "level", "label"]
    happened = today[TRIPLE + ["country"]].drop_duplicates().assign(hit=1.0)
    p = pred.merge(happened, on=["country"] + TRIPLE, how="left").fillna({"hit": 0.0})
    g = p.groupby(key).hit.agg(["mean", "max", "size"]).rename(
        columns={"mean": "precision", "max": "any", "size": "shown"})
    ev = pd.concat([today.assign(level=lv, label=[label_of(c, lv) for c in today.code]) for lv in LEVELS])
    ev = ev.merge(keys, on=key)
    cov = ev.merge(pred[key + TRIPLE], on=key + TRIPLE, how="left", indicator=True)
    cov = cov.assign(hit=(cov._merge == "both") * cov.n).groupby(key)[["hit", "n"]].sum()
    g = g.join((cov.hit / cov.n).rename("coverage"), how="outer")
    return keys.merge(g.reset_index(), on=key, how="left").fillna(0.0)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lake", required=True)
    ap.add_argument("--run", required=True)
    ap.add_argument("--start", required=True)
    ap.add_argument("--end", required=True)
    ap.add_argument("--k", type=int, default=3)
    ap.add_argument("--window", type=int, default=30)
    ap.add_argument("--min-share", type=float, nargs="*", default=[0.05, 0.1],
                    help="also the futures' phrases found in at least this share of a country's futures")
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    lake = Lake(a.lake)
    start, end = as_date(a.start), as_date(a.end)
    obs = observed_triples(lake, start - dt.timedelta(days=a.window), end)
    res: dict[str, list[pd.DataFrame]] = {}
    day = start
    while day <= end:
        today = obs[obs.day == day]
        if today.empty or not lake.has_partition("futures", day, model=a.run):
            day += dt.timedelta(days=1)
            continue
        fut = future_triples(lake, a.run, day)
        past = obs[(obs.day < day) & (obs.day >= day - dt.timedelta(days=a.window))]
        hist = pd.concat([past.assign(level=lv, label=[label_of(c, lv) for c in past.code]) for lv in LEVELS])
        hist = hist.groupby(["country", "level", "label"] + TRIPLE, as_index=False).n.sum()
        # the rows: labels the futures name that happened that day
        happened = pd.concat([today.assign(level=lv, label=[label_of(c, lv) for c in today.code]) for lv in LEVELS])
        keys = fut[["country", "level", "label"]].drop_duplicates().merge(
            happened[["country", "level", "label"]].drop_duplicates())
        reranked = fut.merge(hist, on=["country", "level", "label"] + TRIPLE, how="left").fillna({"n": 0})
        reranked["score"] = reranked.n + reranked.futures / 1e3  # recent count first, the futures break ties
        k_futures = futures_per_country(lake, a.run, day)
        share = fut.futures / fut.country.map(k_futures)
        variants = {"futures": shown(fut, "futures", a.k), "recent events": shown(hist, "n", a.k),
                    "futures, re-ranked by recent events": shown(reranked, "score", a.k)}
        for m in a.min_share:
            variants[f"futures in ≥ {m:.0%} of the futures"] = shown(fut[share >= m], "futures", a.k)
        for name, pred in variants.items():
            res.setdefault(name, []).append(scores(pred, today, keys))
        day += dt.timedelta(days=1)
    s = {n: pd.concat(v, ignore_index=True) for n, v in res.items()}
    ref = s["futures"]
    print(f"{a.run}, {start} … {end}: rows " + ", ".join(f"{lv} {int((ref.level == lv).sum())}" for lv in LEVELS)
          + f"; precision of the {a.k} phrases shown / share of rows where one happened / share of the label's "
          "events shown (coverage); "
          "paired difference in precision against the futures [95 % by countries]\n")
    print(paired_table(s, "futures", "phrases", list(LEVELS), "precision",
                       lambda x: f"{x.precision.mean():.3f} / {x['any'].mean():.3f} / {x.coverage.mean():.3f} "
                                 f"({x.shown.mean():.1f} shown)"))
    print(f"\n{time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
