"""Benchmark: descriptors of one full real day, all countries.

Compares, on the same day of ``../shared/data/gdelt-v2-15min`` (~50k events):

* cold — empty embedding cache: every unique phrase of the day is embedded once;
* warm (disk) — a new process: the cache is read from the lake, nothing embedded;
* warm (memory) — same process, cache already in memory (the daily flow's case);
* next day — day d+1 after day d is cached (the realistic hit rate);
* naive — embed every event row's phrase (no dedupe, no cache), timed on a
  random subsample of rows and extrapolated to the whole day.

Usage::

    python bench/descriptors.py [--day 2025-06-01] [--data ../shared/data/gdelt-v2-15min] [--naive-rows 2000]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GDELT_FORECAST_QUIET", "1")

import torch  # noqa: E402

from pipeline.features import embed  # noqa: E402
from pipeline.core.config import DescriptorConfig, EmbedConfig, IngestConfig  # noqa: E402
from pipeline.features.descriptors import build_day  # noqa: E402
from pipeline.features.embed import Embedder  # noqa: E402
from pipeline.ingest.run import ingest  # noqa: E402
from pipeline.core.lake import Lake, as_date  # noqa: E402
from pipeline.cameo.phrases import make_phrases  # noqa: E402
from pipeline.ingest.reduce import reduce  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--day", default="2025-06-01")
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "gdelt-v2-15min")
    ap.add_argument("--naive-rows", type=int, default=2000, help="rows embedded one by one for the naive estimate")
    args = ap.parse_args()
    day = as_date(args.day)
    nxt = day.fromordinal(day.toordinal() + 1)
    tmp = Path(tempfile.mkdtemp(prefix="bench-descriptors-"))
    try:
        src = Lake(tmp / "src")
        files = sorted(args.data.glob(f"{day:%Y%m%d}*.zip")) + sorted(args.data.glob(f"{nxt:%Y%m%d}*.zip"))
        stage = tmp / "zips"
        stage.mkdir()
        for f in files:
            os.symlink(f, stage / f.name)
        ingest(src, "local", day, nxt, IngestConfig(), path=stage)
        reduce(src, day, nxt)
        country = src.read("country", day, day)
        print(f"day {day}: {country.num_rows:,} events, {len(files)} source files, "
              f"torch threads {torch.get_num_threads()}, CPUs {os.cpu_count()}")

        lake = Lake(tmp / "lake")
        for d in (day, nxt):
            shutil.copytree(src.partition_dir("country", d), lake.partition_dir("country", d))
        cfg = DescriptorConfig()
        embedder = Embedder(EmbedConfig())
        _ = embedder.dim  # model load is not part of any timing
        rows = []

        def timed(name: str, fn) -> None:
            t = time.perf_counter()
            s = fn()
            sec = time.perf_counter() - t
            rows.append((name, sec, s.points, s.cache.misses, s.cache.hit_rate))

        timed("cold cache", lambda: build_day(lake, day, cfg, embedder))
        embed._CACHES.clear()
        timed("warm cache (disk)", lambda: build_day(lake, day, cfg, Embedder(EmbedConfig())))
        timed("warm cache (memory)", lambda: build_day(lake, day, cfg, embedder))
        timed("next day, warm from day d", lambda: build_day(lake, nxt, cfg, embedder))

        # naive: one phrase per event row, embedded without dedupe or cache
        phrases = make_phrases(country["Actor1Geo_CountryCode"].to_pylist(), country["EventCode"].to_pylist(),
                               country["Actor2Geo_CountryCode"].to_pylist())
        sample = random.Random(0).sample(phrases, min(args.naive_rows, len(phrases)))
        t = time.perf_counter()
        embedder.encode(sample)
        per_row = (time.perf_counter() - t) / len(sample)
        naive = per_row * len(phrases)
        rows.append((f"naive per-row (est. from {len(sample):,} rows)", naive, len(phrases), len(phrases), 0.0))

        cold = rows[0][1]
        print(f"\n{'run':<42}{'seconds':>10}{'× cold':>9}{'points':>9}{'embedded':>10}{'hit rate':>10}")
        for name, sec, pts, emb, hit in rows:
            print(f"{name:<42}{sec:>10.2f}{sec / cold:>9.2f}{pts:>9,}{emb:>10,}{hit:>10.1%}")
        uniq = len(set(phrases))
        print(f"\nunique phrases {uniq:,} for {len(phrases):,} event rows ({len(phrases) / uniq:.1f} rows per phrase); "
              f"warm (memory) is {naive / rows[2][1]:.0f}× faster than naive; goal warm < 10 s: "
              f"{'met' if rows[1][1] < 10 else 'NOT met'}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
