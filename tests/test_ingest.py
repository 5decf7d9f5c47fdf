"""Ingest: local files on real data, layouts, bad input, dedupe, idempotence, readers, CLI."""

from __future__ import annotations

import datetime as dt
import io
import shutil
import zipfile
from pathlib import Path

import pyarrow as pa
import pytest

from pipeline.core.config import IngestConfig
from pipeline.ingest.run import IngestError, ingest
from pipeline.core.lake import Lake
from pipeline.ingest.parse import parse_events
from pipeline.core.schemas import EVENTS_SCHEMA, LAYOUTS

from tests.conftest import SAMPLE_DIR, copy_sample_days
LAYOUT_FIXTURES = Path(__file__).resolve().parent / "fixtures" / "gdelt"


def raw_lines(path: Path) -> list[bytes]:
    """Non-empty lines of a (zipped) GDELT file, read independently of the parser."""
    data = path.read_bytes()
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as z:
            data = b"".join(z.read(n) for n in z.namelist())
    return [line for line in data.replace(b"\r\n", b"\n").split(b"\n") if line]


def lake_digest(lake: Lake, table: str = "events") -> str:
    con = lake.duckdb([table])
    return con.sql(f"SELECT md5(string_agg(CAST(t AS VARCHAR), '|' ORDER BY GLOBALEVENTID)) FROM {table} t").fetchall()[0][0]


def zip_bytes(name: str, text: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(name, text)
    return buf.getvalue()


# ------------------------------------------------------------ the sample
def test_sample_lake_has_every_row_typed_and_partitioned_by_dateadded(sample_lake):
    zips = sorted(SAMPLE_DIR.glob("*.zip"))
    lines = [line for z in zips for line in raw_lines(z)]
    expected_ids = {int(line.split(b"\t", 1)[0]) for line in lines}
    events = sample_lake.read("events")
    assert events.num_rows == len(expected_ids)  # every distinct event, nothing dropped
    assert set(events.column("GLOBALEVENTID").to_pylist()) == expected_ids
    assert sample_lake.partitions("events") == [dt.date(2025, 5, 16) + dt.timedelta(i) for i in range(22)]
    for f in EVENTS_SCHEMA:  # typed schema (Parquet stores DATEADDED in ms)
        t = events.schema.field(f.name).type
        assert t == f.type or (f.name == "DATEADDED" and pa.types.is_timestamp(t) and t.tz == "UTC"), f.name
    con = sample_lake.duckdb(["events"])
    assert con.sql("SELECT count(*) FROM events WHERE CAST(DATEADDED AS DATE) <> date").fetchall()[0][0] == 0
    # codes keep their leading zeros; 1-digit root codes are 2 characters
    assert con.sql("SELECT min(length(EventRootCode)), count(*) FILTER (WHERE EventCode LIKE '0%') FROM events"
                   ).fetchall()[0][0] == 2
    manifest = sample_lake.read("manifest")
    assert manifest.num_rows == len(zips) and set(manifest.column("status").to_pylist()) == {"ok"}
    assert sum(manifest.column("rows_kept").to_pylist()) == events.num_rows
    # masterfilelist.txt in the folder was used to verify every file
    assert manifest.column("expected_md5").null_count == 0
    assert manifest.column("md5").to_pylist() == manifest.column("expected_md5").to_pylist()


def test_duckdb_pandas_polars_read_the_lake(sample_lake):
    import pandas as pd
    import polars as pl

    n = sample_lake.read("events", columns=["GLOBALEVENTID"]).num_rows
    root = sample_lake.root / "events"
    assert sample_lake.duckdb().sql("SELECT count(*) FROM events").fetchall()[0][0] == n
    df = pd.read_parquet(root)
    assert len(df) == n and str(df["EventCode"].dtype) in ("object", "string", "str")
    assert df["GLOBALEVENTID"].is_unique
    pl_df = pl.read_parquet(str(root / "**" / "*.parquet"), hive_partitioning=True)
    assert pl_df.height == n and pl_df["date"].n_unique() == 22


# --------------------------------------------------------- idempotence
def test_rerun_skips_and_force_gives_identical_rows(tmp_path):
    src = copy_sample_days(tmp_path / "src", ["2025-05-20", "2025-05-21"])
    lake = Lake(tmp_path / "lake")
    first = ingest(lake, "local", "2025-05-20", "2025-05-21", IngestConfig(), path=src)
    digest = lake_digest(lake)
    assert first.count("ok") == 6 and first.rows_kept > 0
    again = ingest(lake, "local", "2025-05-20", "2025-05-21", IngestConfig(), path=src)
    assert again.count("skipped") == 6 and again.rows_kept == 0 and lake_digest(lake) == digest
    forced = ingest(lake, "local", "2025-05-20", "2025-05-21", IngestConfig(), path=src, force=True)
    assert forced.count("ok") == 6 and forced.rows_kept == first.rows_kept and forced.rows_duplicate == 0
    assert lake_digest(lake) == digest


def test_force_reingest_of_a_changed_file_replaces_its_rows(tmp_path):
    """A file changed since it was ingested: --force leaves exactly its new rows, the now-bad row quarantined."""
    day = "2025-05-27"
    src = copy_sample_days(tmp_path / "src", [day])
    lake = Lake(tmp_path / "lake")
    first = ingest(lake, "local", day, day, IngestConfig(), path=src)
    target = sorted(src.glob("*.zip"))[1]
    lines = raw_lines(target)
    fields = lines[5].split(b"\t")
    bad = b"\t".join(fields[:29] + [b"x9"] + fields[30:])  # this row's QuadClass is now unparsable
    kept_lines = lines[:5] + [bad] + lines[6:-10]  # ... and the last 10 rows are gone
    target.write_bytes(zip_bytes(target.name[:-4], b"\n".join(kept_lines) + b"\n"))
    gone = {int(line.split(b"\t", 1)[0]) for line in [lines[5], *lines[-10:]]}
    before = lake.read("events", columns=["GLOBALEVENTID", "source_file"])
    assert gone <= set(before.column("GLOBALEVENTID").to_pylist())
    report = ingest(lake, "local", day, day, IngestConfig(), path=src, force=True)
    after = lake.read("events", columns=["GLOBALEVENTID", "source_file"])
    assert not gone & set(after.column("GLOBALEVENTID").to_pylist())
    assert after.num_rows == before.num_rows - len(gone)
    assert report.rows_quarantined == 1 and report.rows_kept == first.rows_kept - len(gone)
    manifest = {r["name"]: r for r in lake.read("manifest").to_pylist()}
    row = manifest[target.name]
    assert row["rows_replaced"] == len(lines) and row["rows_kept"] == len(lines) - len(gone)
    assert row["rows_quarantined"] == 1
    # a later failure of the same file keeps its last good rows (recorded as failed, retried next run)
    target.write_bytes(target.read_bytes()[:100])
    failed = ingest(lake, "local", day, day, IngestConfig(), path=src, force=True, keep_going=True)
    assert [f.name for f in failed.failed] == [target.name]
    assert lake.read("events").num_rows == after.num_rows
    assert {r["name"]: r for r in lake.read("manifest").to_pylist()}[target.name]["status"] == "failed"


def test_lake_without_provenance_is_upgraded_on_reingest(tmp_path):
    """Partitions written before ``source_file`` existed: a forced re-ingest gives the same rows, now with it."""
    src = copy_sample_days(tmp_path / "src", ["2025-05-20"])
    lake = Lake(tmp_path / "lake")
    ingest(lake, "local", "2025-05-20", "2025-05-20", IngestConfig(), path=src)
    old = lake.read("events", columns=None).drop_columns(["date", "source_file"])
    lake.write_partition("events", old, "2025-05-20")
    ingest(lake, "local", "2025-05-20", "2025-05-20", IngestConfig(), path=src, force=True)
    new = lake.read("events", columns=None)
    assert new.num_rows == old.num_rows and new.column("source_file").null_count == 0


def test_one_more_slice_merges_into_its_day(tmp_path):
    day = "2025-05-22"
    full = Lake(tmp_path / "full")
    ingest(full, "local", day, day, IngestConfig(), path=copy_sample_days(tmp_path / "all", [day]))
    part = Lake(tmp_path / "part")
    ingest(part, "local", day, day, IngestConfig(), path=copy_sample_days(tmp_path / "a", [day], slice(0, 2)))
    n2 = part.read("events").num_rows
    ingest(part, "local", day, day, IngestConfig(), path=copy_sample_days(tmp_path / "b", [day], slice(2, 3)))
    assert part.read("events").num_rows > n2
    assert lake_digest(part) == lake_digest(full)


def test_repeated_event_keeps_first_dateadded_whatever_the_order(tmp_path):
    """A 2.0 event repeated in a later slice (next day) is kept once, in its first DATEADDED day."""
    src = sorted(SAMPLE_DIR.glob("20250523*.zip"))[0]
    lines = raw_lines(src)[:50]
    repeated = [b"\t".join(line.split(b"\t")[:59] + [b"20250524010000"] + line.split(b"\t")[60:]) for line in lines]
    later = zip_bytes("20250524010000.export.CSV", b"\n".join(repeated) + b"\n")
    digests = []
    for order in ("forward", "reverse"):
        folder_a, folder_b = tmp_path / order / "a", tmp_path / order / "b"
        folder_a.mkdir(parents=True), folder_b.mkdir(parents=True)
        shutil.copy(src, folder_a / src.name)
        (folder_b / "20250524010000.export.CSV.zip").write_bytes(later)
        lake = Lake(tmp_path / order / "lake")
        first, second = (folder_a, folder_b) if order == "forward" else (folder_b, folder_a)
        ingest(lake, "local", "2025-05-23", "2025-05-24", IngestConfig(), path=first)
        ingest(lake, "local", "2025-05-23", "2025-05-24", IngestConfig(), path=second)
        ev = lake.read("events", columns=["GLOBALEVENTID", "date"])
        assert ev.num_rows == len(raw_lines(src))  # the 50 repeats are not added
        assert len(set(ev.column("GLOBALEVENTID").to_pylist())) == ev.num_rows
        assert not lake.has_partition("events", "2025-05-24")
        digests.append(lake_digest(lake))
    assert digests[0] == digests[1]


# ------------------------------------------------------------ layouts
@pytest.mark.parametrize("name", sorted(p.name for p in LAYOUT_FIXTURES.iterdir()))
def test_every_layout_fixture_parses_completely(name):
    path = LAYOUT_FIXTURES / name
    lines = raw_lines(path)
    parsed = parse_events(path.read_bytes(), name)
    header = 1 if lines[0].startswith(b"GLOBALEVENTID") else 0
    assert parsed.quarantine == []
    assert parsed.events.num_rows == len(lines) - header
    ev = parsed.events
    if not header:
        counts = [line.count(b"\t") + 1 for line in lines]
        assert ev.column("SOURCEURL").null_count == counts.count(57)  # 57-column rows have no SOURCEURL
        if 61 not in counts:
            assert ev.column("ActionGeo_ADM2Code").null_count == ev.num_rows
        assert not any(u.endswith("\r") for u in ev.column("SOURCEURL").drop_null().to_pylist())  # CRLF
    # historical rows (added before 2013-04-01) are partitioned by SQLDATE, the others by DATEADDED day
    for row in ev.select(["SQLDATE", "DATEADDED", "_day"]).to_pylist():
        added = row["DATEADDED"].date()
        assert row["_day"] == (row["SQLDATE"] if added < dt.date(2013, 4, 1) else added)


def test_batch_parse_equals_file_by_file_and_falls_back_only_for_odd_files(tmp_path, monkeypatch):
    """``parse_batch`` (one pyarrow call over many files) gives exactly what ``parse_text`` gives per file."""
    import pipeline.ingest.parse as parse

    items = [(parse.unpack(f.read_bytes(), f.name), f.name) for f in sorted(SAMPLE_DIR.glob("2025052[56]*.zip"))]
    items += [(f.read_bytes(), f.name) for f in sorted(LAYOUT_FIXTURES.iterdir())]  # 57/58/61, CRLF, CSV export
    make_bad_folder(tmp_path)
    items.insert(2, ((tmp_path / "bad" / "20250525000000.export.CSV").read_bytes(), "bad"))  # rows to quarantine
    items.insert(4, (items[0][0][:-1], "no final newline"))
    expected = [parse.parse_text(text, where) for text, where in items]
    alone = []
    monkeypatch.setattr(parse, "parse_text", lambda text, where: alone.append(where) or expected[
        [w for _, w in items].index(where)])
    got = parse.parse_batch(items)
    for (_, where), e, g in zip(items, expected, got):
        assert g.events.equals(e.events), where
        assert g.quarantine == e.quarantine, where
    assert sum(len(g.quarantine) for g in got) == 4
    # the bad file and the files not in a plain TSV layout went alone; the 6 sample slices and the rest in batches
    assert "bad" in alone and "bigquery-style-turkey-protests-2013.csv" in alone
    assert not any(w.endswith(".zip") for w in alone) and "no final newline" not in alone


def test_zip_members_are_checked_for_crc_and_size():
    from pipeline.ingest.parse import BadFile, unpack

    path = sorted(SAMPLE_DIR.glob("*.zip"))[0]
    data = path.read_bytes()
    assert unpack(data, path.name) == b"".join(raw_lines(path)[i] + b"\n" for i in range(len(raw_lines(path))))
    with zipfile.ZipFile(path) as z:
        info = z.infolist()[0]
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    for pos in (start + 10, start + info.compress_size // 2, start + info.compress_size - 3):
        broken = bytearray(data)
        broken[pos] ^= 0xFF
        with pytest.raises(BadFile, match="corrupt or truncated zip"):
            unpack(bytes(broken), path.name)


def test_layout_values_are_typed_as_in_the_source():
    parsed = parse_events((LAYOUT_FIXTURES / "v1-57-and-58col-mixed.tsv").read_bytes(), "mixed")
    first = raw_lines(LAYOUT_FIXTURES / "v1-57-and-58col-mixed.tsv")[1].decode().split("\t")
    row = parsed.events.filter(pa.compute.equal(parsed.events["GLOBALEVENTID"], int(first[0]))).to_pylist()[0]
    cols = LAYOUTS[len(first)]
    assert row["SQLDATE"] == dt.datetime.strptime(first[1], "%Y%m%d").date()
    assert row["EventCode"] == first[cols.index("EventCode")]
    assert row["GoldsteinScale"] == float(first[cols.index("GoldsteinScale")])
    assert row["IsRootEvent"] == (first[cols.index("IsRootEvent")] == "1")


def test_shared_gdelt_misc_layouts(shared_data, tmp_path):
    folder = shared_data / "gdelt-misc"
    lake = Lake(tmp_path / "lake")
    report = ingest(lake, "local", "1979-01-01", "2030-12-31", IngestConfig(), path=folder)
    assert report.ok and report.rows_quarantined == 0
    expected = sum(len(raw_lines(f)) - raw_lines(f)[0].startswith(b"GLOBALEVENTID") for f in folder.iterdir())
    assert report.rows_kept + report.rows_duplicate == expected
    ids = lake.read("events", columns=["GLOBALEVENTID"]).column("GLOBALEVENTID")
    assert len(ids) == len(set(ids.to_pylist())) == report.rows_kept


def test_shared_real_days(shared_data, tmp_path):
    folder = shared_data / "gdelt-v2-15min"
    days = ["2025-05-27", "2025-05-28"]
    files = [f for d in days for f in sorted(folder.glob(f"{d.replace('-', '')}*.zip"))]
    lake = Lake(tmp_path / "lake")
    report = ingest(lake, "local", days[0], days[1], IngestConfig(), path=folder)
    assert report.count("ok") == len(files) and report.rows_quarantined == 0
    ids = {int(line.split(b"\t", 1)[0]) for f in files for line in raw_lines(f)}
    assert lake.read("events", columns=["GLOBALEVENTID"]).num_rows == len(ids)
    assert lake.partitions("events") == [dt.date(2025, 5, 27), dt.date(2025, 5, 28)]


# ------------------------------------------------------------ bad input
def make_bad_folder(tmp_path: Path) -> tuple[Path, int]:
    """A folder mixing good and bad files/rows; returns it and the number of good rows."""
    folder = tmp_path / "bad"
    folder.mkdir()
    good = raw_lines(sorted(SAMPLE_DIR.glob("20250525*.zip"))[0])
    rows = list(good[:40])
    fields = rows[0].split(b"\t")
    rows.append(b"\t".join(fields[:12]))  # wrong column count
    rows.append(b"\t".join([b"1999999901"] + fields[1:29] + [b"x7"] + fields[30:]))  # QuadClass not a number
    rows.append(b"\t".join([b"1999999902", b"2025-13-45"] + fields[2:]))  # unparsable SQLDATE
    rows.append(b"\t".join([b"1999999903"] + fields[1:6] + [b"\xff\xfeBAD"] + fields[7:]))  # non-UTF-8
    (folder / "20250525000000.export.CSV").write_bytes(b"\r\n".join(rows) + b"\r\n")
    whole = sorted(SAMPLE_DIR.glob("20250525*.zip"))[1].read_bytes()
    (folder / "20250525010000.export.CSV.zip").write_bytes(whole[: len(whole) // 2])  # truncated zip
    (folder / "20250525020000.export.CSV").write_bytes(b"")  # empty file
    return folder, 40


def test_bad_input_is_quarantined_with_reasons_and_counted(tmp_path):
    folder, n_good = make_bad_folder(tmp_path)
    lake = Lake(tmp_path / "lake")
    report = ingest(lake, "local", "2025-05-25", "2025-05-25", IngestConfig(), path=folder, keep_going=True)
    assert not report.ok and {f.name for f in report.failed} == {
        "20250525010000.export.CSV.zip", "20250525020000.export.CSV"}
    assert report.rows_kept == n_good and report.rows_quarantined == 4
    q = lake.read("quarantine").to_pylist()
    reasons = sorted(r["reason"] for r in q)
    assert any(r.startswith("wrong column count: 12") for r in reasons)
    assert any("QuadClass" in r for r in reasons) and any("SQLDATE" in r for r in reasons)
    assert any(r.startswith("non-UTF-8") for r in reasons)
    assert any("truncated zip" in r for r in reasons) and any("empty file" in r for r in reasons)
    bad_value = next(r for r in q if r["column"] == "QuadClass")
    assert bad_value["value"] == "x7" and bad_value["line"] == 42 and bad_value["raw"].startswith("1999999901")
    manifest = {r["name"]: r for r in lake.read("manifest").to_pylist()}
    assert manifest["20250525000000.export.CSV"]["rows_quarantined"] == 4
    assert manifest["20250525010000.export.CSV.zip"]["status"] == "failed"
    # re-running replaces (does not duplicate) the quarantine rows of re-ingested files
    ingest(lake, "local", "2025-05-25", "2025-05-25", IngestConfig(), path=folder, keep_going=True, force=True)
    assert lake.read("quarantine").num_rows == len(q)


def test_failed_file_raises_unless_keep_going(tmp_path):
    folder, _ = make_bad_folder(tmp_path)
    lake = Lake(tmp_path / "lake")
    with pytest.raises(IngestError, match="truncated zip") as err:
        ingest(lake, "local", "2025-05-25", "2025-05-25", IngestConfig(), path=folder)
    assert len(err.value.report.failed) == 1  # stopped at the first failure
    assert lake.read("manifest").num_rows == 2  # what was done is recorded


# ------------------------------------------------------------------ CLI
def test_cli_ingest_reduce_inspect(tmp_path):
    from typer.testing import CliRunner

    from gdelt_forecast.cli import app

    runner = CliRunner()
    src = copy_sample_days(tmp_path / "src", ["2025-05-30"])
    lake = str(tmp_path / "lake")
    r = runner.invoke(app, ["--lake", lake, "ingest", "--source", "local", "--start", "2025-05-30",
                            "--path", str(src)])
    assert r.exit_code == 0, r.output
    assert "rows_kept" in r.output.replace("\n", "") or "rows_k" in r.output
    r = runner.invoke(app, ["--lake", lake, "reduce", "--start", "2025-05-30"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["--lake", lake, "inspect", "--sql", "SELECT count(*) AS n FROM country"])
    n = Lake(lake).read("events").num_rows
    assert r.exit_code == 0 and f"{n:,}" in r.output
    bad, _ = make_bad_folder(tmp_path)
    args = ["--lake", lake, "ingest", "--source", "local", "--start", "2025-05-25", "--path", str(bad)]
    assert runner.invoke(app, args).exit_code == 1
    r = runner.invoke(app, [*args, "--keep-going"])
    assert r.exit_code == 0 and "failed" in r.output
    r = runner.invoke(app, ["--lake", lake, "inspect"])
    assert r.exit_code == 0 and "quarantine" in r.output


def test_big_files_stream_in_chunks_with_the_same_result(tmp_path, monkeypatch):
    """Files larger than STREAM_BYTES (1.0 yearly backfiles) are parsed and flushed chunk by chunk."""
    import pipeline.ingest.run as ing

    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(LAYOUT_FIXTURES / "v1-57-and-58col-mixed.tsv", src / "1979.csv")
    whole = Lake(tmp_path / "whole")
    ingest(whole, "local", "1979-01-01", "2030-12-31", IngestConfig(), path=src)
    monkeypatch.setattr(ing, "STREAM_BYTES", 4000)
    monkeypatch.setattr(ing, "_FLUSH_ROWS", 20)
    chunked = Lake(tmp_path / "chunked")
    report = ingest(chunked, "local", "1979-01-01", "2030-12-31", IngestConfig(), path=src)
    assert report.rows_kept == 100 and report.files[0].status == "ok"
    assert lake_digest(chunked) == lake_digest(whole)
    (row,) = chunked.read("manifest").to_pylist()
    assert row["status"] == "ok" and row["rows_kept"] == 100


def test_concurrent_ingests_of_different_days_keep_every_manifest_row(tmp_path):
    """A backfill may ingest several days at once: writes are serialised by the lake lock."""
    from concurrent.futures import ThreadPoolExecutor

    days = ["2025-05-31", "2025-06-01", "2025-06-02"]
    lake = Lake(tmp_path / "lake")
    with ThreadPoolExecutor(3) as pool:
        list(pool.map(lambda d: ingest(lake, "local", d, d, IngestConfig(), path=SAMPLE_DIR), days))
    manifest = lake.read("manifest")
    assert manifest.num_rows == 9 and set(manifest.column("status").to_pylist()) == {"ok"}
    assert [str(d) for d in lake.partitions("events")] == days
