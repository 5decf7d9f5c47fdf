"""The ``manifest`` and ``quarantine`` tables: their one writer and reader.

``manifest`` has one row per source file ever seen (status, MD5, size, row counts);
``quarantine`` has one row per input line that could not be kept, partitioned by the
day the file belongs to, with the file, line number and reason.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.core.lake import Lake
from pipeline.core.schemas import MANIFEST_SCHEMA, QUARANTINE_SCHEMA
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
class Manifest:
    """The ``manifest`` table, keyed by (source, url); ``save`` rewrites it atomically.

    Held as the Arrow table read from disk plus this run's records (``rows`` holds
    only those): loading, looking up and saving are vectorised, so their cost stays
    a small fraction of a day's ingest even with years of files in the table.

    Several ingests may share a lake: ``sync`` (under ``lake_lock``) re-reads what the
    others saved, and ``save`` merges this run's records into it without ever
    replacing another run's ``ok`` by this run's failure.
    """

    def __init__(self, lake: Lake):
        self.lake = lake
        self.disk = self._load()
        self.seen = self.disk
        """The table as this run last read or wrote it: a row on disk that differs was written by another run."""
        self.rows: dict[tuple[str, str], dict[str, Any]] = {}
        self.mine: set[tuple[str, str]] = set()

    def _load(self) -> pa.Table | None:
        if not self.lake.has_partition("manifest"):
            return None
        return self.lake.read("manifest", columns=MANIFEST_SCHEMA.names)

    @staticmethod
    def _lookup(table: pa.Table | None, key: tuple[str, str]) -> dict[str, Any] | None:
        if table is None:
            return None
        hit = pc.and_(pc.equal(table.column("url"), key[1]), pc.equal(table.column("source"), key[0]))
        rows = table.filter(hit).to_pylist()
        return rows[-1] if rows else None

    def get(self, key: tuple[str, str]) -> dict[str, Any] | None:
        """The row of ``key``: this run's record, else the one on disk (a vectorised look-up)."""
        if key in self.rows:
            return self.rows[key]
        return self._lookup(self.disk, key)

    def done(self, f: sources.SourceFile) -> bool:
        """True when ``f`` was ingested completely before (local files: and is unchanged)."""
        r = self.get((f.source, f.url))
        if r is None or r["status"] != "ok" or r["rows_out_of_range"]:
            return False
        if f.source == "local":
            p = Path(f.url)
            return p.exists() and p.stat().st_size == r["bytes"]
        return f.md5 is None or r["md5"] == f.md5

    def record(self, res: FileResult) -> None:
        status = res.status if res.finished or res.status != "ok" else "partial"
        self.mine.add((res.source, res.url))
        self.rows[(res.source, res.url)] = dict(
            source=res.source, name=res.name, url=res.url, day=res.day, md5=res.md5,
            expected_md5=res.expected_md5, bytes=res.bytes, rows_kept=res.rows_kept,
            rows_quarantined=res.rows_quarantined, rows_duplicate=res.rows_duplicate,
            rows_out_of_range=res.rows_out_of_range, rows_replaced=res.rows_replaced, status=status, error=res.error,
            ingested_at=dt.datetime.now(dt.timezone.utc).replace(microsecond=0),
        )

    def sync(self) -> None:
        """Re-read the manifest on disk (call it holding ``lake_lock``, before ``ok_by_another`` / ``save``)."""
        self.disk = self._load()

    def ok_by_another(self, res: FileResult) -> bool:
        """True when another ingest recorded ``res``'s file as ``ok`` since this run last looked (``sync`` first)."""
        return self._ok_by_another_key(self.disk, (res.source, res.url))

    def save(self) -> None:
        """Write the manifest: what is on disk now (other ingests) overlaid with this run's records,
        sorted by (source, url).

        An ``ok`` another run saved meanwhile is kept over this run's ``failed`` / ``missing`` /
        ``partial`` record of the same file. Call it holding ``lake_lock`` (after ``sync``)
        so concurrent ingests do not lose each other's rows.
        """
        disk = self.disk = self._load()
        replace = sorted(
            k for k in self.mine
            if self.rows[k]["status"] == "ok" or not self._ok_by_another_key(disk, k)
        )
        parts = []
        if disk is not None:
            keys = pc.binary_join_element_wise(disk.column("source"), disk.column("url"), "\x00")
            drop = pa.array([f"{s}\x00{u}" for s, u in replace], pa.string())
            parts.append(disk.filter(pc.invert(pc.is_in(keys, value_set=drop))).cast(MANIFEST_SCHEMA))
        parts.append(pa.Table.from_pylist([self.rows[k] for k in replace], schema=MANIFEST_SCHEMA))
        table = pa.concat_tables(parts).sort_by([("source", "ascending"), ("url", "ascending")])
        self.lake.write_partition("manifest", table, schema=MANIFEST_SCHEMA)
        self.rows = {k: self.rows[k] for k in replace}
        self.mine = set(replace)
        self.disk = self.seen = table

    def _ok_by_another_key(self, disk: pa.Table | None, key: tuple[str, str]) -> bool:
        row = self._lookup(disk, key)
        return row is not None and row["status"] == "ok" and row != self._lookup(self.seen, key)


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
