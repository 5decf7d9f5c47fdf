"""The Parquet lake: Hive-partitioned tables under one root folder.

Layout (``root`` defaults to ``data/lake``)::

    <root>/<table>/[<key>=<value>/...]date=YYYY-MM-DD/part-0.parquet  (part-1 … for big partitions)
    <root>/_staging/            half-written partitions (never read)

Writes are atomic per partition: the new partition is written completely under
``_staging/`` (same file system), then swapped in with ``os.rename``. A writer
killed at any moment leaves either the previous partition or none, never a
partial one; leftovers in ``_staging`` are ignored by readers and removed by the
next write. Readers (pyarrow, DuckDB, pandas, polars) only ever see complete
partitions, and the partition keys come from the folder names.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import uuid
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

DateLike = dt.date | str

_STAGING = "_staging"
_MAX_FILES = 8  # part-0 … part-7: one digit, so name order is row order
_ROWS_PER_FILE = 100_000  # a partition is split into files of at least this many rows
_TRASH = "_trash"


def as_date(d: DateLike) -> dt.date:
    """``date`` or ``'YYYY-MM-DD'`` / ``'YYYYMMDD'`` string → ``datetime.date``."""
    if isinstance(d, dt.datetime):
        return d.date()
    if isinstance(d, dt.date):
        return d
    s = str(d).strip()
    for fmt in ("%Y-%m-%d", "%Y%m%d"):
        try:
            return dt.datetime.strptime(s, fmt).date()
        except ValueError:
            pass
    raise ValueError(f"not a date: {d!r} (expected YYYY-MM-DD)")


def date_range(start: DateLike, end: DateLike) -> list[dt.date]:
    """Inclusive list of days from ``start`` to ``end``."""
    a, b = as_date(start), as_date(end)
    if b < a:
        raise ValueError(f"end {b} is before start {a}")
    return [a + dt.timedelta(days=i) for i in range((b - a).days + 1)]


class Lake:
    """A folder of Hive-partitioned Parquet tables.

    Args:
        root: lake root folder (created on first write).
        compression / compression_level: Parquet codec for every write.
    """

    def __init__(self, root: str | Path = "data/lake", compression: str = "zstd", compression_level: int | None = 3):
        self.root = Path(root)
        self.compression = compression
        self.compression_level = compression_level

    def __repr__(self) -> str:
        return f"Lake({str(self.root)!r})"

    # ------------------------------------------------------------ paths
    def table_dir(self, table: str) -> Path:
        return self.root / table

    def partition_dir(self, table: str, date: DateLike | None = None, **keys: str) -> Path:
        """``<root>/<table>/<k>=<v>/.../date=YYYY-MM-DD``; keys in the order given, date last."""
        p = self.table_dir(table)
        for k, v in keys.items():
            p = p / f"{k}={_check_key(v)}"
        if date is not None:
            p = p / f"date={as_date(date).isoformat()}"
        return p

    def has_partition(self, table: str, date: DateLike | None = None, **keys: str) -> bool:
        return any(self.partition_dir(table, date, **keys).glob("*.parquet"))

    def fingerprint(self, table: str, date: DateLike | None = None, **keys: str) -> str:
        """A short hash of one partition's files (name, size, mtime): changes whenever it is rewritten.

        Used as a cache key by the flows, so a task re-runs when its input partition changed.
        ``"absent"`` when the partition does not exist.
        """
        import hashlib

        d = self.partition_dir(table, date, **keys)
        files = sorted(d.rglob("*.parquet")) if d.exists() else []
        if not files:
            return "absent"
        h = hashlib.sha1()
        for f in files:
            st = f.stat()
            h.update(f"{f.relative_to(d)}:{st.st_size}:{st.st_mtime_ns};".encode())
        return h.hexdigest()[:16]

    def partitions(self, table: str, **keys: str) -> list[dt.date]:
        """Sorted dates of the complete partitions of ``table`` (under ``keys``)."""
        base = self.partition_dir(table, None, **keys)
        if not base.exists():
            return []
        out = set()
        for p in base.rglob("date=*"):
            if p.is_dir() and any(p.glob("*.parquet")):
                out.add(as_date(p.name.split("=", 1)[1]))
        return sorted(out)

    # ------------------------------------------------------------ write
    def write_partition(
        self,
        table: str,
        data: pa.Table,
        date: DateLike | None = None,
        *,
        schema: pa.Schema | None = None,
        row_group_size: int = 256 * 1024,
        **keys: str,
    ) -> Path:
        """Atomically replace one partition with ``data``.

        The table is cast to ``schema`` when given (a clear error names the
        column that does not fit). Returns the partition folder.
        """
        if schema is not None:
            data = conform(data, schema, where=f"{table} partition {date}")
        final = self.partition_dir(table, date, **keys)
        staging = self.root / _STAGING / f"{table}-{uuid.uuid4().hex}"
        staging.mkdir(parents=True, exist_ok=True)
        try:
            self._write_files(data, staging, row_group_size)
            _fsync_dir(staging)
            self._swap_in(staging, final)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        return final

    def _write_files(self, data: pa.Table, folder: Path, row_group_size: int) -> None:
        """``part-0.parquet`` …: a big table is cut into consecutive slices written by parallel threads.

        Parquet encoding runs on one core per file (and releases the GIL), so a
        250k-row GDELT day written as two files takes about half the time of one
        (``bench/ingest.py``). Row order is kept: part-i holds the i-th slice.
        """
        n = max(1, min(_MAX_FILES, os.cpu_count() or 1, data.num_rows // _ROWS_PER_FILE))

        def write(i: int) -> None:
            lo, hi = data.num_rows * i // n, data.num_rows * (i + 1) // n
            pq.write_table(data.slice(lo, hi - lo), folder / f"part-{i}.parquet", compression=self.compression,
                           compression_level=self.compression_level, row_group_size=row_group_size)

        if n == 1:
            write(0)
            return
        with ThreadPoolExecutor(n) as pool:
            list(pool.map(write, range(n)))

    def _swap_in(self, staging: Path, final: Path) -> None:
        final.parent.mkdir(parents=True, exist_ok=True)
        trash = None
        if final.exists():
            trash = self.root / _TRASH / uuid.uuid4().hex
            trash.parent.mkdir(parents=True, exist_ok=True)
            os.rename(final, trash)  # old partition out (window: none visible)
        os.rename(staging, final)  # new partition in, all at once
        _fsync_dir(final.parent)
        if trash is not None:
            shutil.rmtree(trash, ignore_errors=True)

    def delete_partition(self, table: str, date: DateLike | None = None, **keys: str) -> bool:
        final = self.partition_dir(table, date, **keys)
        if not final.exists():
            return False
        trash = self.root / _TRASH / uuid.uuid4().hex
        trash.parent.mkdir(parents=True, exist_ok=True)
        os.rename(final, trash)
        shutil.rmtree(trash, ignore_errors=True)
        return True

    def clean_staging(self) -> int:
        """Remove leftovers of killed writers; returns how many were removed."""
        n = 0
        for name in (_STAGING, _TRASH):
            d = self.root / name
            if d.exists():
                for child in d.iterdir():
                    shutil.rmtree(child, ignore_errors=True)
                    n += 1
        return n

    # ------------------------------------------------------------- read
    def files(self, table: str, start: DateLike | None = None, end: DateLike | None = None, **keys: str) -> list[Path]:
        """Parquet files of ``table`` whose date partition lies in [start, end]."""
        base = self.partition_dir(table, None, **keys)
        if not base.exists():
            return []
        lo = as_date(start) if start is not None else None
        hi = as_date(end) if end is not None else None
        out = []
        for f in sorted(base.rglob("*.parquet")):
            m = re.search(r"date=(\d{4}-\d{2}-\d{2})", str(f.relative_to(base)))
            if m:
                d = as_date(m.group(1))
                if (lo and d < lo) or (hi and d > hi):
                    continue
            out.append(f)
        return out

    def dataset(self, table: str, **keys: str) -> ds.Dataset:
        """pyarrow dataset of ``table`` with Hive partition columns (``date`` as string)."""
        base = self.partition_dir(table, None, **keys)
        return ds.dataset(base, format="parquet", partitioning="hive", exclude_invalid_files=True)

    def read(
        self,
        table: str,
        start: DateLike | None = None,
        end: DateLike | None = None,
        columns: list[str] | None = None,
        filter: ds.Expression | None = None,
        **keys: str,
    ) -> pa.Table:
        """Read ``table`` (optionally a date range and columns) as one Arrow table.

        A ``date`` column (``date32``) is appended from the partition path when
        the table is date-partitioned, unless ``columns`` excludes it.
        """
        files = self.files(table, start, end, **keys)
        if not files:
            raise FileNotFoundError(
                f"no partitions of table {table!r} in {self.root} for {start or '-inf'} … {end or '+inf'}"
            )
        parts = []
        for f in files:
            t = pq.read_table(f, columns=[c for c in columns if c != "date"] if columns else None, filters=filter)
            m = re.search(r"date=(\d{4}-\d{2}-\d{2})", str(f))
            if m and (columns is None or "date" in columns):
                t = t.append_column("date", pa.array([as_date(m.group(1))] * t.num_rows, pa.date32()))
            parts.append(t)
        return pa.concat_tables(parts, promote_options="default")

    def iter_partitions(self, table: str, start: DateLike | None = None, end: DateLike | None = None,
                        **keys: str) -> Iterator[tuple[dt.date, pa.Table]]:
        for d in self.partitions(table, **keys):
            if (start is None or d >= as_date(start)) and (end is None or d <= as_date(end)):
                yield d, self.read(table, d, d, **keys)

    # ----------------------------------------------------------- duckdb
    def tables(self) -> list[str]:
        if not self.root.exists():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(("_", ".")))

    def duckdb(self, tables: Iterable[str] | None = None) -> duckdb.DuckDBPyConnection:
        """An in-memory DuckDB connection with one view per lake table (Hive keys as columns)."""
        con = duckdb.connect()
        for t in tables or self.tables():
            if any(self.table_dir(t).rglob("*.parquet")):
                glob = (self.table_dir(t) / "**" / "*.parquet").as_posix()
                con.execute(
                    f"CREATE OR REPLACE VIEW \"{t}\" AS SELECT * FROM read_parquet('{glob}', "
                    "hive_partitioning = true, union_by_name = true)"
                )
        return con


def conform(data: pa.Table, schema: pa.Schema, where: str = "table") -> pa.Table:
    """Select and cast ``data``'s columns to ``schema`` (in schema order).

    Raises ``ValueError`` naming the missing column or the one that fails to
    cast, and refuses nulls in non-nullable fields.
    """
    missing = [f.name for f in schema if f.name not in data.column_names]
    if missing:
        raise ValueError(f"{where}: missing columns {missing}")
    cols = []
    for f in schema:
        col = data.column(f.name)
        if not col.type.equals(f.type):
            try:
                col = col.cast(f.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise ValueError(f"{where}: column {f.name!r} ({col.type}) does not cast to {f.type}: {exc}") from exc
        if not f.nullable and col.null_count:
            raise ValueError(f"{where}: column {f.name!r} has {col.null_count} nulls but is not nullable")
        cols.append(col)
    return pa.Table.from_arrays(cols, schema=schema)


def _check_key(v: object) -> str:
    s = str(v)
    if not s or "/" in s or s.startswith((".", "_")) or "=" in s:
        raise ValueError(f"bad partition key value {s!r}")
    return s


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
