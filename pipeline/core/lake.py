"""The Parquet lake: partitioned tables under one root folder.

Layout (``root`` defaults to ``data/lake``)::

    <root>/<table>/[<key>=<value>/...]YYYY-MM-DD/part-0.parquet   (part-1 … for big partitions)
    <root>/<table>/[<key>=<value>/...]part-0.parquet               (tables without a date; beside day
                                                                    folders: the rows without a day, ``write_undated``)
    <root>/_staging/<id>/ , <id>.lock   partition writes in progress (never read)
    <root>/_meta/<table>/...            side files of a table (dataset manifests, the events ID index)

A date-partitioned table's files hold the ``date`` column (``date32``) themselves,
and each day's folder is named by the bare date: so DuckDB, polars and plain
``pandas.read_parquet(<root>/<table>)`` all read ``date`` as a date, reading one
day's folder keeps it, and a day's folder is found by path, without listing the
table. Other keys (``model=<run>``, ``name=<name>``) are Hive folders and come
back as strings. Table folders hold only Parquet files.

Writes are atomic per partition and survive a crash at any point. A write is a
*transaction* ``_staging/<id>/`` whose writer holds ``_staging/<id>.lock``
(``flock``):

1. the new files are written to ``new/`` and fsynced;
2. the partition's path is written to ``target``;
3. the current partition (if any) is renamed to ``old/``;
4. ``new/`` is renamed to the partition's path;
5. the transaction folder is removed.

A writer killed between 3 and 4 leaves the day without a partition for a moment;
:meth:`Lake.recover` (run by every write and by the first read of a ``Lake``)
finds transactions whose lock no live process holds, renames ``old/`` back when
the partition is missing and ``new/`` never arrived, and removes the rest. So after
any crash a partition is either its previous or its new version, never partial and
never lost, and ``_staging`` leftovers are removed by the next write (or read).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from pipeline.core.errors import UserError
from pipeline.core.schemas import (COLUMN_DEFAULTS, COUNTRY_SCHEMA, EVENTS_SCHEMA, LAKE_EVENTS_SCHEMA, MANIFEST_KEYS,
                                   MANIFEST_SCHEMA, TABLE_SCHEMAS)

DateLike = dt.date | str

DATE = "date"
"""The date column every date-partitioned file holds (``date32``)."""
_STAGING = "_staging"
_META = "_meta"
_MAX_FILES = 8  # part-0 … part-7: one digit, so name order is row order
_ROWS_PER_FILE = 100_000  # a partition is split into files of at least this many rows

INGEST_LOCK = "ingest"
"""``Lake.lock`` name held by every writer of ``events`` and ``manifest`` (ingest, upgrade)."""

crash_hook: Callable[[str], None] | None = None
"""Tests only: called with the name of each step of a write (``staged``, ``target``,
``old-out``, ``new-in``, ``done``), e.g. to kill the process there."""


def _step(name: str) -> None:
    if crash_hook is not None:
        crash_hook(name)


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


def _is_day(name: str) -> bool:
    """A day folder's name: ``YYYY-MM-DD`` (checked by shape; ISO dates sort as strings)."""
    return len(name) == 10 and name[4] == "-" and name[7] == "-" and name[:4].isdigit()


def _is_key(name: str) -> bool:
    return "=" in name and not name.startswith(("_", "."))


LEAVE_OUT_SHARE = 0.65
"""Below this share of its usual GDELT 2.0 exports a day is left out of what the forecasts, training and scores
read, as a gap is (:mod:`pipeline.core.coverage`). Measured with ``baseline-learned`` on the real days, the day
before each test day thinned (event BSS against climatology, 30 busiest, mean of two splits): reading it beats
leaving it out at three quarters of a day (+3.92 against +3.31), the two tie at two thirds (+3.26 against +3.31),
leaving it out wins at three fifths (+2.57 against +3.31) and a half (+1.24 against +3.31)
(``bench/coverage.py --yesterday``, docs/forecast.md session 20)."""


class Lake:
    """A folder of partitioned Parquet tables.

    Args:
        root: lake root folder (created on first write).
        compression / compression_level: Parquet codec for every write.
        leave_out_share: a day holding fewer GDELT 2.0 exports than this share of its usual is read as a gap by
            every reader of what happened (the forecasts, training, the scores: ``pipeline/core/coverage.py``);
            0 reads every day as it is.
    """

    def __init__(self, root: str | Path = "data/lake", compression: str = "zstd", compression_level: int | None = 3,
                 leave_out_share: float = LEAVE_OUT_SHARE):
        self.root = Path(root)
        self.compression = compression
        self.compression_level = compression_level
        self.leave_out_share = leave_out_share
        self._recovered = False

    def __repr__(self) -> str:
        return f"Lake({str(self.root)!r})"

    # ------------------------------------------------------------ paths
    @contextlib.contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """Exclusive ``flock`` on ``<root>/_locks/<name>.lock`` while the body runs (threads, processes, hosts)."""
        path = self.root / "_locks" / f"{name}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def table_dir(self, table: str) -> Path:
        return self.root / table

    def partition_dir(self, table: str, date: DateLike | None = None, **keys: str) -> Path:
        """``<root>/<table>/<k>=<v>/.../YYYY-MM-DD``; keys in the order given, the day last."""
        p = self.table_dir(table)
        for k, v in keys.items():
            p = p / f"{k}={_check_key(v)}"
        if date is not None:
            p = p / as_date(date).isoformat()
        return p

    def meta_dir(self, table: str, **keys: str) -> Path:
        """``<root>/_meta/<table>/<k>=<v>/...``: a table's side files, outside its (pure Parquet) folder."""
        p = self.root / _META / table
        for k, v in keys.items():
            p = p / f"{k}={_check_key(v)}"
        return p

    def has_partition(self, table: str, date: DateLike | None = None, **keys: str) -> bool:
        """Does this partition exist? One folder look-up, whatever the size of the table."""
        self._recover_once()
        return bool(_parquet_in(self.partition_dir(table, date, **keys)))

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

    def day_dirs(self, table: str, start: DateLike | None = None, end: DateLike | None = None,
                 *, check_files: bool = True, **keys: str) -> list[tuple[dt.date, Path]]:
        """(day, folder) of every complete day partition of ``table`` in [start, end], by day then path.

        One directory scan per key level (no date parsing outside the range); a range of at
        most 31 days under a date level is looked up by path instead. ``check_files=False``
        skips listing each folder for its Parquet files (folders only ever appear complete,
        by rename, so this only lets an emptied-by-hand folder through).
        """
        self._recover_once()
        lo = as_date(start).isoformat() if start is not None else None
        hi = as_date(end).isoformat() if end is not None else None
        out: list[tuple[dt.date, Path]] = []
        for name, folder in _walk_days(self.partition_dir(table, None, **keys), lo, hi):
            if not check_files or _parquet_in(folder):
                out.append((dt.date.fromisoformat(name), folder))
        out.sort(key=lambda x: (x[0], str(x[1])))
        return out

    def partitions(self, table: str, start: DateLike | None = None, end: DateLike | None = None,
                   **keys: str) -> list[dt.date]:
        """Sorted distinct days of the complete partitions of ``table`` (under ``keys``) in [start, end]."""
        return sorted({d for d, _ in self.day_dirs(table, start, end, **keys)})

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
        """Atomically replace one partition with ``data`` (see the module docstring).

        The table is cast to ``schema`` when given (a clear error names the
        column that does not fit); a day partition's files also get the ``date``
        column. Returns the partition folder.
        """
        if schema is not None:
            data = conform(data, schema, where=f"{table} partition {date}")
        if date is not None:
            if DATE in data.column_names:
                data = data.drop_columns([DATE])
            data = data.append_column(DATE, pa.repeat(pa.scalar(as_date(date), pa.date32()), data.num_rows))
        elif not keys and _has_day_folders(self.table_dir(table)):
            raise ValueError(f"table {table!r} has day partitions: writing it without a date would replace them "
                             "all; use write_undated for the rows without a day")
        final = self.partition_dir(table, date, **keys)
        self.recover()
        with self._transaction(final) as txn:
            self._write_files(data, txn / "new", row_group_size)
            _fsync_dir(txn / "new")
            _step("staged")
            self._swap_in(txn, final)
        return final

    def write_undated(self, table: str, data: pa.Table, *, schema: pa.Schema | None = None) -> Path | None:
        """Atomically replace the table's own file (``<table>/part-0.parquet``, beside its day folders).

        For the rows of a day-partitioned table that have no day (the ``manifest``'s files
        without a date): the new file is written and fsynced in a ``_staging`` transaction
        and moved over the old one with one ``os.replace``; other undated ``part-*`` files
        (a big table of an older version) are removed after. An empty ``data`` removes the
        undated files. The day folders are not touched. Returns the file (None when removed).
        """
        if schema is not None:
            data = conform(data, schema, where=f"{table} (rows without a day)")
        base = self.table_dir(table)
        final = base / "part-0.parquet"
        old = _parquet_in(base)
        self.recover()
        if data.num_rows:
            with self._transaction(final) as txn:
                tmp = txn / "new.parquet"
                pq.write_table(data, tmp, compression=self.compression, compression_level=self.compression_level)
                with open(tmp, "rb") as fh:
                    os.fsync(fh.fileno())
                base.mkdir(parents=True, exist_ok=True)
                _step("staged")
                os.replace(tmp, final)
                _step("new-in")
                _fsync_dir(base)
        for f in old:
            if f != final or not data.num_rows:
                with contextlib.suppress(FileNotFoundError):
                    f.unlink()
        return final if data.num_rows else None

    def delete_partition(self, table: str, date: DateLike | None = None, **keys: str) -> bool:
        """Remove one partition (atomically: one rename, then the files). False when it did not exist."""
        final = self.partition_dir(table, date, **keys)
        self.recover()
        if not final.exists():
            return False
        with self._transaction(final) as txn:
            _write_target(txn, final.relative_to(self.root))
            try:
                os.rename(final, txn / "old")
            except FileNotFoundError:
                return False
            _step("old-out")
        return True

    @contextlib.contextmanager
    def _transaction(self, final: Path) -> Iterator[Path]:
        """A fresh ``_staging/<id>/`` held under its ``flock`` while the body runs, then removed."""
        staging = self.root / _STAGING
        staging.mkdir(parents=True, exist_ok=True)
        tid = f"{final.parent.name}-{final.name}-{uuid.uuid4().hex}"[-200:]
        txn, lock = staging / tid, staging / f"{tid}.lock"
        fd = _flock(lock, blocking=True)
        assert fd is not None
        try:
            txn.mkdir()
            yield txn
            shutil.rmtree(txn, ignore_errors=True)
            _step("done")
        except BaseException:
            _restore(self.root, txn)  # a failed write (not a crash) undoes itself at once
            shutil.rmtree(txn, ignore_errors=True)
            raise
        finally:
            with contextlib.suppress(FileNotFoundError):
                lock.unlink()
            os.close(fd)

    def _write_files(self, data: pa.Table, folder: Path, row_group_size: int) -> None:
        """``part-0.parquet`` …: a big table is cut into consecutive slices written by parallel threads.

        Parquet encoding runs on one core per file (and releases the GIL), so a
        250k-row GDELT day written as two files takes about half the time of one
        (``bench/ingest.py``). Row order is kept: part-i holds the i-th slice.
        """
        folder.mkdir(parents=True, exist_ok=True)
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

    def _swap_in(self, txn: Path, final: Path) -> None:
        """Steps 2–4 of a write: record the target, move the old partition out, the new one in."""
        _write_target(txn, final.relative_to(self.root))
        _step("target")
        final.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(100):  # another writer of the same partition may slip in between: redo
            with contextlib.suppress(FileNotFoundError):
                os.rename(final, txn / "old")  # old partition out (window: none visible)
            _step("old-out")
            try:
                os.rename(txn / "new", final)  # new partition in, all at once
                break
            except OSError:
                if not final.exists():
                    raise
                shutil.rmtree(txn / "old", ignore_errors=True)
        _step("new-in")
        _fsync_dir(final.parent)

    def recover(self) -> int:
        """Finish what killed writers left in ``_staging``: restore a partition moved out whose
        replacement never arrived, remove the rest. Live writers (lock held) are left alone.

        Returns how many leftovers were handled.
        """
        self._recovered = True
        staging = self.root / _STAGING
        try:
            names = sorted(os.listdir(staging))
        except (FileNotFoundError, NotADirectoryError):
            return 0
        n = 0
        for name in names:
            tid = name[:-5] if name.endswith(".lock") else name
            if name.endswith(".lock") and tid in names:
                continue  # handled with its folder
            lock = staging / f"{tid}.lock"
            fd = _flock(lock, blocking=False)
            if fd is None:
                continue  # a live writer (or another process recovering it)
            try:
                txn = staging / tid
                if txn.exists():
                    _restore(self.root, txn)
                    shutil.rmtree(txn, ignore_errors=True)
                    n += 1
                with contextlib.suppress(FileNotFoundError):
                    lock.unlink()
            finally:
                os.close(fd)
        return n

    def _recover_once(self) -> None:
        if not self._recovered:
            try:
                self.recover()
            except OSError:
                self._recovered = True

    # ------------------------------------------------------------- read
    def files(self, table: str, start: DateLike | None = None, end: DateLike | None = None, **keys: str) -> list[Path]:
        """Parquet files of ``table`` whose day lies in [start, end], by day; without a range, also the
        files outside day folders (tables without a date)."""
        self._recover_once()
        base = self.partition_dir(table, None, **keys)
        lo = as_date(start).isoformat() if start is not None else None
        hi = as_date(end).isoformat() if end is not None else None
        out = [f for _, folder in sorted(_walk_days(base, lo, hi)) for f in _parquet_in(folder)]
        if start is None and end is None:
            out += _undated_files(base)
        return out

    def undated_files(self, table: str, **keys: str) -> list[Path]:
        """The table's own Parquet files, beside its day or key folders (the ``write_undated`` file of a
        day-partitioned table; all of a table without dates): the ``part-<i>.parquet`` names Lake writes,
        looked up by path, so the cost does not grow with the number of partitions."""
        self._recover_once()
        base = self.partition_dir(table, None, **keys)
        return [f for f in (base / f"part-{i}.parquet" for i in range(_MAX_FILES)) if f.is_file()]

    def read(
        self,
        table: str,
        start: DateLike | None = None,
        end: DateLike | None = None,
        columns: list[str] | None = None,
        filter: ds.Expression | None = None,
        **keys: str,
    ) -> pa.Table:
        """Read ``table`` (optionally a date range and columns) as one Arrow table, by day.

        A date-partitioned table has its ``date`` column (``date32``, last) unless
        ``columns`` leaves it out.
        """
        files = self.files(table, start, end, **keys)
        if not files:
            raise FileNotFoundError(
                f"no partitions of table {table!r} in {self.root} for {start or '-inf'} … {end or '+inf'}"
            )
        parts = [pq.read_table(f, columns=columns, filters=filter) for f in files]
        return pa.concat_tables(parts, promote_options="default")

    # ----------------------------------------------------------- duckdb
    def tables(self) -> list[str]:
        if not self.root.exists():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(("_", ".")))

    def duckdb(self, tables: Iterable[str] | None = None) -> duckdb.DuckDBPyConnection:
        """An in-memory DuckDB connection with one view per lake table (Hive keys as columns)."""
        self._recover_once()
        con = duckdb.connect()
        for t in tables or self.tables():
            if any(self.table_dir(t).rglob("*.parquet")):
                glob = (self.table_dir(t) / "**" / "*.parquet").as_posix()
                con.execute(
                    f"CREATE OR REPLACE VIEW \"{t}\" AS SELECT * FROM read_parquet('{glob}', "
                    "hive_partitioning = true, union_by_name = true)"
                )
        return con


class OverlayLake(Lake):
    """A lake of its own for some tables, reading every other table of ``source`` through links.

    The tables in ``own`` (e.g. a backtest's ``forecasts`` and ``scores``) are written under ``root`` like
    any lake's; every other table of ``source`` is a symlink ``<root>/<table> → <source>/<table>`` (and its
    ``_meta`` folder likewise), so readers (pandas, DuckDB, this class) see one lake. Nothing is written into
    ``source`` through it but the tables in ``shared`` (caches such as ``embeddings``), whose writes and locks
    are ``source``'s own; a write to any other linked table raises. The links are made (or mended, when the
    source moved) on construction, for the tables ``source`` has then.
    """

    def __init__(self, root: str | Path, source: Lake, own: Iterable[str], shared: Iterable[str] = ()):
        super().__init__(root, source.compression, source.compression_level, source.leave_out_share)
        self.source, self.own, self.shared = source, frozenset(own), frozenset(shared)
        if self.root.resolve() == source.root.resolve():
            raise UserError(f"an overlay of {source.root} cannot be the lake itself")
        self.linked = []
        for table in source.tables():
            if table in self.own:
                continue
            _link(self.root / table, source.table_dir(table))
            if source.meta_dir(table).is_dir():
                _link(self.meta_dir(table), source.meta_dir(table))
            self.linked.append(table)

    def __repr__(self) -> str:
        return f"OverlayLake({str(self.root)!r}, source={str(self.source.root)!r})"

    def lock(self, name: str) -> contextlib.AbstractContextManager[None]:
        return self.source.lock(name)  # caches shared with the source lock where the source's writers do

    def _writer(self, table: str) -> Lake:
        if table in self.own or (table not in self.linked and table not in self.shared):
            return super()
        if table in self.shared:
            return self.source
        raise UserError(f"{self.root}: table {table!r} is {self.source.root}'s, read only here "
                        f"(this lake writes {', '.join(sorted(self.own))})")

    def write_partition(self, table: str, data: pa.Table, date: DateLike | None = None, **kw) -> Path:
        return self._writer(table).write_partition(table, data, date, **kw)

    def write_undated(self, table: str, data: pa.Table, **kw) -> Path | None:
        return self._writer(table).write_undated(table, data, **kw)

    def delete_partition(self, table: str, date: DateLike | None = None, **keys: str) -> bool:
        return self._writer(table).delete_partition(table, date, **keys)


def _link(link: Path, target: Path) -> None:
    """``link`` → ``target`` (absolute), replacing a stale link; a real folder at ``link`` is an error."""
    target = target.resolve()
    if link.is_symlink():
        if link.resolve() == target:
            return
        link.unlink()
    elif link.exists():
        raise UserError(f"{link} is a folder of its own, not a link to {target}: remove it or use another directory")
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target, target_is_directory=True)


@dataclass
class UpgradeReport:
    """What ``upgrade`` did (see there)."""

    converted: int = 0
    """``date=YYYY-MM-DD`` day folders rewritten as ``YYYY-MM-DD``."""
    manifest_days: int = 0
    """Day partitions the single-file ``manifest`` was split into."""
    trash_restored: list[str] = field(default_factory=list)
    """Partitions (paths under the root) put back from ``_trash``: their live partition was missing."""
    trash_removed: int = 0
    """``_trash`` copies removed because a newer version of their partition is live."""
    trash_kept: list[str] = field(default_factory=list)
    """``_trash`` entries left in place: which partition they were could not be told (inspect them)."""
    columns_added: dict[str, int] = field(default_factory=dict)
    """Table → partitions rewritten with the columns added to the table since they were written."""
    columns_left: list[str] = field(default_factory=list)
    """Partitions missing a column that has no value to fill it with (listed, not rewritten)."""

    def __str__(self) -> str:
        lines = [f"{self.converted} day folders converted to the YYYY-MM-DD layout",
                 f"manifest split into {self.manifest_days} day partitions" if self.manifest_days else
                 "manifest already partitioned by day",
                 f"_trash: {len(self.trash_restored)} partitions restored, {self.trash_removed} superseded copies "
                 f"removed, {len(self.trash_kept)} left in place"]
        lines += [f"  restored {p}" for p in self.trash_restored]
        lines += [f"  left {p} (which partition it held is unknown: inspect it, move it by hand or delete it)"
                  for p in self.trash_kept]
        added = sum(self.columns_added.values())
        lines.append(f"{added} partitions given the columns added since they were written" + (
            " (" + ", ".join(f"{t} {n}" for t, n in sorted(self.columns_added.items())) + ")" if added else ""))
        lines += [f"  left {p} (a column is missing that has no value to fill it with)" for p in self.columns_left]
        return "\n".join(lines)


def upgrade(root: str | Path) -> UpgradeReport:
    """Convert a lake written by an older version; safe to re-run, also after a crash.

    1. ``date=YYYY-MM-DD`` folders (no ``date`` in the files): each is rewritten as
       ``YYYY-MM-DD/`` with the ``date`` column added (through ``_staging``, renamed into
       place, then the old folder removed);
    2. ``_trash/<id>/`` folders (older versions moved a partition there to replace or
       delete it, and a crash could leave it there, sometimes as the only copy of a
       day): see :func:`recover_trash`;
    3. a single-file ``manifest``: split into one partition per file day
       (:func:`move_dated_rows`, under the ingest lock);
    4. day partitions written before a column of their table existed (``TABLE_SCHEMAS``; e.g. the watch list's
       ``against``): rewritten atomically with the column added — null, or ``COLUMN_DEFAULTS`` for a non-nullable
       one — so that pandas and polars, which take one file's schema for a whole folder, see every column
       (:func:`add_missing_columns`).
    """
    root = Path(root)
    lake = Lake(root)
    report = UpgradeReport()
    for old in sorted(p for p in root.glob("[!_.]*/**/date=*") if p.is_dir()):
        day = dt.date.fromisoformat(old.name.split("=", 1)[1])
        new = old.with_name(day.isoformat())
        if not new.exists():
            with lake._transaction(new) as txn:
                (txn / "new").mkdir()
                for f in sorted(old.glob("*.parquet")):
                    t = pq.read_table(f)
                    if DATE not in t.column_names:
                        t = t.append_column(DATE, pa.repeat(pa.scalar(day, pa.date32()), t.num_rows))
                    pq.write_table(t, txn / "new" / f.name, compression=lake.compression,
                                   compression_level=lake.compression_level)
                _fsync_dir(txn / "new")
                _write_target(txn, new.relative_to(root))
                os.rename(txn / "new", new)
        shutil.rmtree(old)
        report.converted += 1
    with lake.lock(INGEST_LOCK):
        recover_trash(lake, report)
        report.manifest_days = move_dated_rows(lake, "manifest", "day", MANIFEST_KEYS, MANIFEST_SCHEMA)
        add_missing_columns(lake, report)
    return report


def add_missing_columns(lake: Lake, report: UpgradeReport) -> None:
    """Rewrite each day partition whose files lack a column of its table's current schema, with the column added.

    Only file footers are read to find them; a partition is rewritten through :meth:`Lake.write_partition` (its
    rows, its other columns and their order untouched, the new columns after the schema's earlier ones), so a
    crash leaves it whole, old or new, and a re-run finishes the rest. A missing non-nullable column without a
    default in ``COLUMN_DEFAULTS`` is not invented: the partition is listed in ``report.columns_left``.
    """
    for table, schema in TABLE_SCHEMAS.items():
        base = lake.table_dir(table)
        for day, folder in sorted(_walk_days(base, None, None)):
            files = _parquet_in(folder)
            have = [set(pq.read_schema(f).names) for f in files]
            missing = [f for f in schema if any(f.name not in h for h in have)]
            if not missing:
                continue
            if any(not f.nullable and (table, f.name) not in COLUMN_DEFAULTS for f in missing):
                report.columns_left.append(folder.relative_to(lake.root).as_posix())
                continue
            keys = dict(part.split("=", 1) for part in folder.relative_to(base).parts[:-1])
            parts = []
            for f in files:
                t = pq.read_table(f)
                for field_ in missing:
                    if field_.name not in t.column_names:
                        value = COLUMN_DEFAULTS.get((table, field_.name))
                        t = t.append_column(field_, pa.repeat(pa.scalar(value, field_.type), t.num_rows))
                parts.append(t)
            data = pa.concat_tables(parts, promote_options="default")
            order = [n for n in schema.names if n in data.column_names] + \
                [n for n in data.column_names if n not in schema.names]
            lake.write_partition(table, data.select(order), dt.date.fromisoformat(day), **keys)
            report.columns_added[table] = report.columns_added.get(table, 0) + 1


_TRASH = "_trash"
_TABLES_BY_COLUMNS: dict[frozenset[str], str] = {
    frozenset(EVENTS_SCHEMA.names): "events",
    frozenset(LAKE_EVENTS_SCHEMA.names): "events",
    frozenset(COUNTRY_SCHEMA.names): "country",
    frozenset(MANIFEST_SCHEMA.names): "manifest",
    frozenset(n for n in MANIFEST_SCHEMA.names if n != "rows_replaced"): "manifest",
}
"""Tables whose ``_trash`` copies can be placed: told apart by their columns (``date`` aside)."""
_UNDATED_TABLES = ("manifest",)
_HISTORICAL = dt.date(2013, 4, 1)  # events added before this day are partitioned by SQLDATE


def recover_trash(lake: Lake, report: UpgradeReport) -> None:
    """Put back or remove the partitions older versions left in ``<root>/_trash/<id>/``; never the only copy.

    Each entry is identified from its files: the table by its columns (``events``,
    ``country``, the single-file ``manifest``), the day by the files' ``date`` column
    or by the rows' DATEADDED day (the partition rule of ``events``; SQLDATE before
    2013-04-01). Then:

    - its partition is live → the entry is an older version of it (the old code moved a
      partition to ``_trash`` only to replace or delete it) → removed;
    - its partition is missing → the entry is its only copy (a crash between the old
      swap's two renames, or an interrupted delete) → restored in place (``date`` column
      added), the newest entry when several are; a deleted partition that comes back
      this way is visible and a re-run of its stage fixes it, a lost day is not;
    - it cannot be identified (another table, rows of several days, unreadable) → left
      where it is and listed.
    Empty ``_trash`` is removed. Call it holding the ingest lock.
    """
    trash = lake.root / _TRASH
    try:
        entries = sorted((e for e in trash.iterdir() if e.is_dir()), key=lambda e: e.stat().st_mtime_ns,
                         reverse=True)  # newest first: it wins a missing partition
    except FileNotFoundError:
        return
    for entry in entries:
        target = _trash_target(lake, entry)
        if target is None:
            report.trash_kept.append(entry.relative_to(lake.root).as_posix())
            continue
        table, day = target
        final = lake.table_dir(table) if day is None else lake.partition_dir(table, day)
        live = bool(lake.files(table)) if day is None else lake.has_partition(table, day)
        if live:
            shutil.rmtree(entry)
            report.trash_removed += 1
            continue
        if day is None:
            final.mkdir(parents=True, exist_ok=True)
            for f in _parquet_in(entry):
                os.replace(f, final / f.name)
            shutil.rmtree(entry)
        else:
            data = pa.concat_tables([pq.read_table(f) for f in _parquet_in(entry)], promote_options="default")
            lake.write_partition(table, data, day)
            shutil.rmtree(entry)
        report.trash_restored.append(final.relative_to(lake.root).as_posix())
    with contextlib.suppress(OSError):
        trash.rmdir()  # only when empty


def _trash_target(lake: Lake, entry: Path) -> tuple[str, dt.date | None] | None:
    """(table, day) of the partition a ``_trash`` entry held; None when it cannot be told."""
    files = _parquet_in(entry)
    if not files:
        return None
    try:
        schemas = [pq.read_schema(f) for f in files]
    except (pa.ArrowInvalid, OSError):
        return None
    names = {frozenset(n for n in sc.names if n != DATE) for sc in schemas}
    table = _TABLES_BY_COLUMNS.get(names.pop()) if len(names) == 1 else None
    if table is None:
        return None
    if table in _UNDATED_TABLES:
        return table, None
    try:
        if all(DATE in sc.names for sc in schemas):
            days = set(pa.concat_arrays([pq.read_table(f, columns=[DATE]).column(DATE).combine_chunks()
                                         for f in files]).unique().to_pylist())
        else:
            t = pa.concat_tables([pq.read_table(f, columns=["DATEADDED", *(["SQLDATE"] if table == "events" else [])])
                                  for f in files])
            added = pc.cast(pc.cast(t.column("DATEADDED"), pa.timestamp("s", tz="UTC")), pa.date32())
            days = set(added.unique().to_pylist())
            if days and max(days) < _HISTORICAL and table == "events":
                days = set(t.column("SQLDATE").unique().to_pylist())
            elif days and min(days) < _HISTORICAL:
                return None
    except (pa.ArrowInvalid, OSError, KeyError):
        return None
    days.discard(None)
    return (table, days.pop()) if len(days) == 1 else None


def move_dated_rows(lake: Lake, table: str, column: str, keys: tuple[str, ...], schema: pa.Schema) -> int:
    """Move the rows of ``table``'s undated files whose ``column`` holds a day into that day's partition.

    Older versions kept the ``manifest`` as one file; this splits it by day. A row whose
    ``keys`` the day's partition already holds is not moved (the partition is newer); each
    day's partition is sorted by ``keys``; columns ``schema`` has and an old file lacks are
    added as nulls. The undated file is rewritten last, with the rows without a day, so a
    run killed midway is finished by running it again. Returns how many days were written.
    """
    files = lake.undated_files(table)
    if not files:
        return 0
    t = pa.concat_tables([pq.read_table(f) for f in files], promote_options="default")
    for f in schema:
        if f.name not in t.column_names and f.nullable:
            t = t.append_column(f.name, pa.nulls(t.num_rows, f.type))
    t = conform(t, schema, where=f"{table} (undated files)")
    dated = pc.is_valid(t.column(column))
    if not pc.any(dated).as_py():
        return 0
    rows = t.filter(dated).sort_by([(column, "ascending"), *((k, "ascending") for k in keys)])
    days = rows.column(column).cast(pa.date32()).to_numpy(zero_copy_only=False)
    cuts = [0, *(np.flatnonzero(days[1:] != days[:-1]) + 1).tolist(), len(days)]
    for lo, hi in zip(cuts[:-1], cuts[1:]):
        day, part = as_date(days[lo].item()), rows.slice(lo, hi - lo)
        if lake.has_partition(table, day):
            have = conform(lake.read(table, day, day), schema, where=f"{table} partition {day}")
            seen = _key_strings(have, keys)
            part = part.filter(pc.invert(pc.is_in(_key_strings(part, keys), value_set=seen)))
            part = pa.concat_tables([have, part]).sort_by([(k, "ascending") for k in keys])
        lake.write_partition(table, part, day, schema=schema)
    lake.write_undated(table, t.filter(pc.invert(dated)), schema=schema)
    return len(cuts) - 1


def _key_strings(t: pa.Table, keys: tuple[str, ...]) -> pa.Array:
    """One string per row joining its ``keys`` (for set look-ups)."""
    cols = [pc.cast(t.column(k), pa.string()) for k in keys]
    return pc.binary_join_element_wise(*cols, "\x00").combine_chunks() if len(cols) > 1 else cols[0].combine_chunks()


def _walk_days(base: Path, lo: str | None, hi: str | None) -> Iterator[tuple[str, Path]]:
    """(ISO day, folder) of the day folders under ``base`` (through any ``k=v`` levels) in [lo, hi]."""
    if lo is not None and hi is not None and hi >= lo:
        span = (dt.date.fromisoformat(hi) - dt.date.fromisoformat(lo)).days + 1
        if span <= 31 and _level_is_days(base):  # look the days up by path
            d0 = dt.date.fromisoformat(lo)
            for i in range(span):
                name = (d0 + dt.timedelta(days=i)).isoformat()
                if (base / name).is_dir():
                    yield name, base / name
            return
    try:
        entries = sorted(os.scandir(base), key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError):
        return
    for e in entries:
        if not e.is_dir():
            continue
        if e.name.startswith("date="):
            raise UserError(f"{base} holds {e.name}/: the lake's old layout; upgrade it once with "
                            f"`python -m pipeline.core.lake upgrade <lake root>`")
        if _is_day(e.name):
            if (lo is None or e.name >= lo) and (hi is None or e.name <= hi):
                yield e.name, Path(e.path)
        elif _is_key(e.name):
            yield from _walk_days(Path(e.path), lo, hi)


def _level_is_days(base: Path) -> bool:
    """Does ``base`` hold day folders (rather than ``k=v`` folders)? Looks at its first folder only."""
    try:
        with os.scandir(base) as it:
            for e in it:
                if e.is_dir() and not e.name.startswith(("_", ".")):
                    return _is_day(e.name)
    except (FileNotFoundError, NotADirectoryError):
        pass
    return True  # empty or absent: nothing to find either way


def _has_day_folders(base: Path) -> bool:
    """Does ``base`` hold at least one day folder?"""
    try:
        with os.scandir(base) as it:
            return any(e.is_dir() and _is_day(e.name) for e in it)
    except (FileNotFoundError, NotADirectoryError):
        return False


def _parquet_in(folder: Path) -> list[Path]:
    """The Parquet files directly in ``folder``, by name (``[]`` when absent)."""
    try:
        names = os.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [folder / n for n in sorted(names) if n.endswith(".parquet") and not n.startswith(("_", "."))]


def _undated_files(base: Path) -> list[Path]:
    """Parquet files of ``base`` outside day folders (tables without a date, through ``k=v`` levels)."""
    out = _parquet_in(base)
    try:
        entries = sorted(os.scandir(base), key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError):
        return out
    for e in entries:
        if e.is_dir() and _is_key(e.name) and not _is_day(e.name):
            out += _undated_files(Path(e.path))
    return out


def _flock(path: Path, blocking: bool) -> int | None:
    """An open descriptor holding an exclusive ``flock`` on ``path``; None if held elsewhere (``blocking=False``).

    Retries when ``path`` was unlinked (by its finished owner) between the open and the lock,
    so the lock held is always on the file the path names.
    """
    while True:
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            return None
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)
        if not blocking:
            return None


def _write_target(txn: Path, rel: Path) -> None:
    """Record the partition a transaction replaces (atomically, durably) before anything moves."""
    tmp = txn / "target.tmp"
    with open(tmp, "w") as fh:
        fh.write(rel.as_posix())
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, txn / "target")
    _fsync_dir(txn)


def _restore(root: Path, txn: Path) -> None:
    """Undo a transaction that moved its partition out but never moved the new one in."""
    target, old, new = txn / "target", txn / "old", txn / "new"
    if not (target.exists() and old.exists()):
        return
    final = root / target.read_text()
    if new.exists() and not final.exists():
        final.parent.mkdir(parents=True, exist_ok=True)
        os.rename(old, final)
        _fsync_dir(final.parent)


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


if __name__ == "__main__":  # python -m pipeline.core.lake upgrade <root>
    import sys

    if len(sys.argv) != 3 or sys.argv[1] != "upgrade":
        raise SystemExit("usage: python -m pipeline.core.lake upgrade <lake root>")
    print(upgrade(sys.argv[2]))
