"""BigQuery source against a fake client that implements only the methods we call."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from pipeline.ingest import bigquery
from pipeline.core.config import IngestConfig
from pipeline.ingest.run import ingest
from pipeline.core.lake import Lake
from pipeline.ingest.parse import DAY, parse_events
from pipeline.ingest.reduce import reduce

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "data" / "sample" / "gdelt-v2"
DAYS = ("2025-05-28", "2025-05-29")


def bq_typed(events: pa.Table) -> pa.Table:
    """Our typed events → the types BigQuery returns (INT64 dates and flags)."""
    cols = {}
    for name in events.column_names:
        col = events.column(name)
        if name == "SQLDATE":
            col = pc.cast(pc.strftime(col, "%Y%m%d"), pa.int64())
        elif name == "DATEADDED":
            col = pc.cast(pc.strftime(col, "%Y%m%d%H%M%S"), pa.int64())
        elif pa.types.is_boolean(col.type):
            col = pc.cast(col, pa.int64())
        elif pa.types.is_integer(col.type):
            col = pc.cast(col, pa.int64())
        cols[name] = col
    return pa.table(cols)


class FakeJob:
    def __init__(self, table: pa.Table | None, total_bytes: int):
        self._table, self.total_bytes_processed = table, total_bytes

    def result(self):
        return self

    def to_arrow(self) -> pa.Table:
        return self._table


class FakeClient:
    """``query(sql, job_config)``: dry runs estimate 1 MB per selected column; real runs filter by @lo/@hi."""

    def __init__(self, table: pa.Table):
        self.table, self.calls = table, []

    def query(self, sql: str, job_config=None):
        self.calls.append((sql, job_config))
        params = {p.name: p.value for p in job_config.query_parameters}
        columns = [c.strip() for c in re.search(r"SELECT (.*)\nFROM", sql).group(1).split(",")]
        if job_config.dry_run:
            return FakeJob(None, len(columns) * 1_000_000)
        assert job_config.maximum_bytes_billed, "every real query must carry the guard"
        t = self.table
        t = t.filter(pc.and_(pc.greater_equal(t["DATEADDED"], params["lo"]), pc.less_equal(t["DATEADDED"], params["hi"])))
        return FakeJob(t.select(columns), 0)


@pytest.fixture(scope="module")
def fake_client() -> FakeClient:
    parts = [parse_events(f.read_bytes(), f.name).events.drop_columns([DAY])
             for d in DAYS for f in sorted(SAMPLE_DIR.glob(d.replace("-", "") + "*.zip"))]
    return FakeClient(bq_typed(pa.concat_tables(parts)))


def test_query_is_parameterised_and_pushes_columns_and_days_down():
    sql = bigquery.build_query("gdelt-bq.gdeltv2.events_partitioned", ["GLOBALEVENTID", "EventCode"])
    assert sql.startswith("SELECT GLOBALEVENTID, EventCode\nFROM `gdelt-bq.gdeltv2.events_partitioned`")
    assert "_PARTITIONTIME" in sql and "@lo" in sql and "@hi" in sql and not re.search(r"20\d{6}", sql)
    v1 = bigquery.build_query("gdelt-bq.full.events", ["GLOBALEVENTID"])
    assert "SQLDATE BETWEEN @lo AND @hi" in v1 and "_PARTITIONTIME" not in v1
    with pytest.raises(ValueError):
        bigquery.build_query("gdelt-bq.full.events; DROP TABLE x", ["GLOBALEVENTID"])


def test_bigquery_ingest_matches_local_ingest(fake_client, tmp_path):
    cfg = IngestConfig(bigquery_max_bytes_billed=10**9)
    bq_lake = Lake(tmp_path / "bq")
    report = ingest(bq_lake, "bigquery", *DAYS, cfg, client=fake_client)
    assert report.ok and report.count("ok") == 2 and report.estimated_bytes == 61_000_000
    dry, *runs = fake_client.calls[-3:]
    assert dry[1].dry_run and not any(c[1].dry_run for c in runs)
    assert [str(c[1].query_parameters[0].value) for c in runs] == list(DAYS)  # one query per day
    local = Lake(tmp_path / "local")
    ingest(local, "local", *DAYS, IngestConfig(), path=SAMPLE_DIR)
    a, b = bq_lake.read("events"), local.read("events")
    assert set(a.column("source_file").to_pylist()) == {f"gdelt-bq.gdeltv2.events_partitioned:{d}" for d in DAYS}
    assert {s[:8] for s in b.column("source_file").to_pylist()} == {d.replace("-", "") for d in DAYS}
    a, b = a.drop_columns(["source_file"]), b.drop_columns(["source_file"])  # where each row came from differs
    assert a.num_rows == b.num_rows and a.sort_by("GLOBALEVENTID").equals(b.sort_by("GLOBALEVENTID"))
    again = ingest(bq_lake, "bigquery", *DAYS, cfg, client=fake_client)
    assert again.count("skipped") == 2


def test_bigquery_cost_guard_refuses_before_running(fake_client, tmp_path):
    n = len(fake_client.calls)
    with pytest.raises(bigquery.CostError, match="bigquery_max_bytes_billed"):
        ingest(Lake(tmp_path / "lake"), "bigquery", *DAYS, IngestConfig(bigquery_max_bytes_billed=1000),
               client=fake_client)
    assert len(fake_client.calls) == n + 1 and fake_client.calls[-1][1].dry_run  # only the dry run


def test_reduce_straight_from_bigquery_equals_reduce_of_the_lake(fake_client, tmp_path):
    cfg = IngestConfig(bigquery_max_bytes_billed=10**9)
    direct = Lake(tmp_path / "direct")
    report = reduce(direct, *DAYS, source="bigquery", client=fake_client, cfg=cfg)
    sql = fake_client.calls[-1][0]
    assert "SOURCEURL" not in sql and "Actor1Name" not in sql  # only the 16 needed columns are scanned
    lake = Lake(tmp_path / "lake")
    ingest(lake, "local", *DAYS, IngestConfig(), path=SAMPLE_DIR)
    reduce(lake, *DAYS)
    a, b = direct.read("country"), lake.read("country")
    assert report.rows == b.num_rows
    assert a.sort_by("GLOBALEVENTID").equals(b.sort_by("GLOBALEVENTID"))


def test_reduce_from_bigquery_quarantines_unparsable_rows(fake_client, tmp_path):
    """BigQuery rows that do not parse are not dropped silently: they land in ``quarantine`` and are counted."""
    t = fake_client.table
    sqldate = t.column("SQLDATE").to_pylist()
    bad_ids = [t.column("GLOBALEVENTID")[i].as_py() for i in (3, 7)]
    sqldate[3], sqldate[7] = 20251345, 2025  # impossible date, wrong digit count
    broken = FakeClient(t.set_column(t.column_names.index("SQLDATE"), "SQLDATE", pa.array(sqldate, pa.int64())))
    lake = Lake(tmp_path / "lake")
    cfg = IngestConfig(bigquery_max_bytes_billed=10**9)
    report = reduce(lake, *DAYS, source="bigquery", client=broken, cfg=cfg)
    assert sum(report.quarantined.values()) == 2
    country = lake.read("country", columns=["GLOBALEVENTID"]).column("GLOBALEVENTID").to_pylist()
    assert not set(bad_ids) & set(country)
    clean = reduce(Lake(tmp_path / "clean"), *DAYS, source="bigquery", client=fake_client, cfg=cfg)
    assert report.rows == clean.rows - 2 and not clean.quarantined
    q = lake.read("quarantine").to_pylist()
    assert len(q) == 2 and {r["column"] for r in q} == {"SQLDATE"} and {r["source"] for r in q} == {"bigquery"}
    assert all(r["file"].startswith("bq://gdelt-bq.gdeltv2.events_partitioned/") for r in q)
    reduce(lake, *DAYS, source="bigquery", client=broken, cfg=cfg)  # a re-run replaces, not repeats, them
    assert lake.read("quarantine").num_rows == 2


def test_a_thin_bigquery_day_is_counted_from_its_stamps_and_left_out(tmp_path):
    """BigQuery days have no export files to count: their exports are their events' distinct DATEADDED stamps."""
    from pipeline.core.coverage import day_coverage, exports_per_day, left_out_days

    days = ("2025-05-26", "2025-05-27", "2025-05-28", "2025-05-29")
    files = [f for d in days for f in sorted(SAMPLE_DIR.glob(d.replace("-", "") + "*.zip"))][:-2]  # the last: 1 of 3
    client = FakeClient(bq_typed(pa.concat_tables(parse_events(f.read_bytes(), f.name).events.drop_columns([DAY])
                                                  for f in files)))
    lake = Lake(tmp_path / "lake")
    ingest(lake, "bigquery", days[0], days[-1], IngestConfig(bigquery_max_bytes_billed=10**9), client=client)
    assert exports_per_day(lake, None, None) == {}  # before reduce: nothing counted, nothing judged
    reduce(lake, days[0], days[-1])
    last = dt.date.fromisoformat(days[-1])
    assert list(exports_per_day(lake, None, None).values()) == [3, 3, 3, 1]
    cov = day_coverage(lake, last)
    assert (cov.exports, cov.usual) == (1, 3.0) and left_out_days(lake) == [last]
