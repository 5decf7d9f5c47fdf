"""Downloads from a local HTTP server: GDELT 2.0 master file list, GDELT 1.0 md5sums,
wrong MD5, truncated zip, 404, a flaky 500, resume with a Range request."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from gdelt_files import md5, zip_bytes

from pipeline.core.config import IngestConfig
from pipeline.ingest.run import IngestError, ingest
from pipeline.core.lake import Lake

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "data" / "sample" / "gdelt-v2"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "gdelt"


def cfg_for(base: str, tmp_path: Path, **kw) -> IngestConfig:
    return IngestConfig(gdelt1_base_url=base + "events/", gdelt2_base_url=base + "gdeltv2/",
                        download_dir=tmp_path / "downloads", retries=2, backoff_s=0.01, timeout_s=5, **kw)


@pytest.fixture
def gdelt2_server(http_root):
    """2025-05-26: three good slices. 2025-05-27: good, wrong MD5, truncated zip, 404."""
    root, base, server = http_root
    (root / "gdeltv2").mkdir()
    lines = []
    good = sorted(SAMPLE_DIR.glob("20250526*.zip")) + sorted(SAMPLE_DIR.glob("20250527*.zip"))[:1]
    for f in good:
        data = f.read_bytes()
        (root / "gdeltv2" / f.name).write_bytes(data)
        lines.append(f"{len(data)} {md5(data)} {base}gdeltv2/{f.name}")
    other = sorted(SAMPLE_DIR.glob("20250527*.zip"))[1:]
    wrong = other[0].read_bytes()
    (root / "gdeltv2" / other[0].name).write_bytes(wrong)
    lines.append(f"{len(wrong)} {'0' * 32} {base}gdeltv2/{other[0].name}")
    truncated = other[1].read_bytes()[:5000]
    (root / "gdeltv2" / other[1].name).write_bytes(truncated)
    lines.append(f"{len(truncated)} {md5(truncated)} {base}gdeltv2/{other[1].name}")
    lines.append(f"123 {'1' * 32} {base}gdeltv2/20250527233000.export.CSV.zip")  # listed, not served: 404
    lines.append(f"456 {'2' * 32} {base}gdeltv2/20250527233000.mentions.CSV.zip")  # not an events export
    (root / "gdeltv2" / "masterfilelist.txt").write_text("\n".join(lines) + "\n")
    names = dict(good=[f.name for f in good], wrong=other[0].name, truncated=other[1].name)
    return root, base, server, names


def test_gdelt2_download_verify_missing_and_keep_going(gdelt2_server, tmp_path):
    root, base, server, names = gdelt2_server
    lake = Lake(tmp_path / "lake")
    cfg = cfg_for(base, tmp_path)
    report = ingest(lake, "gdelt2", "2025-05-26", "2025-05-27", cfg, keep_going=True)
    status = {f.name: f.status for f in report.files}
    assert [status[n] for n in names["good"]] == ["ok"] * 4
    assert status[names["wrong"]] == "failed" and status[names["truncated"]] == "failed"
    assert status["20250527233000.export.CSV.zip"] == "missing"
    assert "20250527233000.mentions.CSV.zip" not in status
    errors = {f.name: f.error for f in report.files}
    assert "MD5" in errors[names["wrong"]] and "truncated zip" in errors[names["truncated"]]
    assert "404" in errors["20250527233000.export.CSV.zip"]
    expected = sum(len(zipfile.ZipFile(SAMPLE_DIR / n).read(n[:-4]).splitlines()) for n in names["good"])
    assert lake.read("events").num_rows == report.rows_kept == expected
    manifest = {r["name"]: r for r in lake.read("manifest").to_pylist()}
    assert manifest["20250527233000.export.CSV.zip"]["status"] == "missing"
    assert manifest[names["wrong"]]["status"] == "failed" and manifest[names["good"][0]]["md5"]
    reasons = lake.read("quarantine").column("reason").to_pylist()
    assert len(reasons) == 2 and any("MD5" in r for r in reasons)
    assert not (tmp_path / "downloads" / "gdelt2" / names["wrong"]).exists()  # bad copy not kept
    # re-run: finished files are skipped (not fetched again); bad/missing ones retried
    hits = dict(server.hits)
    again = ingest(lake, "gdelt2", "2025-05-26", "2025-05-27", cfg, keep_going=True)
    assert again.count("skipped") == 4 and again.count("failed") == 2 and again.count("missing") == 1
    assert server.hits[f"/gdeltv2/{names['good'][0]}"] == hits[f"/gdeltv2/{names['good'][0]}"]
    assert server.hits["/gdeltv2/masterfilelist.txt"] == 1  # the list is cached for cfg.list_cache_s


def test_gdelt2_failure_raises_without_keep_going(gdelt2_server, tmp_path):
    _, base, _, names = gdelt2_server
    with pytest.raises(IngestError, match="MD5"):
        ingest(Lake(tmp_path / "lake"), "gdelt2", "2025-05-27", "2025-05-27", cfg_for(base, tmp_path))


def test_gdelt2_retries_500_and_resumes_partial_download(gdelt2_server, tmp_path):
    root, base, server, names = gdelt2_server
    flaky, partial = names["good"][0], names["good"][1]
    server.fail_once.add(f"/gdeltv2/{flaky}")
    part = tmp_path / "downloads" / "gdelt2" / (partial + ".part")
    part.parent.mkdir(parents=True)
    data = (root / "gdeltv2" / partial).read_bytes()
    part.write_bytes(data[:1000])
    report = ingest(Lake(tmp_path / "lake"), "gdelt2", "2025-05-26", "2025-05-26", cfg_for(base, tmp_path))
    assert report.ok and report.count("ok") == 3
    assert server.hits[f"/gdeltv2/{flaky}"] == 2  # one 500, one success
    assert (f"/gdeltv2/{partial}", 1000) in server.ranges  # resumed from byte 1000
    assert (tmp_path / "downloads" / "gdelt2" / partial).read_bytes() == data


def test_gdelt1_daily_and_backfile_verified_by_md5sums(http_root, tmp_path):
    root, base, server = http_root
    (root / "events").mkdir()
    rows = (FIXTURES / "v1-20160728-daily-and-historical.tsv").read_bytes().splitlines()
    daily = [r for r in rows if r.count(b"\t") == 57]
    historical = [r for r in rows if r.count(b"\t") == 56]
    files = {"20160728.export.CSV.zip": zip_bytes("20160728.export.CSV", b"\n".join(daily) + b"\n"),
             "1982.zip": zip_bytes("1982.csv", b"\n".join(historical) + b"\n")}
    for name, data in files.items():
        (root / "events" / name).write_bytes(data)
    md5sums = [f"{md5(d)}  {n}" for n, d in files.items()] + [f"{'3' * 32}  20160729.export.CSV.zip"]
    (root / "events" / "md5sums").write_text("\n".join(md5sums) + "\n")
    lake = Lake(tmp_path / "lake")
    cfg = cfg_for(base, tmp_path)
    report = ingest(lake, "gdelt1", "2016-07-28", "2016-07-29", cfg)
    assert {f.name: f.status for f in report.files} == {"20160728.export.CSV.zip": "ok",
                                                          "20160729.export.CSV.zip": "missing"}
    assert lake.partitions("events") == [__import__("datetime").date(2016, 7, 28)]
    assert lake.read("events").num_rows == len(daily)
    # a backfile: rows are partitioned by SQLDATE; rows outside the range are counted, not written
    back = ingest(lake, "gdelt1", "1982-01-02", "1982-01-03", cfg)
    (res,) = back.files
    in_range = [r for r in historical if r.split(b"\t")[1] in (b"19820102", b"19820103")]
    assert res.name == "1982.zip" and res.rows_kept == len(in_range)
    assert res.rows_out_of_range == len(historical) - len(in_range)
    sqldates = {r.split(b"\t")[1].decode() for r in in_range}
    days = sorted(f"{d[:4]}-{d[4:6]}-{d[6:]}" for d in sqldates)
    assert in_range and [str(d) for d in lake.partitions("events")] == [*days, "2016-07-28"]
    # corrupt md5sums entry → failed
    (root / "events" / "md5sums").write_text(f"{'4' * 32}  20160728.export.CSV.zip\n")
    with pytest.raises(IngestError, match="MD5"):
        ingest(lake, "gdelt1", "2016-07-28", "2016-07-28", cfg_for(base, tmp_path, list_cache_s=0), force=True)


def test_gdelt1_file_names_and_checksums_from_the_real_lists(shared_data, tmp_path):
    """Daily exports from 2013-04-01, monthly backfiles 2006-01…2013-03, yearly before, per GDELT's md5sums."""
    from pipeline.ingest.sources import gdelt1_files

    folder = tmp_path / "events"
    folder.mkdir()
    (folder / "md5sums").write_bytes((shared_data / "gdelt-v1-checksums" / "gdelt_md5sums").read_bytes())
    (folder / "filesizes").write_bytes((shared_data / "gdelt-v1-checksums" / "gdelt_filesizes").read_bytes())
    cfg = IngestConfig(gdelt1_base_url=str(folder), download_dir=tmp_path / "dl")
    import datetime as dt

    files = gdelt1_files(dt.date(2005, 12, 30), dt.date(2006, 1, 2), cfg)
    assert [f.name for f in files] == ["2005.zip", "200601.zip"]
    files = gdelt1_files(dt.date(2013, 3, 31), dt.date(2013, 4, 2), cfg)
    assert [f.name for f in files] == ["201303.zip", "20130401.export.CSV.zip", "20130402.export.CSV.zip"]
    assert files[1].md5 == "eae31b05c53ec7c57927560e23740149" and all(f.size for f in files)
