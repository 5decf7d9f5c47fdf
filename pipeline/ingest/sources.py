"""Where event files come from: GDELT 1.0 / 2.0 servers and local folders.

This is the only network code of the project (with ``pipeline/ingest/bigquery.py``).
A source lists ``SourceFile``s for a day range; ``fetch`` returns a file's bytes
after verifying its size and MD5 against the published lists:

- GDELT 1.0: ``<base>/md5sums`` (``<md5>  <name>`` lines; daily exports
  ``YYYYMMDD.export.CSV.zip`` from 2013-04-01, historical backfiles ``YYYY.zip``
  (1979–2005) and ``YYYYMM.zip`` (2006-01 … 2013-03)) and ``<base>/filesizes``;
- GDELT 2.0: ``masterfilelist.txt`` (and ``lastupdate.txt``) lines
  ``<size> <md5> <url>``; a day is its 96 ``YYYYMMDDHHMMSS.export.CSV.zip`` slices;
- local: files or folders, zipped or not; when a folder holds a
  ``masterfilelist.txt`` or ``md5sums`` its files are verified against it.

Downloads use bounded concurrency (the caller's thread pool), a timeout per
socket operation, an overall deadline per file (``timeout_s + size /
min_rate_bytes_s``, retries included), retries with exponential backoff on
timeouts/5xx/connection errors (a body shorter than its ``Content-Length`` is a
dropped connection), and resume: bytes land in ``<download_dir>/<source>/<name>.part``
(held under an exclusive ``flock``, so ingests sharing ``download_dir`` never write
one file at once) and a later attempt asks for the rest with an HTTP Range
request; a verified file is kept and never fetched again. No more than the
published size is ever written. HTTP 404 means GDELT has no such file (gaps
exist): ``Missing`` is raised and the caller records it and goes on.

Only http(s) URLs on the source's host (its base URL's, or ``allowed_hosts``) are
fetched, redirects included: anything else in a file list raises ``Refused``
before a byte is read (the caller records the file as ``refused``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import http.client
import io
import os
import re
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pipeline.core.config import IngestConfig
from pipeline.ingest.parse import name_day

LIST_FILES = {"masterfilelist.txt", "masterfilelist-translation.txt", "lastupdate.txt", "md5sums", "filesizes"}
_SKIP_SUFFIXES = (".txt", ".md", ".json", ".parquet", ".part", ".py", ".yaml", ".yml")


class Missing(OSError):
    """The server answered 404: the file does not exist (GDELT has gaps)."""


class VerifyError(Exception):
    """Size or MD5 differs from the published list."""


@dataclass(frozen=True)
class SourceFile:
    """One file to ingest.

    source: ``gdelt1`` | ``gdelt2`` | ``local``; url: http(s) URL or absolute path;
    name: file name; day: nominal day from the name (None when it has none);
    size / md5: published size in bytes and MD5 hex (None when unlisted).
    """

    source: str
    url: str
    name: str
    day: dt.date | None
    size: int | None = None
    md5: str | None = None


# ------------------------------------------------------------------ lists
def parse_masterfilelist(text: str) -> list[tuple[int | None, str, str]]:
    """``<size> <md5> <url>`` lines → [(size, md5, url)]; blank and malformed lines are skipped."""
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and re.fullmatch(r"[0-9a-fA-F]{32}", parts[1]):
            out.append((int(parts[0]) if parts[0].isdigit() else None, parts[1].lower(), parts[2]))
    return out


def parse_md5sums(text: str) -> dict[str, str]:
    """``<md5>  <name>`` lines (GDELT 1.0 ``md5sums``) → {name: md5}."""
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and re.fullmatch(r"[0-9a-fA-F]{32}", parts[0]):
            out[parts[1].lstrip("*")] = parts[0].lower()
    return out


def parse_filesizes(text: str) -> dict[str, int]:
    """``<bytes> <name>`` lines (GDELT 1.0 ``filesizes``) → {name: bytes}."""
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0].isdigit():
            out[parts[1]] = int(parts[0])
    return out


def gdelt1_files(start: dt.date, end: dt.date, cfg: IngestConfig) -> list[SourceFile]:
    """GDELT 1.0 files covering [start, end]: daily exports from 2013-04-01, backfiles before.

    Every file is looked up in the published ``md5sums`` (and ``filesizes`` when
    available); a day with no listed file is returned unlisted (md5 None) so the
    download records it as missing when the server has no such file.
    """
    base = cfg.gdelt1_base_url.rstrip("/") + "/"
    md5s = parse_md5sums(http_get_text(base + "md5sums", cfg, "gdelt1/md5sums"))
    try:
        sizes = parse_filesizes(http_get_text(base + "filesizes", cfg, "gdelt1/filesizes"))
    except (Missing, OSError):
        sizes = {}
    names: list[tuple[str, dt.date]] = []
    d = start
    while d <= end:
        if d >= dt.date(2013, 4, 1):
            names.append((f"{d:%Y%m%d}.export.CSV.zip", d))
        elif d.year >= 2006:
            names.append((f"{d:%Y%m}.zip", d.replace(day=1)))
        else:
            names.append((f"{d:%Y}.zip", d.replace(month=1, day=1)))
        d += dt.timedelta(days=1)
    seen, out = set(), []
    for name, day in names:
        if name not in seen:
            seen.add(name)
            out.append(SourceFile("gdelt1", base + name, name, day, sizes.get(name), md5s.get(name)))
    return out


def gdelt2_files(start: dt.date, end: dt.date, cfg: IngestConfig) -> list[SourceFile]:
    """GDELT 2.0 event exports (``*.export.CSV.zip``) in [start, end] from the master file list."""
    base = cfg.gdelt2_base_url.rstrip("/") + "/"
    out: dict[str, SourceFile] = {}
    for lst in [cfg.gdelt2_masterfilelist]:
        url = lst if "://" in lst else base + lst
        cache = "gdelt2/" + url.rsplit("/", 1)[-1] if url.endswith("masterfilelist.txt") else None
        for size, md5, file_url in parse_masterfilelist(http_get_text(url, cfg, cache)):
            name = file_url.rsplit("/", 1)[-1]
            day = name_day(name)
            if not name.endswith(".export.CSV.zip") or day is None or not (start <= day <= end):
                continue
            out[name] = SourceFile("gdelt2", file_url, name, day, size, md5)
    return [out[k] for k in sorted(out)]


def local_files(path: Path, start: dt.date | None, end: dt.date | None) -> list[SourceFile]:
    """Files under ``path`` (a file or a folder, recursively), skipping list/metadata files.

    A file whose name starts with a date outside [start, end] is skipped; files
    without a date in their name are all taken (their rows are filtered by day).
    """
    path = Path(path).resolve()
    if not path.exists():
        raise FileNotFoundError(f"--path {path} does not exist")
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    listed: dict[str, tuple[int | None, str]] = {}
    for folder in {f.parent for f in files}:
        if (folder / "masterfilelist.txt").exists():
            for size, md5, url in parse_masterfilelist((folder / "masterfilelist.txt").read_text()):
                listed[str(folder / url.rsplit("/", 1)[-1])] = (size, md5)
        if (folder / "md5sums").exists():
            sizes = parse_filesizes((folder / "filesizes").read_text()) if (folder / "filesizes").exists() else {}
            for name, md5 in parse_md5sums((folder / "md5sums").read_text()).items():
                listed[str(folder / name)] = (sizes.get(name), md5)
    out = []
    for f in files:
        if f.name in LIST_FILES or f.name.startswith((".", "README")) or f.name.endswith(_SKIP_SUFFIXES):
            continue
        day = name_day(f.name)
        if day is not None and ((start and day < start) or (end and day > end)):
            continue
        size, md5 = listed.get(str(f), (None, None))
        out.append(SourceFile("local", str(f), f.name, day, size, md5))
    return out


# ---------------------------------------------------------------- network
_TRANSIENT = (socket.timeout, TimeoutError, ConnectionError, http.client.HTTPException, urllib.error.URLError)


class Refused(Exception):
    """A URL the tool will not fetch: not http(s), or on a host other than the source's (or ``allowed_hosts``)."""


class DeadlineExceeded(OSError):
    """A download took longer than its overall deadline (``timeout_s + size / min_rate_bytes_s``)."""


def allowed_hosts(source: str, cfg: IngestConfig) -> frozenset[str]:
    """Hosts a ``source``'s files may come from: its base URL's (and master list's) host + ``cfg.allowed_hosts``."""
    bases = {"gdelt1": [cfg.gdelt1_base_url], "gdelt2": [cfg.gdelt2_base_url, cfg.gdelt2_masterfilelist]}
    hosts = {urllib.parse.urlsplit(u).hostname for u in bases.get(source, []) if "://" in u}
    return frozenset(h.lower() for h in {*hosts, *cfg.allowed_hosts} if h)


def check_url(url: str, hosts: frozenset[str]) -> None:
    """Raise ``Refused`` unless ``url`` is http(s) on one of ``hosts``.

    GDELT's file lists are plain text fetched over plain HTTP: a line naming
    ``file:///etc/...`` or another host must not make the tool read local files or
    talk to machines the user did not configure.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        raise Refused(f"{url}: refused, only http(s) URLs are fetched (scheme {parts.scheme or 'none'!r})")
    host = (parts.hostname or "").lower()
    if host not in hosts:
        raise Refused(f"{url}: refused, host {host!r} is not the source's ({', '.join(sorted(hosts)) or 'none'}); "
                      "add it to ingest.allowed_hosts if you trust it")


class _SameHostRedirects(urllib.request.HTTPRedirectHandler):
    """Follows a redirect only to an allowed http(s) host; any other raises ``Refused``."""

    def __init__(self, hosts: frozenset[str]):
        self.hosts = hosts

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D102 - urllib's hook
        check_url(urllib.parse.urljoin(req.full_url, newurl), self.hosts)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _open(url: str, hosts: frozenset[str], cfg: IngestConfig, headers: dict[str, str] | None = None):
    """``urlopen`` of an allowed URL with ``cfg.timeout_s`` per socket operation and same-host redirects only."""
    check_url(url, hosts)
    opener = urllib.request.build_opener(_SameHostRedirects(hosts))
    return opener.open(urllib.request.Request(url, headers=headers or {}), timeout=cfg.timeout_s)


def _deadline(cfg: IngestConfig, size: int | None) -> float:
    """``time.monotonic()`` by which a download of ``size`` bytes must be done, retries included."""
    return time.monotonic() + cfg.timeout_s + (size or 0) / cfg.min_rate_bytes_s


def _retrying(what: str, cfg: IngestConfig, fn, deadline: float = float("inf")):
    """Call ``fn()``; retry transient errors ``cfg.retries`` times with exponential backoff, until ``deadline``."""
    delay = cfg.backoff_s
    for attempt in range(cfg.retries + 1):
        try:
            return fn()
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                raise Missing(f"{what}: HTTP 404 (not on the server)") from exc
            if exc.code < 500 and exc.code not in (408, 429) or attempt == cfg.retries:
                raise OSError(f"{what}: HTTP {exc.code} {exc.reason}") from exc
        except _TRANSIENT as exc:
            if attempt == cfg.retries:
                raise OSError(f"{what}: {type(exc).__name__}: {exc} (after {cfg.retries} retries)") from exc
            if time.monotonic() + delay > deadline:
                raise DeadlineExceeded(f"{what}: {type(exc).__name__}: {exc}; no time left to retry before the "
                                       "deadline (ingest.timeout_s + size / ingest.min_rate_bytes_s)") from exc
        time.sleep(delay)
        delay *= 2
    raise AssertionError("unreachable")


def _copy_body(r, write, what: str, deadline: float, limit: int | None) -> int:
    """Stream the body of response ``r`` into ``write``; returns the bytes read.

    Raises ``DeadlineExceeded`` past ``deadline`` (a server trickling bytes),
    ``VerifyError`` as soon as more than ``limit`` bytes arrive (nothing beyond it is
    written), and ``ConnectionError`` (transient: retried, resumed) when the
    connection closes before ``Content-Length`` bytes arrived.
    """
    expected = r.headers.get("Content-Length")
    expected = int(expected) if expected and expected.isdigit() else None
    got = 0
    while True:
        if time.monotonic() > deadline:
            raise DeadlineExceeded(f"{what}: download still running at its deadline after {got:,} bytes "
                                   "(ingest.timeout_s + size / ingest.min_rate_bytes_s); the server is too slow")
        chunk = r.read1(1 << 20)  # whatever has arrived (≤ timeout_s of waiting), so the deadline is checked often
        if not chunk:
            break
        if limit is not None and got + len(chunk) > limit:
            raise VerifyError(f"{what}: the server sends more than the published {limit:,} bytes; stopped there")
        write(chunk)
        got += len(chunk)
    if expected is not None and got < expected:
        raise ConnectionError(f"connection dropped after {got:,} of {expected:,} bytes")
    return got


def http_get_text(url: str, cfg: IngestConfig, cache_as: str | None = None) -> str:
    """GET a text file (a file list) with timeout, deadline and retries.

    With ``cache_as`` the text is kept at ``<download_dir>/<cache_as>`` and reused
    while younger than ``cfg.list_cache_s`` (GDELT 2.0's master list is large).
    A path (no ``://``) is read from disk: list locations come from the config.
    """
    if "://" not in url:
        return Path(url).read_text()
    cached = Path(cfg.download_dir) / cache_as if cache_as else None
    if cached is not None and cached.exists() and time.time() - cached.stat().st_mtime < cfg.list_cache_s:
        return cached.read_text()
    hosts = frozenset({(urllib.parse.urlsplit(url).hostname or "").lower(), *cfg.allowed_hosts})

    def get() -> str:
        buf = io.BytesIO()
        with _open(url, hosts, cfg) as r:
            _copy_body(r, buf.write, url, _deadline(cfg, int(r.headers.get("Content-Length") or 0)), None)
        return buf.getvalue().decode("utf-8", "replace")

    text = _retrying(url, cfg, get)
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_name(f"{cached.name}.{os.getpid()}.{threading.get_ident()}.part")
        tmp.write_text(text)
        os.replace(tmp, cached)
    return text


@contextlib.contextmanager
def _locked_part(part: Path, dest: Path) -> Iterator[BinaryIO | None]:
    """The open, exclusively locked (``flock``) partial download ``part``; None when ``dest`` appeared meanwhile.

    Two ingests sharing ``download_dir`` (or two threads) never write one
    ``.part`` at once: the second waits, then finds the finished ``dest``. The
    lock is on the ``.part`` file itself, so nothing is left behind; after
    waiting, a writer checks it still holds the file at that path (the first
    may have renamed it to ``dest``).
    """
    while True:
        fh = open(part, "a+b")
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            same = os.fstat(fh.fileno()).st_ino == part.stat().st_ino
        except FileNotFoundError:
            same = False
        if same and not dest.exists():
            break
        if same:  # a fresh .part created after another writer finished: not needed
            part.unlink(missing_ok=True)
        fh.close()
        if dest.exists():
            yield None
            return
    try:
        yield fh
    finally:
        fh.close()


def _download(f: SourceFile, dest: Path, cfg: IngestConfig) -> None:
    """Fetch ``f.url`` to ``dest`` through ``dest.part``, resuming a partial download.

    Only an allowed URL is fetched (``check_url``); at most ``f.size`` bytes are
    written; the whole download, retries included, must end by ``_deadline``.
    """
    hosts = allowed_hosts(f.source, cfg)
    check_url(f.url, hosts)
    part = dest.with_name(dest.name + ".part")
    part.parent.mkdir(parents=True, exist_ok=True)
    deadline = _deadline(cfg, f.size)
    with _locked_part(part, dest) as fh:
        if fh is None:
            return  # another ingest downloaded it while this one waited

        def attempt() -> None:
            have = fh.seek(0, os.SEEK_END)
            if f.size is not None and have > f.size:  # a stale, longer partial file
                fh.truncate(0)
                have = 0
            try:
                with _open(f.url, hosts, cfg, {"Range": f"bytes={have}-"} if have else None) as r:
                    if have and r.status != 206:  # the server ignored the Range: start again
                        fh.truncate(0)
                        have = 0
                    _copy_body(r, fh.write, f.url, deadline, None if f.size is None else f.size - have)
                    fh.flush()
            except urllib.error.HTTPError as exc:
                if exc.code == 416 and have:  # already complete
                    return
                raise

        try:
            _retrying(f.url, cfg, attempt, deadline)
        except VerifyError:
            part.unlink(missing_ok=True)  # oversized body: nothing worth resuming
            raise
        os.replace(part, dest)


def verify(f: SourceFile, data: bytes) -> str:
    """MD5 hex of ``data``; raises ``VerifyError`` on a size or MD5 mismatch with the published list."""
    if f.size is not None and len(data) != f.size:
        raise VerifyError(f"{f.name}: size {len(data)} bytes, published {f.size}")
    md5 = hashlib.md5(data).hexdigest()
    if f.md5 is not None and md5 != f.md5:
        raise VerifyError(f"{f.name}: MD5 {md5}, published {f.md5}")
    return md5


def fetch(f: SourceFile, cfg: IngestConfig) -> tuple[bytes, str]:
    """The verified bytes of ``f`` and their MD5 (downloading when needed).

    Raises ``Refused`` (a URL not allowed: nothing is read), ``Missing`` (404),
    ``VerifyError`` (size/MD5) or ``OSError`` (network after retries, deadline).
    A downloaded file that fails verification is deleted so the next run fetches it again.
    """
    if f.source == "local":
        data = Path(f.url).read_bytes()
        return data, verify(f, data)
    check_url(f.url, allowed_hosts(f.source, cfg))
    dest = Path(cfg.download_dir) / f.source / f.name
    if dest.exists():
        data = dest.read_bytes()
        try:
            return data, verify(f, data)
        except VerifyError:
            dest.unlink(missing_ok=True)  # stale or damaged copy: fetch again
    _download(f, dest, cfg)
    data = dest.read_bytes()
    try:
        return data, verify(f, data)
    except VerifyError:
        dest.unlink(missing_ok=True)
        raise


def discard(f: SourceFile, cfg: IngestConfig) -> None:
    """Delete the downloaded copy of ``f`` (``keep_downloads=False``)."""
    if f.source != "local":
        (Path(cfg.download_dir) / f.source / f.name).unlink(missing_ok=True)
