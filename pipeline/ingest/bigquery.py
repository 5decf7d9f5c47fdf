"""GDELT events from BigQuery: parameterised, pushed-down, cost-guarded queries.

Tables: ``gdelt-bq.gdeltv2.events_partitioned`` (GDELT 2.0, 61 columns,
ingestion-time partitioned; DATEADDED is ``YYYYMMDDHHMMSS``) and
``gdelt-bq.full.events`` (GDELT 1.0, 58 columns; DATEADDED ``YYYYMMDD``).

Every query
- selects only the columns asked for (column push-down),
- filters the days with query parameters (``@lo``/``@hi``, and ``_PARTITIONTIME``
  bounds on the partitioned table so only those partitions are scanned),
- is dry-run once first: the estimated bytes are printed, and a query that would
  scan more than ``IngestConfig.bigquery_max_bytes_billed`` is refused;
- runs with ``maximum_bytes_billed`` set, so BigQuery itself refuses an overrun.

Client methods used (a fake implementing just these is enough for tests):
``client.query(sql, job_config=QueryJobConfig) -> job``; ``job.total_bytes_processed``
(dry run); ``job.result().to_arrow()``.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.core.config import IngestConfig
from pipeline.core.errors import UserError
from pipeline.ingest.parse import DAY, DAILY_ERA, Parsed, first_added, from_strings
from pipeline.core.progress import console
from pipeline.core.schemas import EVENT_COLUMNS, GDELT1_DAILY_COLUMNS, GDELT2_COLUMNS
from pipeline.ingest.sources import SourceFile


class CostError(RuntimeError):
    """The dry run estimates more bytes than ``bigquery_max_bytes_billed`` allows."""


def _is_v2(table: str) -> bool:
    return "gdeltv2" in table


def columns_of(table: str) -> list[str]:
    """The event columns the BigQuery table has (61 for 2.0, 58 for 1.0)."""
    return GDELT2_COLUMNS if _is_v2(table) else GDELT1_DAILY_COLUMNS


def build_query(table: str, columns: list[str]) -> str:
    """SQL selecting ``columns`` of the days [@start, @end]; dates only as parameters.

    Parameters: ``start``/``end`` (DATE) and ``lo``/``hi`` (INT64, DATEADDED bounds).
    The 1.0 table's rows added before 2013-04-01 (historical backfiles) are
    selected by SQLDATE, matching the lake's partition rule.
    """
    if not all(c.replace("_", "").isalnum() for c in columns):
        raise ValueError(f"bad column list {columns!r}")
    if not all(part.replace("-", "").replace("_", "").isalnum() for part in table.split(".")):
        raise ValueError(f"bad BigQuery table name {table!r}")
    cols = ", ".join(columns)
    if _is_v2(table):
        where = "DATEADDED BETWEEN @lo AND @hi"
        if table.endswith("_partitioned"):
            # ingestion-time partitions can lag DATEADDED: one day of slack each side
            where = ("_PARTITIONTIME BETWEEN TIMESTAMP(DATE_SUB(@start, INTERVAL 1 DAY)) "
                     "AND TIMESTAMP(DATE_ADD(@end, INTERVAL 1 DAY)) AND " + where)
    else:
        era = int(DAILY_ERA.strftime("%Y%m%d"))
        where = (f"((DATEADDED >= {era} AND DATEADDED BETWEEN @lo AND @hi) OR "
                 f"(DATEADDED < {era} AND SQLDATE BETWEEN @lo AND @hi))")
    return f"SELECT {cols}\nFROM `{table}`\nWHERE {where}"


def _params(table: str, start: dt.date, end: dt.date) -> list[Any]:
    from google.cloud import bigquery

    if _is_v2(table):
        lo, hi = int(f"{start:%Y%m%d}000000"), int(f"{end:%Y%m%d}235959")
    else:
        lo, hi = int(f"{start:%Y%m%d}"), int(f"{end:%Y%m%d}")
    return [
        bigquery.ScalarQueryParameter("start", "DATE", start),
        bigquery.ScalarQueryParameter("end", "DATE", end),
        bigquery.ScalarQueryParameter("lo", "INT64", lo),
        bigquery.ScalarQueryParameter("hi", "INT64", hi),
    ]


def _client(client: Any, cfg: IngestConfig) -> Any:
    """``client``, or a ``bigquery.Client`` of ``cfg.bigquery_project``; ``UserError`` when credentials are unusable."""
    if client is not None:
        return client
    import google.auth.exceptions
    from google.cloud import bigquery

    try:
        return bigquery.Client(project=cfg.bigquery_project)
    except google.auth.exceptions.DefaultCredentialsError as exc:
        raise UserError(_credentials_message(exc)) from exc


def _credentials_message(exc: Exception) -> str:
    """One line saying which credentials failed and how to fix them (google-auth's message plus its cause)."""
    parts = [str(a) for a in exc.args] if exc.args else [str(exc)]
    detail = "; ".join(p.replace("\n", " ") for p in parts)[:300]
    path = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
    where = f"GOOGLE_APPLICATION_CREDENTIALS={path}" if path else "application default credentials"
    return (f"BigQuery credentials unusable ({where}): {detail}. Point GOOGLE_APPLICATION_CREDENTIALS at a valid "
            "service-account JSON key or run `gcloud auth application-default login`")


def dry_run(client: Any, cfg: IngestConfig, columns: list[str], start: dt.date, end: dt.date) -> int:
    """Estimated bytes the query of [start, end] scans; prints it; raises ``CostError`` over the guard."""
    from google.cloud import bigquery

    sql = build_query(cfg.bigquery_table, columns)
    job = client.query(sql, job_config=bigquery.QueryJobConfig(
        dry_run=True, use_query_cache=False, query_parameters=_params(cfg.bigquery_table, start, end)))
    est = int(job.total_bytes_processed or 0)
    console.print(f"BigQuery dry run: {cfg.bigquery_table} {start}…{end}, {len(columns)} columns → "
                  f"{est / 1e9:.2f} GB scanned (guard {cfg.bigquery_max_bytes_billed / 1e9:.2f} GB)")
    if est > cfg.bigquery_max_bytes_billed:
        raise CostError(f"BigQuery query of {cfg.bigquery_table} for {start}…{end} would scan {est:,} bytes, more "
                        f"than ingest.bigquery_max_bytes_billed={cfg.bigquery_max_bytes_billed:,}; narrow "
                        "--start/--end or raise the guard in the config")
    return est


def run_query(client: Any, cfg: IngestConfig, columns: list[str], start: dt.date, end: dt.date) -> pa.Table:
    """Run the query of [start, end] with the ``maximum_bytes_billed`` guard; Arrow result."""
    from google.cloud import bigquery

    job = client.query(build_query(cfg.bigquery_table, columns), job_config=bigquery.QueryJobConfig(
        maximum_bytes_billed=cfg.bigquery_max_bytes_billed,
        query_parameters=_params(cfg.bigquery_table, start, end)))
    return job.result().to_arrow()


def to_parsed(result: pa.Table, where: str) -> Parsed:
    """A BigQuery result (INT64 dates, INT64 flags) → ``Parsed`` events with ``_day``; bad rows quarantined."""
    strings = pa.table({c: result.column(c).cast(pa.string()) for c in result.column_names})
    return from_strings(strings, where)


# --------------------------------------------------------- ingest / reduce
def day_files(start: dt.date, end: dt.date, cfg: IngestConfig) -> list[SourceFile]:
    """One pseudo-file per day: the manifest records BigQuery days like files."""
    days = [start + dt.timedelta(i) for i in range((end - start).days + 1)]
    return [SourceFile("bigquery", f"bq://{cfg.bigquery_table}/{d}", f"{cfg.bigquery_table}:{d}", d) for d in days]


class Fetcher:
    """Dry-runs the whole range once, then fetches one day per call (thread safe)."""

    def __init__(self, client: Any, cfg: IngestConfig, start: dt.date, end: dt.date, todo: list[SourceFile]):
        self.client = _client(client, cfg) if todo else client
        self.cfg = cfg
        self.columns = columns_of(cfg.bigquery_table)
        self.estimated_bytes = None
        if todo:
            days = [f.day for f in todo]
            self.estimated_bytes = dry_run(self.client, cfg, self.columns, min(days), max(days))

    def fetch(self, f: SourceFile) -> tuple[Parsed, None]:
        """The events of ``f.day``; any BigQuery/transport error becomes ``OSError`` (the day is marked failed)."""
        try:
            result = run_query(self.client, self.cfg, self.columns, f.day, f.day)
        except UserError:
            raise
        except Exception as exc:  # google.api_core errors (bytes billed exceeded, auth, quota) and transport errors
            raise OSError(f"BigQuery query for {f.day} failed: {type(exc).__name__}: {exc}") from exc
        return to_parsed(result, f.url), None


def country_days(client: Any, cfg: IngestConfig, start: dt.date,
                 end: dt.date) -> Iterator[tuple[dt.date, str, pa.Table, list[dict]]]:
    """(day, query id, events with the reduction's 16 columns, quarantined rows), one query per day after one dry run.

    Duplicated GLOBALEVENTIDs keep their first DATEADDED, as in the lake. Rows that
    do not parse, or that belong to another day than the one queried, come back as
    quarantine rows (``pipeline.ingest.parse`` dicts) instead of events.
    """

    client = _client(client, cfg)
    dry_run(client, cfg, EVENT_COLUMNS, start, end)
    day = start
    while day <= end:
        where = f"bq://{cfg.bigquery_table}/{day}"
        parsed = to_parsed(run_query(client, cfg, EVENT_COLUMNS, day, day), where)
        quarantine = list(parsed.quarantine)
        ev = parsed.events
        other = pc.not_equal(ev[DAY], pa.scalar(day, pa.date32()))
        if pc.any(other).as_py():
            for row in ev.filter(other).select(["GLOBALEVENTID", DAY]).to_pylist():
                quarantine.append(dict(line=None, reason=f"row of {row[DAY]} returned by the query of {day}",
                                       column=DAY, value=str(row[DAY]), raw=f"GLOBALEVENTID={row['GLOBALEVENTID']}"))
            ev = ev.filter(pc.invert(other))
        yield day, where, first_added(ev).drop_columns([DAY]), quarantine
        day += dt.timedelta(days=1)
