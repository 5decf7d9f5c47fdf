"""Reduce: the country table against an independent pandas computation."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pyarrow as pa

from pipeline.core.lake import Lake
from pipeline.ingest.reduce import reduce, to_country
from pipeline.core.schemas import COUNTRY_COLUMNS, COUNTRY_SCHEMA


def test_country_table_matches_pandas(sample_lake):
    country = sample_lake.read("country")
    events = sample_lake.read("events").to_pandas()
    assert country.column_names == COUNTRY_COLUMNS + ["date"]
    assert country.num_rows == len(events) and sample_lake.partitions("country") == sample_lake.partitions("events")
    for f in COUNTRY_SCHEMA:
        t = country.schema.field(f.name).type
        assert t == f.type or (f.name == "DATEADDED" and pa.types.is_timestamp(t)), f.name
    df = country.to_pandas().set_index("GLOBALEVENTID").sort_index()
    ev = events.set_index("GLOBALEVENTID").sort_index()
    a1, a2 = ev["Actor1Geo_CountryCode"], ev["Actor2Geo_CountryCode"]
    expected = a1.notna() & a2.notna() & (a1 != a2)
    assert (df["Multi_Country_Flag"] == expected).all()
    assert 0 < expected.sum() < len(expected)  # both cases occur in the sample
    for c in ("EventCode", "EventRootCode", "ActionGeo_CountryCode", "NumMentions", "SQLDATE"):
        pd.testing.assert_series_equal(df[c], ev[c], check_names=False)
    assert (df["date"] == ev["date"]).all()


def test_flag_rules_on_edge_cases():
    t = pa.table({c: pa.nulls(4, COUNTRY_SCHEMA.field(c).type) for c in COUNTRY_COLUMNS if c != "Multi_Country_Flag"})
    t = t.set_column(0, "GLOBALEVENTID", pa.array([1, 2, 3, 4], pa.int64()))
    i1, i2 = t.column_names.index("Actor1Geo_CountryCode"), t.column_names.index("Actor2Geo_CountryCode")
    t = t.set_column(i1, "Actor1Geo_CountryCode", pa.array(["US", "US", None, ""]))
    t = t.set_column(i2, "Actor2Geo_CountryCode", pa.array(["UK", "US", "UK", "UK"]))
    assert to_country(t).column("Multi_Country_Flag").to_pylist() == [True, False, False, False]


def test_reduce_reports_missing_days_and_is_idempotent(sample_lake, tmp_path):
    import shutil

    lake = Lake(tmp_path / "lake")
    shutil.copytree(sample_lake.root / "events", lake.root / "events")
    report = reduce(lake, "2025-06-05", "2025-06-08")
    assert report.missing == [dt.date(2025, 6, 7), dt.date(2025, 6, 8)] and len(report.days) == 2
    first = lake.read("country")
    reduce(lake, "2025-06-05", "2025-06-06")
    assert lake.read("country").equals(first)


def test_country_follows_events_when_a_day_is_emptied(sample_lake, tmp_path):
    import shutil

    from pipeline.core.status import stage_done

    lake = Lake(tmp_path / "lake")
    shutil.copytree(sample_lake.root / "events", lake.root / "events")
    day = dt.date(2025, 6, 5)
    reduce(lake, day, day)
    assert stage_done(lake, "reduce", day)
    lake.delete_partition("events", day)  # e.g. every event was a duplicate of another day's
    assert not stage_done(lake, "reduce", day)  # a missing input is not "fresh"
    report = reduce(lake, day, day)
    assert report.removed == [day] and not lake.has_partition("country", day)


def test_status_needs_the_manifest_ok(sample_lake, tmp_path):
    """A failed file keeps its day's ingest "not done" although the day has an events partition."""
    import shutil

    from pipeline.core.schemas import MANIFEST_SCHEMA
    from pipeline.core.status import plan, record_gaps

    lake = Lake(tmp_path / "lake")
    shutil.copytree(sample_lake.root / "events", lake.root / "events")
    shutil.copytree(sample_lake.root / "manifest", lake.root / "manifest")
    d1, d2, hole = dt.date(2025, 6, 5), dt.date(2025, 6, 6), dt.date(2025, 6, 7)
    m = lake.read("manifest", d2, d2).to_pylist()  # the manifest is partitioned by file day
    m[0]["status"] = "failed"
    lake.write_partition("manifest", pa.Table.from_pylist(m, schema=MANIFEST_SCHEMA), d2, schema=MANIFEST_SCHEMA)
    assert record_gaps(lake, [d1, d2, hole], "local") == [hole]  # neither a day with data nor a failed one
    steps = {(s.day, s.stage): s.done for s in plan(lake, [d1, d2, hole], ("ingest", "reduce", "descriptors"))}
    assert steps[(d1, "ingest")] and not steps[(d2, "ingest")]
    assert not steps[(d1, "reduce")]  # not reduced yet
    assert steps[(hole, "ingest")] and steps[(hole, "reduce")] and steps[(hole, "descriptors")]  # a gap
