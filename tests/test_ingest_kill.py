"""kill -9 at random points of an ingest, then a re-run: the same tables as a clean run.

The ingest merges new slices into days that already have rows (the case where a lost
partition would lose data), in a child process forked from the test (no import cost),
killed with SIGKILL after a random delay; the re-run happens in the test process.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import shutil
import signal
import time

import pytest

from pipeline.core.config import IngestConfig
from pipeline.core.lake import Lake
from pipeline.ingest.run import ingest
from tests.conftest import copy_sample_days

DAYS = ["2025-05-20", "2025-05-21"]
KILLS = 20


def _ingest(root: str, src: str) -> None:
    ingest(Lake(root), "local", DAYS[0], DAYS[-1], IngestConfig(concurrency=2), path=src, progress=False)


def _child(root: str, src: str) -> None:
    _ingest(root, src)
    os._exit(0)


def tables(lake: Lake) -> tuple:
    """What a re-run must reproduce: every events row, the manifest's files and statuses, the quarantine."""
    events = lake.read("events", columns=None)
    events = events.sort_by([("GLOBALEVENTID", "ascending")])
    manifest = sorted((r["name"], r["status"], r["md5"]) for r in lake.read("manifest").to_pylist())
    quarantine = lake.read("quarantine").num_rows if lake.partitions("quarantine") else 0
    return events, manifest, quarantine, lake.partitions("events")


def same(a: tuple, b: tuple) -> bool:
    return a[0].equals(b[0]) and a[1:] == b[1:]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_kill_9_at_random_points_then_rerun_gives_the_clean_tables(tmp_path):
    src = copy_sample_days(tmp_path / "src", DAYS, slice(0, 1))
    seed = tmp_path / "seed"
    _ingest(str(seed), str(src))  # each day already has one slice (recorded done in the manifest) ...
    copy_sample_days(src, DAYS, slice(1, None))  # ... and the run adds the others to it

    clean = tmp_path / "clean"
    shutil.copytree(seed, clean)
    ctx = multiprocessing.get_context("fork")
    t0 = time.perf_counter()
    p = ctx.Process(target=_child, args=(str(clean), str(src)))
    p.start()
    p.join()
    duration = time.perf_counter() - t0
    assert p.exitcode == 0
    expected = tables(Lake(clean))

    rng = random.Random(12)
    killed_mid_run = 0
    for i in range(KILLS):
        root = tmp_path / f"k{i}"
        shutil.copytree(seed, root)
        p = ctx.Process(target=_child, args=(str(root), str(src)))
        p.start()
        time.sleep(rng.uniform(0, duration))
        if p.is_alive():
            os.kill(p.pid, signal.SIGKILL)
            killed_mid_run += 1
        p.join()
        _ingest(str(root), str(src))  # the re-run
        got = tables(Lake(root))
        assert same(got, expected), f"kill {i}: {got[0].num_rows} rows vs {expected[0].num_rows}; {got[1:]}"
        shutil.rmtree(root)
    assert killed_mid_run >= KILLS // 2  # most kills landed inside the run


def _child_killed_after_rename(root: str, src: str, k: int) -> None:
    """The ingest, SIGKILLed right after its k-th ``os.rename``/``os.replace`` (each a step of a lake commit)."""
    calls = [0]

    def wrap(real):
        def step(*args, **kwargs):
            out = real(*args, **kwargs)
            calls[0] += 1
            if calls[0] == k:
                os.kill(os.getpid(), signal.SIGKILL)
            return out
        return step

    os.rename, os.replace = wrap(os.rename), wrap(os.replace)
    _child(root, src)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_kill_9_after_every_rename_then_rerun_gives_the_clean_tables(tmp_path):
    """Deterministic kill points: right after each rename the ingest makes, whatever the lake's design."""
    src = copy_sample_days(tmp_path / "src", DAYS, slice(0, 1))
    seed = tmp_path / "seed"
    _ingest(str(seed), str(src))
    copy_sample_days(src, DAYS, slice(1, None))
    clean = tmp_path / "clean"
    shutil.copytree(seed, clean)
    _ingest(str(clean), str(src))
    expected = tables(Lake(clean))
    ctx = multiprocessing.get_context("fork")
    failures = []
    for k in range(1, 60):
        root = tmp_path / f"r{k}"
        shutil.copytree(seed, root)
        p = ctx.Process(target=_child_killed_after_rename, args=(str(root), str(src), k))
        p.start()
        p.join()
        _ingest(str(root), str(src))
        got = tables(Lake(root))
        if not same(got, expected):
            failures.append(f"after rename {k}: {got[0].num_rows} rows, expected {expected[0].num_rows}")
        shutil.rmtree(root)
        if p.exitcode == 0:  # the run made fewer than k renames: every step was covered
            break
    assert k > 3 and not failures, failures
