"""The ``manifest`` and ``quarantine`` tables: their one writer and reader.

``manifest`` has one row per source file ever seen (status, MD5, size, row counts),
partitioned by the file's day;
``quarantine`` has one row per input line that could not be kept, partitioned by the
day the file belongs to, with the file, line number and reason.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.core.lake import INGEST_LOCK, Lake, move_dated_rows
from pipeline.core.schemas import MANIFEST_KEYS, MANIFEST_SCHEMA, QUARANTINE_SCHEMA
from pipeline.ingest import sources


@dataclass
class FileResult:
    """What happened to one source file."""

    name: str
    url: str
    status: str  # ok | missing | failed | refused | skipped
    rows_kept: int = 0
    rows_quarantined: int = 0
    rows_duplicate: int = 0
    rows_out_of_range: int = 0
    rows_replaced: int = 0
    """Rows an earlier ingest of this file had kept, removed before its new rows were merged."""
    md5: str | None = None
    bytes: int | None = None
    error: str | None = None
    day: dt.date | None = None
    expected_md5: str | None = None
    source: str = ""
    finished: bool = True
    """False while a big file is still being read (recorded as ``partial``: a re-run redoes it)."""


# ---------------------------------------------------------------- manifest
Key = tuple[str, str]
"""(source, url): one manifest row per source file (``MANIFEST_KEYS``)."""
Day = dt.date | None
"""A file's manifest partition: its day, or None for a file without one."""


class Manifest:
    """The ``manifest`` table, keyed by (source, url) and partitioned by the file's day.

    ``manifest/YYYY-MM-DD/part-0.parquet`` holds the files of that day, sorted by
    (source, url); files without a day (a local file named without a date) are in the
    table's own ``manifest/part-0.parquet`` (``Lake.write_undated``). A run reads only
    the partitions of the days it lists and a ``save`` rewrites only the days it
    recorded files of, so neither grows with the lake. A manifest of an older version
    (one file holding every day) is split by day once, when it is first opened
    (``pipeline.core.lake.move_dated_rows``, under ``lake_lock``).

    Several ingests may share a lake: ``sync`` (under ``lake_lock``) makes the next
    look-ups re-read what the others saved, and ``save`` merges this run's records into
    it without ever replacing another run's ``ok`` by this run's failure. "Another
    run's" means: a row on disk that differs from the one this run first read (or
    last wrote) for that file; ``days`` names the days to read at once, when the run
    starts (a day first read later counts what is on disk then as read).
    """

    def __init__(self, lake: Lake, days: Iterable[Day] = ()):
        self.lake = lake
        if _has_dated_undated_rows(lake):
            with lake.lock(INGEST_LOCK):
                move_dated_rows(lake, "manifest", "day", MANIFEST_KEYS, MANIFEST_SCHEMA)
        self.disk: dict[Day, pa.Table | None] = {}
        """Each day's partition as last read (``sync`` empties it)."""
        self.seen: dict[Day, pa.Table | None] = {}
        """Each day's partition as this run first read or last wrote it: a row on disk that differs was written by
        another run."""
        self.rows: dict[Key, dict[str, Any]] = {}
        """This run's records (saved or not)."""
        self.dirty: set[Key] = set()
        """Records not saved yet."""
        for d in {None, *days}:
            self._disk(d)

    def _load(self, day: Day) -> pa.Table | None:
        """One partition of the table on disk (None when absent)."""
        if day is None:
            files = self.lake.undated_files("manifest")
            if not files:
                return None
            t = pa.concat_tables([pq.read_table(f, columns=MANIFEST_SCHEMA.names) for f in files])
            return t.filter(pc.is_null(t.column("day"))).cast(MANIFEST_SCHEMA)
        if not self.lake.has_partition("manifest", day):
            return None
        return self.lake.read("manifest", day, day, columns=MANIFEST_SCHEMA.names).cast(MANIFEST_SCHEMA)

    def _disk(self, day: Day) -> pa.Table | None:
        if day not in self.disk:
            self.disk[day] = self._load(day)
            self.seen.setdefault(day, self.disk[day])
        return self.disk[day]

    @staticmethod
    def _lookup(table: pa.Table | None, key: Key) -> dict[str, Any] | None:
        if table is None:
            return None
        hit = pc.and_(pc.equal(table.column("url"), key[1]), pc.equal(table.column("source"), key[0]))
        rows = table.filter(hit).to_pylist()
        return rows[-1] if rows else None

    def get(self, key: Key, day: Day) -> dict[str, Any] | None:
        """The row of ``key`` (a file of ``day``): this run's record, else the one on disk."""
        if key in self.rows:
            return self.rows[key]
        return self._lookup(self._disk(day), key)

    def done(self, f: sources.SourceFile) -> bool:
        """True when ``f`` was ingested completely before (local files: and is unchanged)."""
        r = self.get((f.source, f.url), f.day)
        if r is None or r["status"] != "ok" or r["rows_out_of_range"]:
            return False
        if f.source == "local":
            p = Path(f.url)
            return p.exists() and p.stat().st_size == r["bytes"]
        return f.md5 is None or r["md5"] == f.md5

    def record(self, res: FileResult) -> None:
        status = res.status if res.finished or res.status != "ok" else "partial"
        key = (res.source, res.url)
        self.dirty.add(key)
        self.rows[key] = dict(
            source=res.source, name=res.name, url=res.url, day=res.day, md5=res.md5,
            expected_md5=res.expected_md5, bytes=res.bytes, rows_kept=res.rows_kept,
            rows_quarantined=res.rows_quarantined, rows_duplicate=res.rows_duplicate,
            rows_out_of_range=res.rows_out_of_range, rows_replaced=res.rows_replaced, status=status, error=res.error,
            ingested_at=dt.datetime.now(dt.timezone.utc).replace(microsecond=0),
        )

    def sync(self) -> None:
        """Forget what was read: the next look-ups re-read their days from disk (call it holding ``lake_lock``,
        before ``ok_by_another`` / ``save``)."""
        self.disk.clear()

    def ok_by_another(self, res: FileResult) -> bool:
        """True when another ingest recorded ``res``'s file as ``ok`` since this run last looked (``sync`` first)."""
        return self._ok_by_another_key(res.day, (res.source, res.url))

    def save(self) -> None:
        """Write the records made since the last save into their days' partitions, each partition being what
        is on disk now (other ingests) overlaid with this run's records, sorted by (source, url).

        An ``ok`` another run saved meanwhile is kept over this run's ``failed`` / ``missing`` /
        ``partial`` record of the same file. Call it holding ``lake_lock`` (after ``sync``)
        so concurrent ingests do not lose each other's rows. Only the days of those records
        are read and rewritten (each atomically, by ``Lake``).
        """
        by_day: dict[Day, list[Key]] = {}
        for k in sorted(self.dirty):
            by_day.setdefault(self.rows[k]["day"], []).append(k)
        for day, keys in sorted(by_day.items(), key=lambda kv: (kv[0] is not None, kv[0] or dt.date.min)):
            disk = self.disk[day] = self._load(day)
            self.seen.setdefault(day, disk)
            replace = [k for k in keys if self.rows[k]["status"] == "ok" or not self._ok_by_another_key(day, k)]
            for k in set(keys) - set(replace):
                del self.rows[k]  # another run's ok stays; look-ups read it from disk
            if not replace:
                continue
            parts = []
            if disk is not None:
                keys_on_disk = pc.binary_join_element_wise(disk.column("source"), disk.column("url"), "\x00")
                drop = pa.array([f"{s}\x00{u}" for s, u in replace], pa.string())
                parts.append(disk.filter(pc.invert(pc.is_in(keys_on_disk, value_set=drop))))
            parts.append(pa.Table.from_pylist([self.rows[k] for k in replace], schema=MANIFEST_SCHEMA))
            table = pa.concat_tables(parts).sort_by([("source", "ascending"), ("url", "ascending")])
            if day is None:
                self.lake.write_undated("manifest", table, schema=MANIFEST_SCHEMA)
            else:
                self.lake.write_partition("manifest", table, day, schema=MANIFEST_SCHEMA)
            self.disk[day] = self.seen[day] = table
        self.dirty.clear()

    def _ok_by_another_key(self, day: Day, key: Key) -> bool:
        row = self._lookup(self._disk(day), key)
        return row is not None and row["status"] == "ok" and row != self._lookup(self.seen.get(day), key)


def _has_dated_undated_rows(lake: Lake) -> bool:
    """Does the table's own file hold rows with a day (an older version's single-file manifest)?"""
    for f in lake.undated_files("manifest"):
        day = pq.read_table(f, columns=["day"]).column("day")
        if day.null_count < len(day):
            return True
    return False


# -------------------------------------------------------------- quarantine
def write_quarantine(lake: Lake, day: dt.date, files: set[str], rows: list[dict]) -> None:
    """Replace the quarantine rows of ``files`` in the ``quarantine`` partition of ``day`` by ``rows``."""
    parts = []
    if lake.has_partition("quarantine", day):
        old = lake.read("quarantine", day, day, columns=QUARANTINE_SCHEMA.names).cast(QUARANTINE_SCHEMA)
        parts.append(old.filter(pc.invert(pc.is_in(old.column("file"), value_set=pa.array(sorted(files))))))
    if rows:
        parts.append(pa.Table.from_pylist(rows, schema=QUARANTINE_SCHEMA))
    if not parts:
        return
    table = pa.concat_tables(parts)
    if table.num_rows == 0:
        lake.delete_partition("quarantine", day)
        return
    lake.write_partition("quarantine", table, day, schema=QUARANTINE_SCHEMA)
