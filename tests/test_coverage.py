"""How much of a day the lake holds (pipeline/core/coverage.py): exports counted from the manifest, a thin day
against the days before it, the warning the report puts on top of forecasts made from one, and a day too thin to
read left out, as a gap, of what the forecasts, the model's context and the scores read."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest

from pipeline.cameo.labels import LEVELS, label_space, load_outcomes
from pipeline.core.config import ConfigError, DatasetConfig, DescriptorConfig, EvaluateConfig, ForecastConfig, \
    IngestConfig, load_config
from pipeline.core.coverage import USUAL_DAYS, _coverage, day_coverage, exports_per_day, left_out_days
from pipeline.core.lake import LEAVE_OUT_SHARE, Lake
from pipeline.core.schemas import MANIFEST_SCHEMA
from pipeline.core.status import LakeStatus
from pipeline.forecast.baselines import run_baselines
from pipeline.ingest.reduce import reduce
from pipeline.ingest.run import ingest
from pipeline.scoring.evaluate import evaluate
from pipeline.scoring.report import thin_day_warnings
from tests.conftest import copy_sample_days

DAYS = [dt.date(2025, 5, 16) + dt.timedelta(days=i) for i in range(4)]  # the sample holds 3 exports a day


@pytest.fixture(scope="module")
def thin_lake(tmp_path_factory):
    """Three full sample days, then one holding 1 of its 3 exports, and a broken export on the first day."""
    root = tmp_path_factory.mktemp("coverage")
    src = copy_sample_days(root / "src", DAYS[:3])
    copy_sample_days(src, DAYS[3:], slice(0, 1))
    (src / f"{DAYS[0]:%Y%m%d}231500.export.CSV.zip").write_bytes(b"not a zip")  # failed: not counted
    lake = Lake(root / "lake")
    ingest(lake, "local", DAYS[0], DAYS[-1], IngestConfig(), path=src, keep_going=True, progress=False)
    reduce(lake, DAYS[0], DAYS[-1])
    return lake


def read_all(lake: Lake) -> Lake:
    """The same folder read with every day as it is (``leave_out_share`` 0)."""
    return Lake(lake.root, leave_out_share=0.0)


def test_exports_are_counted_from_the_manifest_ok_files_only(thin_lake):
    assert exports_per_day(thin_lake, DAYS[0], DAYS[-1]) == {DAYS[0]: 3, DAYS[1]: 3, DAYS[2]: 3, DAYS[3]: 1}
    assert exports_per_day(thin_lake, DAYS[1], DAYS[2]) == {DAYS[1]: 3, DAYS[2]: 3}
    assert exports_per_day(Lake(thin_lake.root.parent / "nothing"), DAYS[0], DAYS[-1]) == {}


def test_a_day_is_thin_against_the_median_of_the_days_before(thin_lake):
    thin = day_coverage(thin_lake, DAYS[3])
    assert (thin.exports, thin.usual, thin.usual_days) == (1, 3.0, 3)
    assert thin.share == pytest.approx(1 / 3) and thin.thin(0.8) and not thin.thin(0.3)
    assert f"ingest --start {DAYS[3]} --end {DAYS[3]}" in thin.message() and "33%" in thin.message()
    full = day_coverage(thin_lake, DAYS[2])
    assert (full.exports, full.usual, full.share) == (3, 3.0, 1.0) and not full.thin(0.8)
    assert day_coverage(thin_lake, DAYS[1]) is None  # one day before it: no usual yet
    missing = day_coverage(thin_lake, DAYS[3] + dt.timedelta(days=1))  # nothing ingested that day
    assert missing.exports == 0 and missing.thin(0.8)
    assert (thin.verdict(0.8, 0.65), thin.verdict(0.8, 0.3), thin.verdict(0.3, 0.0), full.verdict(0.8, 0.65)) == \
        ("left out", "thin", "", "")


def test_a_long_partial_outage_is_flagged_for_two_weeks_before_it_is_the_usual():
    """Forty full days, then twenty holding 40 of their 96 exports: the usual (a median of the 28 days before)
    keeps the outage thin on its first 15 days (with 14 days it was the usual from the 9th); a total outage, days
    without any export, never enters the usual."""
    first = dt.date(2025, 1, 1)
    counts = {first + dt.timedelta(days=i): 96 if i < 40 else 40 for i in range(60)}
    left_out = [cov.thin(LEAVE_OUT_SHARE) for d in sorted(counts)[40:] if (cov := _coverage(counts, d, USUAL_DAYS))]
    assert left_out == [True] * 15 + [False] * 5
    assert [cov.thin(0.65) for d in sorted(counts)[40:] if (cov := _coverage(counts, d, 14))][:9] == [True] * 8 + [False]
    gaps = {d: n for d, n in counts.items() if n == 96 or d > first + dt.timedelta(days=55)}  # 15 days without any
    assert _coverage(gaps, first + dt.timedelta(days=56), USUAL_DAYS).usual == 96


def test_the_report_warns_on_forecasts_made_from_a_thin_day(thin_lake):
    after = DAYS[3] + dt.timedelta(days=1)
    (warning,) = thin_day_warnings(read_all(thin_lake), after, 0.8)  # read as it is: it reads low
    assert warning.startswith(f"These forecasts were made from a thin day: {DAYS[3]} holds 1 of GDELT's 96 daily "
                              "exports against a usual 3 (33%") and "read low" in warning
    assert thin_day_warnings(read_all(thin_lake), DAYS[3], 0.8) == []  # made from a full day
    assert thin_day_warnings(read_all(thin_lake), after, 0.0) == []  # the check turned off
    (warning,) = thin_day_warnings(thin_lake, after, 0.0)  # below the lake's leave_out_share: left out, and said
    assert warning.startswith(f"These forecasts were made without the day before: {DAYS[3]} holds 1 of GDELT's")
    assert "leave it out as a gap" in warning and f"ingest --start {DAYS[3]} --end {DAYS[3]}" in warning


def test_a_day_too_thin_to_read_is_left_out_of_what_happened(thin_lake):
    assert thin_lake.leave_out_share == LEAVE_OUT_SHARE == load_config().lake.leave_out_share
    assert left_out_days(thin_lake) == [DAYS[3]] and left_out_days(thin_lake, DAYS[3], DAYS[3]) == [DAYS[3]]
    assert left_out_days(thin_lake, DAYS[0], DAYS[2]) == []
    assert left_out_days(read_all(thin_lake)) == [] and left_out_days(Lake(thin_lake.root, leave_out_share=0.3)) == []
    assert load_config(overrides={"lake.leave_out_share": 0.3}).lake.open().leave_out_share == 0.3
    with pytest.raises(ConfigError, match="lake.leave_out_share"):
        load_config(overrides={"lake.leave_out_share": 2})
    o, every = load_outcomes(thin_lake), load_outcomes(read_all(thin_lake))
    assert o.days == DAYS[:3] and o.left_out == [DAYS[3]]
    assert every.days == DAYS and every.left_out == [] and every.n_events[3].sum() > 0
    assert o.until(DAYS[2]).left_out == [] and o.until(DAYS[3]).left_out == [DAYS[3]]
    before = every.until(DAYS[2])  # what is read is exactly the days before it
    assert o.countries == before.countries and (o.n_events == before.n_events).all()
    assert all((o.y[lv] == before.y[lv]).all() and (o.counts[lv] == before.counts[lv]).all() for lv in LEVELS)


def _baseline(lake: Lake, day: dt.date, name: str):
    return lake.read("forecasts", day, day, model=f"baseline-{name}").to_pandas().set_index(["country", "level",
                                                                                                "code"])


def test_forecasts_after_a_left_out_day_read_the_days_before_it(thin_lake):
    after, cfg = DAYS[3] + dt.timedelta(days=1), ForecastConfig(baselines=["climatology", "persistence"])
    run_baselines(read_all(thin_lake), after, after, cfg)
    read_low, n_read_low = _baseline(thin_lake, after, "persistence"), _baseline(thin_lake, after, "climatology")
    run_baselines(thin_lake, after, after, cfg)
    left, n_left = _baseline(thin_lake, after, "persistence"), _baseline(thin_lake, after, "climatology")
    assert set(n_read_low["n_futures"]) == {4} and set(n_left["n_futures"]) == {3}  # history days read
    # persistence says what happened on the last day read: the thin day, or the full day before it
    every, roots = load_outcomes(read_all(thin_lake)), label_space()["root"].codes
    for probs, i in ((read_low, 3), (left, 2)):
        us = probs.xs(("US", "root"), level=("country", "level"))["probability"]
        happened = {code for code, y in zip(roots, every.y["root"][i, every.countries.index("US")]) if y}
        assert {code for code, p in us.items() if p > 0.5} == happened
    assert len(happened) > 0


def test_a_left_out_target_day_is_not_scored_and_its_old_scores_go(thin_lake, tmp_path):
    cfg = EvaluateConfig(reports_dir=tmp_path, val_days=1, bootstrap=0)
    run_baselines(thin_lake, DAYS[2], DAYS[3], ForecastConfig(baselines=["climatology"]))
    evaluate(read_all(thin_lake), DAYS[3], DAYS[3], runs=["baseline-climatology"], cfg=cfg, actor_pairs=False)
    assert thin_lake.has_partition("scores", DAYS[3], model="baseline-climatology")  # scored against low counts
    ev = evaluate(thin_lake, DAYS[3], DAYS[3], runs=["baseline-climatology"], cfg=cfg, actor_pairs=False)
    assert any(f"not scored, their outcomes read low: {DAYS[3]}" in n for n in ev.notes), ev.notes
    assert len(ev.unscored) == 1 and ev.unscored[0] in ev.notes and str(DAYS[3]) in ev.unscored[0]
    assert not thin_lake.has_partition("scores", DAYS[3], model="baseline-climatology") and ev.runs == []
    assert LakeStatus(thin_lake).done("evaluate", DAYS[3], "baseline-climatology")  # nothing left to do on it
    assert not LakeStatus(read_all(thin_lake)).done("evaluate", DAYS[3], "baseline-climatology")


def test_the_model_context_masks_a_left_out_day_and_never_targets_it(thin_lake, embedder):
    from pipeline.features.dataset import build_index, load_contexts
    from pipeline.features.descriptors import build_range

    build_range(thin_lake, DAYS[0], DAYS[-1], DescriptorConfig(countries=["US"]), embedder)
    after, cfg = DAYS[3] + dt.timedelta(days=1), DatasetConfig(countries=["US"], context_days=4, val_days=0,
                                                                test_days=1)
    (every,), _ = zip(*[load_contexts(read_all(thin_lake), ["US"], after, cfg, embedder)])
    (left,), _ = zip(*[load_contexts(thin_lake, ["US"], after, cfg, embedder)])
    assert every["US"]["day_mask"].tolist() == [True] * 4 and left["US"]["day_mask"].tolist() == [True] * 3 + [False]
    assert not left["US"]["point_mask"][3].any() and not left["US"]["day_stats"][3].any()
    assert np.allclose(left["US"]["points"][:3], every["US"]["points"][:3])
    cfg = DatasetConfig(countries=["US"], context_days=1, val_days=0, test_days=1)
    index, manifest = build_index(thin_lake, cfg)
    assert DAYS[3] not in index["target_date"].to_pylist() and manifest["left_out"] == [str(DAYS[3])]
    assert DAYS[3] in build_index(read_all(thin_lake), cfg)[0]["target_date"].to_pylist()


def test_min_day_share_is_a_share():
    assert load_config(overrides={"flow.min_day_share": 0.5}).flow.min_day_share == 0.5
    with pytest.raises(ConfigError, match="flow.min_day_share"):
        load_config(overrides={"flow.min_day_share": 1.5})


def test_inspect_lists_the_thin_days_and_how_they_are_read(thin_lake, tmp_path):
    from typer.testing import CliRunner

    from gdelt_forecast.cli import app
    from pipeline.core.inspection import coverage_summary

    assert coverage_summary(thin_lake, 0.8) == [dict(day=DAYS[3], exports=1, usual=3.0, share="33%",
                                                     read="left out, as a gap")]
    assert coverage_summary(read_all(thin_lake), 0.8)[0]["read"] == "as it is (counts read low)"
    assert coverage_summary(read_all(thin_lake), 0.3) == []  # 33 % is not below 30 %
    r = CliRunner().invoke(app, ["--lake", str(thin_lake.root), "inspect"])
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.split())
    assert "thin days (fewer GDELT exports than usual" in text and str(DAYS[3]) in text and "left out, as a gap" in text


def test_a_backtest_says_which_test_days_were_left_out(thin_lake, tmp_path):
    from pipeline.core.config import Config
    from pipeline.core.errors import UserError
    from pipeline.scoring.backtest import backtest

    cfg = Config()
    cfg.evaluate.reports_dir, cfg.evaluate.val_days, cfg.evaluate.bootstrap = tmp_path, 0, 0
    cfg.forecast.baselines = ["climatology", "persistence"]
    bt = backtest(thin_lake, DAYS[2], DAYS[3], cfg)
    said = f"1 target day(s) hold too few of their usual GDELT exports and are not scored, their outcomes read low: " \
           f"{DAYS[3]}"
    assert any(n.startswith(said) for n in bt.notes) and said in (bt.directory / "summary.md").read_text()
    assert set(bt.summary.n_country_days) == {cfg.dataset.top_countries}  # the 30 busiest on one day: DAYS[2]
    with pytest.raises(UserError, match=f"{DAYS[3]} is left out, too thin to read"):
        backtest(thin_lake, DAYS[3], DAYS[3], cfg)


def test_the_counts_follow_the_manifest_when_a_day_is_ingested_again(thin_lake, tmp_path):
    import shutil

    lake = Lake(shutil.copytree(thin_lake.root, tmp_path / "lake"))
    assert left_out_days(lake) == [DAYS[3]]  # read, and remembered
    day = lake.read("manifest", DAYS[3], DAYS[3])
    fuller = day.take([0, 0, 0]).to_pydict()
    fuller["name"] = [f"{DAYS[3]:%Y%m%d}{h:02d}0000.export.CSV.zip" for h in (1, 2, 3)]  # its missing exports, now ok
    lake.write_partition("manifest", pa.Table.from_pydict({k: v for k, v in fuller.items() if k != "date"},
                                                          schema=MANIFEST_SCHEMA), DAYS[3])
    assert exports_per_day(lake, None, None)[DAYS[3]] == 3 and left_out_days(lake) == []


def test_the_country_chart_shades_a_left_out_day(thin_lake):
    from pipeline.scoring.report import _country_series, group_countries, load_day, top_roots

    after = DAYS[3] + dt.timedelta(days=1)
    run_baselines(thin_lake, DAYS[1], after, ForecastConfig(baselines=["climatology", "persistence"]))
    for lake, shaded in ((thin_lake, [str(DAYS[3])]), (read_all(thin_lake), [])):
        d = load_day(lake, after, run="baseline-persistence")
        cd = group_countries(d)["US"]
        layout = _country_series(d, "US", cd, top_roots(cd))["layout"]
        days = layout["xaxis"]["categoryarray"]
        assert [days[round(s["x0"] + 0.5)] for s in layout["shapes"]] == shaded
        assert [a["x"] for a in layout["annotations"]] == shaded


def test_days_read_without_export_files_are_counted_from_their_stamps(thin_lake, tmp_path):
    """A BigQuery day has no export files in the manifest: its exports are its rows' distinct DATEADDED stamps."""
    import shutil

    lake = Lake(shutil.copytree(thin_lake.root, tmp_path / "lake", ignore=shutil.ignore_patterns("manifest")))
    assert exports_per_day(lake, None, None) == {DAYS[0]: 3, DAYS[1]: 3, DAYS[2]: 3, DAYS[3]: 1}
    assert left_out_days(lake) == [DAYS[3]] and load_outcomes(lake).left_out == [DAYS[3]]
    # a GDELT 1.0 day (one stamp, at midnight) has no exports to count: it is not judged
    t = lake.read("country", DAYS[3], DAYS[3]).drop_columns(["date"])
    midnight = dt.datetime.combine(DAYS[3], dt.time(), dt.timezone.utc)
    stamps = pa.array([midnight] * t.num_rows, t.schema.field("DATEADDED").type)
    lake.write_partition("country", t.set_column(t.schema.get_field_index("DATEADDED"), "DATEADDED", stamps), DAYS[3])
    assert DAYS[3] not in exports_per_day(lake, None, None) and left_out_days(lake) == []


def test_the_history_features_follow_what_the_lake_leaves_out(thin_lake):
    from pipeline.features.dataset import label_history

    after = DAYS[3] + dt.timedelta(days=1)
    every = label_history(read_all(thin_lake), ["US"], [after])[("US", after)]
    left = label_history(thin_lake, ["US"], [after])[("US", after)]  # the same files: not the cached features
    again = label_history(read_all(thin_lake), ["US"], [after])[("US", after)]
    assert not np.array_equal(every, left) and np.array_equal(every, again)
