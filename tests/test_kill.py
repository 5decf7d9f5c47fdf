"""kill -9 at random points of ``reduce`` and ``descriptors``, then a re-run: the same tables as a clean run.

Each kill point forks a child that runs the stage on a copy of the lake and is
SIGKILLed either at a random step of a partition swap (``lake.crash_hook``) or
after a random delay; the parent then re-runs the stage as a backfill would
(``LakeStatus`` says what is left) and compares every table with a clean run.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import shutil
import signal
import time
from pathlib import Path

import pyarrow as pa
import pytest

from pipeline.core import lake as lake_mod
from pipeline.core.config import DescriptorConfig
from pipeline.core.lake import Lake
from pipeline.core.status import LakeStatus
from pipeline.features.descriptors import build_range
from pipeline.ingest.reduce import reduce
from tests.conftest import SAMPLE_COUNTRIES

DAYS = (dt.date(2025, 5, 20), dt.date(2025, 5, 21))
CFG = DescriptorConfig(countries=list(SAMPLE_COUNTRIES))
SEED = 20261201


def _copy(src: Lake, dst: Path, tables: tuple[str, ...]) -> Lake:
    for t in tables:
        if t == "embeddings":
            shutil.copytree(src.table_dir(t), dst / t)
            continue
        for d in DAYS:
            shutil.copytree(src.partition_dir(t, d), dst / t / d.isoformat())
    return Lake(dst)


def _tables(lake: Lake, tables: tuple[str, ...]) -> dict[str, pa.Table]:
    return {t: lake.read(t) for t in tables}


def _run_killed(action, at_step: int | None, delay: float | None) -> bool:
    """Fork ``action()``; kill it at its ``at_step``-th swap step or after ``delay`` s. True if it died."""
    pid = os.fork()
    if pid == 0:
        try:
            calls = [0]

            def hook(step: str) -> None:
                calls[0] += 1
                if calls[0] == at_step:
                    os.kill(os.getpid(), signal.SIGKILL)

            lake_mod.crash_hook = hook if at_step is not None else None
            action()
        finally:
            os._exit(0)
    if delay is not None:
        time.sleep(delay)
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    return os.WIFSIGNALED(status)


def _steps(action) -> int:
    """How many swap steps ``action`` passes through (counted in this process)."""
    n = [0]
    lake_mod.crash_hook = lambda s: n.__setitem__(0, n[0] + 1)
    try:
        action()
    finally:
        lake_mod.crash_hook = None
    return n[0]


@pytest.mark.parametrize("stage,points", [("reduce", 12), ("descriptors", 10)])
def test_kill_then_rerun_gives_the_clean_tables(sample_descriptors, embedder, tmp_path, stage, points):
    src = sample_descriptors
    inputs = ("events",) if stage == "reduce" else ("country", "embeddings")
    outputs = ("country",) if stage == "reduce" else ("descriptors", "descriptor_days")

    def run(lake: Lake):
        if stage == "reduce":
            return lambda: reduce(lake, DAYS[0], DAYS[-1], workers=2)
        return lambda: build_range(lake, DAYS[0], DAYS[-1], CFG, embedder)

    clean = _copy(src, tmp_path / "clean", inputs)
    t0 = time.perf_counter()
    n_steps = _steps(run(clean))
    seconds = time.perf_counter() - t0
    expected = _tables(clean, outputs)
    assert n_steps >= 5 * len(outputs) * len(DAYS)  # every output partition went through a swap

    rng = random.Random(SEED + len(stage))
    deaths = 0
    for i in range(points):
        lake = _copy(src, tmp_path / f"k{i}", inputs)
        if i % 2 == 0:  # at a random step of some partition's swap
            deaths += _run_killed(run(lake), rng.randint(1, n_steps), None)
        else:  # anywhere at all, Parquet encoding included
            deaths += _run_killed(run(lake), None, rng.uniform(0.0, seconds))
        lake = Lake(lake.root)
        status = LakeStatus(lake)
        todo = [d for d in DAYS if not status.done(stage, d)]
        for d in todo:  # the re-run a backfill would make
            (reduce(lake, d, d) if stage == "reduce" else build_range(lake, d, d, CFG, embedder))
        got = _tables(lake, outputs)
        for t in outputs:
            assert got[t].equals(expected[t]), (stage, i, t)
        assert os.listdir(lake.root / "_staging") == []
        assert all(LakeStatus(lake).done(stage, d) for d in DAYS)
    assert deaths >= points // 2  # most kills did land mid-run
