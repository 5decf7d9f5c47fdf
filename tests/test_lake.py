"""The lake's atomic partition replacement survives a writer killed at any moment."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pyarrow as pa

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


def check(lake: Lake) -> int | None:
    """The partition's version (a constant column), or None when absent; fails on any partial data."""
    if not lake.has_partition("t", "2025-01-01"):
        return None
    t = lake.read("t", "2025-01-01", "2025-01-01", columns=["v"])
    values = set(t.column("v").to_pylist())
    assert t.num_rows == N and len(values) == 1, (t.num_rows, len(values))
    return values.pop()


def test_writer_killed_mid_write_leaves_previous_or_no_partition(tmp_path):
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
            versions.append(check(lake))
    finally:
        stop.set()
        thread.join()
    assert not seen_errors, seen_errors[0]
    assert any(v not in (None, 1) for v in versions)  # the writer did replace the partition at least once
    assert (lake.root / "_staging").exists()  # killed writers left half-written files there ...
    assert all(p.name == "part-0.parquet" for p in (lake.root / "t").rglob("*") if p.is_file())  # ... not here
    lake.clean_staging()
    assert check(lake) in versions
