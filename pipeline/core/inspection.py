"""Look into the lake: tables, partitions, row counts, quarantine reasons, and SQL (DuckDB).

Row counts come from Parquet footers (no data is read); ``sql`` runs DuckDB
over one view per table (``Lake.duckdb``), so ``SELECT ... FROM events`` works.
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.core.lake import DateLike, Lake, as_date


def _rows_bytes(files: list) -> tuple[int, int]:
    rows = size = 0
    for f in files:
        rows += pq.ParquetFile(f).metadata.num_rows
        size += f.stat().st_size
    return rows, size


def tables(lake: Lake) -> list[dict]:
    """One dict per table: ``table``, ``partitions``, ``rows``, ``bytes``, ``first``, ``last`` (dates or None)."""
    out = []
    for t in lake.tables():
        files = lake.files(t)
        if not files:
            continue
        days = lake.partitions(t)
        rows, size = _rows_bytes(files)
        out.append(dict(table=t, partitions=len(days) if days else 1, rows=rows, bytes=size,
                        first=days[0] if days else None, last=days[-1] if days else None))
    return out


def partitions(lake: Lake, table: str, date: DateLike | None = None) -> list[dict]:
    """Rows and bytes of each partition of ``table`` (or of one ``date``)."""
    if table not in lake.tables():
        raise FileNotFoundError(f"no table {table!r} in {lake.root}; tables: {', '.join(lake.tables()) or 'none'}")
    out = []
    days = [as_date(date)] if date is not None else lake.partitions(table)
    for d in days:
        rows, size = _rows_bytes(lake.files(table, d, d))
        out.append(dict(date=d, rows=rows, bytes=size))
    return out


def quarantine_summary(lake: Lake) -> list[dict]:
    """Quarantined rows/files grouped by source and reason, most frequent first."""
    if "quarantine" not in lake.tables() or not lake.files("quarantine"):
        return []
    con = lake.duckdb(["quarantine"])
    rows = con.execute(
        "SELECT source, regexp_replace(reason, '[0-9]+', 'N', 'g') AS reason, count(*) AS n, "
        "count(DISTINCT file) AS files FROM quarantine GROUP BY ALL ORDER BY n DESC, reason").fetchall()
    return [dict(source=s, reason=r, rows=n, files=f) for s, r, n, f in rows]


def manifest_summary(lake: Lake) -> list[dict]:
    """Files per source and status with their row counts."""
    if not lake.files("manifest"):
        return []
    con = lake.duckdb(["manifest"])
    rows = con.execute(
        "SELECT source, status, count(*), sum(rows_kept), sum(rows_quarantined), sum(rows_duplicate) "
        "FROM manifest GROUP BY ALL ORDER BY source, status").fetchall()
    return [dict(source=a, status=b, files=c, rows_kept=d, rows_quarantined=e, rows_duplicate=f)
            for a, b, c, d, e, f in rows]


def coverage_summary(lake: Lake, min_share: float) -> list[dict]:
    """The days holding fewer GDELT 2.0 exports than ``min_share`` (``flow.min_day_share``) or the lake's
    ``leave_out_share`` of their usual, and how they are read: as they are (their counts read low), or left out as
    a gap (:mod:`pipeline.core.coverage`). Days without any export counted (gaps, other sources) are not listed."""
    from pipeline.core.coverage import coverages

    return [dict(day=c.day, exports=c.exports, usual=c.usual, share=f"{c.share:.0%}",
                 read="left out, as a gap" if c.thin(lake.leave_out_share) else "as it is (counts read low)")
            for c in coverages(lake) if c.thin(max(min_share, lake.leave_out_share))]


def sql(lake: Lake, query: str) -> pa.Table:
    """Run ``query`` with DuckDB over the lake's views; the result as Arrow."""
    return lake.duckdb().sql(query).to_arrow_table()


def fmt_value(v: object) -> str:
    if isinstance(v, float):
        return f"{v:,.4g}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    if isinstance(v, (dt.date, dt.datetime)):
        return v.isoformat()
    return "" if v is None else str(v)
