"""``scripts/full_days_check.sh`` (docs/forecast.md, "one command for the check on full days"): the lake part of
the script run on three shipped days, its walk-forwards left out (``SIZES=""``: they take 15–20 min each)."""

from __future__ import annotations

import os
import subprocess
import sys

import duckdb

from tests.conftest import REPO, copy_sample_days


def test_the_full_days_check_builds_the_lake_and_describes_the_busiest(tmp_path, sample_descriptors):
    days = ["2025-05-16", "2025-05-17", "2025-05-18"]
    src = copy_sample_days(tmp_path / "exports", days)
    root = tmp_path / "full days"  # a space in the path: the script quotes every path
    env = {**os.environ, "SOURCE": "local", "SRC": str(src), "START": days[0], "END": days[-1], "SIZES": "",
           "TOP_N": "2", "ROOT": str(root), "PY": sys.executable,
           "EMBEDDINGS_FROM": str(sample_descriptors.root)}  # the sample's phrases: few left to embed
    done = subprocess.run([str(REPO / "scripts" / "full_days_check.sh")], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]

    lake = root / "lake"
    busiest = duckdb.execute(
        "SELECT ActionGeo_CountryCode FROM read_parquet($f) WHERE ActionGeo_CountryCode IS NOT NULL "
        "GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 2", {"f": f"{lake}/country/**/*.parquet"}).fetchall()
    described = duckdb.execute(
        "SELECT DISTINCT country FROM read_parquet($f) ORDER BY 1",
        {"f": f"{lake}/descriptors/**/*.parquet"}).fetchall()
    assert sorted(c for c, in busiest) == [c for c, in described]  # TOP_N busiest, no more
    # descriptors from START + 1 (a day's descriptor reads the day before) to END
    assert sorted(p.name for p in (lake / "descriptor_days").iterdir()) == days[1:]
    assert not (root / "reports").exists()  # SIZES="": no backtest
