"""Reduce ``events`` to the ``country`` table (14 columns + 3), one partition per day.

    reduce(lake, "2025-05-16", "2025-06-06")

Per day: read the 16 needed event columns, add
``Multi_Country_Flag = Actor1Geo_CountryCode and Actor2Geo_CountryCode are both
known (non-null, non-empty) and differ``, validate against ``COUNTRY_SCHEMA``
and replace the day's ``country`` partition atomically. Days run on a small
thread pool (Parquet decoding and encoding release the GIL).

``reduce(..., source="bigquery", client=...)`` produces the same partitions
straight from BigQuery, without an ``events`` table (only these columns are
queried, so the scan is a fraction of the full table). Rows that do not parse
go to the ``quarantine`` table (file ``bq://<table>/<day>``) and are counted in
the report.
"""

from __future__ import annotations

import datetime as dt
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.core.config import IngestConfig
from pipeline.core.lake import DateLike, Lake, as_date
from pipeline.core.schemas import COUNTRY_COLUMNS, COUNTRY_SCHEMA, EVENT_COLUMNS


@dataclass
class ReduceReport:
    """Rows written per day, and the days of the range that had no ``events`` partition."""

    start: dt.date
    end: dt.date
    days: dict[dt.date, int] = field(default_factory=dict)
    missing: list[dt.date] = field(default_factory=list)
    removed: list[dt.date] = field(default_factory=list)
    """Days whose ``country`` partition was deleted because their ``events`` partition is gone
    (e.g. emptied by cross-day dedupe): ``country`` follows ``events``."""
    quarantined: dict[dt.date, int] = field(default_factory=dict)
    """BigQuery only: rows per day that did not parse (written to the ``quarantine`` table)."""
    seconds: float = 0.0

    @property
    def rows(self) -> int:
        return sum(self.days.values())


def to_country(events: pa.Table) -> pa.Table:
    """Events (at least ``EVENT_COLUMNS``) → ``COUNTRY_SCHEMA`` table, same rows and order."""
    a1, a2 = events.column("Actor1Geo_CountryCode"), events.column("Actor2Geo_CountryCode")
    known = pc.and_(pc.and_(pc.is_valid(a1), pc.is_valid(a2)),
                    pc.and_(pc.not_equal(pc.utf8_length(pc.fill_null(a1, "")), 0),
                            pc.not_equal(pc.utf8_length(pc.fill_null(a2, "")), 0)))
    flag = pc.fill_null(pc.and_(known, pc.not_equal(a1, a2)), False)
    cols = [flag if c == "Multi_Country_Flag" else events.column(c) for c in COUNTRY_COLUMNS]
    table = pa.Table.from_arrays(cols, names=COUNTRY_COLUMNS)
    return table.cast(COUNTRY_SCHEMA)


def reduce_day(lake: Lake, day: dt.date) -> int:
    """Rewrite the ``country`` partition of ``day`` from its ``events`` partition; returns rows."""
    events = lake.read("events", day, day, columns=EVENT_COLUMNS)
    lake.write_partition("country", to_country(events), day, schema=COUNTRY_SCHEMA)
    return events.num_rows


def reduce(
    lake: Lake,
    start: DateLike,
    end: DateLike,
    *,
    source: str = "lake",
    client: Any = None,
    cfg: IngestConfig | None = None,
    workers: int = 4,
) -> ReduceReport:
    """Build ``country`` partitions for the days [start, end].

    Args:
        lake: reads ``events`` (``source="lake"``) and writes ``country``.
        start, end: inclusive day range.
        source: ``lake`` (from ``events``) or ``bigquery`` (query only the needed columns).
        client: BigQuery client (or a fake) for ``source="bigquery"``.
        cfg: BigQuery table, billing project and ``maximum_bytes_billed`` guard.
        workers: days reduced at once.
    Returns:
        ReduceReport: rows per day; days without ``events`` are listed in ``missing`` (not an
        error), and a ``country`` partition left from an earlier run on such a day is deleted.
    """
    t0 = time.perf_counter()
    lo, hi = as_date(start), as_date(end)
    if hi < lo:
        raise ValueError(f"--end {hi} is before --start {lo}")
    report = ReduceReport(lo, hi)
    if source == "bigquery":
        from pipeline.ingest import bigquery

        from pipeline.ingest.manifest import write_quarantine

        for day, where, events, bad in bigquery.country_days(client, cfg or IngestConfig(), lo, hi):
            now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
            write_quarantine(lake, day, {where}, [dict(source="bigquery", file=where, quarantined_at=now, **q)
                                                  for q in bad])
            lake.write_partition("country", to_country(events), day, schema=COUNTRY_SCHEMA)
            report.days[day] = events.num_rows
            if bad:
                report.quarantined[day] = len(bad)
    elif source == "lake":
        have = set(lake.partitions("events", lo, hi))
        days = [d for d in (lo + dt.timedelta(i) for i in range((hi - lo).days + 1))]
        report.missing = [d for d in days if d not in have]
        todo = [d for d in days if d in have]
        if lake.table_dir("events").exists():  # a lake reduced from BigQuery has no events to follow
            stale = set(lake.partitions("country", lo, hi)) - have
            report.removed = [d for d in sorted(stale) if lake.delete_partition("country", d)]
        with ThreadPoolExecutor(max(1, workers)) as pool:
            for day, rows in zip(todo, pool.map(lambda d: reduce_day(lake, d), todo)):
                report.days[day] = rows
    else:
        raise ValueError(f"unknown reduce source {source!r}; choose lake or bigquery")
    report.seconds = time.perf_counter() - t0
    return report
