"""Which weekday-aware climatology? Candidate forms of ``baseline-weekday`` side by side, scored against climatology.

Each candidate forecasts every test day d from the outcome days before d only, for every country and label:

- ``share-wd m``: the label's share on the earlier days of d's weekday, shrunk toward climatology by m days:
  (Σ_{t ∈ weekday} y_t + m·p) / (n_weekday + m);
- ``share-kind m``: the same over the days of d's kind (Saturday–Sunday or Monday–Friday);
- ``volume-world-wd``: 1 − (1 − p)^r with r the world's volume on d's weekday over its mean day;
- ``volume-world-kind``: the same with the world's ratio for d's kind;
- ``volume-world-3``: three kinds (Saturday, Sunday, Monday–Friday);
- ``volume-country m``: the country's own ratio for d's kind, shrunk toward the world's by m days — the
  shipped ``baseline-weekday`` (``pipeline.forecast.baselines``; m = ``forecast.weekday_prior_days`` = 8).

Prints BSS against climatology in % at event / base / root for the ``--top`` busiest countries (by events
before ``--split``), pooled over the test days [split, end]:

    PYTHONPATH=. python bench/weekday_baseline.py --split 2025-05-27 --end 2025-05-31   # choose
    PYTHONPATH=. python bench/weekday_baseline.py --split 2025-06-01                    # check
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from bench.label_features import split_days, split_parser
from pipeline.cameo.labels import load_outcomes
from pipeline.core.lake import Lake
from pipeline.forecast.baselines import at_volume, baseline_probabilities, is_weekend


def _kind3(day: dt.date) -> int:
    """0 for Monday–Friday, 5 for Saturday, 6 for Sunday."""
    return 0 if day.weekday() < 5 else day.weekday()


def candidates(o, d: dt.date, lv: str) -> dict[str, np.ndarray]:
    """Every candidate's (C, L) probabilities for target d at level lv."""
    past = np.array([t < d for t in o.days])
    Y, v = o.y[lv][past].astype(np.float64), o.n_events[past].astype(np.float64)
    days = [t for t in o.days if t < d]
    p = Y.mean(0)
    wd = np.array([t.weekday() == d.weekday() for t in days])
    kind = np.array([is_weekend(t) == is_weekend(d) for t in days])
    three = np.array([_kind3(t) == _kind3(d) for t in days])
    world = v.sum(1)

    def world_ratio(mask):
        return np.full(len(o.countries), world[mask].mean() / world.mean())

    out = {"climatology": p}
    for m in (2, 8):
        out[f"share-wd {m}"] = (Y[wd].sum(0) + m * p) / (wd.sum() + m)
    out["share-kind 8"] = (Y[kind].sum(0) + 8 * p) / (kind.sum() + 8)
    out["volume-world-wd"] = at_volume(p, world_ratio(wd))
    out["volume-world-kind"] = at_volume(p, world_ratio(kind))
    out["volume-world-3"] = at_volume(p, world_ratio(three))
    for m in (0.0, 8.0):
        out[f"volume-country {m:g}"] = baseline_probabilities(o, [d], ["weekday"], weekday_prior=m)[d]["weekday"][lv][0]
    return out


def main() -> None:
    args = split_parser(__doc__).parse_args()
    o = load_outcomes(Lake(args.lake))
    _, test, order = split_days(o, args)
    err: dict[tuple[str, str, int], float] = {}
    for lv in ("event", "base", "root"):
        per_day = [candidates(o, d, lv) for d in test]
        Y = np.stack([o.y[lv][o.day_index(d)] for d in test]).astype(np.float64)
        for name in per_day[0]:
            P = np.stack([c[name] for c in per_day])
            for top in args.top:
                cs = order[:top]
                err[name, lv, top] = float(((P[:, cs] - Y[:, cs]) ** 2).mean())
    print(f"test days {test[0]} … {test[-1]}; BSS against climatology in %, event / base / root")
    for name in per_day[0]:
        cells = [f"top {top}: " + " ".join(f"{100 * (1 - err[name, lv, top] / err['climatology', lv, top]):+6.2f}"
                                           for lv in ("event", "base", "root")) for top in args.top]
        print(f"{name:20s} " + " | ".join(cells), flush=True)


if __name__ == "__main__":
    main()
