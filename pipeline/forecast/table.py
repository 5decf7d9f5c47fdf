"""The ``forecasts`` table: its one writer (dense probabilities → rows) and its readers.

A ``forecasts`` partition is ``model=<run>/date=<target day>``: one row per
(country, level, code) with the probability that the label occurs that day,
the number of futures behind it and the most likely actor pairs. Model runs and
baselines (``baseline-<name>``) share the schema, so every run is scored alike.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from pipeline.cameo.labels import LEVELS, LabelSpace, Outcomes, label_space
from pipeline.core.lake import Lake
from pipeline.core.schemas import FORECASTS_SCHEMA

BASELINE_PREFIX = "baseline-"
"""``model_run`` (and ``model=`` partition key) prefix of every baseline: ``baseline-<name>``."""


MIN_PAIR_SHARE = 0.01
"""Actor pairs below this share of a label's mass are not kept after the first (with soft assignment every
phrase gives every code a sliver of mass, and a back-off gives every label a sliver of its family's: such pairs
would read "0 %" on the page)."""


def baseline_run(name: str) -> str:
    """The ``model_run`` of baseline ``name`` (``climatology`` → ``baseline-climatology``)."""
    return f"{BASELINE_PREFIX}{name}"


def is_baseline(run: str) -> bool:
    """Whether a ``model_run`` is a baseline (not a trained model)."""
    return run.startswith(BASELINE_PREFIX)


# ==================================================================== writing
def forecast_rows(
    countries: Sequence[str],
    probs: dict[str, np.ndarray],
    keep: np.ndarray,
    model_run: str,
    n_futures: int | np.ndarray,
    issued_at: dt.datetime,
    labels: LabelSpace | None = None,
    actor_pairs: dict[tuple[int, str, int], list[dict]] | None = None,
) -> pa.Table:
    """Dense (C, L) probabilities per level → sparse ``forecasts`` rows (``FORECASTS_SCHEMA``).

    Rows with probability 0 are dropped at the event/base/root levels; the 4
    quad rows of each kept country are always written. ``keep`` (C,) bool
    selects countries; ``actor_pairs`` maps (country index, level, label index)
    to a list of ``{"actor1", "actor2", "share"}``; ``n_futures`` is a scalar
    or a (C,) array. Rows are ordered by country, level, code.
    """
    labels = labels or label_space()
    countries = np.asarray(countries, dtype=object)
    n_fut = np.broadcast_to(np.asarray(n_futures, dtype=np.int32), (len(countries),))
    cols: dict[str, list] = {k: [] for k in ("country", "level", "code", "probability", "n_futures", "pairs")}
    level_order = {lv: i for i, lv in enumerate(LEVELS)}
    order_key: list[np.ndarray] = []
    for lv in LEVELS:
        P = probs[lv]
        if P.shape != (len(countries), len(labels[lv])):
            raise ValueError(f"{model_run}: {lv} probabilities have shape {P.shape}, "
                             f"expected {(len(countries), len(labels[lv]))}")
        if np.isnan(P).any() or P.min() < 0 or P.max() > 1 + 1e-9:
            raise ValueError(f"{model_run}: {lv} probabilities outside [0, 1] (min {P.min()}, max {P.max()})")
        mask = (P > 0) if lv != "quad" else np.ones_like(P, dtype=bool)
        mask &= keep[:, None]
        c_ix, l_ix = np.nonzero(mask)
        codes = np.asarray(labels[lv].codes, dtype=object)
        cols["country"].append(countries[c_ix])
        cols["level"].append(np.full(len(c_ix), lv, dtype=object))
        cols["code"].append(codes[l_ix])
        cols["probability"].append(np.clip(P[c_ix, l_ix], 0.0, 1.0))
        cols["n_futures"].append(n_fut[c_ix])
        cols["pairs"].append([(actor_pairs or {}).get((int(c), lv, int(j)), []) for c, j in zip(c_ix, l_ix)])
        order_key.append(np.stack([c_ix, np.full(len(c_ix), level_order[lv]), l_ix], axis=1))
    country = np.concatenate(cols["country"])
    code = np.concatenate(cols["code"])
    level = np.concatenate(cols["level"])
    key = np.concatenate(order_key)
    order = np.lexsort((key[:, 2], key[:, 1], key[:, 0]))
    pairs = [p for part in cols["pairs"] for p in part]
    root = [None if lv == "quad" else c[:2] for lv, c in zip(level, code)]
    quad = [int(c) if lv == "quad" else labels.quad_of(c) for lv, c in zip(level, code)]
    table = pa.table({
        "country": pa.array(country[order], pa.string()),
        "level": pa.array(level[order], pa.string()),
        "code": pa.array(code[order], pa.string()),
        "description": pa.array([labels.description[c] for c in code[order]], pa.string()),
        "root_code": pa.array([root[i] for i in order], pa.string()),
        "quad_class": pa.array([quad[i] for i in order], pa.int8()),
        "probability": pa.array(np.concatenate(cols["probability"])[order], pa.float64()),
        "actor_pairs": pa.array([pairs[i] for i in order], FORECASTS_SCHEMA.field("actor_pairs").type),
        "n_futures": pa.array(np.concatenate(cols["n_futures"])[order], pa.int32()),
        "model_run": pa.array([model_run] * len(order), pa.string()),
        "issued_at": pa.array([issued_at] * len(order), pa.timestamp("s", tz="UTC")),
    })
    return table


# ==================================================================== reading
@dataclass
class Stack:
    """The forecasts of one run on many country-days, aligned with the outcomes.

    ``keys`` (n) are (day, country); ``P`` and ``Y`` map level → (n, L) arrays.
    """

    run: str
    keys: list[tuple[dt.date, str]]
    P: dict[str, np.ndarray]
    Y: dict[str, np.ndarray]
    n_events: np.ndarray
    rouge: np.ndarray  # (n, 3), NaN where not available

    def rows(self, keys: Sequence[tuple[dt.date, str]]) -> np.ndarray:
        index = {k: i for i, k in enumerate(self.keys)}
        return np.array([index[k] for k in keys], dtype=np.int64)


def load_forecast(lake: Lake, run: str, day: dt.date, labels: LabelSpace | None = None
                  ) -> tuple[list[str], dict[str, np.ndarray]]:
    """One ``forecasts`` partition → (countries, {level: (C, L) dense probabilities}); missing rows are 0."""
    labels = labels or label_space()
    t = lake.read("forecasts", day, day, columns=["country", "level", "code", "probability"], model=run).to_pandas()
    countries = sorted(t["country"].unique())  # vectorised lookups: iterating arrow-backed strings is slow
    rows = pd.Index(countries).get_indexer(t["country"])
    out = {}
    for lv in LEVELS:
        m = (t["level"] == lv).to_numpy()
        cols = labels[lv].columns(t["code"][m])
        if (cols < 0).any():
            bad = sorted(set(t["code"][m][cols < 0]))[:5]
            raise ValueError(f"forecasts/model={run}/date={day}: unknown {lv} codes {bad}")
        P = np.zeros((len(countries), len(labels[lv])))
        P[rows[m], cols] = t["probability"].to_numpy()[m]
        out[lv] = P
    return countries, out


def collect(lake: Lake, run: str, days: Sequence[dt.date], outcomes: Outcomes,
            labels: LabelSpace | None = None) -> Stack:
    """Stack a run's forecasts for ``days`` that have both a forecast and an outcome partition."""
    labels = labels or label_space()
    have = set(lake.partitions("forecasts", model=run))
    oc = outcomes.country_index()
    keys: list[tuple[dt.date, str]] = []
    P = {lv: [] for lv in LEVELS}
    Y = {lv: [] for lv in LEVELS}
    n_events = []
    for day in days:
        di = outcomes.day_index(day)
        if day not in have or di is None:
            continue
        countries, probs = load_forecast(lake, run, day, labels)
        rows = np.array([oc.get(c, -1) for c in countries])
        for lv in LEVELS:
            y = np.zeros((len(countries), len(labels[lv])), dtype=bool)
            y[rows >= 0] = outcomes.y[lv][di, rows[rows >= 0]]
            P[lv].append(probs[lv])
            Y[lv].append(y)
        ne = np.zeros(len(countries), dtype=np.int64)
        ne[rows >= 0] = outcomes.n_events[di, rows[rows >= 0]]
        n_events.append(ne)
        keys += [(day, c) for c in countries]
    n = len(keys)
    cat = lambda parts, L, dtype: np.concatenate(parts) if parts else np.zeros((0, L), dtype)  # noqa: E731
    return Stack(
        run=run, keys=keys,
        P={lv: cat(P[lv], len(labels[lv]), np.float64) for lv in LEVELS},
        Y={lv: cat(Y[lv], len(labels[lv]), bool) for lv in LEVELS},
        n_events=np.concatenate(n_events) if n_events else np.zeros(0, np.int64),
        rouge=np.full((n, 3), np.nan),
    )
