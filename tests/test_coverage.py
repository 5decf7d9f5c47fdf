"""How much of a day the lake holds (pipeline/ingest/coverage.py): exports counted from the manifest, a thin day
against the days before it, and the warning the report puts on top of forecasts made from one."""

from __future__ import annotations

import datetime as dt

import pytest

from pipeline.core.config import ConfigError, IngestConfig, load_config
from pipeline.core.lake import Lake
from pipeline.ingest.coverage import day_coverage, exports_per_day
from pipeline.ingest.run import ingest
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
    return lake


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


def test_the_report_warns_on_forecasts_made_from_a_thin_day(thin_lake):
    (warning,) = thin_day_warnings(thin_lake, DAYS[3] + dt.timedelta(days=1), 0.8)
    assert warning.startswith(f"These forecasts were made from a thin day: {DAYS[3]} holds 1 of GDELT's 96 daily "
                              "exports against a usual 3 (33%")
    assert thin_day_warnings(thin_lake, DAYS[3], 0.8) == []  # made from a full day
    assert thin_day_warnings(thin_lake, DAYS[3] + dt.timedelta(days=1), 0.0) == []  # the check turned off


def test_min_day_share_is_a_share():
    assert load_config(overrides={"flow.min_day_share": 0.5}).flow.min_day_share == 0.5
    with pytest.raises(ConfigError, match="flow.min_day_share"):
        load_config(overrides={"flow.min_day_share": 1.5})
