"""Benchmark: a full ``train()`` run at T = 50 (tiny preset, CPU) against the training step alone.

    python bench/train_run.py [--days 150] [--context 50] [--epochs 2] [--threads 1] [--work /tmp/gdelt-train-run]

SYNTHETIC LAKE. The shared data has 22 real days, too few for 50-day windows. So the
22 days of ``../shared/data/gdelt-v2-15min`` are ingested, reduced and described once
(countries ``--countries``, default IS RS UP, with the embedding cache), and their
``descriptors`` / ``descriptor_days`` / ``country`` partitions are copied, in turn,
into ``--days`` consecutive *re-dated* days ending 2025-06-06 (the ``date`` column
rewritten; ``country`` keeps only those countries' rows). Each real day thus appears
about ``days / 22`` times, and a 50-day window holds every real day 2–3 times: the
day pooling, which maps each distinct phrase vector once per batch, sees somewhat
fewer distinct points than on 50 distinct real days. Nothing here measures skill.

Rows:

- **train()** — the whole call: datasets built from the lake (index, clouds, embedding
  cache, history labels), the model built, every epoch's steps, validation after each
  epoch (losses, Sinkhorn, greedy generation of ``val_generate`` sequences), checkpoints
  and the final save; samples/s = training samples seen / wall seconds of the call;
- **train() fit loop** — the same run from its first step to the end of the final save
  (``samples_per_s_last_session``: steps, validation and checkpoints, no dataset building);
- **bench step** — the peer: ``bench/train.py``'s ``ours λ=1`` step alone on synthetic
  batches of the same B, T and N (forward, backward, clip, AdamW), median of ``--steps``.
Goal (issue 15): ≥ 20 samples/s at T = 50 on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import logging
import os
import shutil
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import torch

from pipeline.core.config import DescriptorConfig, IngestConfig, load_config
from pipeline.core.lake import Lake
from pipeline.features.descriptors import build_range
from pipeline.features.embed import Embedder
from pipeline.ingest.reduce import reduce
from pipeline.ingest.run import ingest
from pipeline.model.train import train

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO.parent / "shared" / "data" / "gdelt-v2-15min"
REAL = [dt.date(2025, 5, 16) + dt.timedelta(days=i) for i in range(22)]  # 2025-05-16 … 06-06
LAST = REAL[-1]


def build_base(work: Path, countries: list[str], embedder: Embedder) -> Lake:
    """The 22 real days ingested, reduced and described (built once, then reused)."""
    base = Lake(work / "base")
    if len(base.partitions("descriptor_days")) == len(REAL):
        return base
    ingest(base, "local", REAL[0], REAL[-1], IngestConfig(), path=SOURCE, progress=False)
    reduce(base, REAL[0], REAL[-1])
    build_range(base, REAL[0], REAL[-1], DescriptorConfig(countries=countries), embedder)
    return base


def build_long(base: Lake, work: Path, n: int, countries: list[str]) -> Lake:
    """``n`` re-dated days ending LAST: day i is a copy of real day ``REAL[(i - n) % 22]``."""
    root = work / f"long-{n}"
    lake = Lake(root)
    if len(lake.partitions("descriptor_days")) == n and (root / "embeddings").exists():
        return lake  # built by an earlier run
    if root.exists():
        shutil.rmtree(root)
    keep = {t: {d: base.read(t, d, d) for d in REAL} for t in ("descriptors", "descriptor_days")}
    country = {d: base.read("country", d, d) for d in REAL}
    for d in REAL:
        country[d] = country[d].filter(pc.is_in(country[d].column("ActionGeo_CountryCode"), value_set=pa.array(countries)))
    for i in range(n):
        day = LAST - dt.timedelta(days=n - 1 - i)
        real = REAL[(i - n) % len(REAL)]
        for t in ("descriptors", "descriptor_days"):
            lake.write_partition(t, keep[t][real], day)
        lake.write_partition("country", country[real], day)
    shutil.copytree(base.table_dir("embeddings"), root / "embeddings")
    return lake


def bench_step(B: int, T: int, N: int, steps: int) -> float:
    """samples/s of ``bench/train.py``'s ``ours λ=1`` row (the step alone)."""
    spec = importlib.util.spec_from_file_location("bench_train", Path(__file__).with_name("train.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rows = mod.bench_preset("tiny", torch.device("cpu"), B, T, N, steps, 2)
    return next(r["samples_s"] for r in rows if r["name"] == "ours λ=1")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--days", type=int, default=150, help="days of the synthetic lake")
    ap.add_argument("--context", type=int, default=50, help="T")
    ap.add_argument("--points", type=int, default=64, help="N: dataset.max_points (tiny.yaml: 64)")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (train.num_threads)")
    ap.add_argument("--steps", type=int, default=10, help="timed steps of the bench-step peer")
    ap.add_argument("--countries", default="IS,RS,UP")
    ap.add_argument("--work", type=Path, default=Path("/tmp/gdelt-train-run"))
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = ap.parse_args()
    if not SOURCE.exists():
        raise SystemExit(f"{SOURCE} not found: this bench needs the shared real data")
    torch.set_num_threads(args.threads)
    countries = args.countries.split(",")
    args.work.mkdir(parents=True, exist_ok=True)
    cfg = load_config(REPO / "configs" / "tiny.yaml")
    embedder = Embedder(cfg.embed)
    t0 = time.perf_counter()
    base = build_base(args.work, countries, embedder)
    lake = build_long(base, args.work, args.days, countries)
    print(f"synthetic lake: {args.days} re-dated copies of 22 real days in {time.perf_counter() - t0:.0f} s", flush=True)

    cfg.dataset.context_days, cfg.dataset.max_points, cfg.dataset.countries = args.context, args.points, countries
    cfg.train.epochs, cfg.train.num_threads, cfg.train.run = args.epochs, args.threads, "bench-t50"
    cfg.train.models_dir = args.work / "models"
    shutil.rmtree(cfg.train.models_dir, ignore_errors=True)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    t0 = time.perf_counter()
    result = train(cfg, lake, embedder=embedder)
    wall = time.perf_counter() - t0
    m = result.metrics
    full = m["samples_seen"] / wall
    fit = m["samples_per_s_last_session"]
    step = bench_step(cfg.train.batch_size, args.context, args.points, args.steps)
    rows = [("train() (whole call)", full, wall), ("train() fit loop", fit, m["samples_seen"] / fit),
            ("bench step (peer)", step, None)]
    print(f"\nT = {args.context}, N ≤ {args.points}, B = {cfg.train.batch_size}, {args.epochs} epochs, "
          f"{result.steps} steps, {m['samples_seen']} samples, {args.threads} torch thread(s)")
    print(f"{'':24}{'samples/s':>10}{'seconds':>9}{'vs step':>9}")
    for name, sps, s in rows:
        print(f"{name:24}{sps:10.1f}{s if s is not None else float('nan'):9.1f}{sps / step:9.2f}")
    if args.out:
        args.out.write_text(json.dumps({"rows": rows, "metrics": m, "args": vars(args)}, indent=2, default=str) + "\n")


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
