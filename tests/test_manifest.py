"""The ``manifest`` table partitioned by file day: what a run reads and writes, and older single-file manifests."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.core.config import IngestConfig
from pipeline.core.lake import Lake, upgrade
from pipeline.core.schemas import MANIFEST_SCHEMA
from pipeline.core.status import LakeStatus
from pipeline.ingest.run import ingest

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "data" / "sample" / "gdelt-v2"
D1, D2 = dt.date(2025, 5, 20), dt.date(2025, 5, 21)


def _src(tmp_path: Path, undated: bool = False) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    for d in (D1, D2):
        for f in sorted(SAMPLE_DIR.glob(f"{d:%Y%m%d}*.zip")):
            shutil.copy(f, src / f.name)
    if undated:  # a file named without a date: its rows are filtered by day, its manifest row has no day
        shutil.copy(sorted(SAMPLE_DIR.glob(f"{D1:%Y%m%d}*.zip"))[0], src / "extra.export.CSV.zip")
    return src


def _rows(lake: Lake) -> list[tuple]:
    return sorted((r["source"], r["url"], r["day"], r["status"], r["md5"], r["rows_kept"])
                  for r in lake.read("manifest", columns=MANIFEST_SCHEMA.names).to_pylist())


def test_manifest_is_one_partition_per_file_day_and_a_run_rewrites_only_its_days(tmp_path):
    src = _src(tmp_path, undated=True)
    lake = Lake(tmp_path / "lake")
    ingest(lake, "local", D1, D2, IngestConfig(), path=src, progress=False)
    assert lake.partitions("manifest") == [D1, D2]
    for d in (D1, D2):
        days = lake.read("manifest", d, d).column("day").to_pylist()
        assert days == [d] * 3  # the day's 3 slices, nothing else
    (undated,) = lake.undated_files("manifest")  # manifest/part-0.parquet: the file without a day
    assert pq.read_table(undated).column("name").to_pylist() == ["extra.export.CSV.zip"]
    before = _rows(lake)

    # a forced re-ingest of D2 reads and rewrites D2's partition only
    d1_print, undated_print = lake.fingerprint("manifest", D1), undated.stat().st_mtime_ns
    (src / "extra.export.CSV.zip").unlink()
    ingest(lake, "local", D2, D2, IngestConfig(), path=src, force=True, progress=False)
    assert lake.fingerprint("manifest", D1) == d1_print and undated.stat().st_mtime_ns == undated_print
    assert _rows(lake) == before  # same files, same statuses and counts
    # a re-run skips every file the partitions mark done
    again = ingest(lake, "local", D1, D2, IngestConfig(), path=src, progress=False)
    assert again.count("skipped") == 6


def test_a_single_file_manifest_of_an_older_version_is_read_then_split_by_day(tmp_path):
    src = _src(tmp_path)
    ref = Lake(tmp_path / "ref")
    ingest(ref, "local", D1, D2, IngestConfig(), path=src, progress=False)
    rows = ref.read("manifest", columns=MANIFEST_SCHEMA.names).cast(MANIFEST_SCHEMA).to_pylist()
    rows[-1]["status"] = "failed"  # one file of D2 failed in the old run

    def old_lake(name: str) -> Lake:
        """The events of ``ref`` with the manifest as older versions wrote it: one file, every day."""
        lake = Lake(tmp_path / name)
        shutil.copytree(ref.root / "events", lake.root / "events")
        (lake.root / "manifest").mkdir()
        pq.write_table(pa.Table.from_pylist(rows, schema=MANIFEST_SCHEMA).drop_columns(["rows_replaced"]),
                       lake.root / "manifest" / "part-0.parquet")  # an older schema, too
        return lake

    # read as it is: status sees the failed file's day
    lake = old_lake("a")
    status = LakeStatus(lake)
    assert status.unfinished(D2) and not status.unfinished(D1)
    # upgrade splits it (and a second upgrade has nothing left to do)
    assert upgrade(lake.root).manifest_days == 2 and upgrade(lake.root).manifest_days == 0
    assert lake.partitions("manifest") == [D1, D2] and not lake.undated_files("manifest")
    assert _rows(lake) == sorted((r["source"], r["url"], r["day"], r["status"], r["md5"], r["rows_kept"])
                                 for r in rows)
    assert LakeStatus(lake).unfinished(D2)

    # ingest splits it by itself, then retries only the failed file
    lake = old_lake("b")
    report = ingest(lake, "local", D1, D2, IngestConfig(), path=src, progress=False)
    assert report.count("skipped") == 5 and report.count("ok") == 1
    assert lake.partitions("manifest") == [D1, D2] and not lake.undated_files("manifest")
    assert _rows(lake) == _rows(ref)


def test_splitting_an_old_manifest_killed_midway_is_finished_by_a_rerun(tmp_path, monkeypatch):
    src = _src(tmp_path)
    ref = Lake(tmp_path / "ref")
    ingest(ref, "local", D1, D2, IngestConfig(), path=src, progress=False)
    table = ref.read("manifest", columns=MANIFEST_SCHEMA.names)
    lake = Lake(tmp_path / "lake")
    (lake.root / "manifest").mkdir(parents=True)
    pq.write_table(table, lake.root / "manifest" / "part-0.parquet")

    def crash(*a, **k):
        raise KeyboardInterrupt  # as a kill after the day partitions, before the single file is rewritten

    with monkeypatch.context() as m:
        m.setattr(Lake, "write_undated", crash)
        with pytest.raises(KeyboardInterrupt):
            upgrade(lake.root)
    assert lake.partitions("manifest") == [D1, D2] and lake.undated_files("manifest")  # both copies for now
    assert upgrade(lake.root).manifest_days == 2
    assert _rows(lake) == _rows(ref) and not lake.undated_files("manifest")


def test_writing_a_day_partitioned_table_without_a_date_is_refused(tmp_path):
    lake = Lake(tmp_path)
    t = pa.table({"x": [1]})
    lake.write_partition("t", t, D1)
    with pytest.raises(ValueError, match="write_undated"):
        lake.write_partition("t", t)  # would replace every day partition
    lake.write_undated("t", t)
    assert lake.partitions("t") == [D1] and lake.read("t").num_rows == 2
    lake.write_undated("t", t.slice(0, 0))
    assert not lake.undated_files("t") and lake.partitions("t") == [D1]
