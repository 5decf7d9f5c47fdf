"""Parse GDELT event files (bytes) into typed Arrow tables, quarantining bad rows.

Every GDELT event layout is tab-separated, unquoted, headerless: 57 columns
(1.0 historical backfiles), 58 (1.0 daily exports) and 61 (2.0 15-minute
exports); files may mix 57 and 58, and may use CRLF line endings. A BigQuery
CSV export (comma-separated, quoted, with a header row) is accepted too.

Two paths:
- fast: ``pyarrow.csv`` reads the file with typed columns on all cores; rows with
  another column count are collected by ``invalid_row_handler`` and re-read
  with their own layout (57/58/61) or quarantined;
- careful (only when the fast path raises: unparsable numbers or dates,
  non-UTF-8 bytes, out-of-range integers): line by line decoding and per-column
  validation, so each bad row is quarantined with the column and value to blame
  and every good row is kept.

Nothing is dropped silently: a row is either in ``Parsed.events`` or in
``Parsed.quarantine`` (empty lines excepted). Anything odd found on the fast path
(a wrong column count, a missing ID or date) sends the file down the careful path
too, so every quarantine row of a text file carries its line number.

Zips are inflated no further than each member's declared size, and members
declaring more than ``max_bytes`` in all are refused before inflating (a zip
bomb, or a header lying about its size, cannot exhaust memory).
"""

from __future__ import annotations

import datetime as dt
import io
import re
import zipfile
import zlib
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from pipeline.core.schemas import EVENTS_SCHEMA, LAYOUTS

DAY = "_day"
"""Name of the partition-day column (date32) that ``parse_events`` appends."""

DAILY_ERA = dt.date(2013, 4, 1)
"""First GDELT 1.0 daily export. Rows added before it come from the historical
backfiles (DATEADDED is the backfile's build day), so they are partitioned by
SQLDATE; every later row by its DATEADDED day (UTC)."""

_INT_RE = r"^[+-]?\d{1,18}$"
_FLOAT_RE = r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$"
_MAX_VALUE_CHARS = 200
MAX_UNZIPPED_BYTES = 16 * 1024**3
"""Default cap on the total declared size of a zip's members (``IngestConfig.max_unzipped_bytes``)."""
_ZIP_ERRORS: tuple[type[Exception], ...] = (zipfile.BadZipFile, zlib.error, EOFError, OSError)
_UNSUPPORTED = (RuntimeError, NotImplementedError)  # zipfile: encrypted member / unknown compression method


class BadFile(Exception):
    """The whole file is unusable (corrupt/truncated zip, empty, no known layout)."""


@dataclass
class Parsed:
    """Result of parsing one file.

    events: ``EVENTS_SCHEMA`` columns + ``_day`` (date32, the partition day), one row per kept event.
    quarantine: one dict per rejected row: ``line`` (1-based or None), ``reason``, ``column``, ``value``, ``raw``.
    """

    events: pa.Table
    quarantine: list[dict] = field(default_factory=list)


# ------------------------------------------------------------------ bytes
def unpack(data: bytes, name: str, max_bytes: int = MAX_UNZIPPED_BYTES) -> bytes:
    """The event text inside ``data``: the concatenated members of a zip, or ``data`` itself.

    Raises ``BadFile`` for a corrupt or truncated zip (bad CRC, missing central
    directory, a member inflating past its declared size), members declaring more
    than ``max_bytes`` in all, an encrypted or unsupported-compression member, and an empty file.
    """
    if data[:4] == b"PK\x03\x04" or name.lower().endswith(".zip"):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                members = _members(zf, name, max_bytes)
                parts = [_inflate(data, m) if _fast_member(m) else zf.read(m) for m in members]
        except _UNSUPPORTED as exc:
            raise BadFile(f"{name}: zip member is encrypted or uses an unsupported compression ({exc})") from exc
        except (*_ZIP_ERRORS, *_ISAL_ERRORS) as exc:
            raise BadFile(f"{name}: corrupt or truncated zip ({exc})") from exc
        data = b"".join(p if p.endswith(b"\n") or not p else p + b"\n" for p in parts)
    if not data.strip():
        raise BadFile(f"{name}: empty file")
    return data


try:  # Intel ISA-L: inflates GDELT's zips ≈2× faster than zlib (bench/ingest.py); optional
    from isal import isal_zlib as _isal

    _ISAL_ERRORS: tuple[type[Exception], ...] = (_isal.error,)
except ImportError:  # pragma: no cover - isal is a dependency; zipfile does the same work slower
    _isal = None
    _ISAL_ERRORS = ()


def _members(zf: zipfile.ZipFile, name: str, max_bytes: int) -> list[zipfile.ZipInfo]:
    """The file members of ``zf``; ``BadFile`` when there are none or they declare more than ``max_bytes``."""
    members = [i for i in zf.infolist() if not i.is_dir()]
    if not members:
        raise BadFile(f"{name}: zip archive has no members")
    declared = sum(i.file_size for i in members)
    if declared > max_bytes:
        raise BadFile(f"{name}: zip members declare {declared:,} bytes, more than ingest.max_unzipped_bytes="
                      f"{max_bytes:,}; not inflated")
    return members


def _fast_member(info: zipfile.ZipInfo) -> bool:
    return _isal is not None and info.compress_type == zipfile.ZIP_DEFLATED and not info.flag_bits & 0x1


def _inflate(data: bytes, info: zipfile.ZipInfo) -> bytes:
    """One deflated zip member, inflated by ISA-L and checked like ``zipfile`` does (size and CRC-32)."""
    head = data[info.header_offset:info.header_offset + 30]
    if len(head) < 30 or head[:4] != b"PK\x03\x04":
        raise zipfile.BadZipFile(f"bad local header for member {info.filename}")
    start = info.header_offset + 30 + int.from_bytes(head[26:28], "little") + int.from_bytes(head[28:30], "little")
    raw = data[start:start + info.compress_size]
    if len(raw) != info.compress_size:
        raise zipfile.BadZipFile(f"member {info.filename} is truncated")
    out = _isal.decompressobj(-15).decompress(raw, info.file_size + 1)  # never more than declared (+1 to see it)
    if len(out) > info.file_size:
        raise zipfile.BadZipFile(f"member {info.filename} inflates to more than its declared {info.file_size:,} bytes")
    if len(out) != info.file_size or _isal.crc32(out) != info.CRC:
        raise zipfile.BadZipFile(f"bad CRC-32 or size for member {info.filename}")
    return out


# ------------------------------------------------------------------ types
def _raw_type(name: str) -> pa.DataType:
    """Type the careful path validates a column as (dates as naive timestamps, fixed afterwards)."""
    t = EVENTS_SCHEMA.field(name).type
    if name in ("SQLDATE", "DATEADDED"):
        return pa.timestamp("s")
    return t


def _fast_type(name: str) -> pa.DataType:
    """Type ``pyarrow.csv`` reads a column as on the fast path: dates as int64 digits (see ``_digits_to_time``)."""
    return pa.int64() if name in ("SQLDATE", "DATEADDED") else EVENTS_SCHEMA.field(name).type


_DAYS_IN_MONTH = np.array([0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])


def _digits_to_time(col: pa.ChunkedArray, name: str) -> pa.Array:
    """``YYYYMMDD`` / ``YYYYMMDDHHMMSS`` int64 digits → naive ``timestamp[s]`` (vectorised, no strptime).

    Uses the days-from-civil algorithm (H. Hinnant). Raises ``ValueError`` on an
    impossible date or time so the caller falls back to the careful path.
    """
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    valid = arr.is_valid().to_numpy(zero_copy_only=False)
    v = arr.fill_null(19700101).to_numpy()
    long = v >= 10**13
    ymd = np.where(long, v // 10**6, v)
    hms = np.where(long, v % 10**6, 0)
    y, m, d = ymd // 10000, ymd // 100 % 100, ymd % 100
    hh, mm, ss = hms // 10000, hms // 100 % 100, hms % 100
    leap = (y % 4 == 0) & ((y % 100 != 0) | (y % 400 == 0))
    ok = (v >= 10**7) & (v < 10**14) & ((v < 10**8) | long) & (m >= 1) & (m <= 12) & (d >= 1)
    ok &= d <= np.where((m == 2) & ~leap, 28, _DAYS_IN_MONTH[np.clip(m, 0, 12)])
    ok &= (hh < 24) & (mm < 60) & (ss < 60)
    if not ok[valid].all():
        raise ValueError(f"impossible date in column {name}")
    yy = y - (m <= 2)
    era = np.floor_divide(yy, 400)
    yoe = yy - era * 400
    doy = (153 * (m + np.where(m > 2, -3, 9)) + 2) // 5 + d - 1
    days = era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
    seconds = days * 86400 + hh * 3600 + mm * 60 + ss
    return pa.array(seconds, pa.timestamp("s"), mask=~valid)


def _finish(table: pa.Table, where: str, lines: np.ndarray | None = None) -> Parsed:
    """Typed layout table → ``EVENTS_SCHEMA`` + ``_day``; rows without ID or dates are quarantined.

    ``lines[i]``: the 1-based line of row i (None: unknown), for the quarantine rows.
    """
    n = table.num_rows
    cols = {}
    for f in EVENTS_SCHEMA:
        if f.name in table.column_names:
            col = table.column(f.name)
            if f.name == "SQLDATE":
                col = col.cast(pa.date32())
            elif f.name == "DATEADDED":
                col = col.cast(pa.timestamp("s", tz="UTC"))
            elif not col.type.equals(f.type):
                col = col.cast(f.type)
        else:
            col = pa.nulls(n, f.type)
        cols[f.name] = col
    added_day = cols["DATEADDED"].cast(pa.date32())
    day = pc.if_else(pc.less(added_day, pa.scalar(DAILY_ERA, pa.date32())), cols["SQLDATE"], added_day)
    out = pa.table({**cols, DAY: day})
    quarantine: list[dict] = []
    missing = pc.or_(pc.is_null(out["GLOBALEVENTID"]), pc.is_null(out[DAY]))
    if pc.any(missing).as_py():
        bad = out.filter(missing)
        where_bad = np.flatnonzero(missing.to_numpy(zero_copy_only=False))
        for pos, row in zip(where_bad, bad.select(["GLOBALEVENTID", "SQLDATE", "DATEADDED"]).to_pylist()):
            col = "GLOBALEVENTID" if row["GLOBALEVENTID"] is None else (
                "DATEADDED" if row["DATEADDED"] is None else "SQLDATE")
            quarantine.append(dict(line=None if lines is None else int(lines[pos]), reason=f"missing {col}",
                                   column=col, value=None, raw=f"GLOBALEVENTID={row['GLOBALEVENTID']}"))
        out = out.filter(pc.invert(missing))
    return Parsed(out, quarantine)


# -------------------------------------------------------------- fast path
def _read_tsv(text: bytes, columns: list[str], typed: bool, handler=None, threads: bool | None = None) -> pa.Table:
    types = {c: (_fast_type(c) if typed else pa.string()) for c in columns}
    if threads is None:  # a small file is parsed on one core; one big text uses all cores itself
        threads = len(text) > 32 << 20
    return pacsv.read_csv(
        io.BytesIO(text),
        read_options=pacsv.ReadOptions(column_names=columns, block_size=(1 if threads else 16) << 20,
                                       use_threads=threads),
        parse_options=pacsv.ParseOptions(delimiter="\t", quote_char=False, double_quote=False,
                                         escape_char=False, invalid_row_handler=handler),
        convert_options=pacsv.ConvertOptions(column_types=types, null_values=[""], strings_can_be_null=True,
                                             check_utf8=True),
    )


def _first_layout(text: bytes) -> int | None:
    """Column count of the first of the first 1000 lines whose count is a known layout."""
    for line in text[: 1 << 20].split(b"\n")[:1000]:
        n = line.count(b"\t") + 1
        if n in LAYOUTS:
            return n
    return None


def parse_events(data: bytes, where: str) -> Parsed:
    """Parse one file's bytes (zipped or not) into typed events + quarantined rows.

    Args:
        data: raw file content (zip or text; LF or CRLF).
        where: file name or URL, used in error messages.
    Raises:
        BadFile: corrupt/truncated zip, empty file, or no line in a known layout.
    """
    return parse_text(unpack(data, where), where)


def parse_text(text: bytes, where: str, first_line: int = 1) -> Parsed:
    """Parse event text (whole lines); ``first_line`` numbers the first line in quarantine rows."""
    if text.lstrip(b"\xef\xbb\xbf").startswith(b"GLOBALEVENTID"):
        return _parse_header_csv(text.lstrip(b"\xef\xbb\xbf"), where)
    ncols = _first_layout(text)
    if ncols is None:
        raise BadFile(f"{where}: no line has 57, 58 or 61 tab-separated columns; not a GDELT events file")
    invalid: list[tuple[int, str]] = []

    def handler(row: pacsv.InvalidRow) -> str:
        invalid.append((row.actual_columns, row.text))
        return "skip"

    try:
        table = _typed_dates(_read_tsv(text, LAYOUTS[ncols], typed=True, handler=handler))
    except (pa.ArrowInvalid, UnicodeDecodeError, ValueError):
        return _parse_careful(text, where, first_line)
    parsed = _finish(table, where)
    by_count: dict[int, list[str]] = defaultdict(list)
    for n, row_text in invalid:
        by_count[n].append(row_text)
    for n, rows in sorted(by_count.items()):
        if n not in LAYOUTS:
            return _parse_careful(text, where, first_line)  # rows to quarantine: redo with line numbers
        sub = parse_text("\n".join(rows).encode() + b"\n", where)
        if sub.quarantine:
            return _parse_careful(text, where, first_line)
        parsed.events = pa.concat_tables([parsed.events, sub.events])
    if parsed.quarantine:  # a missing ID or date: the careful path numbers the lines
        return _parse_careful(text, where, first_line)
    return parsed


def _typed_dates(table: pa.Table) -> pa.Table:
    """SQLDATE / DATEADDED digits (int64) → timestamps; ``ValueError`` on an impossible date."""
    for name in ("SQLDATE", "DATEADDED"):
        i = table.column_names.index(name)
        table = table.set_column(i, name, _digits_to_time(table.column(name), name))
    return table


BATCH_BYTES = 256 << 20
"""``parse_batch`` parses at most this much text in one ``pyarrow.csv`` call."""


def parse_batch(items: list[tuple[bytes, str]]) -> list[Parsed | BadFile]:
    """Parse many files' texts at once: same result as ``[parse_text(text, where) for text, where in items]``,
    except that a file ``parse_text`` refuses comes back as its ``BadFile`` (the others are still parsed).

    GDELT 2.0 arrives as 96 small files a day, and one ``pyarrow.csv`` call per
    file costs about 4× more than one multi-threaded call over their
    concatenation (``bench/ingest.py``). Files are grouped by the layout of their
    first line in a known layout and concatenated per layout into one parse (the
    parser checks every line has that many columns); the table is then
    sliced back into files by their line counts. Anything unusual in a batch (a
    wrong-count row, an unparsable value, a missing ID or date) makes it split in
    halves until the odd file is parsed alone by ``parse_text``, so its quarantine
    rows keep their line numbers and the other files still go in batches.
    """
    out: list[Parsed | BadFile | None] = [None] * len(items)
    groups: dict[int, list[tuple[int, int]]] = defaultdict(list)  # layout → [(item, lines)]
    for i, (text, where) in enumerate(items):
        uniform = _uniform_layout(text)
        if uniform is None:
            out[i] = _parse_or_error(text, where)
        else:
            groups[uniform[0]].append((i, uniform[1]))
    for ncols, members in groups.items():
        batch: list[tuple[int, int]] = []
        size = 0
        for j, (i, lines) in enumerate(members):
            batch.append((i, lines))
            size += len(items[i][0])
            if size >= BATCH_BYTES or j == len(members) - 1:
                _parse_group(items, batch, ncols, out)
                batch, size = [], 0
    return out  # type: ignore[return-value]


def _parse_or_error(text: bytes, where: str) -> Parsed | BadFile:
    try:
        return parse_text(text, where)
    except BadFile as exc:
        return exc


def _parse_group(items: list[tuple[bytes, str]], batch: list[tuple[int, int]], ncols: int,
                 out: list[Parsed | BadFile | None]) -> None:
    """Parse ``batch`` (item index, lines) in one call; if anything is off, halve it until the odd files are alone."""
    if len(batch) == 1:
        out[batch[0][0]] = _parse_or_error(*items[batch[0][0]])
        return
    parts = _parse_uniform([items[k][0] for k, _ in batch], [n for _, n in batch], ncols)
    if parts is None:
        half = len(batch) // 2
        _parse_group(items, batch[:half], ncols, out)
        _parse_group(items, batch[half:], ncols, out)
        return
    for (k, _), part in zip(batch, parts):
        out[k] = part


def _uniform_layout(text: bytes) -> tuple[int, int] | None:
    """(columns of its first line in a known layout, lines) of a plain GDELT TSV text; None for a CSV export or
    a text with no known layout.

    Whether every line really has that many columns is left to the parser: any
    other row (or an empty line, which changes the row count) makes the batch fall back.
    """
    if text.startswith((b"\xef\xbb\xbf", b"GLOBALEVENTID")):
        return None
    ncols = _first_layout(text)
    if ncols is None:
        return None
    return ncols, text.count(b"\n") + (not text.endswith(b"\n"))


def _parse_uniform(texts: list[bytes], lines: list[int], ncols: int) -> list[Parsed] | None:
    """One threaded parse of ``texts`` (all ``ncols`` columns) split back per text; None if anything is off."""
    invalid: list[object] = []

    def handler(row: pacsv.InvalidRow) -> str:
        invalid.append(row)
        return "skip"

    joined = b"".join(t if t.endswith(b"\n") else t + b"\n" for t in texts)
    try:
        table = _typed_dates(_read_tsv(joined, LAYOUTS[ncols], typed=True, handler=handler, threads=True))
    except (pa.ArrowInvalid, UnicodeDecodeError, ValueError):
        return None
    if invalid or table.num_rows != sum(lines):
        return None
    parsed = _finish(table, "batch")
    if parsed.quarantine:
        return None
    offsets = np.concatenate([[0], np.cumsum(lines)])
    return [Parsed(parsed.events.slice(int(a), int(n))) for a, n in zip(offsets[:-1], lines)]


STREAM_BYTES = 128 << 20
"""Files whose text is larger than this are parsed in chunks of about this size (``iter_events``)."""


def text_size(data: bytes) -> int:
    """Uncompressed size of ``data`` (sum of zip members' sizes, from the central directory)."""
    if data[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                return sum(i.file_size for i in zf.infolist())
        except (zipfile.BadZipFile, OSError):
            return len(data)
    return len(data)


def iter_events(data: bytes, where: str, chunk_bytes: int = STREAM_BYTES,
                max_bytes: int = MAX_UNZIPPED_BYTES) -> Iterator[Parsed]:
    """Parse a large file in chunks of whole lines (bounded memory for multi-GB GDELT 1.0 backfiles).

    Yields one ``Parsed`` per chunk. A zip member found corrupt part-way raises
    ``BadFile`` after the chunks before the damage were yielded.
    """
    if data[:4] != b"PK\x03\x04" and not where.lower().endswith(".zip"):
        if not data.strip():
            raise BadFile(f"{where}: empty file")
        streams = [(where, io.BytesIO(data))]
    else:
        try:
            zf = zipfile.ZipFile(io.BytesIO(data))
            streams = [(m.filename, zf.open(m)) for m in _members(zf, where, max_bytes)]
        except _UNSUPPORTED as exc:
            raise BadFile(f"{where}: zip member is encrypted or uses an unsupported compression ({exc})") from exc
        except _ZIP_ERRORS as exc:
            raise BadFile(f"{where}: corrupt or truncated zip ({exc})") from exc
    line = 1
    empty = True
    for member, stream in streams:
        rest = b""
        while True:
            try:
                block = stream.read(chunk_bytes)
            except _UNSUPPORTED as exc:
                raise BadFile(f"{where}: zip member {member} is encrypted or uses an unsupported compression "
                              f"({exc})") from exc
            except _ZIP_ERRORS as exc:
                raise BadFile(f"{where}: corrupt or truncated zip member {member} ({exc})") from exc
            if not block:
                break
            if empty and block.strip():
                empty = False
                if block.lstrip(b"\xef\xbb\xbf").startswith(b"GLOBALEVENTID"):  # CSV export: not chunked
                    yield parse_text(block + stream.read(), where)
                    rest = b""
                    break
            block = rest + block
            cut = block.rfind(b"\n") + 1
            if cut == 0:
                rest = block
                continue
            text, rest = block[:cut], block[cut:]
            if text.strip():
                yield parse_text(text, where, line)
            line += text.count(b"\n")
        if rest.strip():
            yield parse_text(rest + b"\n", where, line)
    if empty:
        raise BadFile(f"{where}: empty file")


def _wrong_count(line: int | None, n: int, raw: str) -> dict:
    return dict(line=line, reason=f"wrong column count: {n} (expected 57, 58 or 61)",
                column=None, value=None, raw=raw)


# ----------------------------------------------------------- careful path
def _parse_careful(text: bytes, where: str, first_line: int = 1) -> Parsed:
    """Line-by-line path: non-UTF-8 and wrong-count lines out, then per-column validation."""
    quarantine: list[dict] = []
    groups: dict[int, tuple[list[int], list[str]]] = defaultdict(lambda: ([], []))
    for i, line in enumerate(text.split(b"\n"), start=first_line):
        if line.endswith(b"\r"):
            line = line[:-1]
        if not line:
            continue
        try:
            s = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            quarantine.append(dict(line=i, reason=f"non-UTF-8 bytes at byte {exc.start}", column=None,
                                   value=None, raw=line.decode("utf-8", "backslashreplace")))
            continue
        n = s.count("\t") + 1
        if n not in LAYOUTS:
            quarantine.append(_wrong_count(i, n, s))
            continue
        groups[n][0].append(i)
        groups[n][1].append(s)
    parts = []
    for n, (lines, rows) in sorted(groups.items()):
        strings = _read_tsv(("\n".join(rows) + "\n").encode(), LAYOUTS[n], typed=False)
        if strings.num_rows != len(rows):  # cannot happen: counts were checked above
            raise BadFile(f"{where}: re-read {strings.num_rows} rows, expected {len(rows)}")
        typed, bad, kept = _validate(strings, np.asarray(lines), rows.__getitem__)
        quarantine += bad
        p = _finish(typed, where, kept)
        quarantine += p.quarantine
        parts.append(p.events)
    if not parts:
        events = _finish(pa.table({c: pa.array([], _raw_type(c)) for c in LAYOUTS[61]}), where).events
    else:
        events = pa.concat_tables(parts)
    return Parsed(events, quarantine)


def _check(col: pa.ChunkedArray, tp: pa.DataType) -> tuple[pa.ChunkedArray, np.ndarray]:
    """Validate a string column against its target type: (ok mask as Arrow bool, bad positions)."""
    if pa.types.is_integer(tp):
        ok = pc.match_substring_regex(col, _INT_RE)
    elif pa.types.is_floating(tp):
        ok = pc.match_substring_regex(col, _FLOAT_RE)
    elif pa.types.is_boolean(tp):
        ok = pc.match_substring_regex(col, r"^[01]$")
    elif pa.types.is_timestamp(tp):
        ok = pc.is_valid(_strict_time(col))
    else:
        return col, np.zeros(0, np.int64)
    ok = pc.or_kleene(pc.is_null(col), ok)
    if pa.types.is_integer(tp) and pc.all(ok).as_py() is not False:
        as64 = pc.cast(pc.if_else(ok, col, pa.scalar(None, pa.string())), pa.int64())
        info = np.iinfo(tp.to_pandas_dtype())
        in_range = pc.and_(pc.greater_equal(as64, info.min), pc.less_equal(as64, info.max))
        ok = pc.and_(ok, pc.or_kleene(pc.is_null(as64), in_range))
    ok_np = ok.to_numpy(zero_copy_only=False).astype(bool)
    return ok, np.flatnonzero(~ok_np)


def _strict_time(col: pa.ChunkedArray) -> pa.ChunkedArray:
    """``YYYYMMDD`` / ``YYYYMMDDHHMMSS`` strings → naive ``timestamp[s]``; null for anything else.

    ``strptime`` rolls impossible dates over (20250230 → 2025-03-02), so a value
    only counts when formatting the parsed time gives back the same digits.
    """
    length = pc.utf8_length(col)
    s8 = pc.strptime(col, format="%Y%m%d", unit="s", error_is_null=True)
    s14 = pc.strptime(col, format="%Y%m%d%H%M%S", unit="s", error_is_null=True)
    t = pc.if_else(pc.equal(length, 8), s8, pc.if_else(pc.equal(length, 14), s14, pa.scalar(None, pa.timestamp("s"))))
    back = pc.if_else(pc.equal(length, 8), pc.strftime(t, format="%Y%m%d"), pc.strftime(t, format="%Y%m%d%H%M%S"))
    return pc.if_else(pc.fill_null(pc.equal(back, col), False), t, pa.scalar(None, pa.timestamp("s")))


def _validate(strings: pa.Table, lines: np.ndarray | None, raw) -> tuple[pa.Table, list[dict], np.ndarray | None]:
    """All-string layout table → typed table of the valid rows + quarantine entries for the others.

    ``lines[i]`` is row i's 1-based line (None: unknown); ``raw(i)`` its original text.
    The third result is the lines of the kept rows (None when ``lines`` is).
    """
    n = strings.num_rows
    bad_row = np.zeros(n, bool)
    quarantine: list[dict] = []
    for name in strings.column_names:
        tp = _raw_type(name)
        if pa.types.is_string(tp):
            continue
        _, bad = _check(strings.column(name), tp)
        for i in bad:
            if bad_row[i]:
                continue
            bad_row[i] = True
            value = strings.column(name)[int(i)].as_py()
            quarantine.append(dict(line=None if lines is None else int(lines[i]),
                                   reason=f"unparsable {tp} in column {name}", column=name,
                                   value=(value or "")[:_MAX_VALUE_CHARS], raw=raw(int(i))))
    good = strings.filter(pa.array(~bad_row)) if bad_row.any() else strings
    cols = {}
    for name in good.column_names:
        tp = _raw_type(name)
        col = good.column(name)
        if pa.types.is_timestamp(tp):
            col = _strict_time(col)
        elif pa.types.is_boolean(tp):
            col = pc.equal(col, "1")
        elif not pa.types.is_string(tp):
            col = col.cast(tp)
        cols[name] = col
    kept = None if lines is None else (lines[~bad_row] if bad_row.any() else lines)
    return pa.table(cols), quarantine, kept


# ------------------------------------------------------- BigQuery CSV export
def _parse_header_csv(text: bytes, where: str) -> Parsed:
    """A BigQuery CSV export: header row, comma- (or tab-) separated, quoted; columns matched by name."""
    first = text.split(b"\n", 1)[0]
    delim = "\t" if first.count(b"\t") > first.count(b",") else ","
    try:
        strings = pacsv.read_csv(
            io.BytesIO(text),
            parse_options=pacsv.ParseOptions(delimiter=delim),
            convert_options=pacsv.ConvertOptions(column_types={c: pa.string() for c in EVENTS_SCHEMA.names},
                                                 null_values=[""], strings_can_be_null=True),
        )
    except pa.ArrowInvalid as exc:
        raise BadFile(f"{where}: unreadable CSV export ({exc})") from exc
    unknown = [c for c in strings.column_names if c not in EVENTS_SCHEMA.names]
    if "GLOBALEVENTID" not in strings.column_names or "SQLDATE" not in strings.column_names:
        raise BadFile(f"{where}: header lacks GLOBALEVENTID/SQLDATE; not a GDELT events export")
    strings = strings.drop_columns(unknown)
    for c in strings.column_names:  # BigQuery writes integers for every numeric column
        if strings.column(c).type != pa.string():
            strings = strings.set_column(strings.column_names.index(c), c, strings.column(c).cast(pa.string()))
    if "DATEADDED" not in strings.column_names:
        strings = strings.append_column("DATEADDED", strings.column("SQLDATE"))
    return from_strings(strings, where, np.arange(2, strings.num_rows + 2), delim)


def from_strings(strings: pa.Table, where: str, lines: np.ndarray | None = None, delim: str = "\t") -> Parsed:
    """Events given as named string columns (a CSV export, a BigQuery result) → ``Parsed``.

    Columns are matched by name; absent ones become null; each bad value sends its row to quarantine.
    """
    def raw(i: int) -> str:
        return delim.join("" if v is None else str(v) for v in strings.slice(i, 1).to_pylist()[0].values())

    typed, bad, kept = _validate(strings, lines, raw)
    p = _finish(typed, where, kept)
    return Parsed(p.events, bad + p.quarantine)


_NAME_DAY = re.compile(r"^(\d{8})(\d{6})?(?!\d)")


def name_day(name: str) -> dt.date | None:
    """The day a GDELT file name starts with (``20250516031500.export.CSV.zip`` → 2025-05-16), else None."""
    m = _NAME_DAY.match(name.rsplit("/", 1)[-1])
    if not m:
        return None
    try:
        return dt.datetime.strptime(m.group(1), "%Y%m%d").date()
    except ValueError:
        return None


def first_added(table: pa.Table, tie: str | None = None) -> pa.Table:
    """One row per GLOBALEVENTID, sorted by ID: the row with the earliest DATEADDED (ties: lowest ``tie``).

    The lake's dedupe rule, used by ingest (``tie`` = the file a row came from) and by
    ``reduce --source bigquery``. A table already sorted by unique IDs is returned as is (no copy).
    """
    if table.num_rows == 0:
        return table
    ids = table.column("GLOBALEVENTID").to_numpy()
    if np.all(ids[1:] > ids[:-1]):
        return table
    keys = [("GLOBALEVENTID", "ascending"), ("DATEADDED", "ascending")] + ([(tie, "ascending")] if tie else [])
    table = table.take(pc.sort_indices(table, sort_keys=keys))
    ids = table.column("GLOBALEVENTID").to_numpy()
    first = np.ones(len(ids), bool)
    first[1:] = ids[1:] != ids[:-1]
    return table if first.all() else table.filter(pa.array(first))
