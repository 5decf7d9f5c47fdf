"""Benchmark: events → country for every day of a lake, ours vs the same reduction in DuckDB SQL.

    python bench/reduce.py [--repeat 3]

The lake is built once (not timed) from the 22 real days of
``../shared/data/gdelt-v2-15min`` when present, else from the shipped sample.
- ours:   ``pipeline.ingest.reduce.reduce(lake, start, end)`` (per-day read of 16 columns, flag, validate, atomic write);
- duckdb: one ``COPY (SELECT ..., flag FROM read_parquet(events/**)) TO country PARTITION_BY (date)``.
Both write zstd Parquet. Goal: ours no slower than DuckDB.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import duckdb

from pipeline.core.config import IngestConfig
from pipeline.ingest.run import ingest
from pipeline.core.lake import Lake
from pipeline.ingest.reduce import EVENT_COLUMNS, reduce

REPO = Path(__file__).resolve().parents[1]
SOURCES = [REPO.parent / "shared" / "data" / "gdelt-v2-15min", REPO / "data" / "sample" / "gdelt-v2"]
START, END = "2025-05-16", "2025-06-06"


def duckdb_reduce(lake: Lake, out: Path) -> int:
    cols = ", ".join(EVENT_COLUMNS)
    con = duckdb.connect()
    con.execute(f"""COPY (
        SELECT {cols}, coalesce(Actor1Geo_CountryCode <> '' AND Actor2Geo_CountryCode <> ''
               AND Actor1Geo_CountryCode <> Actor2Geo_CountryCode, false) AS Multi_Country_Flag, date
        FROM read_parquet('{lake.root}/events/**/*.parquet', hive_partitioning = true))
      TO '{out}' (FORMAT parquet, COMPRESSION zstd, PARTITION_BY (date), OVERWRITE_OR_IGNORE)""")
    return con.sql(f"SELECT count(*) FROM read_parquet('{out}/**/*.parquet')").fetchall()[0][0]


def best(fn, repeat: int) -> tuple[float, int]:
    times, rows = [], 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        rows = fn()
        times.append(time.perf_counter() - t0)
    return min(times), rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    src = next(s for s in SOURCES if s.exists())
    with tempfile.TemporaryDirectory() as tmp:
        lake = Lake(Path(tmp) / "lake")
        r = ingest(lake, "local", START, END, IngestConfig(), path=src, progress=False)
        print(f"lake: {r.rows_kept:,} events in {len(lake.partitions('events'))} days from {src}")

        def ours() -> int:
            return reduce(lake, START, END).rows

        def peer() -> int:
            out = Path(tmp) / "duck"
            shutil.rmtree(out, ignore_errors=True)
            return duckdb_reduce(lake, out)

        results = {"ours": best(ours, args.repeat), "duckdb": best(peer, args.repeat)}
    t_ours = results["ours"][0]
    print(f"{'peer':<8} {'rows':>10} {'seconds':>8} {'rows/s':>11} {'vs ours':>8}")
    for name, (sec, rows) in results.items():
        print(f"{name:<8} {rows:>10,} {sec:>8.3f} {rows / sec:>11,.0f} {sec / t_ours:>7.2f}x")
    print(f"goal: ours no slower than duckdb → duckdb/ours = {results['duckdb'][0] / t_ours:.2f}")


if __name__ == "__main__":
    main()
