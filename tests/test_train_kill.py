"""kill -9 of ``gdelt-forecast train`` at random points and inside its saves, then ``train --resume``.

Each trial starts from a finished run (``models/r``, 3 steps, with its checkpoint) and
continues it with ``train --resume --max-steps 7`` in a child process forked from the
test (the CLI's own entry point; forking saves the import of torch per trial), killed
with SIGKILL after a random delay, or just before one of the renames of a checkpoint
save or of the final save. Then:

- ``models/r`` right after the kill is the previous complete model or the new one,
  file for file (never a mix, never partly written) and loads;
- the re-run (``train --resume``) finishes and gives the uninterrupted run's parameters.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import random
import shutil
import signal
import sys
import time
import traceback
from pathlib import Path

import pytest
import torch
import yaml

from tests.conftest import SAMPLE_COUNTRIES

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")

REPO = Path(__file__).resolve().parents[1]
RUN = "r"
MODEL_FILES = ("model.safetensors", "descriptor_encoder.safetensors", "forecaster.json", "config.json")


def _config(tmp_path: Path) -> Path:
    cfg = yaml.safe_load((REPO / "configs" / "tiny.yaml").read_text())
    cfg["dataset"]["countries"] = list(SAMPLE_COUNTRIES)
    cfg["model"]["max_target_tokens"] = 48
    cfg["train"] |= {"epochs": 2, "checkpoint_every": 2, "val_generate": 0, "max_new_tokens": 16, "num_threads": 1,
                     "warmup_steps": 2}
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _cli(lake: Path, config: Path, models: Path, *extra: str) -> None:
    """``gdelt-forecast --lake … train --config … --models-dir … --run r …`` in this process."""
    import typer

    from gdelt_forecast.cli import app

    typer.main.get_command(app).main(
        ["--lake", str(lake), "train", "--config", str(config), "--models-dir", str(models), "--run", RUN, *extra],
        prog_name="gdelt-forecast", standalone_mode=False)


def _child(args: tuple, kill_before_replace: int | None, log: str | None) -> None:
    """Run the CLI; optionally SIGKILL itself just before its n-th ``os.replace`` (or log them all)."""
    try:
        real, calls = os.replace, [0]

        def replace(src, dst, *a, **k):
            calls[0] += 1
            if log is not None:
                with open(log, "a") as fh:
                    fh.write(f"{src}\t{dst}\n")
            if calls[0] == kill_before_replace:
                os.kill(os.getpid(), signal.SIGKILL)
            return real(src, dst, *a, **k)

        os.replace = replace
        _cli(*args)
        code = 0
    except BaseException:  # noqa: BLE001 - the exit code tells the test
        traceback.print_exc(file=sys.stderr)
        code = 1
    os._exit(code)


def _fork(args: tuple, kill_before_replace: int | None = None, log: Path | None = None,
          kill_after_s: float | None = None) -> int | None:
    """Run ``_child`` in a forked process; returns its exit code (None when this test killed it)."""
    p = multiprocessing.get_context("fork").Process(
        target=_child, args=(args, kill_before_replace, str(log) if log else None))
    p.start()
    if kill_after_s is not None:
        p.join(kill_after_s)
        if p.is_alive():
            os.kill(p.pid, signal.SIGKILL)
            p.join()
            return None
    p.join()
    return p.exitcode


def _files(run_dir: Path) -> dict[str, str]:
    """sha1 of each model file of a run directory (missing files absent)."""
    return {f: hashlib.sha1((run_dir / f).read_bytes()).hexdigest() for f in MODEL_FILES if (run_dir / f).exists()}


def _params(run_dir: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(run_dir / "model.safetensors")


def test_kill_9_during_training_and_its_saves_then_resume(sample_descriptors, tmp_path):
    from pipeline.model.forecaster import EventForecaster

    lake = tmp_path / "lake"
    shutil.copytree(sample_descriptors.root, lake)
    config = _config(tmp_path)
    seed = tmp_path / "seed"
    assert _fork((lake, config, seed, "--max-steps", "3")) == 0  # the previous, complete model (+ checkpoint)
    previous = _files(seed / RUN)
    assert set(previous) == set(MODEL_FILES)

    clean, log = tmp_path / "clean", tmp_path / "replaces.log"
    shutil.copytree(seed, clean, symlinks=True)
    t0 = time.perf_counter()
    assert _fork((lake, config, clean, "--resume", "--max-steps", "7"), log=log) == 0  # uninterrupted
    duration = time.perf_counter() - t0
    new = _files(clean / RUN)
    assert new["model.safetensors"] != previous["model.safetensors"]
    renames = [line.split("\t") for line in log.read_text().splitlines()]
    ckpt_swaps = [i + 1 for i, (src, _) in enumerate(renames) if src.endswith("checkpoint.tmp")]
    publish = [i + 1 for i, (src, dst) in enumerate(renames) if ".staging" in src + dst]
    assert ckpt_swaps and len(publish) >= 3  # .new → .ready, run → .old, .ready → run, checkpoint back

    rng = random.Random(7)
    kills = [("checkpoint swap", dict(kill_before_replace=ckpt_swaps[0])),
             *((f"final save, rename {i}", dict(kill_before_replace=i)) for i in publish[1:3]),
             *((f"after {s:.1f} s", dict(kill_after_s=s)) for s in (rng.uniform(0.2, 1) * duration for _ in range(2)))]
    for i, (where, how) in enumerate(kills):
        models = tmp_path / f"k{i}"
        shutil.copytree(seed, models, symlinks=True)
        assert _fork((lake, config, models, "--resume", "--max-steps", "7"), **how) in (None, -signal.SIGKILL), where
        left = _files(models / RUN) if (models / RUN).exists() else {}
        assert left in (previous, new), f"{where}: models/{RUN} is a mix: {left}"
        if left == new or (models / RUN).exists() and left == previous:
            EventForecaster.from_pretrained(models / RUN)  # loads as it is
        assert _fork((lake, config, models, "--resume", "--max-steps", "7")) == 0, f"re-run after a kill {where}"
        assert _files(models / RUN).keys() == new.keys()
        got, want = _params(models / RUN), _params(clean / RUN)
        for k in want:
            torch.testing.assert_close(got[k], want[k], atol=1e-6, rtol=1e-5, msg=f"{where}: {k}")
        assert not (models / ".staging").exists()
        shutil.rmtree(models)
