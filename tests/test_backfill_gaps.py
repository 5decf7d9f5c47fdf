"""A real backfill over a range with a hole in the source: exits cleanly, lists the gap, skips it everywhere."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest
import yaml

from tests.conftest import SAMPLE_COUNTRIES, copy_sample_days

pytestmark = pytest.mark.prefect

DAYS = [dt.date(2025, 5, 16) + dt.timedelta(days=i) for i in range(3)]
HOLE = DAYS[1]


def test_backfill_over_a_hole(prefect_harness, sample_descriptors, tiny_model_run, tmp_path):
    from typer.testing import CliRunner

    from flows.backfill import backfill
    from gdelt_forecast.cli import app
    from pipeline.core.config import DatasetConfig
    from pipeline.core.lake import Lake
    from pipeline.features.dataset import build_index

    src = copy_sample_days(tmp_path / "src", [d for d in DAYS if d != HOLE])  # nothing for the middle day
    lake_root = tmp_path / "lake"
    shutil.copytree(sample_descriptors.table_dir("embeddings"), lake_root / "embeddings")
    cfg = {"lake": {"root": str(lake_root)}, "descriptors": {"countries": list(SAMPLE_COUNTRIES)},
           "dataset": {"context_days": 7, "countries": list(SAMPLE_COUNTRIES)},
           "forecast": {"model": str(tiny_model_run), "num_futures": 2, "learned_estimator": "logistic",
                        "learned_max_rows": 20_000},
           "evaluate": {"reports_dir": str(tmp_path / "reports")}, "flow": {"source": "local"},
           "train": {"models_dir": str(tmp_path / "models")}}  # baseline-learned's fits are cached there
    config = tmp_path / "flow.yaml"
    config.write_text(yaml.safe_dump(cfg))

    out = backfill(DAYS[0], DAYS[-1], config=str(config), source="local", path=str(src))
    assert out["gaps"] == [str(HOLE)] and out["failed"] == {}
    lake = Lake(lake_root)
    assert lake.partitions("gaps") == [HOLE]
    for table in ("events", "country", "descriptor_days"):
        assert lake.partitions(table) == [DAYS[0], DAYS[2]], table
    run = Path(tiny_model_run).name
    # the forecast made on the hole (for the next day) uses the other days of its window
    assert lake.partitions("forecasts", model=run) == [d + dt.timedelta(days=1) for d in DAYS]
    index, _ = build_index(lake, DatasetConfig(context_days=2, countries=list(SAMPLE_COUNTRIES), val_days=0,
                                               test_days=0))
    assert set(index["target_date"].to_pylist()) == {DAYS[2]}  # dataset: no target on the hole ...
    assert set(index["context_days"].to_pylist()) == {1}  # ... and a window with it has one day of context

    again = backfill(DAYS[0], DAYS[-1], config=str(config), source="local", path=str(src))
    assert again["submitted"] == [] and again["gaps"] == [str(HOLE)]  # nothing to redo, the gap stays listed

    r = CliRunner().invoke(app, ["--config", str(config), "backfill", "--start", str(DAYS[0]), "--end",
                                 str(DAYS[-1]), "--source", "local", "--path", str(src)])
    assert r.exit_code == 0, r.output
    assert str(HOLE) in r.output


def test_backfill_lists_thin_days_apart_from_gaps(prefect_harness, tmp_path):
    from typer.testing import CliRunner

    from flows.backfill import backfill
    from gdelt_forecast.cli import app

    days = [DAYS[0] + dt.timedelta(days=i) for i in range(6)]
    src = copy_sample_days(tmp_path / "src", days[:3])  # 3 exports a day, then a hole, then 1 export, then 2
    copy_sample_days(src, days[4:5], slice(0, 1))
    copy_sample_days(src, days[5:], slice(0, 2))
    config = tmp_path / "flow.yaml"
    config.write_text(yaml.safe_dump({"lake": {"root": str(tmp_path / "lake")}, "flow": {"source": "local"}}))

    out = backfill(days[0], days[-1], config=str(config), source="local", path=str(src), stages=["ingest"])
    assert out["gaps"] == [str(days[3])]  # the hole is a gap, not also thin
    assert out["thin"] == [str(days[4]), str(days[5])]  # 1 and 2 of a usual 3: below 80 %
    assert out["left_out"] == [str(days[4])]  # 1 of 3 (33 %): too few to read, left out of forecasts and scores

    said = f"thin days (fewer GDELT exports than 80% of their usual; forecasts made from them read low): {days[5]}"
    for dry in (["--dry-run"], []):  # what the lake holds, before a run and after one
        r = CliRunner().invoke(app, ["--config", str(config), "backfill", "--start", str(days[0]), "--end",
                                     str(days[-1]), "--source", "local", "--path", str(src), "--stages", "ingest",
                                     *dry])
        assert r.exit_code == 0, r.output
        assert said in " ".join(r.output.split())  # the left-out day is not said to read low: it is not read
        assert f"gaps (no source data, skipped by every stage): {days[3]}" in r.output
        assert f"left out (fewer than 65%: the forecasts, training and scores read them as gaps): {days[4]}" \
            in " ".join(r.output.split())
