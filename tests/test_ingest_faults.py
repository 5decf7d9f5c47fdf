"""Ingest under attack: hostile file lists, misbehaving servers (127.0.0.1 only), lying zips, bad files.

Each test is one row of the fault table in docs/ingest.md.
"""

from __future__ import annotations

import http.server
import io
import shutil
import struct
import threading
import time
import zipfile
from pathlib import Path

import pytest
from gdelt_files import md5, zip_bytes

from pipeline.core.config import IngestConfig
from pipeline.core.lake import Lake
from pipeline.ingest.manifest import FileResult, Manifest
from pipeline.ingest.parse import BadFile, parse_text, unpack
from pipeline.ingest.run import IngestError, ingest

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "data" / "sample" / "gdelt-v2"
DAY = "2025-05-26"
SLICES = sorted(SAMPLE_DIR.glob("20250526*.zip"))


def sample_lines(n: int = 20) -> list[bytes]:
    with zipfile.ZipFile(SLICES[0]) as z:
        return z.read(z.namelist()[0]).splitlines()[:n]


# ------------------------------------------------------------------ a misbehaving server
class Server:
    """Serves ``files`` on 127.0.0.1; ``modes[path]`` makes one path misbehave:

    ``redirect:<url>`` (302), ``trickle`` (1 byte each 0.2 s), ``drop_once`` (first answer closes
    the connection half-way, Content-Length promising the whole), ``oversize`` (body longer than
    the listed size).
    """

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.modes: dict[str, str] = {}
        self.hits: dict[str, int] = {}
        self.ranges: list[tuple[str, int]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                outer.hits[self.path] = outer.hits.get(self.path, 0) + 1
                mode = outer.modes.get(self.path, "")
                if mode.startswith("redirect:"):
                    self.send_response(302)
                    self.send_header("Location", mode[9:])
                    self.end_headers()
                    return
                data = outer.files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                first = 0
                rng = self.headers.get("Range")
                if rng and rng.startswith("bytes="):
                    first = int(rng[6:].split("-")[0])
                    outer.ranges.append((self.path, first))
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {first}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[first:]
                if mode == "oversize":
                    body = body + b"\0" * 100_000
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    if mode == "trickle":
                        for i in range(len(body)):
                            self.wfile.write(body[i:i + 1])
                            self.wfile.flush()
                            time.sleep(0.2)
                    elif mode == "drop_once" and outer.hits[self.path] == 1:
                        self.wfile.write(body[: len(body) // 2])
                        self.wfile.flush()
                        self.close_connection = True
                    else:
                        self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def publish(self, slices: list[Path], extra_lines: list[str] = ()) -> None:
        """Serve ``slices`` under /gdeltv2/ and a master file list naming them (+ ``extra_lines``)."""
        lines = []
        for f in slices:
            data = f.read_bytes()
            self.files[f"/gdeltv2/{f.name}"] = data
            lines.append(f"{len(data)} {md5(data)} {self.base}gdeltv2/{f.name}")
        self.files["/gdeltv2/masterfilelist.txt"] = ("\n".join([*lines, *extra_lines]) + "\n").encode()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


def cfg_for(server: Server, tmp_path: Path, **kw) -> IngestConfig:
    kw = {"retries": 2, "backoff_s": 0.01, "timeout_s": 5, "list_cache_s": 0, **kw}
    return IngestConfig(gdelt2_base_url=server.base + "gdeltv2/", download_dir=tmp_path / "downloads", **kw)


def manifest_of(lake: Lake) -> dict[str, dict]:
    return {r["name"]: r for r in lake.read("manifest").to_pylist()}


# ------------------------------------------------------------------ security
def test_file_urls_and_other_hosts_in_the_list_are_refused_and_recorded(server, tmp_path):
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "20250526020000.export.CSV.zip").write_bytes(SLICES[1].read_bytes())
    other = SLICES[2].read_bytes()
    server.publish(SLICES[:1], [
        f"{len(other)} {md5(other)} file://{secret}/20250526020000.export.CSV.zip",
        f"{len(other)} {md5(other)} http://127.0.0.2:{server.httpd.server_address[1]}/gdeltv2/20250526030000.export.CSV.zip",
        f"{len(other)} {md5(other)} /etc/20250526040000.export.CSV.zip",
    ])
    lake = Lake(tmp_path / "lake")
    report = ingest(lake, "gdelt2", DAY, DAY, cfg_for(server, tmp_path), keep_going=True)
    status = {f.name: f.status for f in report.files}
    assert status == {SLICES[0].name: "ok", "20250526020000.export.CSV.zip": "refused",
                      "20250526030000.export.CSV.zip": "refused", "20250526040000.export.CSV.zip": "refused"}
    assert report.count("refused") == 3 and report.ok
    m = manifest_of(lake)
    assert m["20250526020000.export.CSV.zip"]["status"] == "refused" and "only http" in m[
        "20250526020000.export.CSV.zip"]["error"]
    assert "ingest.allowed_hosts" in m["20250526030000.export.CSV.zip"]["error"]
    assert m["20250526020000.export.CSV.zip"]["md5"] is None  # the local file was never read
    assert lake.read("events").num_rows == len(sample_lines(10**6))
    # an explicit allow-list admits another host
    from pipeline.ingest.sources import allowed_hosts

    assert "127.0.0.2" in allowed_hosts("gdelt2", cfg_for(server, tmp_path, allowed_hosts=["127.0.0.2"]))


def test_redirects_are_followed_only_on_the_same_host(server, tmp_path):
    server.publish(SLICES[:2])
    port = server.httpd.server_address[1]
    server.files[f"/moved/{SLICES[0].name}"] = SLICES[0].read_bytes()
    server.modes[f"/gdeltv2/{SLICES[0].name}"] = f"redirect:/moved/{SLICES[0].name}"  # same host: followed
    server.modes[f"/gdeltv2/{SLICES[1].name}"] = f"redirect:http://localhost:{port}/gdeltv2/{SLICES[1].name}"
    lake = Lake(tmp_path / "lake")
    report = ingest(lake, "gdelt2", DAY, DAY, cfg_for(server, tmp_path), keep_going=True)
    status = {f.name: f for f in report.files}
    assert status[SLICES[0].name].status == "ok"
    assert status[SLICES[1].name].status == "refused" and "localhost" in status[SLICES[1].name].error
    assert f"/gdeltv2/{SLICES[1].name}" in server.hits and server.hits.get(f"/gdeltv2/{SLICES[1].name}") == 1


def test_a_body_longer_than_published_stops_at_the_published_size(server, tmp_path):
    server.publish(SLICES[:1])
    server.modes[f"/gdeltv2/{SLICES[0].name}"] = "oversize"
    lake = Lake(tmp_path / "lake")
    report = ingest(lake, "gdelt2", DAY, DAY, cfg_for(server, tmp_path), keep_going=True)
    (res,) = report.files
    assert res.status == "failed" and "more than the published" in res.error
    assert not list((tmp_path / "downloads" / "gdelt2").glob("*.zip*"))  # nothing kept, nothing oversized on disk
    assert manifest_of(lake)[SLICES[0].name]["status"] == "failed"


def _lying_zip(real_size: int = 50 << 20, declared: int = 1000) -> bytes:
    """A zip of ``real_size`` zero bytes whose headers declare ``declared`` bytes (CRC of the declared prefix)."""
    data = bytearray(zip_bytes("20250526000000.export.CSV", b"\0" * real_size))
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as z:
        info = z.infolist()[0]
    crc = zipfile.crc32(b"\0" * declared)
    struct.pack_into("<III", data, info.header_offset + 14, crc, info.compress_size, declared)  # local header
    cd = bytes(data).rindex(b"PK\x01\x02")
    struct.pack_into("<III", data, cd + 16, crc, info.compress_size, declared)  # central directory
    return bytes(data)


def test_a_zip_lying_about_its_size_is_not_inflated_past_it():
    import resource

    bomb = _lying_zip()
    assert len(bomb) < 100_000
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(BadFile, match="more than its declared 1,000 bytes|bad CRC"):
        unpack(bomb, "bomb.zip")
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 40  # inflating it all would take 50 MiB more
    honest = zip_bytes("x.CSV", b"\0" * 5000)
    with pytest.raises(BadFile, match="max_unzipped_bytes"):
        unpack(honest, "x.zip", max_bytes=4999)


def test_encrypted_and_unsupported_members_fail_their_file_in_manifest_and_quarantine(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    good = zip_bytes("20250526010000.export.CSV", b"\n".join(sample_lines()) + b"\n")
    with zipfile.ZipFile(io.BytesIO(good)) as z:
        info = z.infolist()[0]
    cd = good.rindex(b"PK\x01\x02")
    enc, odd = bytearray(good), bytearray(good)
    for buf, flag_off, method in ((enc, 6, None), (odd, 6, 99)):
        for base, off in ((info.header_offset, 6), (cd, 8)):
            if method is None:
                struct.pack_into("<H", buf, base + off, struct.unpack_from("<H", buf, base + off)[0] | 1)
            else:
                struct.pack_into("<H", buf, base + off + 2, method)
    (src / "20250526010000.export.CSV.zip").write_bytes(bytes(enc))
    (src / "20250526020000.export.CSV.zip").write_bytes(bytes(odd))
    shutil.copy(SLICES[0], src / SLICES[0].name)
    lake = Lake(tmp_path / "lake")
    report = ingest(lake, "local", DAY, DAY, IngestConfig(), path=src, keep_going=True)
    errors = {f.name: f.error for f in report.failed}
    assert set(errors) == {"20250526010000.export.CSV.zip", "20250526020000.export.CSV.zip"}
    assert all("encrypted or uses an unsupported compression" in e for e in errors.values())
    m = manifest_of(lake)
    assert m["20250526010000.export.CSV.zip"]["status"] == m["20250526020000.export.CSV.zip"]["status"] == "failed"
    q = lake.read("quarantine").to_pylist()
    assert sorted(Path(r["file"]).name for r in q) == sorted(errors)


# ------------------------------------------------------------------ downloads
def test_a_trickling_server_is_cut_off_at_the_deadline(server, tmp_path):
    server.publish(SLICES[:1])
    server.modes[f"/gdeltv2/{SLICES[0].name}"] = "trickle"
    cfg = cfg_for(server, tmp_path, timeout_s=1, min_rate_bytes_s=10**9)  # deadline ≈ timeout_s
    t0 = time.monotonic()
    report = ingest(Lake(tmp_path / "lake"), "gdelt2", DAY, DAY, cfg, keep_going=True)
    elapsed = time.monotonic() - t0
    (res,) = report.files
    assert res.status == "failed" and "deadline" in res.error
    assert elapsed < 4, elapsed  # the whole file would take hours at this rate


def test_a_connection_dropped_mid_body_is_detected_and_resumed(server, tmp_path):
    server.publish(SLICES[:1])
    server.modes[f"/gdeltv2/{SLICES[0].name}"] = "drop_once"
    lake = Lake(tmp_path / "lake")
    report = ingest(lake, "gdelt2", DAY, DAY, cfg_for(server, tmp_path))
    assert report.ok and report.files[0].status == "ok"
    size = len(SLICES[0].read_bytes())
    assert (f"/gdeltv2/{SLICES[0].name}", size // 2) in server.ranges  # resumed where it broke
    assert (tmp_path / "downloads" / "gdelt2" / SLICES[0].name).read_bytes() == SLICES[0].read_bytes()


def test_two_ingests_sharing_download_dir_both_succeed(server, tmp_path):
    server.publish(SLICES)
    for f in SLICES:
        server.modes[f"/gdeltv2/{f.name}"] = "drop_once"  # slow, resumed downloads: the runs overlap
    cfg = cfg_for(server, tmp_path)
    lake = Lake(tmp_path / "lake")
    reports = [None, None]

    def run(i):
        reports[i] = ingest(lake, "gdelt2", DAY, DAY, cfg, keep_going=True, force=True, progress=False)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in reports:
        assert r.ok, [(f.name, f.error) for f in r.files]
    assert set(r["status"] for r in manifest_of(lake).values()) == {"ok"}
    assert not lake.has_partition("quarantine", DAY)
    assert not list((tmp_path / "downloads" / "gdelt2").glob("*.part"))
    ids = lake.read("events", columns=["GLOBALEVENTID"]).column("GLOBALEVENTID").to_pylist()
    assert len(ids) == len(set(ids)) > 0


def test_manifest_merge_never_downgrades_another_runs_ok(tmp_path):
    lake = Lake(tmp_path / "lake")
    a, b = Manifest(lake), Manifest(lake)  # two runs that started together
    b.record(FileResult("x.zip", "http://h/x.zip", "ok", rows_kept=5, source="gdelt2"))
    b.sync(), b.save()
    failed = FileResult("x.zip", "http://h/x.zip", "failed", error="boom", source="gdelt2")
    a.sync()
    assert a.ok_by_another(failed)
    a.record(failed)
    a.save()
    (row,) = lake.read("manifest").to_pylist()
    assert row["status"] == "ok" and row["rows_kept"] == 5
    # but a run that itself saw the ok and then failed re-ingesting records its failure
    c = Manifest(lake)
    c.sync()
    assert not c.ok_by_another(failed)
    c.record(failed)
    c.save()
    assert lake.read("manifest").to_pylist()[0]["status"] == "failed"


# ------------------------------------------------------------------ bad input
def _with(fields: list[bytes], **at: bytes) -> bytes:
    out = list(fields)
    for i, v in at.items():
        out[int(i[1:])] = v
    return b"\t".join(out)


def test_impossible_dates_are_quarantined_not_rolled_over():
    lines = sample_lines(6)
    f = lines[0].split(b"\t")
    lines[2] = _with(f, c0=b"1999999901", c1=b"20250230")  # SQLDATE 30 February
    lines[4] = _with(f, c0=b"1999999902", c59=b"20250230120000")  # DATEADDED 30 February
    parsed = parse_text(b"\n".join(lines) + b"\n", "dates")
    assert parsed.events.num_rows == 4
    q = {r["column"]: r for r in parsed.quarantine}
    assert q["SQLDATE"]["value"] == "20250230" and q["SQLDATE"]["line"] == 3
    assert q["DATEADDED"]["value"] == "20250230120000" and q["DATEADDED"]["line"] == 5
    assert 1999999901 not in parsed.events.column("GLOBALEVENTID").to_pylist()


def test_every_quarantine_row_has_its_line_number():
    lines = sample_lines(8)
    f = lines[0].split(b"\t")
    lines[1] = b"\t".join(f[:12])  # wrong column count
    lines[3] = _with(f, c0=b"")  # missing GLOBALEVENTID
    lines[-1] = b"\t".join(f[:30])  # truncated last row (no newline)
    parsed = parse_text(b"\n".join(lines), "lines")
    got = sorted((r["line"], r["reason"].split(":")[0]) for r in parsed.quarantine)
    assert got == [(2, "wrong column count"), (4, "missing GLOBALEVENTID"), (8, "wrong column count")]
    assert parsed.events.num_rows == 5


@pytest.mark.parametrize("keep_going", [True, False])
def test_a_non_gdelt_file_beside_good_slices_fails_alone(tmp_path, keep_going):
    src = tmp_path / "src"
    src.mkdir()
    for f in SLICES:
        shutil.copy(f, src / f.name)
    (src / "notes.csv").write_text("name,comment\nalice,hello\n")
    (src / "20250526999999.bin").write_bytes(bytes(range(256)) * 40)
    lake = Lake(tmp_path / "lake")
    if keep_going:
        report = ingest(lake, "local", DAY, DAY, IngestConfig(), path=src, keep_going=True)
    else:
        with pytest.raises(IngestError, match="not a GDELT events file") as err:
            ingest(lake, "local", DAY, DAY, IngestConfig(), path=src)
        report = err.value.report
    failed = {f.name for f in report.failed}
    m = manifest_of(lake)
    q = {Path(r["file"]).name for r in lake.read("quarantine").to_pylist()}
    if keep_going:  # both bad files recorded, every good slice in the lake
        assert failed == {"notes.csv", "20250526999999.bin"}
        assert all(m[f.name]["status"] == "ok" for f in SLICES)
        assert lake.read("events").num_rows == sum(len(zipfile.ZipFile(f).read(f.name[:-4]).splitlines())
                                                   for f in SLICES)
    else:  # notes.csv (no date in its name) comes first: the run stops there, recorded, with one clear error
        assert failed == {"notes.csv"}
    assert all(m[name]["status"] == "failed" for name in failed) and failed <= q
