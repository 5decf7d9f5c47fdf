"""Ingest GDELT events into the lake: ``events`` partitions, ``manifest``, ``quarantine``.

    ingest(lake, "gdelt2", "2025-05-16", "2025-05-17", IngestConfig())
    ingest(lake, "local", start, end, cfg, path="data/sample/gdelt-v2")

The story of one call:
1. list the source files of [start, end] (``pipeline.ingest.sources``; BigQuery: one
   query per day, ``pipeline.ingest.bigquery``) and skip those the manifest marks
   ``ok`` (unless ``force``);
2. fetch and unzip them with ``cfg.concurrency`` threads (verified size/MD5,
   retries, resume, deadline; a 404 is recorded as ``missing``, a URL off the
   source's host as ``refused``, and the rest goes on);
3. parse the texts in batches (``pipeline.ingest.parse.parse_batch``: one threaded
   pyarrow call for many small files): good rows by partition day, bad rows
   and bad files (a corrupt zip, a text that is not a GDELT export) to
   ``quarantine`` with a reason;
4. for every touched day, remove the rows an earlier ingest kept from the
   files just read (``source_file``: a changed file replaces its rows), merge
   the new rows with the rest of the day's partition, keep one row per
   GLOBALEVENTID (the first DATEADDED; across partitions too), and replace the
   partition atomically (``Lake.write_partition``);
5. record every file in the ``manifest`` once, with its rows (rows kept / quarantined /
   duplicate, status, MD5, bytes, time); steps 4–5 run under the lake lock and never
   replace another ingest's ``ok`` by this one's failure.

In code: ``_list_files`` → ``_load`` (on the pool) → ``_Batch.add`` / ``parse`` →
``_Batch.flush`` (``_Writer.write_events`` per day, ``write_quarantine``, ``Manifest.save``).

Partition day: the DATEADDED day (UTC) — for GDELT 1.0 daily exports that is
the file's day — except for rows added before 2013-04-01 (historical
backfiles), which are partitioned by SQLDATE.

Re-running is idempotent: finished files are skipped, and re-ingesting an
unchanged file (``force``) yields the same rows: its earlier rows are replaced
by the same rows, and merging deduplicates by GLOBALEVENTID with a
deterministic order (new file rows before existing rows on ties). A re-ingest
that fails leaves the file's earlier rows in place.
A failed file raises ``IngestError`` (after what was done is saved) unless
``keep_going``; the error carries the report.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.ingest import sources
from pipeline.core.config import IngestConfig
from pipeline.core.lake import INGEST_LOCK, DateLike, Lake, as_date
from pipeline.core.errors import UserError
from pipeline.ingest.parse import (DAY, STREAM_BYTES, BadFile, Parsed, first_added, iter_events, parse_batch,
                                   text_size, unpack)
from pipeline.core.progress import make_progress
from pipeline.core.schemas import LAKE_EVENTS_SCHEMA, SOURCE_FILE
from pipeline.ingest.manifest import FileResult, Manifest, write_quarantine

SOURCES = ("gdelt1", "gdelt2", "local", "bigquery")
_FILE = "_file"  # per-row index of the file a row came from while merging (existing rows: a large index)
_FLUSH_ROWS = 2_000_000  # write buffered days once this many rows are pending (bounds memory, ~1 GiB)
_PARSE_BYTES = 32 << 20  # parse buffered texts in batches of this size while the pool fetches the next files
_MERGE_SCHEMA = pa.schema([f.with_nullable(True) for f in LAKE_EVENTS_SCHEMA] + [pa.field(_FILE, pa.int64())])


class IngestError(RuntimeError):
    """At least one file failed (and ``keep_going`` was off). ``.report`` says which."""

    def __init__(self, message: str, report: IngestReport):
        super().__init__(message)
        self.report = report


# ------------------------------------------------------------------ report
@dataclass
class IngestReport:
    """Summary of one ``ingest`` call: per-file results and rows per written day."""

    source: str
    start: dt.date
    end: dt.date
    files: list[FileResult] = field(default_factory=list)
    days: dict[dt.date, int] = field(default_factory=dict)
    """Rows in each events partition written by this call (after merging)."""
    seconds: float = 0.0
    estimated_bytes: int | None = None
    """BigQuery only: the dry-run estimate of bytes scanned."""

    def count(self, status: str) -> int:
        return sum(f.status == status for f in self.files)

    @property
    def failed(self) -> list[FileResult]:
        return [f for f in self.files if f.status == "failed"]

    @property
    def rows_kept(self) -> int:
        return sum(f.rows_kept for f in self.files)

    @property
    def rows_quarantined(self) -> int:
        return sum(f.rows_quarantined for f in self.files)

    @property
    def rows_duplicate(self) -> int:
        return sum(f.rows_duplicate for f in self.files)

    @property
    def ok(self) -> bool:
        return not self.failed


# ----------------------------------------------------- cross-partition ids
class _IdIndex:
    """(min, max) GLOBALEVENTID of every ``events`` partition, from Parquet footers.

    Lets a write find the few partitions that could hold one of its IDs (GDELT
    IDs grow with time, so usually only neighbours overlap). The ranges persist in
    ``_meta/events/id_ranges.parquet`` keyed by each day folder's (inode, mtime),
    together with the ``events`` folder's own (inode, mtime), which every partition
    swap changes: when that is unchanged, opening the index reads one small file;
    otherwise one ``stat`` per partition finds the partitions rewritten since (by
    any process) and only their footers are read again. So the cost of a write
    does not grow with the lake.
    """

    def __init__(self, lake: Lake):
        self.lake = lake
        self.path = lake.meta_dir("events") / "id_ranges.parquet"
        self.ranges: dict[dt.date, tuple[int, int]] = {}
        self.stamps: dict[dt.date, str] = {}
        self.table_stamp: str | None = None
        self._load_saved()
        self.refresh()

    def refresh(self) -> None:
        """Re-read the footers of partitions rewritten since the last look (by another ingest, too)."""
        table_stamp = _stamp(self.lake.table_dir("events"))
        if table_stamp is not None and table_stamp == self.table_stamp:
            return  # no partition was swapped in or out since
        seen, changed = set(), table_stamp != self.table_stamp
        self.table_stamp = table_stamp
        for d, folder in self.lake.day_dirs("events", check_files=False):
            seen.add(d)
            stamp = _stamp(folder)
            if stamp is not None and self.stamps.get(d) != stamp:
                self.stamps[d] = stamp
                self._load(d, folder)
                changed = True
        for d in set(self.stamps) - seen:
            self.ranges.pop(d, None)
            self.stamps.pop(d, None)
            changed = True
        if changed:
            self._save()

    def _load(self, d: dt.date, folder: Path) -> None:
        lo, hi = None, None
        for f in sorted(folder.glob("*.parquet")):
            meta = pq.ParquetFile(f).metadata
            col = meta.schema.to_arrow_schema().get_field_index("GLOBALEVENTID")
            for g in range(meta.num_row_groups):
                st = meta.row_group(g).column(col).statistics
                if st is None or not st.has_min_max:
                    lo, hi = -(2**63), 2**63 - 1
                    break
                lo = st.min if lo is None else min(lo, st.min)
                hi = st.max if hi is None else max(hi, st.max)
        if lo is not None:
            self.ranges[d] = (lo, hi)
        else:
            self.ranges.pop(d, None)

    def overlapping(self, d: dt.date, lo: int, hi: int) -> list[dt.date]:
        return sorted(o for o, (a, b) in self.ranges.items() if o != d and a <= hi and b >= lo)

    def update(self, d: dt.date) -> None:
        """Note that this process just rewrote (or deleted) the partition of ``d``."""
        folder = self.lake.partition_dir("events", d)
        stamp = _stamp(folder)
        if stamp is None:
            self.ranges.pop(d, None)
            self.stamps.pop(d, None)
        else:
            self.stamps[d] = stamp
            self._load(d, folder)
        self.table_stamp = _stamp(self.lake.table_dir("events"))  # our own swap (writers hold lake_lock)
        self._save()

    def _load_saved(self) -> None:
        try:
            t = pq.read_table(self.path)
        except (FileNotFoundError, pa.ArrowInvalid, OSError):
            return  # none yet (or unreadable): rebuilt from the footers
        self.table_stamp = (t.schema.metadata or {}).get(b"table_stamp", b"").decode() or None
        for d, stamp, lo, hi in zip(*(t.column(c).to_pylist() for c in ("date", "stamp", "lo", "hi"))):
            self.stamps[d], self.ranges[d] = stamp, (lo, hi)

    def _save(self) -> None:
        """Write the ranges atomically (callers hold ``lake_lock``)."""
        days = sorted(d for d in self.stamps if d in self.ranges)
        t = pa.table({"date": pa.array(days, pa.date32()), "stamp": [self.stamps[d] for d in days],
                      "lo": pa.array([self.ranges[d][0] for d in days], pa.int64()),
                      "hi": pa.array([self.ranges[d][1] for d in days], pa.int64())})
        t = t.replace_schema_metadata({"table_stamp": self.table_stamp or ""})
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{threading.get_ident()}")
        pq.write_table(t, tmp)
        os.replace(tmp, self.path)


def _stamp(folder: Path) -> str | None:
    """A partition folder's identity: (inode, mtime) change whenever the partition is swapped."""
    try:
        st = folder.stat()
    except FileNotFoundError:
        return None
    return f"{st.st_ino}:{st.st_mtime_ns}"


# -------------------------------------------------------------------- lock
def lake_lock(lake: Lake) -> contextlib.AbstractContextManager[None]:
    """Exclusive lock on the lake's ingest writes, across threads and processes.

    Held while partitions are merged and the manifest is saved, so concurrent
    ingests (e.g. a backfill of several days at once) serialise their writes.
    """
    return lake.lock(INGEST_LOCK)


# ------------------------------------------------------------------ merging
def _count_by_file(table: pa.Table, n_files: int) -> np.ndarray:
    idx = table.column(_FILE).to_numpy()
    return np.bincount(idx[idx < n_files], minlength=n_files) if n_files else np.zeros(0, np.int64)


def _with_provenance(table: pa.Table) -> pa.Table:
    """A partition read back without its ``date``; a null ``source_file`` added when written before provenance."""
    table = table.drop_columns(["date"])
    if SOURCE_FILE not in table.column_names:
        table = table.append_column(SOURCE_FILE, pa.nulls(table.num_rows, pa.string()))
    return table


class _Writer:
    """Merges parsed rows into ``events`` partitions (one row per event across the lake)."""

    def __init__(self, lake: Lake):
        self.lake = lake
        self.ids: _IdIndex | None = None
        self.rows_per_day: dict[dt.date, int] = {}
        self.replaced: set[tuple[str, dt.date]] = set()
        """(file name, day) whose earlier rows this ingest already removed (a big file flushes several times)."""

    def write_events(self, day: dt.date, new: list[pa.Table], results: list[FileResult],
                     files: set[int] = frozenset()) -> None:
        """Merge ``new`` (tables with ``_file`` = index into ``results``) into the partition of ``day``.

        1. read the partition, less the rows an earlier ingest kept from ``files`` (the files read
           now: a changed file's rows are replaced, not merged with its old version);
        2. keep one row per event (``first_added``: earliest DATEADDED, then new files before old rows);
        3. resolve events also in other partitions (``_drop_cross_partition``);
        4. replace the partition and count kept / duplicate rows per file.
        """
        self._refresh_ids()
        n = len(results)
        new = [t.cast(_MERGE_SCHEMA) for t in new if t.num_rows]
        old, removed = self._rows_to_keep(day, results, files)
        self.replaced |= {(results[i].name, day) for i in files}
        if not new and not removed:
            return  # nothing changes on this day
        merged = pa.concat_tables([*new, old]) if new or old.num_rows else old
        if merged.num_rows == 0:
            self._replace(day, merged.drop_columns([_FILE]))
            return
        before = _count_by_file(merged, n)
        merged = self._drop_cross_partition(day, first_added(merged, tie=_FILE))
        kept = _count_by_file(merged, n)
        for i, r in enumerate(results):
            r.rows_kept += int(kept[i])
            r.rows_duplicate += int(before[i] - kept[i])
        self._replace(day, merged.drop_columns([_FILE]))

    def _refresh_ids(self) -> None:
        if self.ids is None:
            self.ids = _IdIndex(self.lake)
        else:
            self.ids.refresh()

    def _rows_to_keep(self, day: dt.date, results: list[FileResult], files: set[int]) -> tuple[pa.Table, bool]:
        """The partition's rows (``_file`` = len(results)) less those kept earlier from ``files``; were any removed?

        The removed rows are counted in each file's ``rows_replaced``.
        """
        n = len(results)
        if not self.lake.has_partition("events", day):
            return _MERGE_SCHEMA.empty_table(), False
        old = _with_provenance(self.lake.read("events", day, day, columns=None))
        stale = {results[i].name: i for i in files if (results[i].name, day) not in self.replaced}
        removed = False
        if stale and old.num_rows:
            src = old.column(SOURCE_FILE)
            mine = pc.fill_null(pc.is_in(src, value_set=pa.array(sorted(stale), pa.string())), False)
            if pc.any(mine).as_py():
                for c in pc.value_counts(src.filter(mine)).to_pylist():
                    results[stale[c["values"]]].rows_replaced += c["counts"]
                old = old.filter(pc.invert(mine))
                removed = True
        old = old.append_column(_FILE, pa.array(np.full(old.num_rows, n, np.int64)))
        return old.cast(_MERGE_SCHEMA), removed

    def _replace(self, day: dt.date, table: pa.Table) -> None:
        """Write the partition of ``day`` (an emptied day is deleted rather than left with 0 rows)."""
        if table.num_rows:
            self.lake.write_partition("events", table, day, schema=LAKE_EVENTS_SCHEMA)
        else:
            self.lake.delete_partition("events", day)
        self.ids.update(day)
        self.rows_per_day[day] = table.num_rows

    def _drop_cross_partition(self, day: dt.date, merged: pa.Table) -> pa.Table:
        """Resolve GLOBALEVENTIDs of ``merged`` also present in other partitions: the earliest (DATEADDED, day) wins.

        Losers in ``merged`` are dropped from it; losers elsewhere are removed by rewriting that partition.
        """
        ids = merged.column("GLOBALEVENTID")
        lo, hi = pc.min(ids).as_py(), pc.max(ids).as_py()
        drop_here = np.zeros(merged.num_rows, bool)
        for other in self.ids.overlapping(day, lo, hi):
            theirs = self.lake.read("events", other, other, columns=["GLOBALEVENTID", "DATEADDED"])
            common = pc.is_in(ids, value_set=theirs.column("GLOBALEVENTID"))
            if not pc.any(common).as_py():
                continue
            positions = np.flatnonzero(common.to_numpy(zero_copy_only=False))
            their_added = dict(zip(theirs.column("GLOBALEVENTID").to_pylist(), theirs.column("DATEADDED").to_pylist()))
            mine = merged.select(["GLOBALEVENTID", "DATEADDED"]).take(pa.array(positions)).to_pylist()
            lose_there = []
            for pos, row in zip(positions, mine):
                if (their_added[row["GLOBALEVENTID"]], other) <= (row["DATEADDED"], day):
                    drop_here[pos] = True
                else:
                    lose_there.append(row["GLOBALEVENTID"])
            if lose_there:
                self._remove_events(other, lose_there)
        return merged.filter(pa.array(~drop_here)) if drop_here.any() else merged

    def _remove_events(self, day: dt.date, ids: list[int]) -> None:
        """Rewrite the partition of ``day`` without the events ``ids``."""
        full = _with_provenance(self.lake.read("events", day, day, columns=None))
        keep = pc.invert(pc.is_in(full.column("GLOBALEVENTID"), value_set=pa.array(ids, pa.int64())))
        self._replace(day, full.filter(keep))


# ------------------------------------------------------------------ loading
Loaded = Parsed | bytes | Iterator[Parsed]
"""What the pool hands back for a file: parsed rows (BigQuery), a text to parse in a batch, or chunks (big files)."""


def _list_files(source: str, lo: dt.date, hi: dt.date, cfg: IngestConfig, path: str | Path | None
                ) -> list[sources.SourceFile]:
    """The source files of [lo, hi] (BigQuery: one pseudo-file per day)."""
    if source == "bigquery":
        from pipeline.ingest import bigquery

        return bigquery.day_files(lo, hi, cfg)
    if source == "local":
        if path is None:
            raise UserError("--source local needs --path (a file or folder of GDELT exports)")
        return sources.local_files(Path(path), lo, hi)
    if source == "gdelt1":
        return sources.gdelt1_files(lo, hi, cfg)
    return sources.gdelt2_files(lo, hi, cfg)


def _fetcher(source: str, client: Any, cfg: IngestConfig, lo: dt.date, hi: dt.date,
             todo: list[sources.SourceFile], report: IngestReport):
    """``fetch(file) -> (bytes or Parsed, md5)`` for ``source`` (BigQuery: after one dry run of the range)."""
    if source != "bigquery":
        return lambda f: sources.fetch(f, cfg)
    from pipeline.ingest import bigquery

    fetcher = bigquery.Fetcher(client, cfg, lo, hi, todo)
    report.estimated_bytes = fetcher.estimated_bytes
    return fetcher.fetch


def _load(f: sources.SourceFile, fetch, cfg: IngestConfig) -> tuple[Loaded, str | None, int | None]:
    """Fetch + verify + unzip one file (runs on the pool): (what to parse, MD5, bytes).

    Small files come back as text, parsed in batches at flush time (``parse_batch``);
    a file whose text exceeds ``STREAM_BYTES`` (GDELT 1.0 yearly backfiles) as a lazy
    iterator of chunks, parsed by the caller with bounded memory.
    """
    data, md5 = fetch(f)
    if isinstance(data, Parsed):
        return data, md5, None
    try:
        if text_size(data) > STREAM_BYTES:
            return iter_events(data, f.url, STREAM_BYTES, cfg.max_unzipped_bytes), md5, len(data)
        return unpack(data, f.url, cfg.max_unzipped_bytes), md5, len(data)
    except BadFile as exc:
        exc.md5, exc.nbytes = md5, len(data)
        raise


# ------------------------------------------------------------------ batches
@dataclass
class _Entry:
    """One file (or one chunk of a big file) read since the last flush."""

    res: FileResult
    text: bytes | None = None
    """Event text waiting to be parsed (with the next batch)."""
    parsed: Parsed | None = None
    """Parsed rows; both None: the file produced no rows (failed, missing, refused)."""


class _Batch:
    """Files read since the last flush; ``flush`` writes their rows, quarantine and manifest records at once.

    Every file is recorded in the manifest exactly once per flush, together with its rows.
    """

    def __init__(self, lake: Lake, lo: dt.date, hi: dt.date, manifest: Manifest, report: IngestReport,
                 cfg: IngestConfig):
        self.lake, self.lo, self.hi, self.manifest, self.report, self.cfg = lake, lo, hi, manifest, report, cfg
        self.entries: list[_Entry] = []
        self.writer = _Writer(lake)
        self.failures = 0
        """Files failed so far in this ingest (a run without ``keep_going`` stops at the first)."""

    def add(self, res: FileResult, loaded: Parsed | bytes | None) -> None:
        """Queue a text (bytes), parsed rows, or None (a file without rows: failed, missing, refused)."""
        entry = _Entry(res)
        if isinstance(loaded, Parsed):
            entry.parsed = loaded
            res.rows_quarantined += len(loaded.quarantine)
        elif loaded is not None:
            entry.text = loaded
        self.entries.append(entry)

    def rows(self) -> int:
        """Rows waiting to be written (text counted at about 400 bytes a row)."""
        return sum(e.parsed.events.num_rows if e.parsed else len(e.text) // 400 for e in self.entries
                   if e.parsed or e.text)

    def parse(self, min_bytes: int = 0) -> None:
        """Parse the waiting texts in one batch once there are ``min_bytes`` of them.

        Called as texts arrive (so parsing overlaps the pool's fetching and unzipping) and at flush.
        A text that is not a GDELT export fails its file like a corrupt zip does.
        """
        waiting = [e for e in self.entries if e.text is not None]
        if not waiting or sum(len(e.text) for e in waiting) < min_bytes:
            return
        for e, parsed in zip(waiting, parse_batch([(e.text, e.res.url) for e in waiting])):
            e.text = None
            if isinstance(parsed, BadFile):
                _fail(e.res, parsed)
                self.failures += 1
            else:
                e.parsed = parsed
                e.res.rows_quarantined += len(parsed.quarantine)

    def flush(self) -> None:
        """Parse what waits, then under the lake lock: merge rows per day, write quarantine, save the manifest."""
        self.parse()
        if not self.entries:
            return
        results = [e.res for e in self.entries]
        with lake_lock(self.lake):
            self.manifest.sync()
            for e in self.entries:
                if e.res.status == "failed" and self.manifest.ok_by_another(e.res):
                    e.res.status, e.res.error = "skipped", "ingested by another run meanwhile"
            by_day, read_on = self._rows_by_day()
            for d in sorted(set(by_day) | set(read_on)):
                self.writer.write_events(d, by_day.get(d, []), results, read_on[d])
                if d in self.writer.rows_per_day:
                    self.report.days[d] = self.writer.rows_per_day[d]
            for d, (files, rows) in sorted(self._quarantine_by_day().items()):
                write_quarantine(self.lake, d, files, rows)
            for res in {id(r): r for r in results}.values():
                if res.status != "skipped":
                    self.manifest.record(res)
            self.manifest.save()
        if not self.cfg.keep_downloads:
            for res in results:
                if res.status == "ok":
                    sources.discard(sources.SourceFile(res.source, res.url, res.name, res.day), self.cfg)
        self.entries.clear()

    def _rows_by_day(self) -> tuple[dict[dt.date, list[pa.Table]], dict[dt.date, set[int]]]:
        """Rows in [lo, hi] by partition day (with ``source_file`` and ``_file``), and the files read on each day.

        A file counts as read on the days it has rows and on its nominal day (where an
        earlier version's rows may be); rows outside [lo, hi] are counted, not written.
        """
        by_day: dict[dt.date, list[pa.Table]] = collections.defaultdict(list)
        read_on: dict[dt.date, set[int]] = collections.defaultdict(set)
        lo, hi = pa.scalar(self.lo), pa.scalar(self.hi)
        for i, e in enumerate(self.entries):
            if e.parsed is None or e.res.status != "ok":
                continue
            ev = e.parsed.events
            in_range = pc.and_(pc.greater_equal(ev[DAY], lo), pc.less_equal(ev[DAY], hi))
            n_in = pc.sum(in_range).as_py() or 0
            e.res.rows_out_of_range += ev.num_rows - n_in
            if n_in < ev.num_rows:
                ev = ev.filter(in_range)
            ev = ev.append_column(SOURCE_FILE, pa.DictionaryArray.from_arrays(
                pa.array(np.zeros(ev.num_rows, np.int32)), pa.array([e.res.name])).cast(pa.string()))
            ev = ev.append_column(_FILE, pa.array(np.full(ev.num_rows, i, np.int64)))
            days = pc.unique(ev[DAY]).to_pylist()
            for d in days:
                part = ev if len(days) == 1 else ev.filter(pc.equal(ev[DAY], pa.scalar(d)))
                by_day[d].append(part.drop_columns([DAY]))
                read_on[d].add(i)
            if e.res.day is not None and self.lo <= e.res.day <= self.hi:
                read_on[e.res.day].add(i)
        return by_day, read_on

    def _quarantine_by_day(self) -> dict[dt.date, tuple[set[str], list[dict]]]:
        """{day: (files whose quarantine rows are replaced, their new rows)}: bad rows, and one row per failed file."""
        today = dt.datetime.now(dt.timezone.utc).date()
        now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        out: dict[dt.date, tuple[set[str], list[dict]]] = collections.defaultdict(lambda: (set(), []))
        for e in self.entries:
            res = e.res
            if res.status in ("missing", "refused", "skipped"):
                continue
            files, rows = out[res.day or today]
            files.add(res.url)
            if res.status == "failed":
                rows.append(dict(source=res.source, file=res.url, line=None, reason=res.error, column=None,
                                 value=None, raw=None, quarantined_at=now))
            elif e.parsed is not None:
                rows += [dict(source=res.source, file=res.url, quarantined_at=now, **q) for q in e.parsed.quarantine]
        return out


def _fail(res: FileResult, exc: Exception) -> None:
    """Mark ``res`` failed with ``exc``'s message (and the MD5 / size a ``BadFile`` carries)."""
    res.status, res.error = "failed", str(exc)
    res.md5 = res.md5 or getattr(exc, "md5", None)
    res.bytes = res.bytes or getattr(exc, "nbytes", None)


# ------------------------------------------------------------------- ingest
def ingest(
    lake: Lake,
    source: str,
    start: DateLike,
    end: DateLike,
    cfg: IngestConfig | None = None,
    *,
    path: str | Path | None = None,
    force: bool = False,
    keep_going: bool = False,
    client: Any = None,
    progress: bool = True,
) -> IngestReport:
    """Ingest ``source`` files for the days [start, end] into ``lake``.

    Args:
        lake: the lake to write ``events``, ``manifest`` and ``quarantine`` into.
        source: ``gdelt1`` | ``gdelt2`` | ``local`` | ``bigquery``.
        start, end: inclusive day range (``YYYY-MM-DD``); rows outside it are not written.
        cfg: URLs, download folder, concurrency, timeouts, retries, BigQuery settings.
        path: file or folder for ``local``.
        force: re-ingest files the manifest marks as done.
        keep_going: record failed files and go on instead of raising ``IngestError``.
        client: a ``google.cloud.bigquery.Client`` (or a fake) for ``bigquery``.
        progress: show a progress bar on a terminal.
    Returns:
        IngestReport with one ``FileResult`` per listed file (``skipped`` for done ones).
    """
    cfg = cfg or IngestConfig()
    t0 = time.perf_counter()
    lo, hi = as_date(start), as_date(end)
    if hi < lo:
        raise UserError(f"--end {hi} is before --start {lo}")
    if source not in SOURCES:
        raise UserError(f"unknown --source {source!r}; choose one of {', '.join(SOURCES)}")
    report = IngestReport(source, lo, hi)

    # 1. list the files; skip those already done (reading the manifest of their days only)
    listed = _list_files(source, lo, hi, cfg, path)
    manifest = Manifest(lake, days={f.day for f in listed})
    todo = []
    for f in listed:
        if not force and manifest.done(f):
            report.files.append(FileResult(f.name, f.url, "skipped", day=f.day, source=f.source))
        else:
            todo.append(f)
    todo.sort(key=lambda f: (f.day or dt.date.min, f.name))
    fetch = _fetcher(source, client, cfg, lo, hi, todo, report)

    # 2. fetch + unzip on the pool, in order; 3. parse in batches; 4. write a day at a time
    batch = _Batch(lake, lo, hi, manifest, report, cfg)
    with make_progress() as bar, ThreadPoolExecutor(max(1, cfg.concurrency)) as pool:
        task = bar.add_task(f"ingest {source}", total=len(todo), info="") if progress else None
        day: dt.date | None = None
        loads = _prefetch(pool, todo, lambda f: _load(f, fetch, cfg), ahead=2 * max(1, cfg.concurrency))
        for f, fut in loads:
            if batch.entries and (f.day != day or batch.rows() >= _FLUSH_ROWS):
                batch.flush()
            day = f.day
            res = FileResult(f.name, f.url, "ok", day=f.day, expected_md5=f.md5, source=f.source)
            report.files.append(res)
            _read_into(batch, res, fut)
            if task is not None:
                bar.update(task, advance=1, info=f.name)
            if not keep_going and batch.failures:
                break
        loads.close()  # cancels fetches still queued
    batch.flush()

    # 5. report
    report.seconds = time.perf_counter() - t0
    if report.failed and not keep_going:
        first = report.failed[0]
        raise IngestError(f"ingest failed on {first.url}: {first.error}; fix the file or re-run with --keep-going "
                          "(failed files are listed in the manifest and quarantine)", report)
    return report


def _read_into(batch: _Batch, res: FileResult, fut: Future) -> None:
    """Wait for one file's load and queue what it gave: its text or chunks, or the reason it has no rows."""
    try:
        loaded, res.md5, res.bytes = fut.result()
        res.finished = False
        for part in [loaded] if isinstance(loaded, (Parsed, bytes)) else loaded:
            batch.add(res, part)
            batch.parse(_PARSE_BYTES)
            if batch.rows() >= _FLUSH_ROWS:
                batch.flush()  # a big file: write what is buffered (the file is recorded as partial)
        res.finished = True
    except sources.Missing as exc:
        res.status, res.error = "missing", str(exc)
        batch.add(res, None)
    except sources.Refused as exc:
        res.status, res.error = "refused", str(exc)
        batch.add(res, None)
    except (BadFile, sources.VerifyError, OSError) as exc:
        _fail(res, exc)
        res.finished = True
        batch.failures += 1
        batch.add(res, None)


def _prefetch(pool: ThreadPoolExecutor, files: list, fetch, ahead: int) -> Iterator[tuple[Any, Future]]:
    """Yield (file, future of fetch(file)) in order, keeping at most ``ahead`` fetches in flight."""
    queue: collections.deque[tuple[Any, Future]] = collections.deque()
    it = iter(files)
    try:
        for f in it:
            queue.append((f, pool.submit(fetch, f)))
            if len(queue) >= ahead:
                yield queue.popleft()
        while queue:
            yield queue.popleft()
    finally:
        for _, fut in queue:
            fut.cancel()
