"""How long the lake takes to say which days it leaves out (``pipeline.core.coverage.left_out_days``), which every
reader of the ``country`` table asks, several times a run: the DuckDB pass the pipeline makes (first call, then
remembered) beside an Arrow read of the same manifest columns with a Python count (the way before), on a synthetic
manifest of ``--days`` days of 96 exports and 96 mentions files each (one day holding 30).

    PYTHONPATH=. python bench/coverage_speed.py --days 1000
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time

import pyarrow as pa

from pipeline.core import coverage
from pipeline.core.lake import Lake
from pipeline.core.schemas import MANIFEST_SCHEMA


def synthetic_manifest(lake: Lake, days: int) -> None:
    d0, now = dt.date(2023, 1, 1), dt.datetime.now(dt.timezone.utc)
    for i in range(days):
        d = d0 + dt.timedelta(days=i)
        names = [f"{d:%Y%m%d}{h:02d}{m:02d}00.export.CSV.zip" for h in range(24) for m in (0, 15, 30, 45)]
        names = names[:30] if i == days // 2 else names
        names += [x.replace("export", "mentions") for x in names]
        n = len(names)
        cols = {f.name: [None] * n for f in MANIFEST_SCHEMA}
        cols.update(source=["gdelt2"] * n, name=names, url=names, day=[d] * n, status=["ok"] * n, rows_kept=[1] * n,
                    rows_quarantined=[0] * n, rows_duplicate=[0] * n, rows_out_of_range=[0] * n,
                    ingested_at=[now] * n)
        lake.write_partition("manifest", pa.Table.from_pydict(cols, schema=MANIFEST_SCHEMA), d)


def arrow_loop(lake: Lake) -> dict[dt.date, int]:
    """The counts as an Arrow read and a Python loop over the rows make them (the peer)."""
    t = lake.read("manifest", columns=["name", "status", "day"])
    names: dict[dt.date, set[str]] = {}
    for name, status, day in zip(*(t.column(c).to_pylist() for c in ("name", "status", "day"))):
        if status == "ok" and day is not None and coverage.EXPORT_NAME.match(name):
            names.setdefault(day, set()).add(name.lower().split(".")[0])
    return {d: len(v) for d, v in sorted(names.items())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--days", type=int, default=1000)
    args = ap.parse_args()
    lake = Lake(tempfile.mkdtemp(prefix="coverage-speed-"))
    synthetic_manifest(lake, args.days)
    t0 = time.perf_counter()
    peer = arrow_loop(lake)
    t1 = time.perf_counter()
    ours = coverage.exports_per_day(lake, None, None)
    t2 = time.perf_counter()
    left = coverage.left_out_days(lake)
    t3 = time.perf_counter()
    assert ours == peer and len(left) == 1, (len(ours), len(peer), left)
    print(f"{args.days} days, {2 * 96 * args.days:,} manifest rows: Arrow read + Python loop {t1 - t0:.3f} s | "
          f"DuckDB pass {t2 - t1:.3f} s | left_out_days again (remembered) {t3 - t2:.3f} s; left out: {left[0]}")


if __name__ == "__main__":
    main()
