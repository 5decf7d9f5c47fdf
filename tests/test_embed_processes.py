"""The embedding cache is safe across processes: a real ``distributed.LocalCluster`` of worker
processes embedding overlapping phrase lists at once stores every phrase exactly once.

The phrase → vector model here is a deterministic hash embedder (``_HashEmbedder``): what is
tested is the cache (locking, batches, refresh), not the sentence model, and loading MiniLM in
each worker would cost seconds per process.
"""

from __future__ import annotations

import hashlib
import sys
import time

import numpy as np
import pytest


class _HashEmbedder:
    """Unit vectors from a phrase's SHA-1 (D = 8); ``id`` is the cache partition key."""

    id = "hash-test"
    dim = 8

    def encode(self, phrases: list[str]) -> np.ndarray:
        time.sleep(0.3)  # a model takes a while: long enough for the other workers to miss the same phrases
        v = np.array([[b - 127.5 for b in hashlib.sha1(p.encode()).digest()[:8]] for p in phrases], np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)


def _embed_in_worker(root: str, phrases: list[str]) -> int:
    from pipeline.core.lake import Lake
    from pipeline.features.embed import embed_phrases

    return len(embed_phrases(Lake(root), _HashEmbedder(), phrases))


def test_worker_processes_store_each_phrase_once(tmp_path):
    distributed = pytest.importorskip("distributed")
    import cloudpickle

    from pipeline.core.lake import Lake
    from pipeline.features.embed import embed_phrases

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    vocab = [f"country{i} make statement country{j}" for i in range(20) for j in range(10)]  # 200 phrases
    # 8 overlapping lists: every phrase is wanted by 2-4 workers at once
    jobs = [vocab[k * 25: k * 25 + 75] + vocab[:10] for k in range(8)]
    with distributed.LocalCluster(n_workers=2, threads_per_worker=2, processes=True, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        sizes = client.gather(client.map(_embed_in_worker, [str(tmp_path)] * len(jobs), jobs, pure=False))
    assert sizes == [len(j) for j in jobs]

    table = Lake(tmp_path).read("embeddings", embedder="hash-test")
    phrases = table.column("phrase").to_pylist()
    assert len(phrases) == len(set(phrases))  # no duplicates, whatever the interleaving
    assert set(phrases) == set(p for j in jobs for p in j)
    # and the vectors are the model's: the cache returns exactly what encode gives
    got = embed_phrases(Lake(tmp_path), _HashEmbedder(), vocab[:5])
    np.testing.assert_allclose(got, _HashEmbedder().encode(vocab[:5]), rtol=1e-6)
