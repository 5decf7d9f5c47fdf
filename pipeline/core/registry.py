"""The model registry: ``models/<run>/`` directories and the ``models/latest`` pointer.

``latest`` is a relative symlink swapped atomically (``os.replace``), so a
forecast running while a new model is registered sees either the old model or
the new one. Where symlinks are unavailable, a ``latest.txt`` file holding the
run name is used instead.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LATEST = "latest"


def register(run_dir: str | Path, models_dir: str | Path | None = None) -> Path:
    """Point ``<models_dir>/latest`` at ``run_dir`` (a trained model directory); returns the pointer path."""
    run_dir = Path(run_dir).resolve()
    if not run_dir.is_dir():
        raise FileNotFoundError(f"model run {run_dir} does not exist; train one first (gdelt-forecast train)")
    models = Path(models_dir).resolve() if models_dir is not None else run_dir.parent
    models.mkdir(parents=True, exist_ok=True)
    pointer = models / LATEST
    tmp = models / f".{LATEST}.tmp-{os.getpid()}"
    try:
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        os.symlink(os.path.relpath(run_dir, models), tmp, target_is_directory=True)
        os.replace(tmp, pointer)
    except OSError:
        (models / f"{LATEST}.txt").write_text(str(run_dir) + "\n")
        return models / f"{LATEST}.txt"
    return pointer


def resolve(model: str | Path) -> Path:
    """A model path as given, following ``latest`` (symlink or ``latest.txt``); clear error when missing."""
    p = Path(model)
    if p.is_dir():
        return p.resolve()
    txt = p.with_name(p.name + ".txt")
    if p.name == LATEST and txt.exists():
        return Path(txt.read_text().strip())
    raise FileNotFoundError(
        f"no model at {p}: train one with `gdelt-forecast train` (it registers models/latest), "
        "register a trained run with `gdelt-forecast register RUN`, or pass --model"
    )


def run_name(model_dir: str | Path) -> str:
    """The run id of a model directory (its folder name, ``latest`` resolved)."""
    return resolve(model_dir).name


def _model_files(model_dir: str | Path) -> list[Path]:
    """The files that make up a trained model: the top level of its directory (``checkpoint/`` is training state)."""
    d = Path(model_dir).resolve()
    return sorted(f for f in d.glob("*") if f.is_file()) if d.is_dir() else []


def model_fingerprint(model_dir: str | Path, exclude: Collection[str] = ()) -> str:
    """Names, sizes and mtimes of the model's files: changes whenever the model (or its calibration) changes.

    ``exclude``: file names left out (e.g. ``calibration.json``, for what the weights alone determine).
    """
    return ",".join(f"{f.name}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in _model_files(model_dir)
                    if f.name not in exclude)


def model_mtime(model_dir: str | Path) -> float | None:
    """When the model's files were last written (None when there is no model)."""
    return max((f.stat().st_mtime for f in _model_files(model_dir)), default=None)


# ------------------------------------------------------------------ listing
@dataclass
class RunInfo:
    """One trained run under ``models/``: its name, when it was written, its final metrics."""

    name: str
    path: Path
    written: dt.datetime | None
    latest: bool = False
    metrics: dict[str, Any] = field(default_factory=dict)
    """``metrics.json`` → ``final`` (numbers only); empty when the run has none."""


def is_run(path: Path) -> bool:
    """A trained model directory: it holds a ``config.json`` or ``metrics.json`` at its top level."""
    return path.is_dir() and ((path / "config.json").exists() or (path / "metrics.json").exists())


def latest_run(models_dir: str | Path) -> Path | None:
    """The run ``<models_dir>/latest`` points at, or None when nothing is registered."""
    try:
        return resolve(Path(models_dir) / LATEST)
    except FileNotFoundError:
        return None


def list_runs(models_dir: str | Path) -> list[RunInfo]:
    """Every trained run under ``models_dir``, newest first, with its final metrics and the latest marked."""
    root = Path(models_dir)
    if not root.is_dir():
        return []
    latest = latest_run(root)
    runs = []
    for d in sorted(p for p in root.iterdir() if p.name != LATEST and not p.is_symlink() and is_run(p)):
        metrics: dict[str, Any] = {}
        if (d / "metrics.json").exists():
            try:
                final = json.loads((d / "metrics.json").read_text()).get("final") or {}
            except (OSError, ValueError):
                final = {}
            metrics = {k: v for k, v in final.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        when = model_mtime(d)
        runs.append(RunInfo(d.name, d.resolve(), dt.datetime.fromtimestamp(when, dt.timezone.utc) if when else None,
                            latest is not None and d.resolve() == latest.resolve(), metrics))
    return sorted(runs, key=lambda r: (r.written is None, -(r.written.timestamp() if r.written else 0), r.name))


def find_run(run: str | Path, models_dir: str | Path) -> Path:
    """A run given by name (under ``models_dir``) or by path; clear error when it is not a trained model."""
    for candidate in (Path(run), Path(models_dir) / str(run)):
        if is_run(candidate):
            return candidate.resolve()
    known = ", ".join(r.name for r in list_runs(models_dir)) or "none"
    raise FileNotFoundError(f"no trained model {str(run)!r} (as a path or under {models_dir}/); runs there: {known}")
