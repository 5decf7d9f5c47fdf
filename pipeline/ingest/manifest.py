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
    """The ``manifest`` table in memory, keyed by (source, url); ``save`` rewrites it atomically.

    Several ingests may share a lake: ``sync`` (under ``lake_lock``) re-reads what the
    others saved, and ``save`` merges this run's records into it without ever
    replacing another run's ``ok`` by this run's failure.
    """

    def __init__(self, lake: Lake):
        self.lake = lake
        self.rows = self._load()
        self.seen = dict(self.rows)
        """Each row as this run last read or wrote it: a row on disk that differs was written by another run."""
        self.disk = self.rows
        self.mine: set[tuple[str, str]] = set()

    def _load(self) -> dict[tuple[str, str], dict[str, Any]]:
        if not self.lake.has_partition("manifest"):
            return {}
        return {(r["source"], r["url"]): r for r in self.lake.read("manifest").to_pylist()}

    def done(self, f: sources.SourceFile) -> bool:
        """True when ``f`` was ingested completely before (local files: and is unchanged)."""
        r = self.rows.get((f.source, f.url))
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
        key = (res.source, res.url)
        row = self.disk.get(key)
        return row is not None and row["status"] == "ok" and row != self.seen.get(key)

    def save(self) -> None:
        """Write the manifest: what is on disk now (other ingests) overlaid with this run's records.

        An ``ok`` another run saved meanwhile is kept over this run's ``failed`` / ``missing`` /
        ``partial`` record of the same file. Call it holding ``lake_lock`` (after ``sync``)
        so concurrent ingests do not lose each other's rows.
        """
        merged = dict(self.disk)
        for k in self.mine:
            other = self.disk.get(k)
            if other is not None and other["status"] == "ok" and other != self.seen.get(k) \
                    and self.rows[k]["status"] != "ok":
                continue  # never downgrade another run's ok
            merged[k] = self.rows[k]
        self.rows = merged
        rows = [merged[k] for k in sorted(merged)]
        self.lake.write_partition("manifest", pa.Table.from_pylist(rows, schema=MANIFEST_SCHEMA),
                                  schema=MANIFEST_SCHEMA)
        self.seen = dict(merged)
        self.disk = merged


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
