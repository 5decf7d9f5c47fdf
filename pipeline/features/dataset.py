"""Training sequences: T days of descriptors → the next day's salient events.

A sequence for country *c* and target day *t* is

* context: the descriptors of days ``t−T … t−1`` (``T = cfg.context_days``),
  each the ``cfg.max_points`` heaviest points of the day (weights renormalised
  to 1), embedded on the unit sphere, plus the day's statistics; a day without
  a descriptor row is masked;
* target: day *t*'s target phrases, their embeddings and (renormalised)
  weights, and the set of event codes that occurred on *t*.

Splits are by time. The candidate target days are the descriptor days with a
full window before them; the last ``test_days`` are **test**, the ``val_days``
before them **val**, the rest **train**. A training sequence spans
``[t−T, t]`` with ``t`` before the first validation day, so no validation or
test target day lies inside any training sequence (:func:`check_no_leakage`).

Shapes (``collate``)::

    points         (B, T, N, D) float32   point_weights (B, T, N) float32 (day sums to 1, or 0 if empty)
    point_mask     (B, T, N) bool         day_stats     (B, T, S) float32 (S = len(DAY_STATS))
    day_mask       (B, T) bool
    target_points  (B, M, D) float32      target_weights (B, M) float32 (sums to 1)   target_mask (B, M) bool
    target_phrases list[list[str]]        target_codes   list[list[str]]
    country        list[str]              target_date    list[date]
    history        (B, L_all, F) float32  per-label history features of the target day
                                          (:mod:`pipeline.features.history`, labels in level order
                                          event, base, root, quad; present when the lake has a
                                          ``country`` table)
    prior          (B, L_all) float32     logits of the occurrence head's prior (training and validation
                                          items of a model with ``model.occurrence_prior``)

N and M are padded to the largest item of the batch (at least 1).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from pipeline.cameo import codes as cameo
from pipeline.core.config import DatasetConfig
from pipeline.core.errors import UserError
from pipeline.features.descriptors import check_countries
from pipeline.features.embed import Embedder, embed_phrases
from pipeline.core.coverage import left_out_days
from pipeline.core.lake import DateLike, Lake, as_date
from pipeline.core.schemas import DATASET_INDEX_SCHEMA, DESCRIPTOR_DAYS_SCHEMA, DESCRIPTORS_SCHEMA

DAY_STATS: list[str] = (
    ["log1p_events", "log1p_points", "small"]
    + [f"root_{r}" for r in cameo.ROOT_CODES]
    + [f"quad_{q}" for q in (1, 2, 3, 4)]
    + ["goldstein_mean_over_10"]
)
"""Names of the S = 28 day statistics in ``day_stats[..., s]``."""

SPLITS = ("train", "val", "test")
_ONE = dt.timedelta(days=1)


# ------------------------------------------------------------------- history
def label_history(lake: Lake, countries: Sequence[str], targets: Sequence[dt.date]
                  ) -> dict[tuple[str, dt.date], np.ndarray] | None:
    """(country, target) → (L_all, F) float32 history features of every label (level order event, base, root,
    quad) from the ``country`` partitions before the target; None when the lake has no ``country`` table.

    The outcomes are read once and cached on what the read takes (:func:`pipeline.cameo.labels.outcomes_key`:
    the ``country`` partitions and the days left out as too thin), so forecasting many countries of one day (one
    call each) reads the table once.
    """
    from pipeline.cameo.labels import LEVELS, load_outcomes, outcomes_key
    from pipeline.features.history import country_rows, history_features

    targets = sorted(set(targets))
    if not targets:
        return {}
    files = lake.files("country", None, targets[-1] - _ONE)
    if not files:
        return None
    key = (str(lake.root), outcomes_key(lake, None, targets[-1] - _ONE))  # the files, sizes, mtimes, days left out
    if _HISTORY_CACHE.get("key") != key:
        _HISTORY_CACHE.clear()
        _HISTORY_CACHE.update(key=key, outcomes=load_outcomes(lake, None, targets[-1] - _ONE))
    outcomes = _HISTORY_CACHE["outcomes"]
    per_level = [country_rows(history_features(outcomes, targets, lv, countries=countries), countries) for lv in LEVELS]
    X = np.concatenate(per_level, axis=2)  # (n_t, C, L_all, F)
    return {(c, t): X[i, j] for i, t in enumerate(targets) for j, c in enumerate(countries)}


_HISTORY_CACHE: dict[str, Any] = {}


# ------------------------------------------------------------------- index
def _busiest(days: pa.Table, n: int, until: dt.date) -> list[str]:
    """The ``n`` countries with most events on days ≤ ``until`` (ties by code)."""
    t = days.filter(pc.less_equal(days["date"], pa.scalar(until, pa.date32())))
    g = t.group_by("country").aggregate([("n_events", "sum")]).to_pylist()
    g.sort(key=lambda r: (-r["n_events_sum"], r["country"]))
    return [r["country"] for r in g[:n]]


def split_days(days: Sequence[dt.date], cfg: DatasetConfig) -> dict[dt.date, str]:
    """Target day → split, for every day with ``T`` calendar days of data range before it."""
    if not days:
        return {}
    first = min(days)
    targets = sorted(d for d in days if (d - first).days >= cfg.context_days)
    since = ""
    if cfg.first_target:
        targets = [d for d in targets if d >= as_date(cfg.first_target)]
        since = f", from first_target={cfg.first_target}"
    n_eval = cfg.val_days + cfg.test_days
    if len(targets) <= n_eval:
        raise ValueError(
            f"dataset: {len(targets)} target days (descriptor days {first}…{max(days)} minus T={cfg.context_days}"
            f"{since}) but val_days + test_days = {n_eval}; build more descriptor days or lower dataset.context_days"
        )
    out = {}
    for i, d in enumerate(targets):
        k = len(targets) - i
        out[d] = "test" if k <= cfg.test_days else "val" if k <= n_eval else "train"
    return out


def build_index(lake: Lake, cfg: DatasetConfig) -> tuple[pa.Table, dict[str, Any]]:
    """Every sequence of the dataset (``DATASET_INDEX_SCHEMA``) and the manifest counts.

    Deterministic: rows sorted by (split order, target_date, country).
    """
    days = _without_left_out(lake, lake.read("descriptor_days", columns=["country", "n_events", "target_phrases",
                                                                       "event_codes", "date"]))
    in_lake = set(days["country"].to_pylist())
    check_countries(cfg.countries, "dataset.countries (--countries)", also_known=in_lake)
    if cfg.countries and not in_lake & set(cfg.countries):
        raise UserError(f"dataset.countries (--countries): no descriptors for {', '.join(sorted(cfg.countries))} in "
                        f"{lake.root}; build them with `gdelt-forecast descriptors --countries ...` first")
    if cfg.until:
        days = days.filter(pc.less_equal(days["date"], pa.scalar(as_date(cfg.until), pa.date32())))
        if days.num_rows == 0:
            raise UserError(f"dataset.until={cfg.until}: no descriptor days on or before it")
    all_days = sorted(set(days["date"].to_pylist()))
    split_of = split_days(all_days, cfg)
    first_eval = min((d for d, s in split_of.items() if s != "train"), default=max(all_days) + _ONE)
    countries = sorted(cfg.countries) or _busiest(days, cfg.top_countries, first_eval - _ONE)
    have: dict[tuple[str, dt.date], tuple[int, int]] = {}
    for c, d, tp, ec in zip(days["country"].to_pylist(), days["date"].to_pylist(),
                            days["target_phrases"].to_pylist(), days["event_codes"].to_pylist()):
        have[(c, d)] = (len(tp), len(ec))
    rows, skipped = [], {"no_target": 0, "no_context": 0}
    for d, split in sorted(split_of.items(), key=lambda kv: (SPLITS.index(kv[1]), kv[0])):
        start = d - dt.timedelta(days=cfg.context_days)
        for c in countries:
            n_targets, n_codes = have.get((c, d), (0, 0))
            n_ctx = sum((c, start + k * _ONE) in have for k in range(cfg.context_days))
            if n_targets == 0:
                skipped["no_target"] += 1
            elif n_ctx == 0:
                skipped["no_context"] += 1
            else:
                rows.append(dict(split=split, country=c, target_date=d, context_start=start,
                                 context_days=n_ctx, n_targets=n_targets, n_codes=n_codes))
    index = pa.Table.from_pylist(rows, schema=DATASET_INDEX_SCHEMA)
    check_no_leakage(index, cfg.context_days)
    manifest: dict[str, Any] = {
        "config": asdict(cfg),
        "countries": countries,
        "descriptor_days": [str(all_days[0]), str(all_days[-1])],
        "sequences": {s: sum(r["split"] == s for r in rows) for s in SPLITS},
        "target_days": {s: [str(d) for d, v in sorted(split_of.items()) if v == s] for s in SPLITS},
        "skipped": skipped,
        "left_out": [str(d) for d in left_out_days(lake)],
        "day_stats": DAY_STATS,
    }
    return index, manifest


def check_no_leakage(index: pa.Table, context_days: int) -> None:
    """Raise if a validation/test target day lies inside any training sequence ``[t−T, t]``."""
    rows = index.to_pylist()
    eval_days = {r["target_date"] for r in rows if r["split"] != "train"}
    for r in rows:
        if r["split"] == "train":
            span = {r["target_date"] - k * _ONE for k in range(context_days + 1)}
            bad = span & eval_days
            if bad:
                raise AssertionError(f"dataset leak: training sequence {r['country']} → {r['target_date']} "
                                     f"contains evaluation target day(s) {sorted(bad)}")


def manifest_path(lake: Lake, name: str = "default") -> Path:
    """``_meta/dataset/name=<name>/manifest.json``: outside the table folder, which holds only Parquet."""
    return lake.meta_dir("dataset", name=name) / "manifest.json"


def build_dataset(lake: Lake, cfg: DatasetConfig, name: str = "default") -> dict[str, Any]:
    """Write the sequence index to ``dataset/name=<name>/`` and its manifest to :func:`manifest_path`."""
    index, manifest = build_index(lake, cfg)
    manifest["name"] = name
    lake.write_partition("dataset", index, None, schema=DATASET_INDEX_SCHEMA, name=name)
    path = manifest_path(lake, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".manifest.json.{os.getpid()}")
    tmp.write_text(json.dumps(manifest, indent=2, default=str) + "\n")
    os.replace(tmp, path)
    return manifest


# ---------------------------------------------------------------- clouds
def _read(lake: Lake, table: str, start: dt.date, end: dt.date, columns: list[str]) -> pa.Table:
    """``lake.read`` of the range less its left-out days, or an empty table of ``columns`` when no partition lies
    in it."""
    if not lake.files(table, start, end):
        schema = DESCRIPTOR_DAYS_SCHEMA if table == "descriptor_days" else DESCRIPTORS_SCHEMA
        fields = [schema.field(c) if c != "date" else pa.field("date", pa.date32()) for c in columns]
        return pa.schema(fields).empty_table()
    return _without_left_out(lake, lake.read(table, start, end, columns=columns), start, end)


def _without_left_out(lake: Lake, t: pa.Table, start: dt.date | None = None, end: dt.date | None = None) -> pa.Table:
    """The rows of ``t`` whose ``date`` is not a day the lake leaves out as too thin
    (:func:`pipeline.core.coverage.left_out_days`): a thin day in a context is masked as a missing one, and is
    no training target."""
    left = left_out_days(lake, start, end)
    if not left:
        return t
    return t.filter(pc.invert(pc.is_in(t["date"], value_set=pa.array(left, pa.date32()))))


class _Clouds:
    """Country-day clouds of a date range: phrase ids into one ``(P, D)`` matrix, weights, stats."""

    def __init__(self, lake: Lake, embedder: Embedder, countries: list[str], start: dt.date, end: dt.date,
                 max_points: int, with_targets: bool = True):
        self.max_points = max_points
        ccol = pa.array(countries, pa.string())
        days = _read(lake, "descriptor_days", start, end, DESCRIPTOR_DAYS_SCHEMA.names + ["date"])
        days = days.filter(pc.is_in(days["country"], value_set=ccol))
        pts = _read(lake, "descriptors", start, end, ["country", "phrase", "weight", "date"])
        pts = pts.filter(pc.is_in(pts["country"], value_set=ccol))
        # rows are stored country, weight desc, phrase: the first max_points of a group are the heaviest
        vocab: dict[str, int] = {}
        self.points: dict[tuple[str, dt.date], tuple[np.ndarray, np.ndarray]] = {}
        grouped: dict[tuple[str, dt.date], tuple[list[int], list[float]]] = {}
        for c, d, p, w in zip(pts["country"].to_pylist(), pts["date"].to_pylist(),
                              pts["phrase"].to_pylist(), pts["weight"].to_numpy()):
            ids, ws = grouped.setdefault((c, d), ([], []))
            if len(ids) < max_points:
                ids.append(vocab.setdefault(p, len(vocab)))
                ws.append(float(w))
        for key, (ids, ws) in grouped.items():
            w = np.asarray(ws, np.float64)
            self.points[key] = (np.asarray(ids, np.int64), (w / w.sum()).astype(np.float32))
        self.days: dict[tuple[str, dt.date], dict] = {}
        for r in days.to_pylist():
            self.days[(r["country"], r["date"])] = r
            if with_targets:
                for p in r["target_phrases"]:
                    vocab.setdefault(p, len(vocab))
        self.vocab = vocab
        self.vectors = embed_phrases(lake, embedder, list(vocab))  # (P, D)
        self.dim = self.vectors.shape[1]
        self._padded = np.vstack([self.vectors, np.zeros((1, self.dim), np.float32)])  # (P + 1, D): row P is padding

    def day_stats(self, row: dict | None) -> np.ndarray:
        """(S,) statistics of a ``descriptor_days`` row (zeros when missing)."""
        if row is None:
            return np.zeros(len(DAY_STATS), np.float32)
        g = row["goldstein_mean"]
        return np.array([math.log1p(row["n_events"]), math.log1p(row["n_points"]), float(row["small"]),
                         *row["root_hist"], *row["quad_shares"], 0.0 if g is None else g / 10.0], np.float32)

    def context(self, country: str, target_date: dt.date, T: int) -> dict[str, Any]:
        """Item tensors of the T days before ``target_date`` (no targets)."""
        days = [target_date - (T - k) * _ONE for k in range(T)]
        clouds = [self.points.get((country, d)) for d in days]
        n = max([len(c[0]) for c in clouds if c is not None] + [1])
        idx = np.full((T, n), len(self.vectors), np.int64)  # (T, N) phrase ids, padding → the zero row
        weights = np.zeros((T, n), np.float32)  # (T, N)
        mask = np.zeros((T, n), bool)
        for t, c in enumerate(clouds):
            if c is not None:
                ids, w = c
                idx[t, :len(ids)] = ids
                weights[t, :len(ids)] = w
                mask[t, :len(ids)] = True
        points = self._padded[idx]  # (T, N, D): one gather, no zero-fill then copy
        rows = [self.days.get((country, d)) for d in days]
        return {
            "points": torch.from_numpy(points), "point_weights": torch.from_numpy(weights),
            "point_mask": torch.from_numpy(mask),
            "day_stats": torch.from_numpy(np.stack([self.day_stats(r) for r in rows])),  # (T, S)
            "day_mask": torch.tensor([r is not None for r in rows]),  # (T,)
            "country": country, "target_date": target_date,
        }

    def target(self, country: str, day: dt.date) -> dict[str, Any]:
        """Target tensors of ``day``: phrases (M,), their points (M, D), weights (M,) summing to 1, event codes."""
        row = self.days[(country, day)]
        phrases = list(row["target_phrases"])
        w = np.asarray(row["target_weights"], np.float64)
        return {
            "target_points": torch.from_numpy(self.vectors[[self.vocab[p] for p in phrases]].copy()),
            "target_weights": torch.from_numpy((w / w.sum()).astype(np.float32)),
            "target_phrases": phrases, "target_codes": list(row["event_codes"]),
        }


# ---------------------------------------------------------------- dataset
class SequenceDataset(torch.utils.data.Dataset):
    """Sequences of one split, ready for :func:`collate`.

    Args:
        lake: lake with ``descriptors`` and ``descriptor_days`` (and the embedding cache).
        cfg: ``DatasetConfig`` (T, max points per day, countries, split sizes).
        embedder: the embedder whose cache gives the vectors (phrases missing from it are embedded once).
        split: ``train`` | ``val`` | ``test`` | None (all).
        index: a ready index (``build_index``); None builds it (deterministic).
    """

    def __init__(self, lake: Lake, cfg: DatasetConfig, embedder: Embedder, split: str | None = "train",
                 index: pa.Table | None = None):
        if split is not None and split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS} or None, got {split!r}")
        self.cfg, self.split = cfg, split
        if index is None:
            index, self.manifest = build_index(lake, cfg)
        if split is not None:
            index = index.filter(pc.equal(index["split"], split))
        self.index = index.to_pylist()
        if not self.index:
            raise ValueError(f"dataset split {split!r} is empty (countries {cfg.countries or 'busiest'}); "
                             "build more descriptor days or change dataset.val_days/test_days")
        start = min(r["context_start"] for r in self.index)
        end = max(r["target_date"] for r in self.index)
        countries = sorted({r["country"] for r in self.index})
        self.clouds = _Clouds(lake, embedder, countries, start, end, cfg.max_points)
        self.history = label_history(lake, countries, sorted({r["target_date"] for r in self.index}))
        self.prior: dict[tuple[str, dt.date], np.ndarray] | None = None
        """(country, target) → (L_all,) logits of the occurrence head's prior, set by the trainer
        (``pipeline.model.train.fit_prior``) when the model has one."""

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict[str, Any]:
        r = self.index[i]
        item = self.clouds.context(r["country"], r["target_date"], self.cfg.context_days)
        item.update(self.clouds.target(r["country"], r["target_date"]))
        if self.history is not None:
            item["history"] = torch.from_numpy(self.history[(r["country"], r["target_date"])])
        if self.prior is not None:
            item["prior"] = torch.from_numpy(self.prior[(r["country"], r["target_date"])])
        return item

    def keys(self) -> list[tuple[str, dt.date]]:
        """(country, target_date) of every item, in order."""
        return [(r["country"], r["target_date"]) for r in self.index]

    def phrases(self) -> list[str]:
        """Sorted target phrases of this split."""
        return sorted({p for r in self.index for p in self.clouds.days[(r["country"], r["target_date"])]
                       ["target_phrases"]})


def load_context(lake: Lake, country: str, target_date: DateLike, cfg: DatasetConfig,
                 embedder: Embedder) -> dict[str, Any]:
    """The item for forecasting ``target_date`` in ``country``: the T days before it, no target.

    Raises when none of those days has a descriptor for the country.
    """
    items, skipped = load_contexts(lake, [country], target_date, cfg, embedder)
    if country in skipped:
        raise ValueError(skipped[country])
    return items[country]


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack items, padding N (points per day) and M (targets) to the batch's largest; see the module doc.

    Items without targets (from :func:`load_context`) give a batch without the target keys.
    """
    if not items:
        raise ValueError("collate: empty batch")
    B = len(items)
    T, _, D = items[0]["points"].shape
    N = max(it["points"].shape[1] for it in items)
    if all(it["points"].shape[1] == N for it in items):  # the usual case (days at max_points): no padding
        points = torch.stack([it["points"] for it in items])  # (B, T, N, D)
        weights = torch.stack([it["point_weights"] for it in items])  # (B, T, N)
        mask = torch.stack([it["point_mask"] for it in items])  # (B, T, N)
    else:
        points = torch.zeros(B, T, N, D)
        weights = torch.zeros(B, T, N)
        mask = torch.zeros(B, T, N, dtype=torch.bool)
        for b, it in enumerate(items):
            n = it["points"].shape[1]
            points[b, :, :n] = it["points"]
            weights[b, :, :n] = it["point_weights"]
            mask[b, :, :n] = it["point_mask"]
    batch: dict[str, Any] = {
        "points": points, "point_weights": weights, "point_mask": mask,
        "day_stats": torch.stack([it["day_stats"] for it in items]),  # (B, T, S)
        "day_mask": torch.stack([it["day_mask"] for it in items]),  # (B, T)
        "country": [it["country"] for it in items], "target_date": [it["target_date"] for it in items],
    }
    with_history = ["history" in it for it in items]
    if any(with_history):
        if not all(with_history):
            raise ValueError("collate: mixing items with and without history features")
        batch["history"] = torch.stack([it["history"] for it in items])  # (B, L_all, F)
    with_prior = ["prior" in it for it in items]
    if any(with_prior):
        if not all(with_prior):
            raise ValueError("collate: mixing items with and without a prior")
        batch["prior"] = torch.stack([it["prior"] for it in items])  # (B, L_all)
    with_targets = ["target_points" in it for it in items]
    if any(with_targets):
        if not all(with_targets):
            raise ValueError("collate: mixing items with and without targets")
        M = max(max(len(it["target_phrases"]) for it in items), 1)
        tp, tw = torch.zeros(B, M, D), torch.zeros(B, M)
        tm = torch.zeros(B, M, dtype=torch.bool)
        for b, it in enumerate(items):
            m = len(it["target_phrases"])
            tp[b, :m], tw[b, :m], tm[b, :m] = it["target_points"], it["target_weights"], True
        batch.update(target_points=tp, target_weights=tw, target_mask=tm,
                     target_phrases=[list(it["target_phrases"]) for it in items],
                     target_codes=[list(it["target_codes"]) for it in items])
    return batch


def load_contexts(lake: Lake, countries: Sequence[str], target_date: DateLike, cfg: DatasetConfig,
                  embedder: Embedder) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """:func:`load_context` of many countries with one read of the T days: (items by country, skipped → why)."""
    t = as_date(target_date)
    start, end = t - dt.timedelta(days=cfg.context_days), t - _ONE
    clouds = _Clouds(lake, embedder, sorted(countries), start, end, cfg.max_points, with_targets=False)
    items, skipped = {}, {}
    for country in countries:
        item = clouds.context(country, t, cfg.context_days)
        if bool(item["day_mask"].any()):
            items[country] = item
        else:
            skipped[country] = (f"no descriptors for {country} between {start} and {end} in {lake.root}; "
                                f"run `gdelt-forecast descriptors --start {start} --end {end}`")
    history = label_history(lake, sorted(items), [t]) if items else None
    if history is not None:
        for country, item in items.items():
            item["history"] = torch.from_numpy(history[(country, t)])
    return items, skipped
