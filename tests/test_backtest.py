"""Walk-forward backtest: each day from its own past, both interval units, the CLI."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from pipeline.core.config import Config
from pipeline.core.errors import UserError
from pipeline.core.lake import Lake
from pipeline.scoring.backtest import backtest
from pipeline.scoring.evaluate import evaluate
from tests.conftest import write_country_days


@pytest.fixture()
def history(tmp_path):
    """10 days, 3 countries: US protests (14) on even days, FR always cooperates (01), DE sometimes."""
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
    cfg.forecast.learned_max_rows, cfg.forecast.baselines = 5_000, ["climatology", "persistence", "weekday",
                                                                    "learned"]
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
    assert other.weekday_lo_country <= other.bss_weekday <= other.weekday_hi_country
    weekday = s[(s.run == "baseline-weekday") & (s.group == "all") & (s.level == "root")].iloc[0]
    assert weekday.bss_weekday == pytest.approx(0.0) and np.isnan(weekday.weekday_lo_country)
    assert clim.bss_weekday == pytest.approx(1 - clim.brier / weekday.brier)
    assert (bt.directory / "summary.csv").exists() and "95 % countries" in (bt.directory / "summary.md").read_text()
    assert bt.directory.name == "backtest-2025-02-07_2025-02-10-baselines-3c"  # US, FR, DE
    two = backtest(history, "2025-02-07", "2025-02-10", _cfg(tmp_path), countries=["US", "FR"])
    assert two.directory.name.endswith("-baselines-2c") and (bt.directory / "summary.csv").exists()  # both kept
    # the threshold-tuning day (02-06) was forecast too, from its own past, into the backtest's own lake
    assert Lake(bt.directory / "lake").has_partition("forecasts", "2025-02-06", model="baseline-learned")
    # without a model the page is baseline-learned's: its watch lists of the test days, scored against what happened
    assert bt.watch_run == "baseline-learned" and bt.watch.days.max() == 4 and bt.watch.happened.between(0, 1).all()
    assert Lake(bt.directory / "lake").partitions("watchlist", model="baseline-learned") == [
        dt.date(2025, 2, 7) + dt.timedelta(days=i) for i in range(4)]
    assert "## Watch list of baseline-learned against what happened" in (bt.directory / "summary.md").read_text()


def test_backtest_writes_its_own_lake_and_never_the_source(history, tmp_path):
    """The daily record in the source lake (forecasts, scores) is left byte for byte; each backtest keeps its
    baselines beside its summary, so a later one of other countries over the same days does not rewrite them."""
    import pandas as pd

    from pipeline.forecast.baselines import run_baselines

    cfg = _cfg(tmp_path)
    run_baselines(history, "2025-02-09", "2025-02-10", cfg.forecast)  # the "daily" forecasts, all 3 countries
    evaluate(history, "2025-02-09", "2025-02-10", ["baseline-climatology"], cfg.evaluate)
    before = {p: p.read_bytes() for p in sorted(history.root.rglob("*.parquet"))}
    assert any("/scores/" in str(p) for p in before) and any("/forecasts/" in str(p) for p in before)

    three = backtest(history, "2025-02-09", "2025-02-10", cfg)
    two = backtest(history, "2025-02-09", "2025-02-10", cfg, countries=["US", "FR"])
    assert {p: p.read_bytes() for p in sorted(history.root.rglob("*.parquet"))} == before

    own = Lake(three.directory / "lake")
    assert (own.root / "country").is_symlink() and not (own.root / "forecasts").is_symlink()
    got = own.read("forecasts", "2025-02-10", "2025-02-10", model="baseline-learned").to_pandas()
    assert set(got.country) == {"US", "FR", "GM"}  # not rewritten by the 2-country backtest
    assert set(Lake(two.directory / "lake").read("forecasts", "2025-02-10", "2025-02-10",
                                                 model="baseline-learned").to_pandas().country) == {"US", "FR"}
    # the backtest's lake reads like any: country through its link, its own scores with the Hive key
    con = own.duckdb()
    assert con.sql("select count(distinct date) from country").fetchall()[0][0] == 10
    scores = pd.read_parquet(own.table_dir("scores"))
    assert set(scores.model) >= {"baseline-learned", "baseline-climatology"}


def test_bad_ranges_are_user_errors(history, tmp_path):
    with pytest.raises(UserError, match="before --start"):
        backtest(history, "2025-02-08", "2025-02-07", _cfg(tmp_path))
    with pytest.raises(UserError, match="refit-every"):
        backtest(history, "2025-02-08", "2025-02-09", _cfg(tmp_path), refit_every=0)


def test_cli(history, tmp_path):
    from gdelt_forecast.cli import app

    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"evaluate:\n  val_days: 1\n  bootstrap: 50\n  thresholds: [0.5]\n  reports_dir: {tmp_path / 'r'}\n"
                   "forecast:\n  learned_max_rows: 5000\n  learned_estimator: logistic\n  baselines: [climatology, learned]\n"
                   f"train:\n  models_dir: {tmp_path / 'm'}\n")
    # --config and --lake after the command too, like every other command
    res = CliRunner().invoke(app, ["backtest", "--start", "2025-02-10", "--end", "2025-02-10",
                                   "-c", str(cfg), "--lake", str(history.root)])
    assert res.exit_code == 0, res.output
    assert any((tmp_path / "m" / "cache" / "baseline-learned").iterdir())  # the bar's fits: the config's default
    assert (tmp_path / "r" / "backtest-2025-02-10_2025-02-10-baselines-3c").exists()
    # the summary table is the result: on stdout (progress and notes on stderr)
    assert "| level | run |" in res.stdout and "baseline-learned" in res.stdout
    assert "summary: " in res.stdout and "| level | run |" not in res.stderr
    res = CliRunner().invoke(app, ["--lake", str(history.root), "backtest", "--start", "2025-03-09",
                                   "--end", "2025-03-10"])
    assert res.exit_code == 2 and "error" in res.output


def test_standing_marks_where_the_published_run_is_ahead_of_every_baseline():
    """One group and level, three runs: the model is ahead of baseline-learned (the best baseline by Brier) with its
    interval by countries above 0 and has the best log loss, but not the best weighted F1; a baselines-only summary
    has no standing."""
    from pipeline.scoring.backtest import standing, standing_markdown

    row = dict(group="all", level="event", n_country_days=90, clim_lo_country=0.0, clim_hi_country=0.0)
    s = pd.DataFrame([
        row | dict(run="m-cal", brier=0.095, log_loss=0.30, glean_f1_w=0.70, bss_climatology=0.05,
                   bss_learned=0.05, learned_lo_country=0.01, learned_hi_country=0.09),
        row | dict(run="baseline-learned", brier=0.100, log_loss=0.31, glean_f1_w=0.72, bss_climatology=0.0,
                   bss_learned=0.0, learned_lo_country=np.nan, learned_hi_country=np.nan),
        row | dict(run="baseline-climatology", brier=0.100, log_loss=0.32, glean_f1_w=0.71, bss_climatology=0.0,
                   bss_learned=0.0, learned_lo_country=-0.1, learned_hi_country=0.1)])
    (r,) = standing(s, "m-cal").itertuples()
    assert r.best_baseline == "baseline-learned" and r.bss_best == pytest.approx(0.05) and r.above_learned
    assert (r.best_baseline_log_loss, r.best_baseline_f1w) == (0.31, 0.72)
    line = standing_markdown(standing(s, "m-cal"), "m-cal").splitlines()[-1]
    assert line.count("✓") == 3 and "0.700 (0.720) |" in line  # interval, Brier, log loss; not F1
    s.loc[0, "learned_lo_country"] = -0.01  # the interval by countries crosses 0: not ahead of baseline-learned
    assert not standing(s, "m-cal").above_learned.iloc[0]
    assert standing(s[s.run != "m-cal"], "m-cal").empty and standing(s[s.run == "m-cal"], "m-cal").empty
    assert "‡" not in standing_markdown(standing(s, "m-cal"), "m-cal")
    s.loc[1, "brier"] = 2e-4  # a level whose labels happen every day: its BSS is marked as not worth reading
    text = standing_markdown(standing(s, "m-cal"), "m-cal")
    assert "| all | event ‡ |" in text and text.rstrip().endswith("read the log loss.")


def test_origins_fall_every_k_raw_days_from_the_first_calibration_day():
    from pipeline.scoring.backtest import model_days

    days = [dt.date(2025, 6, 4) + dt.timedelta(days=i) for i in range(5)]  # 06-04 … 06-08
    raw, origins = model_days(days, 2, calibration_days=2)
    assert raw[:3] == [dt.date(2025, 6, 2), dt.date(2025, 6, 3), dt.date(2025, 6, 4)] and raw[-1] == days[-1]
    assert origins == [dt.date(2025, 6, 2), dt.date(2025, 6, 4), dt.date(2025, 6, 6), dt.date(2025, 6, 8)]
    assert model_days(days, 10, 1)[1] == [dt.date(2025, 6, 3)]


def test_model_path_trains_at_each_origin_on_its_past_and_stacks_the_calibration(sample_descriptors, embedder,
                                                                                   tmp_path, one_torch_thread,
                                                                                   monkeypatch):
    """``--refit-every k`` on the real sample: a model trained at each origin on the days before it only,
    raw forecasts, a calibration per day (stacked with a baseline-learned fitted before its days), scored."""
    import json
    import shutil

    from pipeline.core.config import load_config
    from pipeline.core.lake import Lake
    from tests.conftest import REPO, SAMPLE_COUNTRIES

    lake = Lake(tmp_path / "lake")
    shutil.copytree(sample_descriptors.root, lake.root)
    cfg = load_config(REPO / "configs" / "tiny.yaml")
    cfg.dataset.countries, cfg.dataset.val_days = list(SAMPLE_COUNTRIES), 1
    cfg.train.run, cfg.train.models_dir = "bt-tiny", tmp_path / "models"
    cfg.forecast.learned_cache_dir = tmp_path / "models" / "cache"  # resolved at load: under the models moved here
    cfg.train.epochs, cfg.train.max_steps, cfg.train.val_generate = 1, 2, 0
    cfg.train.max_new_tokens, cfg.model.max_target_tokens = 16, 32
    cfg.forecast.num_futures, cfg.forecast.learned_estimator, cfg.forecast.learned_max_rows = 2, "logistic", 5_000
    cfg.evaluate.val_days, cfg.evaluate.bootstrap, cfg.evaluate.reports_dir = 1, 50, tmp_path / "reports"
    from pipeline.model import learned

    fitted_before = []  # the first day after each baseline-learned fit's training days
    fit = learned.fit_learned
    monkeypatch.setattr(learned, "fit_learned", lambda o, days, *a, **k: fitted_before.append(max(days)) or fit(o, days, *a, **k))
    from pipeline.forecast import calibrate

    applied = {}  # day → the baseline-learned whose forecast is the stack's input when calibrating that day
    priors = set()  # the blend's climatology: at the day's weekend/weekday volume by default (train config)
    blend_inputs = calibrate.blend_inputs

    def spy(lake_, target, countries, labels=None, stack=None, outcomes=None, weekday_prior=None):
        applied.setdefault(target, stack)
        priors.add(weekday_prior)
        return blend_inputs(lake_, target, countries, labels, stack, outcomes, weekday_prior)

    monkeypatch.setattr(calibrate, "blend_inputs", spy)
    bt = backtest(lake, "2025-06-05", "2025-06-06", cfg, refit_every=4, calibration_days=1)
    # "rolling" (the default): the weights were learned on the calibration day's own fit, and the stack is applied
    # on d with d's own fit, the one baseline-learned forecast d with (fitted on the days up to d − 1)
    assert {d: s.last_day for d, s in applied.items()} == {dt.date(2025, 6, d): dt.date(2025, 6, d - 1)
                                                            for d in (4, 5, 6)}
    assert priors == {cfg.forecast.weekday_prior_days}
    # one fit per day: the baselines' of 06-04 … 06-06, and the stack for 06-04's calibration day 06-03; the stacks
    # for 06-05 and 06-06 (calibrated on 06-04, 06-05) are the baselines' fits of those days
    assert sorted(fitted_before) == [dt.date(2025, 6, d) for d in (2, 3, 4, 5)]
    # raw days 06-03 (calibration), 06-04 (thresholds), 06-05, 06-06: one origin (where they fall: below)
    assert bt.origins == ["2025-06-03"]
    assert bt.directory.name == f"backtest-2025-06-05_2025-06-06-bt-tiny-{len(SAMPLE_COUNTRIES)}c"
    assert bt.runs[:2] == ["bt-tiny-bt-cal", "bt-tiny-bt"]
    for origin in bt.origins:
        metrics = json.loads((bt.directory / "models" / f"bt-tiny-bt-{origin}" / "metrics.json").read_text())
        assert dt.date.fromisoformat(metrics["data"]["train"]["last_target"]) < dt.date.fromisoformat(origin)
    source, lake = lake, Lake(bt.directory / "lake")  # what the backtest wrote is in its own lake
    # the published run's watch lists of the test days, scored against what happened
    assert lake.partitions("watchlist", model="bt-tiny-bt-cal") == [dt.date(2025, 6, 5), dt.date(2025, 6, 6)]
    assert set(bt.watch.list) <= {"rises", "falls", "conflict rises", "conflict falls"} and (bt.watch.days == 2).all()
    assert bt.watch.happened.between(0, 1).all() and (bt.watch.rows > 0).all()
    assert "## Watch list of bt-tiny-bt-cal" in (bt.directory / "summary.md").read_text()
    for run in bt.runs[:2]:
        for d in ("2025-06-04", "2025-06-05", "2025-06-06"):
            assert lake.has_partition("forecasts", d, model=run), (run, d)
            assert not source.has_partition("forecasts", d, model=run)
    s = bt.summary
    cal = s[(s.run == "bt-tiny-bt-cal") & (s.group == "all") & (s.level == "root")].iloc[0]
    assert cal.n_country_days == 2 * len(SAMPLE_COUNTRIES) and np.isfinite(cal.bss_learned)
    raw = lake.read("forecasts", "2025-06-06", "2025-06-06", model="bt-tiny-bt").to_pandas()
    calibrated = lake.read("forecasts", "2025-06-06", "2025-06-06", model="bt-tiny-bt-cal").to_pandas()
    assert len(raw) == len(calibrated) and not np.allclose(raw.probability.to_numpy(), calibrated.probability.to_numpy())
    # beside its own probabilities the published run carries the raw run's futures and actor pairs (the page's phrases)
    from pipeline.forecast.futures import read_futures
    from pipeline.scoring.watchlist import read_watchlist

    assert read_futures(lake, "bt-tiny-bt-cal", "2025-06-06").equals(read_futures(lake, "bt-tiny-bt", "2025-06-06"))
    key = ["country", "level", "code"]
    both = raw.merge(calibrated, on=key, suffixes=("_raw", "_cal"))
    assert (both.n_futures_raw == both.n_futures_cal).all() and (both.n_futures_cal > 0).all()
    assert [list(p) for p in both.actor_pairs_cal] == [list(p) for p in both.actor_pairs_raw]
    assert sum(len(p) for p in both.actor_pairs_cal) > 0
    watch = read_watchlist(lake, "2025-06-06", "bt-tiny-bt-cal")
    assert any(len(p) for p in watch.phrases)
    # the model runs' actor pairs scored against the recent events' (the page's), on the test days
    a = bt.actors
    assert set(a.run) == {"bt-tiny-bt-cal", "bt-tiny-bt"} and set(a.level) == {"event", "base", "root"}
    assert a[["coverage", "top1", "history_coverage", "history_top1"]].stack().between(0, 1).all()
    assert np.allclose(a["diff"], a.coverage - a.history_coverage) and (a.diff_lo <= a["diff"]).all()
    assert (bt.directory / "actors.csv").exists() and "## Actor pairs" in (bt.directory / "summary.md").read_text()
    # the summary opens with where the published run stands against the baselines, from the scores above
    stand = pd.read_csv(bt.directory / "standing.csv")
    row = stand[(stand.group == "all") & (stand.level == "root")].iloc[0]
    base = s[(s.group == "all") & (s.level == "root") & s.run.str.startswith("baseline-")]
    assert row.best_baseline == base.loc[base.brier.idxmin(), "run"] and row.bss_learned == pytest.approx(cal.bss_learned)
    assert row.bss_best == pytest.approx(1 - cal.brier / base.brier.min())
    assert row.best_baseline_log_loss == pytest.approx(base.log_loss.min())
    text = (bt.directory / "summary.md").read_text()
    assert text.index("## bt-tiny-bt-cal against the baselines") < text.index("## all countries")
    # the same command again (each origin's model dir exists now): it trains them afresh, to the same forecasts;
    # with --stack fixed, the stack is applied with the fit its weights were learned with (before the calibration
    # day d − 1), not with the fresher fit of d (session 8's behaviour)
    applied.clear()
    again = backtest(source, "2025-06-05", "2025-06-06", cfg, refit_every=4, calibration_days=1, stack="fixed")
    assert again.origins == bt.origins
    rerun = lake.read("forecasts", "2025-06-06", "2025-06-06", model="bt-tiny-bt").to_pandas()
    np.testing.assert_allclose(rerun.probability.to_numpy(), raw.probability.to_numpy(), atol=1e-6)
    assert {d: s.last_day for d, s in applied.items()} == {dt.date(2025, 6, d): dt.date(2025, 6, d - 2)
                                                            for d in (4, 5, 6)}
    fixed = lake.read("forecasts", "2025-06-06", "2025-06-06", model="bt-tiny-bt-cal").to_pandas()
    assert not np.allclose(fixed.probability.to_numpy(), calibrated.probability.to_numpy())
    with pytest.raises(UserError, match="--stack must be one of rolling, fixed"):
        backtest(source, "2025-06-05", "2025-06-06", cfg, refit_every=4, stack="latest")


def test_a_second_backtest_of_the_same_days_reads_the_bars_fits(history, tmp_path, monkeypatch):
    """The 30- and 100-country checks, an ablation's variants: the bar's daily fits are the same, read back."""
    import pipeline.model.learned as learned

    cfg = _cfg(tmp_path)
    cache = tmp_path / "reports" / "cache" / "baseline-learned"
    one = backtest(history, "2025-02-08", "2025-02-10", cfg, countries=["US", "FR"])
    fits = sorted(p.name for p in cache.iterdir())
    assert len(fits) == 4  # one per forecast day: 02-07 (threshold tuning) … 02-10
    monkeypatch.setattr(learned, "fit_learned", lambda *a, **k: pytest.fail("refitted a fit the cache holds"))
    two = backtest(history, "2025-02-08", "2025-02-10", cfg)  # other countries, the same bar
    assert sorted(p.name for p in cache.iterdir()) == fits

    def bar(bt, day="2025-02-10"):  # the bar's forecasts of US and FR as that backtest wrote them
        t = Lake(bt.directory / "lake").read("forecasts", day, day, model="baseline-learned").to_pandas()
        return t[t.country.isin(["US", "FR"])].drop(columns="issued_at").sort_values(["country", "level", "code"])

    pd.testing.assert_frame_equal(bar(one).reset_index(drop=True), bar(two).reset_index(drop=True))
    monkeypatch.undo()
    backtest(history, "2025-02-08", "2025-02-10", cfg, countries=["US"], bar_cache=False)
    assert sorted(p.name for p in cache.iterdir()) == fits  # nothing read, nothing added


def test_a_backtest_whose_first_day_has_no_history_for_the_bar_still_scores(history, tmp_path):
    """02-02 has one history day and no training day for baseline-learned: it writes nothing, the rest is scored."""
    cfg = _cfg(tmp_path)
    cfg.evaluate.val_days = 0
    bt = backtest(history, "2025-02-02", "2025-02-02", cfg)
    assert "baseline-learned" not in bt.runs and "baseline-climatology" in bt.runs and not bt.summary.empty
