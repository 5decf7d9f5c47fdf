"""The layering rule of docs/ARCHITECTURE.md, checked on the source tree.

``pyproject.toml`` [tool.importlinter] states the layers (cli > flows > scoring >
forecast > model > features > ingest > cameo > core) and that ``pipeline`` never
imports Prefect; import-linter checks them, function-level imports included.
A second check forbids import cycles between any two modules.
"""

from __future__ import annotations

import graphlib
import os
from pathlib import Path

import grimp
import pytest
from importlinter import cli as importlinter_cli

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pipeline", "flows", "gdelt_forecast")


def test_import_linter_contracts_kept(monkeypatch):
    import logging

    monkeypatch.chdir(ROOT)
    # lint_imports configures logging with dictConfig, which disables every logger that exists
    # (pipeline.model.train's per-epoch lines would vanish for the rest of the session): put them back
    loggers = [lg for lg in logging.root.manager.loggerDict.values() if isinstance(lg, logging.Logger)]
    before = [lg.disabled for lg in loggers]
    try:
        assert importlinter_cli.lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True) == 0
    finally:
        for lg, disabled in zip(loggers, before):
            lg.disabled = disabled


def _module_graph() -> dict[str, set[str]]:
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    return {m: {d for d in graph.find_modules_directly_imported_by(m)} for m in graph.modules}


def test_no_import_cycles():
    deps = _module_graph()
    assert "pipeline.ingest.run" in deps and "pipeline.forecast.table" in deps
    try:
        list(graphlib.TopologicalSorter(deps).static_order())
    except graphlib.CycleError as e:
        pytest.fail(f"import cycle: {' -> '.join(e.args[1])}")


def test_cycle_check_would_fail_on_a_cycle():
    with pytest.raises(graphlib.CycleError):
        list(graphlib.TopologicalSorter({"a": {"b"}, "b": {"a"}}).static_order())


def test_no_flat_modules_left_in_pipeline():
    """Every stage lives in its layer's package; ``pipeline/`` itself holds only ``__init__``."""
    flat = sorted(p.name for p in (ROOT / "pipeline").glob("*.py") if p.name != "__init__.py")
    assert flat == []
    assert os.path.isdir(ROOT / "pipeline" / "cameo" / "resources")
