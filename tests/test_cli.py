"""The command line as a user meets it: help, version, choices, errors, where output goes."""

from __future__ import annotations

import json
import time
from pathlib import Path

import yaml
from typer.testing import CliRunner

from gdelt_forecast.cli import app
from pipeline.core.errors import ConfigError


def _run(*args: str, env: dict[str, str] | None = None):
    return CliRunner(env=env).invoke(app, list(args))


def _config(tmp: Path, **sections) -> Path:
    path = tmp / "cfg.yaml"
    path.write_text(yaml.safe_dump(sections))
    return path


def test_help_version_and_choices():
    for flag in ("-h", "--help"):
        r = _run(flag)
        assert r.exit_code == 0 and "backfill" in r.stdout and "models" in r.stdout
    r = _run("--version")
    assert r.exit_code == 0 and r.stdout.startswith("gdelt-forecast ")
    r = _run("backfill", "-h", env={"COLUMNS": "200"})
    assert "<local|dask|ray>" in r.stdout and "<gdelt1|gdelt2|local|bigquery>" in r.stdout
    assert "``" not in r.stdout  # backticks are rendered, not shown
    r = _run("backfill", "--start", "2025-05-16", "--end", "2025-05-16", "--runner", "spark")
    assert r.exit_code == 2 and "spark" in r.stderr


def test_every_placeholder_of_a_command_doc_survives_the_help_markup():
    import re

    import typer.main

    for info in typer.main.get_command(app).commands.values():
        doc = " ".join((info.help or "").split())
        shown = " ".join(_run(info.name, "-h", env={"COLUMNS": "400"}).stdout.replace("│", " ").split())
        for placeholder in re.findall(r"<[^<>\s]+>", doc):  # e.g. reports/backtest-<start>_<end>/
            assert placeholder in shown, f"{info.name} --help drops {placeholder}"


def test_user_errors_are_one_line_with_exit_2_and_a_traceback_only_when_debugging(tmp_path):
    missing = str(tmp_path / "nope.yaml")
    r = _run("--config", missing, "inspect")
    assert r.exit_code == 2 and r.stderr.strip().startswith("error: config file") and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) <= 2  # one message (wrapped at most once)
    r = _run("--config", missing, "inspect", env={"GDELT_FORECAST_DEBUG": "1"})
    assert isinstance(r.exception, ConfigError)  # re-raised with its traceback
    r = _run("--debug", "--config", missing, "inspect")
    assert isinstance(r.exception, ConfigError)


def test_inspect_on_a_missing_lake_says_so_and_config_works_after_the_command(tmp_path):
    cfg = _config(tmp_path, lake={"root": str(tmp_path / "no-lake")})
    for args in (("--config", str(cfg), "inspect"), ("inspect", "--config", str(cfg)), ("inspect", "-c", str(cfg))):
        r = _run(*args)
        assert r.exit_code == 2 and "no lake at" in r.stderr and "no-lake" in r.stderr, args


def test_source_local_without_a_path_is_a_user_error_naming_the_config_key(tmp_path):
    cfg = _config(tmp_path, lake={"root": str(tmp_path / "lake")}, flow={"source": "local"})
    r = _run("ingest", "--start", "2025-05-16", "--config", str(cfg))
    assert r.exit_code == 2 and "flow.path" in r.stderr


def test_results_on_stdout_full_width_when_piped(tmp_path):
    (tmp_path / "lake").mkdir()
    long = "x" * 150
    r = _run("--lake", str(tmp_path / "lake"), "inspect", "--sql", f"SELECT '{long}' AS wide, 1 AS n")
    assert r.exit_code == 0, r.output
    assert long in r.stdout and "…" not in r.stdout  # a log or a pipe keeps every cell whole
    assert long not in r.stderr


def _fake_run(models: Path, name: str, loss: float) -> Path:
    d = models / name
    d.mkdir(parents=True)
    (d / "config.json").write_text("{}")
    (d / "metrics.json").write_text(json.dumps({"final": {"val_loss": loss, "steps": 4}}))
    return d


def test_models_lists_runs_and_register_moves_latest(tmp_path):
    from pipeline.core.registry import resolve

    models = tmp_path / "models"
    r = _run("models", "--models-dir", str(models))
    assert r.exit_code == 2 and "no trained runs" in r.stderr
    a = _fake_run(models, "run-a", 1.25)
    time.sleep(0.01)
    _fake_run(models, "run-b", 0.75)
    r = _run("models", "--models-dir", str(models))
    assert r.exit_code == 0 and "run-a" in r.stdout and "val_loss" in r.stdout and "no run is registered" in r.stderr
    r = _run("register", "run-a", "--models-dir", str(models))
    assert r.exit_code == 0 and resolve(models / "latest") == a.resolve()
    r = _run("models", "--models-dir", str(models))
    row = next(line for line in r.stdout.splitlines() if "run-a" in line)
    assert "*" in row and "1.25" in row
    r = _run("register", "run-c", "--models-dir", str(models))
    assert r.exit_code == 2 and "run-c" in r.stderr and "run-a" in r.stderr


def test_backfill_dry_run_needs_no_prefect_server_and_leaves_out_model_stages(tmp_path, monkeypatch):
    import prefect.server.api.server as server

    def no_server(*a, **k):
        raise AssertionError("a dry run started a Prefect server")

    monkeypatch.setattr(server.SubprocessASGIServer, "start", no_server)
    cfg = _config(tmp_path, lake={"root": str(tmp_path / "lake")}, forecast={"model": str(tmp_path / "none")},
                  flow={"source": "local", "path": str(tmp_path)})
    t0 = time.perf_counter()
    r = _run("backfill", "--start", "2025-05-16", "--end", "2025-05-17", "--dry-run", "--config", str(cfg))
    assert r.exit_code == 0, r.output
    assert time.perf_counter() - t0 < 15
    steps = [line.strip() for line in r.stdout.splitlines() if line.startswith("  ")]
    assert steps == [f"{s}:2025-05-{d}" for d in (16, 17) for s in ("ingest", "reduce", "descriptors", "baselines")]
    assert "0 already done" in r.stdout  # no model: forecast/evaluate are not counted as done
    assert not (tmp_path / "lake" / "events").exists()


def test_the_cli_lets_idle_openmp_threads_sleep_unless_told_otherwise():
    """``OMP_WAIT_POLICY`` is read when torch and scikit-learn load their OpenMP runtimes: the package sets it first
    (PASSIVE, bench/omp_wait.py), and keeps a value the user set."""
    import os
    import subprocess
    import sys

    code = "import os, gdelt_forecast.cli; print(os.environ['OMP_WAIT_POLICY'])"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split()[0] == "PASSIVE"
    out = subprocess.run([sys.executable, "-c", code], env={**env, "OMP_WAIT_POLICY": "ACTIVE"},
                         capture_output=True, text=True, check=True).stdout
    assert out.split()[0] == "ACTIVE"
