"""Embedder on the unit sphere and the lake phrase cache (real all-MiniLM-L6-v2, offline)."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.features import embed
from pipeline.core.config import EmbedConfig
from pipeline.features.embed import CacheStats, Embedder, embed_phrases, embedder_id
from pipeline.core.lake import Lake
from pipeline.cameo.phrases import make_phrase

PHRASES = [make_phrase("IR", "138", "IS"), make_phrase("US", "042", "CH"), make_phrase(None, "051", None),
           make_phrase("UP", "190", "RS")]


def test_embedder_ids_are_stable_and_path_safe():
    assert Embedder().id == "all-minilm-l6-v2"
    assert embedder_id("sentence-transformers/all-MiniLM-L6-v2") == "all-minilm-l6-v2"
    assert embedder_id("/models/My_Model v2/") == "my-model-v2"


def test_encode_unit_norm(embedder):
    v = embedder.encode(PHRASES)
    assert v.shape == (4, embedder.dim) == (4, 384) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    # meaning: the two "use force" phrases are closer than force vs praise
    cos = v @ v.T
    assert cos[0, 3] > cos[0, 2]
    np.testing.assert_allclose(embedder.encode(PHRASES[:1]), v[:1], atol=1e-5)  # batch does not matter


def test_cache_never_embeds_twice(tmp_path, embedder, monkeypatch):
    lake = Lake(tmp_path)
    s1 = CacheStats()
    v1 = embed_phrases(lake, embedder, PHRASES + PHRASES[:2], s1)  # repeats embedded once
    assert (s1.hits, s1.misses) == (0, 4)
    np.testing.assert_allclose(v1[4:], v1[:2])
    np.testing.assert_allclose(v1[:4], embedder.encode(PHRASES), atol=1e-5)  # equals the uncached model
    files = lake.files("embeddings", embedder=embedder.id)
    assert len(files) == 1

    def boom(_):
        raise AssertionError("encode called on a warm cache")

    monkeypatch.setattr(embedder, "encode", boom)
    s2 = CacheStats()
    v2 = embed_phrases(lake, embedder, list(reversed(PHRASES)), s2)
    assert (s2.hits, s2.misses, s2.hit_rate) == (4, 0, 1.0)
    np.testing.assert_array_equal(v2, v1[:4][::-1])
    # a new process (fresh in-memory cache, fresh embedder that never loads its model) reads the lake
    monkeypatch.setattr(embed, "_CACHES", {})
    fresh = Embedder(EmbedConfig())
    s3 = CacheStats()
    np.testing.assert_array_equal(embed_phrases(lake, fresh, PHRASES, s3), v1[:4])
    assert s3.misses == 0 and fresh._model is None
    assert lake.files("embeddings", embedder=embedder.id) == files


def test_cache_compaction_keeps_vectors(tmp_path, embedder, monkeypatch):
    lake = Lake(tmp_path)
    monkeypatch.setattr(embed, "_COMPACT_AFTER", 2)
    vecs = {p: embed_phrases(lake, embedder, [p])[0] for p in PHRASES}  # 4 batches → compacted
    assert len(lake.files("embeddings", embedder=embedder.id)) <= 2
    monkeypatch.setattr(embed, "_CACHES", {})
    s = CacheStats()
    got = embed_phrases(lake, embedder, PHRASES, s)
    assert s.misses == 0
    np.testing.assert_array_equal(got, np.stack([vecs[p] for p in PHRASES]))


def test_empty_and_mismatched_dims(tmp_path, embedder):
    lake = Lake(tmp_path)
    assert embed_phrases(lake, embedder, []).shape == (0, 384)
    cache = embed.get_cache(lake, embedder)
    cache.add(["a"], np.ones((1, 384), np.float32) / np.sqrt(384))
    with pytest.raises(ValueError, match="vectors of size 3"):
        cache.add(["b"], np.ones((1, 3), np.float32))
    assert len(lake.files("embeddings", embedder=embedder.id)) == 1  # nothing written for the bad batch
