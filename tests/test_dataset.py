"""Training sequences on the sample descriptors: splits without leakage, shapes, determinism, CLI."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pyarrow as pa
import pytest
import torch
from conftest import SAMPLE_COUNTRIES
from typer.testing import CliRunner

from gdelt_forecast.cli import app
from pipeline.core.config import DatasetConfig
from pipeline.core.errors import ConfigError
from pipeline.features.dataset import (DAY_STATS, SequenceDataset, build_dataset, build_index, manifest_path, check_no_leakage, collate,
                              load_context, split_days)

CFG = DatasetConfig(context_days=7, countries=list(SAMPLE_COUNTRIES), val_days=2, test_days=2)


def test_split_days():
    days = [dt.date(2025, 5, 16) + dt.timedelta(days=i) for i in range(22)]
    s = split_days(days, CFG)
    assert min(s) == dt.date(2025, 5, 23) and len(s) == 15
    assert [s[d] for d in sorted(s)] == ["train"] * 11 + ["val"] * 2 + ["test"] * 2
    with pytest.raises(ValueError, match="context_days"):
        split_days(days[:9], CFG)


def test_first_target_holds_the_targets_equal_across_context_lengths():
    days = [dt.date(2025, 5, 16) + dt.timedelta(days=i) for i in range(22)]
    splits = {T: split_days(days, DatasetConfig(**{**CFG.__dict__, "context_days": T, "first_target": "2025-05-30"}))
              for T in (3, 7, 14)}
    assert splits[3] == splits[7] == splits[14]  # the same targets, each with its own context length
    assert min(splits[7]) == dt.date(2025, 5, 30) and list(splits[7].values()).count("train") == 4
    with pytest.raises(ValueError, match="first_target=2025-06-04"):
        split_days(days, DatasetConfig(**{**CFG.__dict__, "first_target": "2025-06-04"}))
    with pytest.raises(ConfigError, match="dataset.first_target must be an ISO day"):
        DatasetConfig(first_target="30 May")


def test_index_no_leakage_and_manifest(sample_descriptors):
    index, manifest = build_index(sample_descriptors, CFG)
    rows = index.to_pylist()
    eval_days = {r["target_date"] for r in rows if r["split"] != "train"}
    for r in rows:
        if r["split"] == "train":  # the sequence [t − T, t] holds no val/test target day
            assert r["target_date"] < min(eval_days)
            assert r["context_start"] == r["target_date"] - dt.timedelta(days=7)
    assert manifest["sequences"] == {s: sum(r["split"] == s for r in rows) for s in ("train", "val", "test")}
    assert manifest["sequences"]["test"] == 2 * len(SAMPLE_COUNTRIES)
    assert manifest["countries"] == sorted(SAMPLE_COUNTRIES) and manifest["day_stats"] == DAY_STATS
    again, manifest2 = build_index(sample_descriptors, CFG)
    assert again.equals(index) and manifest2 == manifest  # deterministic
    leaky = pa.Table.from_pylist([dict(rows[0], target_date=min(eval_days) + dt.timedelta(days=1)),
                                  dict(rows[0], split="val", target_date=min(eval_days))], schema=index.schema)
    with pytest.raises(AssertionError, match="leak"):
        check_no_leakage(leaky, 7)


def test_busiest_countries(sample_descriptors):
    index, manifest = build_index(sample_descriptors, DatasetConfig(top_countries=2))
    assert len(manifest["countries"]) == 2 and set(manifest["countries"]) <= set(SAMPLE_COUNTRIES)


def test_items_and_collate(sample_descriptors, embedder):
    cfg = DatasetConfig(**{**CFG.__dict__, "max_points": 16})
    ds = SequenceDataset(sample_descriptors, cfg, embedder, split="train")
    assert len(ds) == 11 * len(SAMPLE_COUNTRIES) and ds.keys()[0][1] == dt.date(2025, 5, 23)
    assert ds.phrases() == sorted(ds.phrases()) and len(ds.phrases()) > 10
    batch = collate([ds[i] for i in range(4)])
    B, T, N, D = batch["points"].shape
    assert (B, T, D) == (4, 7, 384) and N <= 16
    S = len(DAY_STATS)
    assert batch["day_stats"].shape == (B, T, S) and batch["day_mask"].shape == (B, T)
    assert batch["point_weights"].shape == batch["point_mask"].shape == (B, T, N)
    day_sums = batch["point_weights"].sum(-1)
    torch.testing.assert_close(day_sums, batch["day_mask"].float(), atol=1e-5, rtol=0)
    assert not batch["point_weights"][~batch["point_mask"]].any()
    norms = batch["points"].norm(dim=-1)
    torch.testing.assert_close(norms[batch["point_mask"]], torch.ones(int(batch["point_mask"].sum())))
    M = batch["target_points"].shape[1]
    assert batch["target_weights"].shape == batch["target_mask"].shape == (B, M) and 1 <= M <= 10
    torch.testing.assert_close(batch["target_weights"].sum(-1), torch.ones(B))
    torch.testing.assert_close(batch["target_points"].norm(dim=-1)[batch["target_mask"]],
                               torch.ones(int(batch["target_mask"].sum())))
    assert [len(p) for p in batch["target_phrases"]] == batch["target_mask"].sum(1).tolist()
    assert all(codes == sorted(set(codes)) and codes for codes in batch["target_codes"])
    assert len(batch["country"]) == len(batch["target_date"]) == B
    # history features of the target day, every label of every level (event, base, root, quad)
    from pipeline.cameo.labels import LEVELS, label_space, load_outcomes
    from pipeline.features.history import FEATURES, history_features

    L_all = sum(len(label_space()[lv]) for lv in LEVELS)
    assert batch["history"].shape == (B, L_all, len(FEATURES))
    o = load_outcomes(sample_descriptors)
    c, t = batch["country"][0], batch["target_date"][0]
    h = history_features(o, [t], "event")
    torch.testing.assert_close(batch["history"][0, :len(label_space()["event"])],
                               torch.from_numpy(h.X[0, o.countries.index(c)]))


def test_load_context_matches_training_item(sample_descriptors, embedder):
    ds = SequenceDataset(sample_descriptors, CFG, embedder, split="test")
    item = ds[0]
    ctx = load_context(sample_descriptors, item["country"], item["target_date"], CFG, embedder)
    assert "target_points" not in ctx
    for k in ("points", "point_weights", "point_mask", "day_stats", "day_mask", "history"):
        torch.testing.assert_close(ctx[k], item[k])
    batch = collate([ctx, ctx])
    assert "target_points" not in batch and batch["points"].shape[:2] == (2, 7)
    with pytest.raises(ValueError, match="mixing"):
        collate([ctx, item])
    # forecasting the day after the lake: the last T days are the context
    nxt = load_context(sample_descriptors, "IS", dt.date(2025, 6, 7), CFG, embedder)
    assert bool(nxt["day_mask"].all())
    with pytest.raises(ValueError, match="no descriptors"):
        load_context(sample_descriptors, "IS", dt.date(2026, 1, 1), CFG, embedder)


def test_dataset_is_deterministic(sample_descriptors, embedder):
    a = SequenceDataset(sample_descriptors, CFG, embedder, split="val")
    b = SequenceDataset(sample_descriptors, CFG, embedder, split="val")
    for i in (0, len(a) - 1):
        x, y = a[i], b[i]
        assert x["target_phrases"] == y["target_phrases"]
        np.testing.assert_array_equal(x["points"].numpy(), y["points"].numpy())


def test_cli_descriptors_and_dataset(sample_descriptors):
    lake = str(sample_descriptors.root)
    r = CliRunner().invoke(app, ["--lake", lake, "descriptors", "--start", "2025-06-05", "--end", "2025-06-06",
                                 "--countries", ",".join(SAMPLE_COUNTRIES)])
    assert r.exit_code == 0, r.output
    assert "hit rate 100.0%" in r.output.replace("\n", " ")
    r = CliRunner().invoke(app, ["--lake", lake, "dataset", "--name", "t", "-T", "7",
                                 "--countries", ",".join(SAMPLE_COUNTRIES)])
    assert r.exit_code == 0, r.output
    manifest = json.loads(manifest_path(sample_descriptors, "t").read_text())
    index = sample_descriptors.read("dataset", name="t")
    assert sum(manifest["sequences"].values()) == index.num_rows == 15 * len(SAMPLE_COUNTRIES)
    assert build_dataset(sample_descriptors, CFG, "t") == manifest  # idempotent
    r = CliRunner().invoke(app, ["--lake", lake, "inspect", "descriptors", "--date", "2025-06-05",
                                 "--country", "IS", "--top", "3"])
    assert r.exit_code == 0, r.output
    assert "Israel" in r.output and "targets" in r.output
