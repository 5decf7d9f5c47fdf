"""Benchmark: the cost of one day of ingest, reduce and descriptors against the size of the lake.

    python bench/scale.py [--sizes 30,300,3000] [--work /tmp/gdelt-scale]

SYNTHETIC LAKES. A lake of N days is N *re-dated* copies of real days: the
events/country/descriptors/descriptor_days partitions of four real days of
``../shared/data/gdelt-v2-15min`` (2025-05-16 … 19) are hard-linked, in turn,
into the N day folders ending 2025-05-31 (so a 3,000-day lake starts in 2017 and
costs seconds to build, not a re-ingest). The files' own ``date`` column keeps
the real day; the folder names carry the synthetic one. The ``manifest`` gets
the matching re-dated rows (about 40 files a day, one partition per day), so its
size grows with N as in a real lake. Nothing here is a measurement of forecast quality.

Then, for every N, three real later days (2025-06-01 … 03; their GLOBALEVENTIDs
are above every copied day's, as in a real append) are, one day at a time:

- **ingest** — ``ingest(lake, "local", d, d)`` from the day's real zips (parse,
  cross-day dedupe through the events ID index, atomic write, manifest, quarantine);
- **reduce** — ``reduce(lake, d, d)``;
- **descriptors** — ``build_day`` for three countries with a warm embedding cache;

and, side by side, DuckDB on the same files:

- *duckdb load*: ``read_csv`` of the day's (already unzipped) CSVs → one Parquet file;
- *duckdb dedupe scan*: ``count(*)`` of the lake's events whose GLOBALEVENTID lies in
  the new day's range, over ``read_parquet('events/*/*.parquet')`` (what a
  cross-day dedupe costs without an ID index: it grows with N);
- *duckdb reduce*: the 16 columns + flag of ``events/<d>/`` → one Parquet file;
- *duckdb descriptors*: the (country, phrase) group-by of ``country/<d>/``.

Reported: the median seconds per day of each over the three days, and each
size's ratio to the smallest. Goal: ours flat within 20 % from 30 to 3,000 days.
The one-time build of the events ID index (``_meta/events/id_ranges.parquet``,
kept up to date by every ingest afterwards) is shown apart.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import time
import zipfile
from pathlib import Path

import duckdb
import pyarrow as pa

from pipeline.core.config import DescriptorConfig, EmbedConfig, IngestConfig
from pipeline.core.lake import Lake
from pipeline.core.schemas import MANIFEST_SCHEMA
from pipeline.features.descriptors import build_day, build_range
from pipeline.features.embed import Embedder
from pipeline.ingest.reduce import EVENT_COLUMNS, reduce
from pipeline.ingest.run import _IdIndex, ingest, lake_lock

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO.parent / "shared" / "data" / "gdelt-v2-15min"
HISTORY = [dt.date(2025, 5, 16) + dt.timedelta(days=i) for i in range(4)]  # real days copied
MEASURED = [dt.date(2025, 6, 1) + dt.timedelta(days=i) for i in range(3)]  # real days timed
LAST_SYNTHETIC = dt.date(2025, 5, 31)
COUNTRIES = ["IS", "RS", "UP"]
TABLES = ("events", "country", "descriptors", "descriptor_days")


def _link_day_files(src: Path, dst: Path, days: list[dt.date]) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for d in days:
        for f in SOURCE.glob(f"{d:%Y%m%d}*.export.CSV.zip"):
            if not (dst / f.name).exists():
                os.link(f, dst / f.name)
    return dst


def build_base(work: Path, embedder: Embedder) -> Lake:
    """The real days (history + measured), ingested, reduced, with descriptors: the source of every copy."""
    base = Lake(work / "base")
    if (base.root / "descriptor_days").exists():
        return base
    src = _link_day_files(SOURCE, work / "zips-base", HISTORY + MEASURED)
    cfg = DescriptorConfig(countries=COUNTRIES)
    for a, b in ((HISTORY[0], HISTORY[-1]), (MEASURED[0], MEASURED[-1])):
        ingest(base, "local", a, b, IngestConfig(), path=src, progress=False)
        reduce(base, a, b)
        build_range(base, a, b, cfg, embedder)  # warms the embedding cache for the measured days too
    return base


def build_scaled(base: Lake, work: Path, n: int) -> Lake:
    """N re-dated hard-linked copies of the history days ending LAST_SYNTHETIC, plus manifest and embeddings."""
    root = work / f"lake-{n}"
    if root.exists():
        shutil.rmtree(root)
    lake = Lake(root)
    manifest = base.read("manifest", columns=MANIFEST_SCHEMA.names).to_pylist()
    by_day = {d: [r for r in manifest if r["day"] == d] for d in HISTORY}
    for i in range(n):
        day = LAST_SYNTHETIC - dt.timedelta(days=n - 1 - i)
        real = HISTORY[i % len(HISTORY)]
        for t in TABLES:
            dst = lake.partition_dir(t, day)
            dst.mkdir(parents=True)
            for f in base.files(t, real, real):
                os.link(f, dst / f.name)
        rows = []
        for r in by_day[real]:  # the re-dated manifest rows of that day's files (the manifest's day partition)
            name = r["name"].replace(f"{real:%Y%m%d}", f"{day:%Y%m%d}")
            rows.append(dict(r, name=name, url=str(Path(r["url"]).with_name(name)), day=day))
        rows.sort(key=lambda r: (r["source"], r["url"]))
        lake.write_partition("manifest", pa.Table.from_pylist(rows, schema=MANIFEST_SCHEMA), day,
                             schema=MANIFEST_SCHEMA)
    shutil.copytree(base.table_dir("embeddings"), root / "embeddings")
    return lake


def build_index(lake: Lake) -> float:
    """The one-time build of the persisted events ID index (seconds)."""
    t0 = time.perf_counter()
    with lake_lock(lake):
        idx = _IdIndex(lake)
        idx._save()
    return time.perf_counter() - t0


# ------------------------------------------------------------------ duckdb
def unzip_day(work: Path, d: dt.date) -> list[str]:
    out = work / "csv" / d.isoformat()
    if not out.exists():
        out.mkdir(parents=True)
        for f in SOURCE.glob(f"{d:%Y%m%d}*.export.CSV.zip"):
            with zipfile.ZipFile(f) as z:
                z.extractall(out)
    return sorted(str(p) for p in out.iterdir())


def duckdb_load(csvs: list[str], out: Path) -> None:
    duckdb.sql(f"COPY (SELECT * FROM read_csv({csvs!r}, delim = '\t', header = false, all_varchar = true)) "
               f"TO '{out}' (FORMAT parquet, COMPRESSION zstd)")


def duckdb_dedupe_scan(lake: Lake, d: dt.date) -> int:
    lo, hi = duckdb.sql(f"SELECT min(GLOBALEVENTID), max(GLOBALEVENTID) FROM "
                        f"read_parquet('{lake.partition_dir('events', d)}/*.parquet')").fetchall()[0]
    return duckdb.sql(f"SELECT count(*) FROM read_parquet('{lake.table_dir('events')}/*/*.parquet') "
                      f"WHERE GLOBALEVENTID BETWEEN {lo} AND {hi}").fetchall()[0][0]


def duckdb_reduce(lake: Lake, d: dt.date, out: Path) -> None:
    cols = ", ".join(EVENT_COLUMNS)
    duckdb.sql(f"""COPY (SELECT {cols}, coalesce(Actor1Geo_CountryCode <> '' AND Actor2Geo_CountryCode <> ''
               AND Actor1Geo_CountryCode <> Actor2Geo_CountryCode, false) AS Multi_Country_Flag, date
               FROM read_parquet('{lake.partition_dir('events', d)}/*.parquet'))
               TO '{out}' (FORMAT parquet, COMPRESSION zstd)""")


def duckdb_descriptors(lake: Lake, d: dt.date) -> int:
    return len(duckdb.sql(f"""SELECT ActionGeo_CountryCode AS country, Actor1Geo_CountryCode, EventCode,
               Actor2Geo_CountryCode, count(*), sum(NumMentions)
               FROM read_parquet('{lake.partition_dir('country', d)}/*.parquet')
               WHERE ActionGeo_CountryCode IN {tuple(COUNTRIES)!r} AND coalesce(EventCode, '') <> ''
               GROUP BY ALL""").fetchall())


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="30,300,3000")
    ap.add_argument("--work", type=Path, default=Path("/tmp/gdelt-scale"))
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if not SOURCE.exists():
        raise SystemExit(f"{SOURCE} not found: this bench needs the shared real data")
    args.work.mkdir(parents=True, exist_ok=True)
    embedder = Embedder(EmbedConfig())
    base = build_base(args.work, embedder)
    zips = _link_day_files(SOURCE, args.work / "zips-measured", MEASURED)

    lakes, setup = {}, {}
    for n in sizes:
        t0 = time.perf_counter()
        lakes[n] = build_scaled(base, args.work, n)
        setup[n] = {"build_s": time.perf_counter() - t0, "index_build_s": build_index(lakes[n])}
        print(f"N={n}: built in {setup[n]['build_s']:.1f} s (synthetic, hard links); "
              f"events ID index built once in {setup[n]['index_build_s']:.2f} s", flush=True)

    cfg = DescriptorConfig(countries=COUNTRIES)
    times: dict[int, dict[str, list[float]]] = {n: {} for n in sizes}
    out_dir = args.work / "duckdb-out"
    out_dir.mkdir(exist_ok=True)
    for d in MEASURED:  # round-robin over the sizes, so machine noise hits them alike
        csvs = unzip_day(args.work, d)
        for n in sizes:
            lake, t = lakes[n], times[n]

            def add(k: str, s: float) -> None:
                t.setdefault(k, []).append(s)

            add("ingest", timed(lambda: ingest(lake, "local", d, d, IngestConfig(), path=zips, progress=False)))
            add("reduce", timed(lambda: reduce(lake, d, d)))
            add("descriptors", timed(lambda: build_day(lake, d, cfg, embedder)))
            add("duckdb load", timed(lambda: duckdb_load(csvs, out_dir / "load.parquet")))
            add("duckdb dedupe scan", timed(lambda: duckdb_dedupe_scan(lake, d)))
            add("duckdb reduce", timed(lambda: duckdb_reduce(lake, d, out_dir / "reduce.parquet")))
            add("duckdb descriptors", timed(lambda: duckdb_descriptors(lake, d)))
            print(f"  {d} N={n}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in t.items()), flush=True)

    keys = list(times[sizes[0]])
    med = {n: {k: statistics.median(times[n][k]) for k in keys} for n in sizes}
    print(f"\nmedian seconds per day over {len(MEASURED)} real days (lakes synthetic: re-dated hard-linked copies)")
    print(f"{'':22}" + "".join(f"{f'N={n}':>12}" for n in sizes) + f"{f'{sizes[-1]}/{sizes[0]}':>10}")
    for k in keys:
        row = "".join(f"{med[n][k]:12.3f}" for n in sizes)
        print(f"{k:22}{row}{med[sizes[-1]][k] / med[sizes[0]][k]:10.2f}")
    if args.out:
        args.out.write_text(json.dumps({"sizes": sizes, "setup": setup, "times": times, "median": med}, indent=2,
                                       default=str) + "\n")


if __name__ == "__main__":
    main()
