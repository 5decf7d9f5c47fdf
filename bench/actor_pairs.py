"""Who does it, measured: a run's actor pairs (from its sampled futures) against the label's own history.

For every test day, every (country, label) the run gives pairs for and that then occurred (with at least one
actor country known) is scored by ``pipeline.scoring.actors.pair_scores``: the share of that day's events of
the label whose (actor1, actor2) pair is among the first ``--k`` pairs (coverage; a page shows 3) and whether
the first pair is the day's most frequent (top-1). Side by side on the same rows: the run's pairs, the
history's (``history_pairs``: the label's pairs over the window before the day, with and without back-off to
its parent labels and the country), and mixtures of the two. Paired differences against the run, 95 %
interval by countries. ``--watchlist N`` scores only the rows a page would show (the day's watch list, N rows
per list, against climatology).

    PYTHONPATH=. python bench/actor_pairs.py --lake data/demo/lake --run demo --start 2025-06-03 --end 2025-06-06
"""

from __future__ import annotations

import argparse
import datetime as dt
import time

import pandas as pd

from pipeline.core.lake import Lake, as_date
from pipeline.scoring import actors as A
from pipeline.scoring.watchlist import WatchlistConfig, watchlist


def variants(model: pd.DataFrame, obs: pd.DataFrame, day: dt.date, keys: pd.DataFrame, backoffs, windows,
             weights) -> dict[str, pd.DataFrame]:
    out = {"run": model}
    for w in windows:
        for b in backoffs:
            out[f"history {w or 'all'}d β={b:g}"] = A.history_pairs(obs, day, w, backoff=b, keys=keys)
    hist = A.history_pairs(obs, day, windows[0], backoff=max(backoffs), keys=keys)
    for m in weights:
        out[f"mix {m:g}·run + history β={max(backoffs):g}"] = A.mix_pairs(model, hist, m)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lake", required=True)
    ap.add_argument("--run", required=True, help="the forecast run whose actor pairs are scored")
    ap.add_argument("--start", required=True)
    ap.add_argument("--end", required=True)
    ap.add_argument("--k", type=int, default=3, help="pairs shown per row (coverage counts the first k)")
    ap.add_argument("--backoff", type=float, nargs="+", default=[0.0, 0.1, 0.3])
    ap.add_argument("--window", type=int, nargs="+", default=[30, 7], help="history days (0: all)")
    ap.add_argument("--mix", type=float, nargs="+", default=[0.1, 0.25, 0.5])
    ap.add_argument("--watchlist", type=int, default=0, metavar="N",
                    help="score only the rows of the day's watch list with N rows per list (what a page shows)")
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    lake = Lake(a.lake)
    start, end = as_date(a.start), as_date(a.end)
    obs = A.observed_pairs(lake, None, end)
    windows = [w or None for w in a.window]
    scores: dict[str, list[pd.DataFrame]] = {}
    day = start
    while day <= end:
        if not lake.has_partition("forecasts", day, model=a.run) or not (obs.day == day).any():
            print(f"{day}: no forecasts of {a.run} or no events in the lake: not scored")
            day += dt.timedelta(days=1)
            continue
        model = A.forecast_pairs(lake, a.run, day)
        keys = model[A.KEY].drop_duplicates()
        if a.watchlist:
            w = watchlist(lake, day, a.run, WatchlistConfig(top=a.watchlist, actor_run_weight=1.0))
            keys = w[w.level.isin(A.LEVELS)][A.KEY].drop_duplicates()
        rows = list(keys.itertuples(index=False, name=None))
        for name, pred in variants(model, obs, day, keys, a.backoff, windows, a.mix).items():
            scores.setdefault(name, []).append(A.pair_scores(pred, obs[obs.day == day], a.k, rows).assign(day=day))
        day += dt.timedelta(days=1)
    s = {name: pd.concat(v, ignore_index=True).sort_values(A.KEY + ["day"], ignore_index=True)
         for name, v in scores.items()}
    ref = s["run"]
    print(f"{a.run}, {start} … {end}: rows scored per level "
          + ", ".join(f"{lv} {int((ref.level == lv).sum())}" for lv in A.LEVELS)
          + f" ({ref.country.nunique()} countries); coverage of the first {a.k} pairs / top-1; "
          "paired difference against the run [95 % by countries]\n")
    print(paired_table(s, "run", "pairs", A.LEVELS, "coverage",
                       lambda x: f"{x.coverage.mean():.3f} / {x.top1.mean():.3f}"))
    print(f"\n{time.perf_counter() - t0:.1f} s")


def paired_table(scores: dict[str, pd.DataFrame], ref: str, what: str, levels, metric: str, describe) -> str:
    """A markdown table: per variant and level ``describe(rows)``, and for every variant but ``ref`` the paired
    difference in ``metric`` against ``ref`` on the same rows (95 % by countries)."""
    lines = [f"| {what} | " + " | ".join(levels) + " |", "|---|" + "---|" * len(levels)]
    for name, g in scores.items():
        cells = []
        for lv in levels:
            x, r = g[g.level == lv], scores[ref][scores[ref].level == lv]
            if x.empty:
                cells.append("—")
                continue
            cell = describe(x)
            if name != ref:
                d, lo, hi = A.paired_difference(x[metric].to_numpy(), r[metric].to_numpy(), x.country.to_numpy())
                cell += f" ({d:+.3f} [{lo:+.3f}, {hi:+.3f}])"
            cells.append(cell)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
