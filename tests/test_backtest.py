"""Walk-forward backtest: each day from its own past, both interval units, the CLI."""

from __future__ import annotations

import datetime as dt

import pytest
from typer.testing import CliRunner

from pipeline.core.config import Config
from pipeline.core.errors import UserError
from pipeline.scoring.backtest import backtest
from tests.conftest import write_country_days


@pytest.fixture()
def history(tmp_path):
    """10 days, 3 countries: US protests (14) on even days, FR always cooperates (01), DE sometimes."""
    from pipeline.core.lake import Lake

    lake = Lake(tmp_path / "lake")
    days = {}
    for i in range(10):
        d = dt.date(2025, 2, 1) + dt.timedelta(days=i)
        ev = [("US", "010"), ("FR", "010"), ("FR", "0211")]
        ev += [("US", "141")] if i % 2 == 0 else [("US", "042")]
        ev += [("GM", "190")] if i % 3 == 0 else [("GM", "051")]
        days[str(d)] = ev
    write_country_days(lake, days)
    return lake


def _cfg(tmp_path) -> Config:
    cfg = Config()
    cfg.evaluate.val_days, cfg.evaluate.bootstrap, cfg.evaluate.reports_dir = 1, 100, tmp_path / "reports"
    cfg.evaluate.thresholds = [0.2, 0.5]
    cfg.forecast.learned_max_rows, cfg.forecast.baselines = 5_000, ["climatology", "persistence", "learned"]
    cfg.forecast.learned_estimator = "logistic"  # the mechanics, fast; leak-freeness per day: test_learned.py
    return cfg


def test_baselines_backtest_scores_every_day_with_both_interval_units(history, tmp_path):
    bt = backtest(history, "2025-02-07", "2025-02-10", _cfg(tmp_path))
    assert "baseline-learned" in bt.runs and "baseline-climatology" in bt.runs
    s = bt.summary
    assert set(s.group) >= {"all"} and set(s.level) >= {"event", "base", "root", "rare"}
    clim = s[(s.run == "baseline-climatology") & (s.group == "all") & (s.level == "root")].iloc[0]
    assert clim.bss_climatology == pytest.approx(0.0) and clim.n_country_days == 12
    other = s[(s.run == "baseline-persistence") & (s.group == "all") & (s.level == "root")].iloc[0]
    assert other.clim_lo_day <= other.bss_climatology <= other.clim_hi_day
    assert other.clim_lo_country <= other.bss_climatology <= other.clim_hi_country
    assert other.learned_lo_country <= other.bss_learned <= other.learned_hi_country
    assert (bt.directory / "summary.csv").exists() and "95 % countries" in (bt.directory / "summary.md").read_text()
    # the threshold-tuning day (02-06) was forecast too, from its own past
    assert history.has_partition("forecasts", "2025-02-06", model="baseline-learned")


def test_bad_ranges_are_user_errors(history, tmp_path):
    with pytest.raises(UserError, match="before --start"):
        backtest(history, "2025-02-08", "2025-02-07", _cfg(tmp_path))
    with pytest.raises(UserError, match="refit-every"):
        backtest(history, "2025-02-08", "2025-02-09", _cfg(tmp_path), refit_every=0)


def test_cli(history, tmp_path):
    from gdelt_forecast.cli import app

    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"evaluate:\n  val_days: 1\n  bootstrap: 50\n  thresholds: [0.5]\n  reports_dir: {tmp_path / 'r'}\n"
                   "forecast:\n  learned_max_rows: 5000\n  learned_estimator: logistic\n  baselines: [climatology, learned]\n")
    res = CliRunner().invoke(app, ["-c", str(cfg), "--lake", str(history.root), "backtest",
                                   "--start", "2025-02-10", "--end", "2025-02-10"])
    assert res.exit_code == 0, res.output
    assert "baseline-learned" in res.output and (tmp_path / "r" / "backtest-2025-02-10_2025-02-10").exists()
    res = CliRunner().invoke(app, ["--lake", str(history.root), "backtest", "--start", "2025-03-09",
                                   "--end", "2025-03-10"])
    assert res.exit_code == 2 and "error" in res.output
