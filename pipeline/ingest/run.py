"""Ingest GDELT events into the lake: ``events`` partitions, ``manifest``, ``quarantine``.

    ingest(lake, "gdelt2", "2025-05-16", "2025-05-17", IngestConfig())
    ingest(lake, "local", start, end, cfg, path="data/sample/gdelt-v2")

The story of one call:
1. list the source files of [start, end] (``pipeline.ingest.sources``; BigQuery: one
   query per day, ``pipeline.ingest.bigquery``) and skip those the manifest marks
   ``ok`` (unless ``force``);
2. fetch and unzip them with ``cfg.concurrency`` threads (verified size/MD5,
   retries, resume; a 404 is recorded as ``missing`` and the rest goes on);
3. parse the texts in batches (``pipeline.ingest.parse.parse_batch``: one threaded
   pyarrow call for many small files): good rows by partition day, bad rows
   and bad files to ``quarantine`` with a reason;
4. for every touched day, remove the rows an earlier ingest kept from the
   files just read (``source_file``: a changed file replaces its rows), merge
   the new rows with the rest of the day's partition, keep one row per
   GLOBALEVENTID (the first DATEADDED; across partitions too), and replace the
   partition atomically (``Lake.write_partition``);
5. record every file in the ``manifest`` (rows kept / quarantined / duplicate,
   status, MD5, bytes, time).

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
import fcntl
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
from pipeline.core.lake import DateLike, Lake, as_date
from pipeline.ingest.parse import DAY, STREAM_BYTES, BadFile, Parsed, iter_events, parse_batch, text_size, unpack
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
@contextlib.contextmanager
def lake_lock(lake: Lake) -> Iterator[None]:
    """Exclusive lock (``flock``) on the lake's ingest writes, across threads and processes.

    Held while partitions are merged and the manifest is saved, so concurrent
    ingests (e.g. a backfill of several days at once) serialise their writes.
    """
    path = lake.root / "_locks" / "ingest.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# ------------------------------------------------------------------ merging
def _dedupe(table: pa.Table) -> pa.Table:
    """One row per GLOBALEVENTID: the earliest DATEADDED, ties to the lowest ``_file`` index; sorted by ID."""
    if table.num_rows == 0:
        return table
    ids = table.column("GLOBALEVENTID").to_numpy()
    if np.all(ids[1:] > ids[:-1]):  # already sorted and unique (the usual case): no copy
        return table
    order = pc.sort_indices(table, sort_keys=[("GLOBALEVENTID", "ascending"), ("DATEADDED", "ascending"),
                                              (_FILE, "ascending")])
    table = table.take(order)
    ids = table.column("GLOBALEVENTID").to_numpy()
    first = np.ones(len(ids), bool)
    first[1:] = ids[1:] != ids[:-1]
    return table if first.all() else table.filter(pa.array(first))


def _count_by_file(table: pa.Table, n_files: int) -> np.ndarray:
    idx = table.column(_FILE).to_numpy()
    return np.bincount(idx[idx < n_files], minlength=n_files) if n_files else np.zeros(0, np.int64)


class _Writer:
    """Merges parsed rows into ``events`` partitions and quarantine rows into ``quarantine``."""

    def __init__(self, lake: Lake):
        self.lake = lake
        self.ids: _IdIndex | None = None
        self.rows_per_day: dict[dt.date, int] = {}
        self.replaced: set[tuple[str, dt.date]] = set()
        """(file name, day) whose earlier rows this ingest already removed (a big file flushes several times)."""

    def write_events(self, day: dt.date, new: list[pa.Table], results: list[FileResult],
                     files: set[int] = frozenset()) -> None:
        """Merge ``new`` (tables with ``_file`` = index into ``results``) into the partition of ``day``.

        ``files`` (indexes into ``results``) were read successfully in this ingest: rows an
        earlier ingest kept from them on ``day`` are removed first, so a changed file's
        rows are replaced, not merged with its old version.
        """
        if self.ids is None:
            self.ids = _IdIndex(self.lake)
        else:
            self.ids.refresh()
        n = len(results)
        parts = [t.cast(_MERGE_SCHEMA) for t in new if t.num_rows]
        removed = False
        if self.lake.has_partition("events", day):
            old = self.lake.read("events", day, day, columns=None).drop_columns(["date"])
            if SOURCE_FILE not in old.column_names:  # a lake written before provenance was kept
                old = old.append_column(SOURCE_FILE, pa.nulls(old.num_rows, pa.string()))
            stale = {results[i].name: i for i in files if (results[i].name, day) not in self.replaced}
            if stale and old.num_rows:
                src = old.column(SOURCE_FILE)
                mine = pc.fill_null(pc.is_in(src, value_set=pa.array(sorted(stale), pa.string())), False)
                if pc.any(mine).as_py():
                    counts = pc.value_counts(src.filter(mine)).to_pylist()
                    for c in counts:
                        results[stale[c["values"]]].rows_replaced += c["counts"]
                    old = old.filter(pc.invert(mine))
                    removed = True
            old = old.append_column(_FILE, pa.array(np.full(old.num_rows, n, np.int64)))
            parts.append(old.cast(_MERGE_SCHEMA))
        self.replaced |= {(results[i].name, day) for i in files}
        if not any(t.num_rows for t in new) and not removed:
            return  # nothing changes on this day
        if not any(p.num_rows for p in parts):
            self._replace(day, pa.table({f.name: pa.array([], f.type) for f in LAKE_EVENTS_SCHEMA}))
            return
        merged = pa.concat_tables(parts)
        before = _count_by_file(merged, n)
        merged = _dedupe(merged)
        merged = self._drop_cross_partition(day, merged)
        kept = _count_by_file(merged, n)
        for i, r in enumerate(results):
            r.rows_kept += int(kept[i])
            r.rows_duplicate += int(before[i] - kept[i])
        self._replace(day, merged.drop_columns([_FILE]))

    def _replace(self, day: dt.date, table: pa.Table) -> None:
        """Write the partition of ``day`` (an emptied day is deleted rather than left with 0 rows)."""
        if table.num_rows:
            self.lake.write_partition("events", table, day, schema=LAKE_EVENTS_SCHEMA)
        else:
            self.lake.delete_partition("events", day)
        self.ids.update(day)
        self.rows_per_day[day] = table.num_rows

    def _drop_cross_partition(self, day: dt.date, merged: pa.Table) -> pa.Table:
        """Resolve GLOBALEVENTIDs also present in other partitions: the earliest (DATEADDED, day) wins.

        Losers in ``merged`` are dropped; losers elsewhere are removed by rewriting that partition.
        """
        ids = merged.column("GLOBALEVENTID")
        lo, hi = pc.min(ids).as_py(), pc.max(ids).as_py()
        drop_here = np.zeros(merged.num_rows, bool)
        for other in self.ids.overlapping(day, lo, hi):
            theirs = self.lake.read("events", other, other, columns=["GLOBALEVENTID", "DATEADDED"])
            common = pc.is_in(ids, value_set=theirs.column("GLOBALEVENTID"))
            if not pc.any(common).as_py():
                continue
            mine_pos = np.flatnonzero(common.to_numpy(zero_copy_only=False))
            their_added = dict(zip(theirs.column("GLOBALEVENTID").to_pylist(), theirs.column("DATEADDED").to_pylist()))
            my_ids = ids.take(pa.array(mine_pos)).to_pylist()
            my_added = merged.column("DATEADDED").take(pa.array(mine_pos)).to_pylist()
            lose_there = []
            for pos, gid, added in zip(mine_pos, my_ids, my_added):
                if (their_added[gid], other) <= (added, day):
                    drop_here[pos] = True
                else:
                    lose_there.append(gid)
            if lose_there:
                full = self.lake.read("events", other, other, columns=None).drop_columns(["date"])
                if SOURCE_FILE not in full.column_names:
                    full = full.append_column(SOURCE_FILE, pa.nulls(full.num_rows, pa.string()))
                keep = pc.invert(pc.is_in(full.column("GLOBALEVENTID"), value_set=pa.array(lose_there, pa.int64())))
                self._replace(other, full.filter(keep))
        return merged.filter(pa.array(~drop_here)) if drop_here.any() else merged

    def write_quarantine(self, day: dt.date, files: set[str], rows: list[dict]) -> None:
        write_quarantine(self.lake, day, files, rows)


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
        raise ValueError(f"--end {hi} is before --start {lo}")
    if source not in SOURCES:
        raise ValueError(f"unknown --source {source!r}; choose one of {', '.join(SOURCES)}")
    report = IngestReport(source, lo, hi)
    manifest = Manifest(lake)
    if source == "bigquery":
        from pipeline.ingest import bigquery

        files = bigquery.day_files(lo, hi, cfg)
    elif source == "local":
        if path is None:
            raise ValueError("--source local needs --path (a file or folder of GDELT exports)")
        files = sources.local_files(Path(path), lo, hi)
    elif source == "gdelt1":
        files = sources.gdelt1_files(lo, hi, cfg)
    else:
        files = sources.gdelt2_files(lo, hi, cfg)
    todo = []
    for f in files:
        if not force and manifest.done(f):
            report.files.append(FileResult(f.name, f.url, "skipped", day=f.day, source=f.source))
        else:
            todo.append(f)
    todo.sort(key=lambda f: (f.day or dt.date.min, f.name))

    if source == "bigquery":
        from pipeline.ingest import bigquery

        fetcher = bigquery.Fetcher(client, cfg, lo, hi, todo)
        report.estimated_bytes = fetcher.estimated_bytes
        fetch = fetcher.fetch
    else:
        fetch = lambda f: sources.fetch(f, cfg)  # noqa: E731

    def load(f: sources.SourceFile) -> tuple[Parsed | bytes | Iterator[Parsed], str | None, int | None]:
        """Fetch + verify + unzip one file on the pool (files are fetched and unzipped in parallel).

        Small files come back as text, parsed in batches at flush time (``parse_batch``);
        a file whose text exceeds ``STREAM_BYTES`` (GDELT 1.0 yearly backfiles) as a lazy
        iterator of chunks, parsed by the caller with bounded memory.
        """
        data, md5 = fetch(f)
        if isinstance(data, Parsed):
            return data, md5, None
        if text_size(data) > STREAM_BYTES:
            return iter_events(data, f.url, STREAM_BYTES), md5, len(data)
        try:
            return unpack(data, f.url), md5, len(data)
        except BadFile as exc:
            exc.md5, exc.nbytes = md5, len(data)
            raise

    writer = _Writer(lake)
    pending: list[tuple[FileResult, Parsed | bytes | None]] = []  # bytes: text parsed at flush
    today = dt.datetime.now(dt.timezone.utc).date()
    failure: str | None = None

    def buffered() -> int:
        """Rows waiting to be written (text counted at about 400 bytes a row)."""
        return sum(p.events.num_rows if isinstance(p, Parsed) else len(p) // 400 for _, p in pending if p is not None)

    def parse_pending(min_bytes: int = 0) -> None:
        """Parse the buffered texts in one batch once there are ``min_bytes`` of them.

        Called as texts arrive (so parsing overlaps the pool's fetching and unzipping) and at flush.
        """
        texts = [i for i, (_, p) in enumerate(pending) if isinstance(p, bytes)]
        if not texts or sum(len(pending[i][1]) for i in texts) < min_bytes:
            return
        for i, parsed in zip(texts, parse_batch([(pending[i][1], pending[i][0].url) for i in texts])):
            pending[i][0].rows_quarantined += len(parsed.quarantine)
            pending[i] = (pending[i][0], parsed)

    def flush() -> None:
        parse_pending()
        results = [r for r, _ in pending]
        by_day: dict[dt.date, list[pa.Table]] = collections.defaultdict(list)
        q_rows: dict[dt.date, list[dict]] = collections.defaultdict(list)
        q_files: dict[dt.date, set[str]] = collections.defaultdict(set)
        read_ok: dict[dt.date, set[int]] = collections.defaultdict(set)  # files read on each day
        now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        for i, (res, parsed) in enumerate(pending):
            qday = res.day or today
            q_files[qday].add(res.url)
            if parsed is None:  # the whole file failed
                q_rows[qday].append(dict(source=res.source, file=res.url, line=None, reason=res.error,
                                         column=None, value=None, raw=None, quarantined_at=now))
                continue
            for q in parsed.quarantine:
                q_rows[qday].append(dict(source=res.source, file=res.url, quarantined_at=now, **q))
            ev = parsed.events
            in_range = pc.and_(pc.greater_equal(ev[DAY], pa.scalar(lo)), pc.less_equal(ev[DAY], pa.scalar(hi)))
            n_in = pc.sum(in_range).as_py() or 0
            res.rows_out_of_range += ev.num_rows - n_in
            if n_in < ev.num_rows:
                ev = ev.filter(in_range)
            ev = ev.append_column(SOURCE_FILE, pa.DictionaryArray.from_arrays(
                pa.array(np.zeros(ev.num_rows, np.int32)), pa.array([res.name])).cast(pa.string()))
            ev = ev.append_column(_FILE, pa.array(np.full(ev.num_rows, i, np.int64)))
            days = pc.unique(ev[DAY]).to_pylist()
            for d in days:
                part = ev if len(days) == 1 else ev.filter(pc.equal(ev[DAY], pa.scalar(d)))
                by_day[d].append(part.drop_columns([DAY]))
                read_ok[d].add(i)
            if res.day is not None and lo <= res.day <= hi:
                read_ok[res.day].add(i)  # its nominal day, where an earlier version's rows may be
        with lake_lock(lake):
            for d in sorted(set(by_day) | set(read_ok)):
                writer.write_events(d, by_day.get(d, []), results, read_ok[d])
                if d in writer.rows_per_day:
                    report.days[d] = writer.rows_per_day[d]
            for d in sorted(q_files):
                writer.write_quarantine(d, q_files[d], q_rows[d])
            for res in {id(r): r for r in results}.values():
                manifest.record(res)
            manifest.save()
        for res in results:
            if res.status == "ok" and not cfg.keep_downloads:
                sources.discard(sources.SourceFile(res.source, res.url, res.name, res.day), cfg)
        pending.clear()

    with make_progress() as bar, ThreadPoolExecutor(max(1, cfg.concurrency)) as pool:
        task = bar.add_task(f"ingest {source}", total=len(todo), info="") if progress else None
        current_day: dt.date | None = None
        fetches = _prefetch(pool, todo, load, ahead=2 * max(1, cfg.concurrency))
        for f, fut in fetches:
            if pending and (f.day != current_day or buffered() >= _FLUSH_ROWS):
                flush()
            current_day = f.day
            res = FileResult(f.name, f.url, "ok", day=f.day, expected_md5=f.md5, source=f.source)
            try:
                loaded, res.md5, res.bytes = fut.result()
                res.finished = False
                for parsed in [loaded] if isinstance(loaded, (Parsed, bytes)) else loaded:
                    if isinstance(parsed, Parsed):
                        res.rows_quarantined += len(parsed.quarantine)
                    pending.append((res, parsed))
                    parse_pending(_PARSE_BYTES)
                    if buffered() >= _FLUSH_ROWS:
                        flush()  # a big file: write what is buffered (the file is recorded as partial)
                res.finished = True
                manifest.record(res)  # final counts are re-recorded when its rows are flushed
            except sources.Missing as exc:
                res.status, res.error = "missing", str(exc)
                manifest.record(res)
            except (BadFile, sources.VerifyError, OSError) as exc:
                res.status, res.error = "failed", str(exc)
                res.md5 = res.md5 or getattr(exc, "md5", None)
                res.bytes = res.bytes or getattr(exc, "nbytes", None)
                pending.append((res, None))
            report.files.append(res)
            if task is not None:
                bar.update(task, advance=1, info=f.name)
            if res.status == "failed" and not keep_going:
                failure = f"{f.url}: {res.error}"
                break
        fetches.close()  # cancels fetches still queued
    flush()
    report.seconds = time.perf_counter() - t0
    if failure:
        raise IngestError(f"ingest failed on {failure}; fix the file or re-run with --keep-going "
                          "(failed files are listed in the manifest and quarantine)", report)
    return report


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
