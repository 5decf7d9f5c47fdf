"""Errors a person can act on: one ``UserError`` line naming the file, key or flag, raised at the source.

Library-level checks assert the type and message; the CLI checks assert only a non-zero exit
code and the message text (the CLI prints ``UserError`` as one line, exit 2).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.core.config import (Config, ConfigError, DescriptorConfig, IngestConfig, TrainConfig, config_from_dict,
                                  load_config)
from pipeline.core.errors import UserError
from pipeline.core.lake import Lake

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------ config
def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "cfg.yaml"
    p.write_text(text)
    return p


@pytest.mark.parametrize("text, message", [
    ("ingest:\n  retries: -1\n", "ingest.retries must be >= 0, got -1"),
    ("ingest:\n  timeout_s: -1\n", "ingest.timeout_s must be > 0"),
    ("descriptors:\n  countries: 5\n", "descriptors.countries expects a list of str, got 5"),
    ("dataset:\n  countries: [IS, NO]\n", "dataset.countries[1] expects a string, got False (quote it"),
    ("ingest:\n  retrys: 3\n", "unknown key 'ingest.retrys'; did you mean 'ingest.retries'?"),
    ("inget:\n  retries: 3\n", "unknown key 'inget'; did you mean 'ingest'?"),
    ("train:\n  epochs: 2.5\n", "train.epochs expects an integer, got 2.5"),
    ("train:\n  lr: fast\n", "train.lr expects a number, got 'fast'"),
    ("ingest:\n  concurrency: true\n", "ingest.concurrency expects an integer, got True"),
    ("model:\n  preset: huge\n", "model.preset must be one of 'tiny', 'small', 'pretrained', got 'huge'"),
    ("forecast:\n  learned_max_rows: -5\n", "forecast.learned_max_rows must be >= 1"),
    ("ingest: 3\n", "ingest must be a mapping"),
    ("- a\n- b\n", "the top level must be a mapping of sections"),
    ("ingest:\n  retries: [1\n", "is not valid YAML at line"),
])
def test_bad_config_files_raise_one_line_config_errors(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert message in str(err.value) and str(path) in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_config_file_and_bad_flags(tmp_path):
    with pytest.raises(ConfigError, match="not found; pass --config"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="ingest.retries must be >= 0"):
        load_config(None, {"ingest.retries": -1})
    with pytest.raises(ConfigError, match="ingest.retries must be >= 0"):
        IngestConfig(retries=-1)  # direct construction is validated too
    with pytest.raises(ConfigError, match="descriptors.target_max must be >= 5"):
        DescriptorConfig(target_min=5, target_max=3)
    with pytest.raises(ConfigError, match="train.betas must be in"):
        TrainConfig(betas=[0.9, 1.5])


def test_every_shipped_config_and_the_resolved_config_round_trip(tmp_path):
    for path in sorted((REPO / "configs").glob("*.yaml")):
        cfg = load_config(path)
        assert config_from_dict(cfg.to_dict()) == cfg, path
    assert config_from_dict(Config().to_dict()) == Config()
    cfg = load_config(None, {"ingest.timeout_s": "7", "dataset.countries": "IS,RS", "ingest.keep_downloads": "no"})
    assert (cfg.ingest.timeout_s, cfg.dataset.countries, cfg.ingest.keep_downloads) == (7.0, ["IS", "RS"], False)
    # an unquoted day in YAML is a date there; a day field takes it as its ISO string
    cfg = load_config(write(tmp_path, "dataset:\n  until: 2025-06-03\n  first_target: '2025-05-29'\n"))
    assert (cfg.dataset.until, cfg.dataset.first_target) == ("2025-06-03", "2025-05-29")


def test_cli_bad_config_fails_with_the_message(tmp_path):
    from gdelt_forecast.cli import app

    path = write(tmp_path, "ingest:\n  retries: -1\n")
    r = CliRunner().invoke(app, ["--config", str(path), "--lake", str(tmp_path / "lake"), "ingest", "--source",
                                 "local", "--start", "2025-05-26", "--path", str(tmp_path)])
    assert r.exit_code != 0
    assert "ingest.retries must be >= 0" in (r.output + repr(r.exception))


# ------------------------------------------------------------------ inputs and files
def test_unknown_fips_codes_are_refused(tmp_path, sample_lake, embedder):
    from pipeline.core.config import DatasetConfig
    from pipeline.features.dataset import build_index
    from pipeline.features.descriptors import build_range

    with pytest.raises(UserError, match="unknown FIPS country code.* ZZ"):
        build_range(sample_lake, "2025-05-16", "2025-05-16", DescriptorConfig(countries=["ZZ"]), embedder)
    lake = Lake(tmp_path / "lake")
    from pipeline.core.schemas import DESCRIPTOR_DAYS_SCHEMA
    import pyarrow as pa

    def zero(t):  # a value of type t for the non-nullable fields
        if pa.types.is_list(t) or pa.types.is_large_list(t):
            return []
        if pa.types.is_string(t):
            return ""
        if pa.types.is_boolean(t):
            return False
        return 0

    row = {f.name: None if f.nullable else zero(f.type) for f in DESCRIPTOR_DAYS_SCHEMA}
    row.update(country="IS", n_events=1)
    lake.write_partition("descriptor_days", pa.Table.from_pylist([row], schema=DESCRIPTOR_DAYS_SCHEMA), "2025-05-16",
                         schema=DESCRIPTOR_DAYS_SCHEMA)
    with pytest.raises(UserError, match="dataset.countries .* ZZ"):
        build_index(lake, DatasetConfig(countries=["ZZ"]))
    with pytest.raises(UserError, match="no descriptors for UK"):
        build_index(lake, DatasetConfig(countries=["UK"]))


def test_cli_descriptors_unknown_country(tmp_path):
    from gdelt_forecast.cli import app

    r = CliRunner().invoke(app, ["--lake", str(tmp_path / "lake"), "descriptors", "--start", "2025-05-16",
                                 "--countries", "ZZ"])
    assert r.exit_code != 0
    assert "ZZ" in (r.output + repr(r.exception))


def test_train_without_descriptors_is_a_user_error(tmp_path):
    from pipeline.model.train import train

    cfg = Config()
    cfg.train.models_dir = tmp_path / "models"
    with pytest.raises(UserError, match="no descriptors in .*gdelt-forecast descriptors"):
        train(cfg, Lake(tmp_path / "empty"))


def test_train_onto_an_existing_run_needs_resume(tmp_path):
    from pipeline.model.train import CHECKPOINT_DIR, RunExistsError, train

    cfg = Config()
    cfg.train.models_dir, cfg.train.run = tmp_path / "models", "r"
    (tmp_path / "models" / "r" / CHECKPOINT_DIR).mkdir(parents=True)
    with pytest.raises(RunExistsError, match="pass --resume") as err:
        train(cfg, Lake(tmp_path / "empty"))
    assert isinstance(err.value, UserError) and isinstance(err.value, FileExistsError)


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    """A tiny untrained EventForecaster saved to disk (seconds on CPU)."""
    import torch

    from pipeline.core.config import ModelConfig
    from pipeline.model.forecaster import EventForecaster, resolve_model_config

    torch.manual_seed(0)
    cfg = resolve_model_config(ModelConfig(vocab_size=300))
    phrases = [f"protest in city {i}" for i in range(50)] + ["make statement", "use force", "consult"]
    model = EventForecaster.build(cfg, point_dim=8, stats_dim=4, phrases=phrases)
    out = tmp_path_factory.mktemp("model") / "m"
    model.save_pretrained(out)
    return out


def _broken_copy(src: Path, dst: Path, name: str, how: str) -> Path:
    import shutil

    shutil.copytree(src, dst)
    f = dst / name
    if how == "truncate":
        f.write_bytes(f.read_bytes()[: f.stat().st_size // 3])
    elif how == "garbage":
        f.write_text("{ not json")
    elif how == "delete":
        f.unlink()
    return dst


@pytest.mark.parametrize("name, how, message", [
    ("model.safetensors", "truncate", "model.safetensors is missing, truncated or corrupt"),
    ("descriptor_encoder.safetensors", "truncate", "descriptor_encoder.safetensors is missing, truncated or corrupt"),
    ("forecaster.json", "garbage", "forecaster.json is not a valid forecaster config"),
    ("tokenizer.json", "delete", "tokenizer.json not found"),
])
def test_broken_model_files_are_named(saved_model, tmp_path, name, how, message):
    from pipeline.model.forecaster import EventForecaster, ModelFilesError

    EventForecaster.from_pretrained(saved_model)  # the intact copy loads
    broken = _broken_copy(saved_model, tmp_path / "m", name, how)
    with pytest.raises(ModelFilesError) as err:
        EventForecaster.from_pretrained(broken)
    assert message in str(err.value) and isinstance(err.value, UserError)
    assert "\n" not in str(err.value)


def test_forecaster_json_with_unknown_keys(saved_model, tmp_path):
    from pipeline.model.forecaster import EventForecaster, ModelFilesError

    broken = _broken_copy(saved_model, tmp_path / "m", "forecaster.json", "keep")
    meta = json.loads((broken / "forecaster.json").read_text())
    meta["model"]["no_such_field"] = 1
    (broken / "forecaster.json").write_text(json.dumps(meta))
    with pytest.raises(ModelFilesError, match="forecaster.json is not a valid forecaster config"):
        EventForecaster.from_pretrained(broken)


def test_bad_bigquery_credentials_file(tmp_path, monkeypatch):
    pytest.importorskip("google.cloud.bigquery")
    from pipeline.ingest import bigquery

    bad = tmp_path / "key.json"
    bad.write_text('{"type": "service_account", ')
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(bad))
    with pytest.raises(UserError, match=f"BigQuery credentials unusable .*{bad.name}.*gcloud auth") as err:
        bigquery._client(None, IngestConfig(bigquery_project="p"))
    assert "\n" not in str(err.value)


def test_ingest_flag_mistakes_are_user_errors(tmp_path):
    from pipeline.ingest.run import ingest

    lake = Lake(tmp_path / "lake")
    with pytest.raises(UserError, match="--end .* is before --start"):
        ingest(lake, "local", "2025-05-27", "2025-05-26", path=tmp_path)
    with pytest.raises(UserError, match="unknown --source"):
        ingest(lake, "ftp", "2025-05-26", "2025-05-26")
    with pytest.raises(UserError, match="needs --path"):
        ingest(lake, "local", "2025-05-26", "2025-05-26")


# ------------------------------------------------------------------ commands asked for what cannot be
def test_reversed_ranges_unknown_runs_and_empty_lists_are_one_line_errors(country_history, tmp_path):
    from pipeline.core.config import Config, EvaluateConfig, ForecastConfig
    from pipeline.forecast.baselines import run_baselines
    from pipeline.scoring.backtest import backtest
    from pipeline.scoring.evaluate import evaluate
    from pipeline.scoring.watchlist import WatchlistConfig

    lake = country_history
    # before any fit: the learned baseline used to fail inside scikit-learn on zero training rows
    with pytest.raises(ValueError, match="end 2025-01-04 is before start 2025-01-06"):
        run_baselines(lake, "2025-01-06", "2025-01-04", ForecastConfig(baselines=["learned"]))
    run_baselines(lake, "2025-01-03", "2025-01-05", ForecastConfig(baselines=["climatology"]))
    cfg = EvaluateConfig(reports_dir=tmp_path / "reports", bootstrap=0, val_days=1)
    with pytest.raises(UserError, match="no forecasts of run 'nope' in .*; runs there: baseline-climatology$"):
        evaluate(lake, "2025-01-04", "2025-01-05", ["baseline-climatology", "nope"], cfg, write=False)
    ev = evaluate(lake, "2025-01-04", "2025-01-05", ["baseline-climatology"], cfg, write=False)
    assert not ev.summary.empty  # the same call with a run that exists scores
    for top in (0, -3):  # a negative top cut all but the last rows of each list (pandas head(-3))
        with pytest.raises(UserError, match="top .* must be a whole number ≥ 1"):
            WatchlistConfig(top=top)
    with pytest.raises(UserError, match="--calibration-days must be ≥ 1, not 0"):
        backtest(lake, "2025-01-04", "2025-01-05", Config(), refit_every=1, calibration_days=0)


def test_cli_evaluate_with_nothing_to_score_says_why(country_history, tmp_path):
    from gdelt_forecast.cli import app
    from pipeline.core.config import ForecastConfig
    from pipeline.forecast.baselines import run_baselines

    run_baselines(country_history, "2025-01-03", "2025-01-05", ForecastConfig(baselines=["climatology"]))
    base = ["--lake", str(country_history.root), "evaluate", "--val-days", "1"]
    r = CliRunner().invoke(app, base + ["--start", "2025-03-01", "--end", "2025-03-02"])
    assert r.exit_code == 2, r.output
    assert "nothing to score: 2 target day(s) have no 'country' partition yet" in r.output
    assert "Traceback" not in r.output and "AttributeError" not in repr(r.exception)
    r = CliRunner().invoke(app, base + ["--start", "2025-01-01", "--end", "2025-01-01"])
    assert r.exit_code == 2, r.output
    assert "nothing to score: no forecast of any run targets a day of it" in r.output
    r = CliRunner().invoke(app, ["--lake", str(country_history.root), "watchlist", "--date", "2025-01-05",
                                 "--top", "-3"])
    assert r.exit_code == 2 and "--top" in r.output


def test_cli_backfill_checks_its_range_and_stages_before_prefect(tmp_path, monkeypatch):
    import sys

    from gdelt_forecast.cli import app

    monkeypatch.delitem(sys.modules, "flows.backfill", raising=False)
    base = ["--lake", str(tmp_path / "lake"), "backfill", "--source", "local", "--path", str(tmp_path)]
    r = CliRunner().invoke(app, base + ["--start", "2025-06-01", "--end", "2025-05-01"])
    assert r.exit_code == 2 and "end 2025-05-01 is before start 2025-06-01" in r.output
    r = CliRunner().invoke(app, base + ["--start", "2025-06-01", "--end", "2025-06-01", "--stages", "ingest,nope"])
    assert r.exit_code == 2 and "unknown stage 'nope'; known: ingest, reduce" in r.output
    assert "flows.backfill" not in sys.modules  # refused before the flow (and its Prefect server) was touched


def test_forecast_of_an_unknown_country_code_is_named(sample_descriptors, tiny_model_run, embedder):
    from pipeline.core.config import ForecastConfig
    from pipeline.forecast.forecast import load_model_run, run_forecast

    mr = load_model_run(tiny_model_run)
    with pytest.raises(UserError, match="forecast --countries: unknown FIPS country code.*ZZ"):
        run_forecast(sample_descriptors, "2025-06-07", ForecastConfig(countries=["ZZ", "US"]), mr, embedder)


def test_serve_refuses_to_start_without_a_prefect_server():
    import socket

    from flows.serve import check_api

    with pytest.raises(UserError, match="serve needs a running Prefect server: start one"):
        check_api(None)  # Prefect would serve on a temporary server that never runs the cron
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(UserError, match=f"no Prefect server answers at PREFECT_API_URL=http://127.0.0.1:{port}/api"):
        check_api(f"http://127.0.0.1:{port}/api")


def test_cli_a_network_or_disk_failure_is_one_line_and_exit_1(tmp_path, monkeypatch):
    """Not the user's mistake (exit 1, not 2), yet one line; the daily run used to end in a page of traceback
    when GDELT's servers could not be reached."""
    import pipeline.scoring.evaluate as evaluate_module
    from gdelt_forecast.cli import app

    def unreachable(*args, **kwargs):
        raise ConnectionRefusedError(111, "Connection refused: http://127.0.0.1:9/gdeltv2/masterfilelist.txt")

    monkeypatch.setattr(evaluate_module, "evaluate", unreachable)
    args = ["--lake", str(tmp_path / "lake"), "evaluate", "--start", "2025-05-16"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 1, r.output
    assert r.output.startswith("failed: ") and "Connection refused: http://127.0.0.1:9/" in r.output
    assert "Traceback" not in r.output and len(r.output.strip().splitlines()) <= 3
    r = CliRunner().invoke(app, args + ["--debug"])
    assert isinstance(r.exception, ConnectionRefusedError)  # --debug: the exception itself, for its traceback
