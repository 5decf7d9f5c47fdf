"""Daily descriptors: each country-day as a weighted cloud of phrases on the sphere.

For a day *d* and each country *c* this reads the ``country`` partition of *d*
and writes two partitions of *d* (with ``countries`` set, only those countries'
rows are replaced; the other countries already built that day are kept):

* ``descriptors`` — the source cloud: one row per unique phrase
  (:func:`pipeline.cameo.phrases.make_phrase` of Actor1 geo country, EventCode,
  Actor2 geo country) with its weight (event count, or NumMentions, by config),
  the heaviest ``max_points`` (10,000) kept, weights renormalised to sum to 1.
  Days with fewer than ``min_points`` (100) points are kept and flagged ``small``.
* ``descriptor_days`` — the set statistics (event count, root-code histogram,
  QuadClass shares, mean Goldstein) and the target: the 3–10 most salient
  phrases (heaviest first, near-duplicates with cosine ≥ ``dedup_cosine`` merged
  into the heavier one, as many as needed to cover ``target_mass`` of the day).

Leak-free rule: partition *d* of ``country`` holds the events *added to GDELT*
on day *d* (DATEADDED, UTC) whatever their SQLDATE, and a row whose DATEADDED
falls on another day is excluded (and counted), so a day's descriptor uses only
what was known by the end of that day.

A country-day's event is located by ``ActionGeo_CountryCode``; with
``include_actor_countries`` an event also counts for its actors' geo countries
(once per distinct country). Every phrase of the day is embedded through the
lake cache (``pipeline.features.embed``), which the dataset later reads.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.cameo import codes as cameo
from pipeline.cameo import phrases
from pipeline.core.config import DescriptorConfig
from pipeline.core.errors import UserError
from pipeline.features.embed import CacheStats, Embedder, embed_phrases
from pipeline.core.lake import DateLike, Lake, as_date, date_range
from pipeline.core.progress import track
from pipeline.core.schemas import DESCRIPTOR_DAYS_SCHEMA, DESCRIPTORS_SCHEMA

log = logging.getLogger(__name__)

_COLUMNS = ["GLOBALEVENTID", "EventCode", "EventRootCode", "QuadClass", "GoldsteinScale",
            "Actor1Geo_CountryCode", "Actor2Geo_CountryCode", "ActionGeo_CountryCode", "DATEADDED", "NumMentions"]


@dataclass
class DaySummary:
    """What one :func:`build_day` did (counts are rows of the ``country`` partition)."""

    date: dt.date
    rows: int = 0
    misdated: int = 0  # DATEADDED on another day than the partition: excluded (leak guard)
    unlocated: int = 0  # no country to assign (null ActionGeo and, if used, actor countries)
    uncoded: int = 0  # null/empty EventCode: no phrase
    countries: int = 0
    points: int = 0
    small: int = 0
    cache: CacheStats = field(default_factory=CacheStats)


# ------------------------------------------------------------------ reading
def _events(lake: Lake, day: dt.date, cfg: DescriptorConfig, summary: DaySummary) -> duckdb.DuckDBPyConnection:
    """DuckDB connection with view ``ev``: (country, event fields), one row per event × country."""
    if not lake.has_partition("country", day):
        raise FileNotFoundError(
            f"no country partition for {day} in {lake.root}/country; run `gdelt-forecast reduce --start {day} --end {day}`"
        )
    table = lake.read("country", day, day, columns=_COLUMNS)
    summary.rows = table.num_rows
    con = duckdb.connect()
    con.register("raw", table)
    # leak guard: the partition is the DATEADDED day; anything else is excluded and counted
    start = dt.datetime.combine(day, dt.time(), dt.timezone.utc)
    con.execute("CREATE TEMP TABLE okrows AS SELECT * FROM raw WHERE DATEADDED IS NULL OR "
                "(DATEADDED >= $1 AND DATEADDED < $2)", [start, start + dt.timedelta(days=1)])
    summary.misdated = table.num_rows - con.execute("SELECT count(*) FROM okrows").fetchall()[0][0]
    summary.uncoded = con.execute("SELECT count(*) FROM okrows WHERE coalesce(EventCode, '') = ''").fetchall()[0][0]
    located = "SELECT ActionGeo_CountryCode AS country, * FROM okrows WHERE ActionGeo_CountryCode IS NOT NULL"
    if cfg.include_actor_countries:
        located = f"""
            SELECT DISTINCT ON (GLOBALEVENTID, country) * FROM (
                {located}
                UNION ALL SELECT Actor1Geo_CountryCode AS country, * FROM okrows WHERE Actor1Geo_CountryCode IS NOT NULL
                UNION ALL SELECT Actor2Geo_CountryCode AS country, * FROM okrows WHERE Actor2Geo_CountryCode IS NOT NULL)"""
    where = "coalesce(EventCode, '') <> '' AND country <> ''"
    if cfg.countries:
        where += " AND country IN (SELECT unnest($1::VARCHAR[]))"
    con.execute(f"CREATE TEMP TABLE ev AS SELECT * FROM ({located}) WHERE {where}",
                [list(cfg.countries)] if cfg.countries else [])
    summary.unlocated = con.execute(
        "SELECT count(*) FROM okrows o WHERE coalesce(EventCode, '') <> '' AND NOT EXISTS "
        "(SELECT 1 FROM (SELECT GLOBALEVENTID FROM okrows WHERE ActionGeo_CountryCode IS NOT NULL"
        + (" OR Actor1Geo_CountryCode IS NOT NULL OR Actor2Geo_CountryCode IS NOT NULL" if cfg.include_actor_countries
           else "") + ") l WHERE l.GLOBALEVENTID = o.GLOBALEVENTID)"
    ).fetchall()[0][0]
    return con


def _points(con: duckdb.DuckDBPyConnection, cfg: DescriptorConfig) -> pa.Table:
    """All (country, phrase) points of the day with counts, mentions and weights (not truncated)."""
    t = con.sql("""
        SELECT country, Actor1Geo_CountryCode AS a1, EventCode AS code, Actor2Geo_CountryCode AS a2,
               count(*)::INTEGER AS count, coalesce(sum(NumMentions), 0)::BIGINT AS mentions,
               sum(coalesce(NumMentions, 1))::BIGINT AS mentions_w
        FROM ev GROUP BY ALL""").to_arrow_table()
    phrase = phrases.make_phrases(t["a1"].to_pylist(), t["code"].to_pylist(), t["a2"].to_pylist())
    con.register("pts", t.append_column("phrase", pa.array(phrase, pa.string())))
    w = "count" if cfg.weight == "count" else "mentions_w"
    # distinct codes can share a phrase (e.g. an unknown FIPS code shown as itself): merge, keep the heaviest triple
    out = con.sql(f"""
        SELECT country, phrase, sum(count)::INTEGER AS count, sum(mentions)::BIGINT AS mentions,
               sum({w})::DOUBLE AS mass,
               arg_max(code, ({w}, code)) AS event_code, arg_max(a1, ({w}, code)) AS actor1_country,
               arg_max(a2, ({w}, code)) AS actor2_country
        FROM pts GROUP BY country, phrase
        ORDER BY country, mass DESC, phrase""").to_arrow_table()
    return out


def _day_stats(con: duckdb.DuckDBPyConnection) -> dict[str, dict]:
    """country → n_events, mentions, root_hist[20], quad_shares[4], goldstein_mean, event/root code sets."""
    rows = con.execute("""
        SELECT country, count(*) AS n, coalesce(sum(NumMentions), 0) AS mentions,
               avg(GoldsteinScale) AS gold,
               list(DISTINCT EventCode ORDER BY EventCode) AS codes,
               histogram(left(EventCode, 2)) AS roots,
               histogram(QuadClass) AS quads
        FROM ev GROUP BY country""").fetchall()
    out = {}
    for country, n, mentions, gold, codes, roots, quads in rows:
        roots, quads = dict(roots), dict(quads)
        root_hist = np.array([roots.get(r, 0) for r in cameo.ROOT_CODES], np.float64)
        quad = np.array([quads.get(q, 0) for q in (1, 2, 3, 4)], np.float64)
        out[country] = dict(
            n_events=int(n), mentions=int(mentions), goldstein_mean=None if gold is None else float(gold),
            root_hist=(root_hist / max(root_hist.sum(), 1)).tolist(), quad_shares=(quad / max(quad.sum(), 1)).tolist(),
            event_codes=list(codes), root_codes=sorted(r for r in roots if r in cameo.ROOT_CODES),
        )
    return out


# ------------------------------------------------------------------ targets
def select_targets(vectors: np.ndarray, weights: np.ndarray, cfg: DescriptorConfig) -> list[tuple[int, float]]:
    """Salient points of one cloud: ``[(point index, merged weight)]``, heaviest first.

    Points are visited by decreasing weight (``vectors`` (N, D) unit, ``weights``
    (N,) in that order). A point with cosine ≥ ``cfg.dedup_cosine`` to a chosen
    target is merged into the closest one (its weight added); otherwise it
    becomes a new target. Stops once at least ``target_min`` targets cover
    ``target_mass`` of the weight, or ``target_max`` targets exist. Fewer than
    ``target_min`` only when the cloud has fewer distinct points.
    """
    chosen: list[int] = []
    mass: list[float] = []
    for i in range(len(weights)):
        if len(chosen) >= cfg.target_min and sum(mass) >= cfg.target_mass:
            break
        if chosen:
            cos = vectors[chosen] @ vectors[i]  # (len(chosen),)
            j = int(np.argmax(cos))
            if cos[j] >= cfg.dedup_cosine:
                mass[j] += float(weights[i])
                continue
        if len(chosen) == cfg.target_max:
            break
        chosen.append(i)
        mass.append(float(weights[i]))
    order = sorted(range(len(chosen)), key=lambda k: (-mass[k], chosen[k]))
    return [(chosen[k], mass[k]) for k in order]


# -------------------------------------------------------------------- build
def check_countries(codes: Sequence[str], flag: str, also_known: Collection[str] = ()) -> None:
    """Raise ``UserError`` naming every code of ``codes`` that is neither a FIPS 10-4 country nor in ``also_known``."""
    known = cameo.fips_countries()
    unknown = sorted({c for c in codes if c not in known and c not in also_known})
    if unknown:
        raise UserError(f"{flag}: unknown FIPS country code(s) {', '.join(unknown)}; GDELT uses FIPS 10-4 codes "
                        "(UK, TU, JA, IS, RS, UP, ...): see pipeline/cameo/resources/FIPS.country.txt")


def build_day(lake: Lake, day: DateLike, cfg: DescriptorConfig, embedder: Embedder) -> DaySummary:
    """Build (or rebuild) the ``descriptors`` and ``descriptor_days`` partitions of one day.

    Reads only ``country/date=<day>``; replaces both partitions atomically;
    deterministic (same input → identical rows).
    """
    if cfg.weight not in ("count", "mentions"):
        raise ValueError(f"descriptors.weight must be 'count' or 'mentions', got {cfg.weight!r}")
    if not 1 <= cfg.target_min <= cfg.target_max:
        raise ValueError(f"descriptors.target_min/target_max: need 1 ≤ {cfg.target_min} ≤ {cfg.target_max}")
    check_countries(cfg.countries, "descriptors.countries (--countries)")
    day = as_date(day)
    summary = DaySummary(day)
    con = _events(lake, day, cfg, summary)
    pts = _points(con, cfg)
    stats = _day_stats(con)

    country = pts["country"].to_numpy(zero_copy_only=False)
    mass = pts["mass"].to_numpy()
    starts = np.flatnonzero(np.r_[True, country[1:] != country[:-1]]) if len(country) else np.array([], int)
    bounds = list(zip(starts, np.r_[starts[1:], len(country)]))
    keep = np.zeros(len(country), bool)
    for a, b in bounds:
        keep[a:min(b, a + cfg.max_points)] = True
    kept = pts.filter(pa.array(keep))
    kept_phrases = kept["phrase"].to_pylist()
    vectors = embed_phrases(lake, embedder, kept_phrases, summary.cache)  # (P, D), warms the cache

    weight = np.zeros(len(kept_phrases), np.float32)
    days: list[dict] = []
    offset = 0
    for a, b in bounds:
        n = min(b - a, cfg.max_points)
        m = mass[a:a + n]
        w = m / m.sum()
        weight[offset:offset + n] = w
        c = str(country[a])
        targets = select_targets(vectors[offset:offset + n], w, cfg)
        days.append(dict(
            country=c, n_points=n, small=n < cfg.min_points, n_phrases=b - a,
            target_phrases=[kept_phrases[offset + i] for i, _ in targets],
            target_weights=[m_ for _, m_ in targets], **stats[c],
        ))
        offset += n

    desc = pa.table({
        "country": kept["country"], "phrase": kept["phrase"], "weight": pa.array(weight, pa.float32()),
        "count": kept["count"], "mentions": kept["mentions"], "event_code": kept["event_code"],
        "actor1_country": kept["actor1_country"], "actor2_country": kept["actor2_country"],
    })
    day_table = pa.Table.from_pylist(days, schema=DESCRIPTOR_DAYS_SCHEMA)
    if cfg.countries:  # replace only these countries; keep the others already built that day
        desc = _merge(lake, "descriptors", day, desc, DESCRIPTORS_SCHEMA, cfg.countries)
        day_table = _merge(lake, "descriptor_days", day, day_table, DESCRIPTOR_DAYS_SCHEMA, cfg.countries)
    lake.write_partition("descriptors", desc, day, schema=DESCRIPTORS_SCHEMA)
    lake.write_partition("descriptor_days", day_table, day, schema=DESCRIPTOR_DAYS_SCHEMA)

    summary.countries, summary.points = len(days), len(kept_phrases)
    summary.small = int(sum(d["small"] for d in days))
    if summary.misdated:
        log.warning("%s: %d country rows have DATEADDED outside the day and were excluded (leak guard)",
                    day, summary.misdated)
    return summary


def _merge(lake: Lake, table: str, day: dt.date, new: pa.Table, schema: pa.Schema, countries: list[str]) -> pa.Table:
    """``new`` plus the rows of other countries already in the partition, ordered by country (stable)."""
    if not lake.has_partition(table, day):
        return new
    old = lake.read(table, day, day, columns=schema.names)
    old = old.filter(pc.invert(pc.is_in(old["country"], value_set=pa.array(list(countries), pa.string()))))
    both = pa.concat_tables([old.cast(schema), new.cast(schema)])
    return both.take(pc.sort_indices(both, sort_keys=[("country", "ascending")]))  # Arrow sorts are stable


def build_range(lake: Lake, start: DateLike, end: DateLike, cfg: DescriptorConfig,
                embedder: Embedder) -> list[DaySummary]:
    """:func:`build_day` for every day in [start, end] that has a ``country`` partition."""
    check_countries(cfg.countries, "descriptors.countries (--countries)")
    have = set(lake.partitions("country"))
    days = [d for d in date_range(start, end) if d in have]
    if not days:
        raise FileNotFoundError(f"no country partitions in {lake.root}/country between {start} and {end}; run reduce")
    return [build_day(lake, d, cfg, embedder) for d in track(days, "descriptors")]


# ------------------------------------------------------------------ inspect
def describe_descriptors(lake: Lake, date: DateLike, country: str, top: int = 10) -> pa.Table:
    """The ``top`` heaviest points of one country-day with their weights and counts.

    Columns: rank, phrase, weight, count, mentions, event_code, target (bool).
    The day's statistics come as schema metadata (``n_events``, ``n_points``,
    ``small``, ``goldstein_mean``) — or use :func:`describe_day`.
    """
    day = as_date(date)
    country = country.strip().upper()  # FIPS codes are upper case; "us" means US
    check_countries([country], "--country")
    pts = lake.read("descriptors", day, day, columns=[f.name for f in DESCRIPTORS_SCHEMA])
    pts = pts.filter(pc.equal(pts["country"], country))
    if pts.num_rows == 0:
        raise UserError(f"no descriptors for country {country} on {day} in {lake.root}/descriptors "
                        f"(gdelt-forecast inspect descriptors --date {day} lists the day's partition)")
    info = describe_day(lake, day, country)
    targets = set(info["target_phrases"])
    pts = pts.slice(0, top)
    out = pa.table({
        "rank": pa.array(range(1, pts.num_rows + 1), pa.int32()), "phrase": pts["phrase"], "weight": pts["weight"],
        "count": pts["count"], "mentions": pts["mentions"], "event_code": pts["event_code"],
        "target": pa.array([p in targets for p in pts["phrase"].to_pylist()]),
    })
    meta = {k: str(info[k]) for k in ("n_events", "n_points", "small", "goldstein_mean")}
    return out.replace_schema_metadata(meta)


def describe_day(lake: Lake, date: DateLike, country: str) -> dict:
    """The ``descriptor_days`` row of one country-day as a dict."""
    day = as_date(date)
    country = country.strip().upper()
    t = lake.read("descriptor_days", day, day)
    t = t.filter(pc.equal(t["country"], country))
    if t.num_rows == 0:
        raise UserError(f"no descriptor_days row for country {country} on {day} in {lake.root}")
    return t.to_pylist()[0]
