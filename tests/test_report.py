"""End to end on the real sample: tiny model + baselines → evaluate → scores → HTML report (and the CLI)."""

from __future__ import annotations

import numpy as np
import yaml
from typer.testing import CliRunner

from gdelt_forecast.cli import app
from pipeline.core.config import EvaluateConfig
from pipeline.scoring.evaluate import evaluate


def test_evaluate_model_against_baselines(sample_forecasts, tmp_path):
    lake, mr = sample_forecasts.lake, sample_forecasts.mr
    FORECAST_DAYS, SAMPLE_COUNTRIES = sample_forecasts.days, sample_forecasts.countries
    day = FORECAST_DAYS[-1]
    ev = evaluate(lake, day, day, cfg=EvaluateConfig(val_days=1, reports_dir=tmp_path))
    assert mr.run in ev.runs and "baseline-climatology" in ev.runs
    assert not any("validation" in n for n in ev.notes)  # the model has a validation day too
    root = ev.table("all", "root")
    assert (root.n_country_days == len(SAMPLE_COUNTRIES)).all()  # the common country-days
    assert np.isfinite(root.loc[mr.run, ["brier", "bss_climatology", "bss_best_baseline", "ece"]]).all()
    assert 0 <= root.loc[mr.run, "rougeL"] <= 1 and 0 <= root.loc["baseline-persistence", "rougeL"] <= 1
    s = lake.read("scores", day, day, model=mr.run).to_pandas()
    assert len(s) == 4 * len(SAMPLE_COUNTRIES) and s.brier.between(0, 1).all()
    assert s.quad_kl.notna().sum() == len(SAMPLE_COUNTRIES) and s.rouge1.notna().any()


def test_report_and_cli(sample_forecasts, tmp_path):
    lake, mr = sample_forecasts.lake, sample_forecasts.mr
    FORECAST_DAYS, SAMPLE_COUNTRIES = sample_forecasts.days, sample_forecasts.countries
    cfg_file = tmp_path / "cfg.yaml"
    cfg_file.write_text(yaml.safe_dump({"evaluate": {"reports_dir": str(tmp_path / "reports"), "val_days": 1}}))
    runner = CliRunner()
    base = ["--config", str(cfg_file), "--lake", str(lake.root)]
    r = runner.invoke(app, [*base, "evaluate", "--start", FORECAST_DAYS[-1], "--levels", "root"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "reports" / f"eval-{FORECAST_DAYS[-1]}_{FORECAST_DAYS[-1]}" / "summary.csv").exists()
    r = runner.invoke(app, [*base, "report", "--date", FORECAST_DAYS[-1]])
    assert r.exit_code == 0, r.output
    page = tmp_path / "reports" / FORECAST_DAYS[-1] / "index.html"
    html = page.read_text()
    assert mr.run in html and "Israel" in html and "baseline-climatology" in html
    assert html.count("data:image/png;base64,") == 2  # heat map + reliability, embedded
    assert (page.parent / "roots.png").stat().st_size > 1000 and (page.parent / "reliability.png").exists()
    r = runner.invoke(app, [*base, "report", "--date", "2025-01-01"])
    assert r.exit_code == 2 and "no forecasts" in r.output
