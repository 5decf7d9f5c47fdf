"""Every lake table opens with DuckDB, pandas and polars, with ``date`` a real date; table folders are pure Parquet."""

from __future__ import annotations

import datetime as dt
import shutil

import pytest

from pipeline.core.lake import Lake
from tests.conftest import FORECAST_DAYS, SAMPLE_COUNTRIES

TABLES = ("events", "manifest", "country", "embeddings", "descriptors", "descriptor_days", "dataset", "forecasts",
          "futures", "scores", "gaps", "watchlist")


@pytest.fixture(scope="module")
def full_lake(sample_forecasts, tmp_path_factory):
    """A copy of ``sample_forecasts``' lake with every table: plus a dataset, scores, a watch list and a gap."""
    from pipeline.core.config import DatasetConfig, EvaluateConfig
    from pipeline.core.status import record_gaps
    from pipeline.features.dataset import build_dataset
    from pipeline.scoring.evaluate import evaluate
    from pipeline.scoring.watchlist import write_watchlist

    root = tmp_path_factory.mktemp("full") / "lake"
    shutil.copytree(sample_forecasts.lake.root, root, ignore=shutil.ignore_patterns("_*"))
    lake = Lake(root)
    build_dataset(lake, DatasetConfig(countries=list(SAMPLE_COUNTRIES)), "readers")
    evaluate(lake, FORECAST_DAYS[-1], FORECAST_DAYS[-1], cfg=EvaluateConfig(reports_dir=str(root.parent / "rep")))
    write_watchlist(lake, FORECAST_DAYS[-1])
    assert record_gaps(lake, [dt.date(2025, 6, 8)], "local") == [dt.date(2025, 6, 8)]
    return lake


@pytest.mark.parametrize("table", TABLES)
def test_three_readers_agree(full_lake, table):
    import pandas as pd
    import polars as pl

    lake = full_lake
    folder = lake.table_dir(table)
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert files and all(p.suffix == ".parquet" for p in files), "table folders hold only Parquet"
    n = lake.read(table).num_rows
    dated = bool(lake.partitions(table))

    con = lake.duckdb([table])
    assert con.sql(f'SELECT count(*) FROM "{table}"').fetchall()[0][0] == n
    df = pd.read_parquet(folder)
    pl_df = pl.read_parquet(str(folder / "**" / "*.parquet"), hive_partitioning=True)
    assert len(df) == n == pl_df.height
    if dated:
        types = {r[0]: r[1] for r in con.sql(f'DESCRIBE "{table}"').fetchall()}
        assert types["date"] == "DATE"
        assert pl_df["date"].dtype == pl.Date
        first = lake.partitions(table)[0]
        assert df["date"].min() == first and isinstance(df["date"].iloc[0], dt.date)  # ordered, comparable
        day_dirs = [f for d, f in lake.day_dirs(table) if d == first]
        one = pd.read_parquet(day_dirs[0])
        assert set(one["date"]) == {first}  # one day's folder keeps its date


def test_every_table_folder_is_pure_parquet(full_lake):
    assert set(TABLES) <= set(full_lake.tables())
    for table in full_lake.tables():
        assert all(p.suffix == ".parquet" for p in full_lake.table_dir(table).rglob("*") if p.is_file()), table
