"""The lake: atomic, crash-safe partition swaps; day look-ups by path; pure-Parquet tables with a real ``date``."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pyarrow as pa
import pytest

from pipeline.core import lake as lake_mod
from pipeline.core.lake import Lake

N = 100_000
WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np, pyarrow as pa
    from pipeline.core.lake import Lake
    lake = Lake(sys.argv[1], compression_level=1)
    k = 100
    while True:  # rewrite the same partition forever, each version one constant value
        k += 1
        data = pa.table({"v": np.full(%d, k, np.int64), "s": pa.array(["x" * 20] * %d)})
        print("start", k, flush=True)
        lake.write_partition("t", data, "2025-01-01")
        print("done", k, flush=True)
    """ % (N, N)
)


def check(lake: Lake, n: int = N) -> int | None:
    """The partition's version (a constant column), or None when absent; fails on any partial data."""
    if not lake.has_partition("t", "2025-01-01"):
        return None
    t = lake.read("t", "2025-01-01", "2025-01-01", columns=["v"])
    values = set(t.column("v").to_pylist())
    assert t.num_rows == n and len(values) == 1, (t.num_rows, len(values))
    return values.pop()


def test_writer_killed_mid_write_leaves_previous_or_new_partition(tmp_path):
    lake = Lake(tmp_path / "lake")
    lake.write_partition("t", pa.table({"v": pa.array([1] * N, pa.int64()), "s": pa.array(["x" * 20] * N)}),
                         "2025-01-01")
    seen_errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:  # a concurrent reader never sees a partial partition
        while not stop.is_set():
            try:
                check(lake)
            except (FileNotFoundError, OSError):
                pass  # the partition vanished between listing and reading: allowed (previous or none)
            except AssertionError as exc:
                seen_errors.append(exc)

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    versions = []
    try:
        for delay in (0.0, 0.005, 0.02, 0.05):
            proc = subprocess.Popen([sys.executable, "-c", WRITER, str(lake.root)], stdout=subprocess.PIPE,
                                    text=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
            while not proc.stdout.readline().startswith("done"):  # one complete write first
                pass
            assert proc.stdout.readline().startswith("start")  # the next write has begun ...
            time.sleep(delay)
            os.kill(proc.pid, signal.SIGKILL)  # ... and is killed part-way
            proc.wait()
            versions.append(check(Lake(lake.root)))  # a fresh Lake recovers what the kill left
            assert os.listdir(lake.root / "_staging") == []  # ... and removes the leftovers
    finally:
        stop.set()
        thread.join()
    assert not seen_errors, seen_errors[0]
    assert None not in versions  # a kill never loses the partition
    assert any(v != 1 for v in versions)  # the writer did replace the partition at least once
    assert all(p.name == "part-0.parquet" for p in (lake.root / "t").rglob("*") if p.is_file())


def _killed_child(root, step: str, action) -> None:
    """Fork a child that runs ``action(Lake(root))`` and SIGKILLs itself at ``step`` of the swap."""
    pid = os.fork()
    if pid == 0:  # child: die at the step, as a power cut or kill -9 would
        try:
            lake_mod.crash_hook = lambda s: os.kill(os.getpid(), signal.SIGKILL) if s == step else None
            action(Lake(root))
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, f"child did not reach {step}"


def _version(n: int, k: int) -> pa.Table:
    return pa.table({"v": pa.array([k] * n, pa.int64())})


@pytest.mark.parametrize("step,expect", [("staged", 1), ("target", 1), ("old-out", 1), ("new-in", 2), ("done", 2)])
def test_kill_at_every_step_of_a_swap_keeps_old_or_new(tmp_path, step, expect):
    root = tmp_path / "lake"
    Lake(root).write_partition("t", _version(1000, 1), "2025-01-01")
    _killed_child(root, step, lambda lk: lk.write_partition("t", _version(1000, 2), "2025-01-01"))
    lake = Lake(root)
    assert check(lake, 1000) == expect  # never none, never partial
    assert os.listdir(root / "_staging") == []  # the first read cleaned up
    lake.write_partition("t", _version(1000, 3), "2025-01-01")  # and the next write works
    assert check(lake, 1000) == 3 and [p.name for p in (root / "t").iterdir()] == ["2025-01-01"]


@pytest.mark.parametrize("step", ["staged", "target", "old-out", "new-in", "done"])
def test_kill_during_first_write_leaves_nothing_or_the_partition(tmp_path, step):
    root = tmp_path / "lake"
    _killed_child(root, step, lambda lk: lk.write_partition("t", _version(10, 2), "2025-01-01"))
    assert check(Lake(root), 10) == (2 if step in ("new-in", "done") else None)
    assert os.listdir(root / "_staging") == []


@pytest.mark.parametrize("step,present", [("old-out", False), ("done", False)])
def test_kill_during_delete(tmp_path, step, present):
    root = tmp_path / "lake"
    Lake(root).write_partition("t", _version(10, 1), "2025-01-01")
    _killed_child(root, step, lambda lk: lk.delete_partition("t", "2025-01-01"))
    lake = Lake(root)
    assert lake.has_partition("t", "2025-01-01") is present and os.listdir(root / "_staging") == []


def test_a_failed_write_keeps_the_old_partition(tmp_path, monkeypatch):
    lake = Lake(tmp_path / "lake")
    lake.write_partition("t", _version(10, 1), "2025-01-01")

    def boom(step):
        if step == "old-out":
            raise OSError("disk full")

    monkeypatch.setattr(lake_mod, "crash_hook", boom)
    with pytest.raises(OSError):
        lake.write_partition("t", _version(10, 2), "2025-01-01")
    monkeypatch.setattr(lake_mod, "crash_hook", None)
    assert check(lake, 10) == 1 and os.listdir(lake.root / "_staging") == []


def test_recover_leaves_a_live_writer_alone(tmp_path):
    lake = Lake(tmp_path / "lake")
    lake.write_partition("t", _version(10, 1), "2025-01-01")
    seen = []

    def during(step):
        if step == "old-out":  # the partition is out: another Lake recovering now must not touch it
            seen.append(Lake(lake.root).recover())

    lake_mod.crash_hook = during
    try:
        lake.write_partition("t", _version(10, 2), "2025-01-01")
    finally:
        lake_mod.crash_hook = None
    assert seen == [0] and check(lake, 10) == 2


def test_day_lookups_and_listing(tmp_path):
    lake = Lake(tmp_path / "lake")
    days = [dt.date(2025, 1, 1) + dt.timedelta(days=i) for i in range(0, 60, 2)]
    for d in days:
        lake.write_partition("t", _version(1, d.day), d)
        lake.write_partition("f", _version(1, d.day), d, model="a")
    lake.write_partition("u", _version(3, 0))  # a table without days
    assert lake.partitions("t") == days
    assert lake.partitions("t", "2025-01-02", "2025-01-09") == days[1:5]  # by path (short range)
    assert lake.partitions("t", "2025-01-02", "2025-03-09") == days[1:]  # by scan
    assert lake.partitions("f", "2025-01-03", "2025-01-05") == [dt.date(2025, 1, 3), dt.date(2025, 1, 5)]  # under a key level
    assert lake.partitions("f", model="a") == days and lake.partitions("f", model="b") == []
    assert [f.parent.name for f in lake.files("t", "2025-01-01", "2025-01-03")] == ["2025-01-01", "2025-01-03"]
    assert lake.read("u").num_rows == 3 and lake.files("u", "2025-01-01", "2025-01-01") == []
    one = lake.read("t", "2025-01-05", "2025-01-05")
    assert one.column_names == ["v", "date"] and one.column("date").to_pylist() == [dt.date(2025, 1, 5)]
    assert lake.has_partition("t", "2025-01-05") and not lake.has_partition("t", "2025-01-06")


def test_every_reader_sees_date_as_a_date(tmp_path):
    import duckdb
    import pandas as pd
    import polars as pl

    lake = Lake(tmp_path / "lake")
    for d in ("2025-01-01", "2025-01-02"):
        lake.write_partition("t", _version(2, 1), d)
        lake.write_partition("f", _version(2, 1), d, model="m")
    for t in ("t", "f"):
        df = pd.read_parquet(lake.table_dir(t))
        assert df["date"].min() == dt.date(2025, 1, 1) and len(df) == 4
        assert pl.read_parquet(str(lake.table_dir(t) / "**" / "*.parquet"), hive_partitioning=True)["date"].dtype == pl.Date
        assert duckdb.sql(f"SELECT min(date) FROM read_parquet('{lake.table_dir(t)}/**/*.parquet', "
                          "hive_partitioning = true)").fetchall() == [(dt.date(2025, 1, 1),)]
    one = pd.read_parquet(lake.partition_dir("t", "2025-01-02"))
    assert list(one["date"]) == [dt.date(2025, 1, 2)] * 2  # one day's folder keeps its date


def test_an_old_layout_lake_is_refused_then_upgraded(tmp_path):
    import pyarrow.parquet as pq

    from pipeline.core.errors import UserError
    from pipeline.core.lake import upgrade

    root = tmp_path / "lake"
    for d in ("2025-01-01", "2025-01-02"):  # the old layout: date=… folders, no date in the files
        (root / "t" / f"date={d}").mkdir(parents=True)
        pq.write_table(_version(3, 1), root / "t" / f"date={d}" / "part-0.parquet")
        (root / "f" / "model=a" / f"date={d}").mkdir(parents=True)
        pq.write_table(_version(2, 1), root / "f" / "model=a" / f"date={d}" / "part-0.parquet")
    with pytest.raises(UserError, match="upgrade"):
        Lake(root).partitions("t")
    assert upgrade(root).converted == 4 and upgrade(root).converted == 0
    lake = Lake(root)
    assert lake.partitions("t") == lake.partitions("f", model="a") == [dt.date(2025, 1, 1), dt.date(2025, 1, 2)]
    assert lake.read("f").column("date").to_pylist() == [dt.date(2025, 1, 1)] * 2 + [dt.date(2025, 1, 2)] * 2


def test_upgrade_restores_a_trash_partition_whose_day_is_missing_and_removes_superseded_ones(sample_lake, tmp_path):
    """Older versions left ``_trash/<id>/`` after a crash: sometimes the only copy of a day."""
    import os
    import time

    import pyarrow.parquet as pq

    from pipeline.core.lake import upgrade

    d1, d2, d3 = dt.date(2025, 5, 20), dt.date(2025, 5, 21), dt.date(2025, 5, 22)
    root = tmp_path / "lake"
    lake = Lake(root)

    def trash(name: str, table: pa.Table) -> None:  # as the old code left it: files without `date`, no record of where
        (root / "_trash" / name).mkdir(parents=True)
        pq.write_table(table.drop_columns(["date"]) if "date" in table.column_names else table,
                       root / "_trash" / name / "part-0.parquet")
        time.sleep(0.01)  # distinct mtimes: the newest copy wins

    events = {d: sample_lake.read("events", d, d) for d in (d1, d2, d3)}
    lake.write_partition("events", events[d1], d1)  # live: its trash copy is an older version
    trash("a" * 32, events[d1].slice(0, 10))
    trash("b" * 32, events[d2])  # the only copy of d2 (a crash between the old swap's two renames)
    trash("c" * 32, events[d3].slice(0, 5))  # two copies of d3, the newer one wins
    trash("d" * 32, events[d3])
    trash("e" * 32, pa.table({"phrase": ["x"], "weight": [1.0]}))  # which table or day: unknown
    manifest = sample_lake.read("manifest", d1, d2).drop_columns(["date"])
    trash("f" * 32, manifest)  # the old single-file manifest, moved out while being rewritten

    report = upgrade(root)
    assert sorted(report.trash_restored) == ["events/2025-05-21", "events/2025-05-22", "manifest"]
    assert report.trash_removed == 2 and report.trash_kept == ["_trash/" + "e" * 32]
    assert "left _trash/eeee" in str(report)
    for d in (d1, d2, d3):
        got = lake.read("events", d, d)
        assert got.num_rows == events[d].num_rows and got.column("date").to_pylist() == [d] * got.num_rows
    assert report.manifest_days == 2 and lake.partitions("manifest") == [d1, d2]  # restored, then split by day
    assert lake.read("manifest").num_rows == manifest.num_rows
    assert os.listdir(root / "_trash") == ["e" * 32]  # never the only copy of anything
    again = upgrade(root)
    assert not again.trash_restored and again.trash_removed == 0 and again.trash_kept == report.trash_kept


def test_overlay_lake_reads_the_source_writes_its_own_and_refuses_the_rest(tmp_path):
    from pipeline.core.errors import UserError
    from pipeline.core.lake import OverlayLake

    source = Lake(tmp_path / "src")
    t = pa.table({"x": [1, 2]})
    source.write_partition("country", t, "2025-01-01")
    source.write_partition("forecasts", t, "2025-01-01", model="daily")
    source.write_partition("embeddings", t, None, embedder="e", batch="a")
    (source.meta_dir("country") / "side.json").parent.mkdir(parents=True)
    (source.meta_dir("country") / "side.json").write_text("{}")
    over = OverlayLake(tmp_path / "bt", source, own=["forecasts", "scores"], shared=["embeddings"])
    assert sorted(over.linked) == ["country", "embeddings"] and over.tables() == ["country", "embeddings"]
    assert over.read("country", "2025-01-01", "2025-01-01").num_rows == 2 and (over.meta_dir("country") / "side.json").exists()
    # its own tables: written under its root, the source's untouched
    over.write_partition("forecasts", pa.table({"x": [9]}), "2025-01-01", model="daily")
    assert over.read("forecasts", model="daily").column("x").to_pylist() == [9]
    assert source.read("forecasts", model="daily").column("x").to_pylist() == [1, 2]
    # a table of the source: read only; a shared cache: written (and locked) by the source
    with pytest.raises(UserError, match="'country' is .* read only here"):
        over.write_partition("country", t, "2025-01-02")
    with pytest.raises(UserError, match="read only"):
        over.delete_partition("country", "2025-01-01")
    assert source.partitions("country") == [dt.date(2025, 1, 1)]
    over.write_partition("embeddings", t, None, embedder="e", batch="b")
    assert source.has_partition("embeddings", None, embedder="e", batch="b")
    with over.lock("embeddings-e"):
        assert (source.root / "_locks" / "embeddings-e.lock").exists() and not (over.root / "_locks").exists()
    # a table new to both is its own; the source moved: the links are mended on the next open
    over.write_partition("gaps", t, "2025-01-01")
    assert not source.has_partition("gaps", "2025-01-01")
    moved = Lake(tmp_path / "moved")
    (tmp_path / "src").rename(moved.root)
    again = OverlayLake(tmp_path / "bt", moved, own=["forecasts", "scores"])
    assert again.read("country").num_rows == 2 and again.read("forecasts", model="daily").num_rows == 1
    with pytest.raises(UserError, match="cannot be the lake itself"):
        OverlayLake(moved.root, moved, own=["forecasts"])


def test_upgrade_gives_old_partitions_the_columns_added_since(tmp_path):
    """A watch-list partition written before ``against`` existed, and one of ``forecasts`` missing a non-nullable
    column without a default: pandas and polars take one file's schema for a folder, so the first is rewritten with
    the column (rows and values untouched) and the second listed, not invented. A second run changes nothing."""
    import pandas as pd
    import pyarrow.parquet as pq

    from pipeline.core.lake import upgrade
    from pipeline.core.schemas import FORECASTS_SCHEMA, WATCHLIST_SCHEMA

    lake = Lake(tmp_path / "lake")
    d1, d2 = dt.date(2025, 6, 6), dt.date(2025, 6, 7)
    row = {f.name: [None] for f in WATCHLIST_SCHEMA}
    row.update({"list": ["rises"], "rank": [1], "direction": ["rise"], "conflict": [False], "country": ["AA"],
                "country_name": ["Aruba"], "region": ["Caribbean"], "level": ["root"], "code": ["18"],
                "probability": [0.6], "usual": [0.1], "difference": [0.5], "ratio": [0.61 / 0.11],
                "climatology": [0.1], "baseline": [0.2], "baseline_run": ["baseline-learned"], "against": ["both"],
                "actors": [""], "phrases": [["x"]], "model_run": ["m"]})
    new = pa.table(row, schema=WATCHLIST_SCHEMA)
    lake.write_partition("watchlist", new, d2, schema=WATCHLIST_SCHEMA, model="m")
    old = WATCHLIST_SCHEMA.remove(WATCHLIST_SCHEMA.get_field_index("against"))
    lake.write_partition("watchlist", new.drop_columns(["against"]), d1, schema=old, model="m")
    broken = pa.table({"country": ["AA"], "level": ["root"], "code": ["18"]})
    lake.write_partition("forecasts", broken, d1, model="m")
    assert "against" not in pd.read_parquet(tmp_path / "lake" / "watchlist")  # what a pandas user saw

    report = upgrade(lake.root)
    assert report.columns_added == {"watchlist": 1} and report.columns_left == ["forecasts/model=m/2025-06-06"]
    assert "1 partitions given the columns" in str(report) and "left forecasts/model=m/2025-06-06" in str(report)
    w = pd.read_parquet(tmp_path / "lake" / "watchlist").sort_values("date")
    assert list(w.against) == ["", "both"] and list(w.probability) == [0.6, 0.6] and list(w.code) == ["18", "18"]
    assert pq.read_schema(lake.files("watchlist", d1, d1, model="m")[0]).names[:len(WATCHLIST_SCHEMA)] == \
        WATCHLIST_SCHEMA.names
    assert FORECASTS_SCHEMA.get_field_index("model_run") >= 0  # the column the broken partition lacks
    again = upgrade(lake.root)
    assert again.columns_added == {} and again.columns_left == ["forecasts/model=m/2025-06-06"]
