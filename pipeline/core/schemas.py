"""Every lake table's schema, written once.

Codes (CAMEO event/actor codes, FIPS geo codes) are strings and keep their
leading zeros. Dates are ``date32``; DATEADDED is a UTC timestamp (GDELT 2.0
gives YYYYMMDDHHMMSS, GDELT 1.0 YYYYMMDD, read as midnight UTC).

Partitioning is by folder (``pipeline.core.lake``): a day's folder is named
``YYYY-MM-DD`` and its files also hold the ``date`` column (``date32``, last; not
part of the schemas below, ``Lake.write_partition`` adds it); other keys are Hive
folders (``model=<run>``) and are not stored in the files.
"""

from __future__ import annotations

import pyarrow as pa

# ---------------------------------------------------------------- raw layouts
_ACTOR = [
    "Code", "Name", "CountryCode", "KnownGroupCode", "EthnicCode",
    "Religion1Code", "Religion2Code", "Type1Code", "Type2Code", "Type3Code",
]


def _geo(prefix: str, adm2: bool) -> list[str]:
    cols = ["Type", "FullName", "CountryCode", "ADM1Code"] + (["ADM2Code"] if adm2 else []) + [
        "Lat", "Long", "FeatureID",
    ]
    return [f"{prefix}Geo_{c}" for c in cols]


def _layout(adm2: bool, sourceurl: bool) -> list[str]:
    cols = ["GLOBALEVENTID", "SQLDATE", "MonthYear", "Year", "FractionDate"]
    cols += [f"Actor1{c}" for c in _ACTOR] + [f"Actor2{c}" for c in _ACTOR]
    cols += [
        "IsRootEvent", "EventCode", "EventBaseCode", "EventRootCode", "QuadClass",
        "GoldsteinScale", "NumMentions", "NumSources", "NumArticles", "AvgTone",
    ]
    cols += _geo("Actor1", adm2) + _geo("Actor2", adm2) + _geo("Action", adm2)
    cols += ["DATEADDED"] + (["SOURCEURL"] if sourceurl else [])
    return cols


GDELT1_HISTORICAL_COLUMNS: list[str] = _layout(adm2=False, sourceurl=False)  # 57
GDELT1_DAILY_COLUMNS: list[str] = _layout(adm2=False, sourceurl=True)  # 58
GDELT2_COLUMNS: list[str] = _layout(adm2=True, sourceurl=True)  # 61
LAYOUTS: dict[int, list[str]] = {57: GDELT1_HISTORICAL_COLUMNS, 58: GDELT1_DAILY_COLUMNS, 61: GDELT2_COLUMNS}
assert sorted(LAYOUTS) == [57, 58, 61] and all(len(v) == k for k, v in LAYOUTS.items())

_INT_COLS = {"MonthYear": pa.int32(), "Year": pa.int16(), "QuadClass": pa.int8(),
             "NumMentions": pa.int32(), "NumSources": pa.int32(), "NumArticles": pa.int32(),
             "Actor1Geo_Type": pa.int8(), "Actor2Geo_Type": pa.int8(), "ActionGeo_Type": pa.int8()}
_FLOAT_COLS = {"FractionDate", "GoldsteinScale", "AvgTone",
               "Actor1Geo_Lat", "Actor1Geo_Long", "Actor2Geo_Lat", "Actor2Geo_Long",
               "ActionGeo_Lat", "ActionGeo_Long"}


def _event_type(name: str) -> pa.DataType:
    if name == "GLOBALEVENTID":
        return pa.int64()
    if name == "SQLDATE":
        return pa.date32()
    if name == "DATEADDED":
        return pa.timestamp("s", tz="UTC")
    if name == "IsRootEvent":
        return pa.bool_()
    if name in _INT_COLS:
        return _INT_COLS[name]
    if name in _FLOAT_COLS:
        return pa.float64()
    return pa.string()


EVENTS_SCHEMA: pa.Schema = pa.schema(
    [pa.field(c, _event_type(c), nullable=(c != "GLOBALEVENTID")) for c in GDELT2_COLUMNS]
)
"""``events`` table: one typed schema for all three layouts (57/58-column rows
get nulls for ADM2 codes and, for 57, SOURCEURL). Partition: DATEADDED day for
GDELT 2.0, the file's day for GDELT 1.0."""

SOURCE_FILE = "source_file"
LAKE_EVENTS_SCHEMA: pa.Schema = EVENTS_SCHEMA.append(pa.field(SOURCE_FILE, pa.string()))
"""What an ``events`` partition stores: the GDELT columns plus ``source_file``, the
name of the file (or BigQuery day) each row was kept from. It lets a re-ingest
of a changed file replace that file's rows; null in lakes written before it existed."""

# ------------------------------------------------------------------ country
COUNTRY_COLUMNS: list[str] = [
    "GLOBALEVENTID", "SQLDATE", "MonthYear", "Year", "FractionDate", "IsRootEvent",
    "EventCode", "EventBaseCode", "EventRootCode", "QuadClass", "GoldsteinScale",
    "Actor1Geo_CountryCode", "Actor2Geo_CountryCode", "Multi_Country_Flag",
    # needed downstream: location of the event, leak-free timing, salience
    "ActionGeo_CountryCode", "DATEADDED", "NumMentions",
]
COUNTRY_SCHEMA: pa.Schema = pa.schema(
    [
        pa.field(c, pa.bool_(), nullable=False) if c == "Multi_Country_Flag" else EVENTS_SCHEMA.field(c)
        for c in COUNTRY_COLUMNS
    ]
)
EVENT_COLUMNS: list[str] = [c for c in COUNTRY_COLUMNS if c != "Multi_Country_Flag"]
"""The ``events`` columns the reduction to ``country`` reads (16)."""
"""``country`` table: the 14 columns of the country dataset plus
ActionGeo_CountryCode, DATEADDED, NumMentions. Multi_Country_Flag is true when
both actor geo countries are known and differ. Same partitions as ``events``."""

# Later stages add their table schemas below (descriptors, embeddings,
# forecasts, scores, manifest, quarantine), each with a docstring.

# ------------------------------------------------------- manifest / quarantine
MANIFEST_SCHEMA: pa.Schema = pa.schema([
    pa.field("source", pa.string(), nullable=False),  # gdelt1 | gdelt2 | local | bigquery
    pa.field("name", pa.string(), nullable=False),  # file name (or query id for bigquery)
    pa.field("url", pa.string(), nullable=False),  # URL, absolute path, or table for bigquery
    pa.field("day", pa.date32()),  # the file's nominal day (from its name), null when unknown
    pa.field("md5", pa.string()),  # MD5 of the bytes read (hex)
    pa.field("expected_md5", pa.string()),  # from masterfilelist.txt / md5sums, null when unlisted
    pa.field("bytes", pa.int64()),  # size of the file as read (zip size for zips)
    pa.field("rows_kept", pa.int64(), nullable=False),  # rows written to ``events``
    pa.field("rows_quarantined", pa.int64(), nullable=False),  # rows sent to ``quarantine``
    pa.field("rows_duplicate", pa.int64(), nullable=False),  # rows whose GLOBALEVENTID was already kept
    pa.field("rows_out_of_range", pa.int64(), nullable=False),  # rows outside --start/--end (not written)
    pa.field("rows_replaced", pa.int64()),  # rows of an earlier ingest of this file removed before merging
    pa.field("status", pa.string(), nullable=False),  # ok | missing | failed | refused (URL not allowed) | partial (big file mid-way)
    pa.field("error", pa.string()),  # why the file failed or is missing
    pa.field("ingested_at", pa.timestamp("s", tz="UTC"), nullable=False),
])
"""``manifest`` table, partitioned by ``day`` (files without a day: the table's own
``part-0.parquet``): one row per source file ever ingested, keyed by (source, url)
(``MANIFEST_KEYS``). Re-running skips rows with status ``ok`` (local files: only when
their size is unchanged and no row was out of range; servers' files: when the
published MD5 is unchanged)."""
MANIFEST_KEYS: tuple[str, ...] = ("source", "url")

QUARANTINE_SCHEMA: pa.Schema = pa.schema([
    pa.field("source", pa.string(), nullable=False),
    pa.field("file", pa.string(), nullable=False),  # URL or path of the source file
    pa.field("line", pa.int64()),  # 1-based line in the file when known
    pa.field("reason", pa.string(), nullable=False),  # e.g. "wrong column count: 12 (expected 57, 58 or 61)"
    pa.field("column", pa.string()),  # offending column, when one is to blame
    pa.field("value", pa.string()),  # offending value (truncated to 200 chars)
    pa.field("raw", pa.string()),  # the raw row (non-UTF-8 bytes backslash-escaped), null for whole files
    pa.field("quarantined_at", pa.timestamp("s", tz="UTC"), nullable=False),
])
"""``quarantine`` table, partitioned by the file's nominal day (or the ingest
day when the name carries none): every rejected file or row with its reason.
Re-ingesting a file replaces its quarantine rows."""

# ------------------------------------------------------ descriptors / dataset
EMBEDDINGS_SCHEMA: pa.Schema = pa.schema([
    pa.field("phrase", pa.string(), nullable=False),
    pa.field("vector", pa.list_(pa.float32()), nullable=False),  # (D,) unit L2 norm
])
"""``embeddings`` table, partitioned ``embedder=<id>/batch=<hash>``: the phrase
cache of one embedding model (each phrase stored once per embedder)."""

DESCRIPTORS_SCHEMA: pa.Schema = pa.schema([
    pa.field("country", pa.string(), nullable=False),  # FIPS code of the event location (or actor country)
    pa.field("phrase", pa.string(), nullable=False),  # pipeline.cameo.phrases.make_phrase(actor1, code, actor2)
    pa.field("weight", pa.float32(), nullable=False),  # share of the kept cloud's mass; sums to 1 per country
    pa.field("count", pa.int32(), nullable=False),  # events with this phrase that day
    pa.field("mentions", pa.int64(), nullable=False),  # sum of their NumMentions
    pa.field("event_code", pa.string(), nullable=False),
    pa.field("actor1_country", pa.string()),  # FIPS, null when unknown
    pa.field("actor2_country", pa.string()),
])
"""``descriptors`` table, partitioned by ``date`` (DATEADDED day): one row per
point of each country-day cloud, ordered by country, weight desc, phrase."""

DESCRIPTOR_DAYS_SCHEMA: pa.Schema = pa.schema([
    pa.field("country", pa.string(), nullable=False),
    pa.field("n_events", pa.int32(), nullable=False),  # events of the country-day (all, before truncation)
    pa.field("n_points", pa.int32(), nullable=False),  # points kept in ``descriptors`` (≤ max_points)
    pa.field("small", pa.bool_(), nullable=False),  # n_points < min_points
    pa.field("root_hist", pa.list_(pa.float32()), nullable=False),  # [20] event shares of roots 01…20
    pa.field("quad_shares", pa.list_(pa.float32()), nullable=False),  # [4] event shares of QuadClass 1…4
    pa.field("goldstein_mean", pa.float32()),  # mean GoldsteinScale of the events, null if none known
    pa.field("target_phrases", pa.list_(pa.string()), nullable=False),  # 3–10 salient phrases, heaviest first
    pa.field("target_weights", pa.list_(pa.float32()), nullable=False),  # their (merged) share of the day's mass
    pa.field("event_codes", pa.list_(pa.string()), nullable=False),  # sorted set of event codes that occurred
    pa.field("root_codes", pa.list_(pa.string()), nullable=False),  # sorted set of root codes that occurred
    pa.field("n_phrases", pa.int32(), nullable=False),  # unique phrases before truncation to max_points
    pa.field("mentions", pa.int64(), nullable=False),  # sum of NumMentions
])
"""``descriptor_days`` table, partitioned by ``date`` (DATEADDED day): one row
per country-day with the set statistics and the target of that day."""

DATASET_INDEX_SCHEMA: pa.Schema = pa.schema([
    pa.field("split", pa.string(), nullable=False),  # train | val | test
    pa.field("country", pa.string(), nullable=False),
    pa.field("target_date", pa.date32(), nullable=False),  # day T+1 whose targets are predicted
    pa.field("context_start", pa.date32(), nullable=False),  # first context day (target_date − T)
    pa.field("context_days", pa.int32(), nullable=False),  # context days with a descriptor (≤ T)
    pa.field("n_targets", pa.int32(), nullable=False),  # target phrases
    pa.field("n_codes", pa.int32(), nullable=False),  # distinct event codes of the target day
])
"""``dataset`` table, partitioned ``name=<dataset name>``: one row per sequence
(the dataset manifest); ``_meta/dataset/name=<name>/manifest.json`` holds the counts and config."""

# ---------------------------------------------------------------- forecasts
ACTOR_PAIR_TYPE: pa.DataType = pa.struct([
    pa.field("actor1", pa.string()),  # FIPS code of Actor1's geo country, null when unknown
    pa.field("actor2", pa.string()),  # FIPS code of Actor2's geo country, null when unknown
    pa.field("share", pa.float32()),  # share of the label's landed phrases carrying this pair
])
FORECASTS_SCHEMA: pa.Schema = pa.schema([
    pa.field("country", pa.string(), nullable=False),  # FIPS code of the event location (ActionGeo)
    pa.field("level", pa.string(), nullable=False),  # event | base | root | quad
    pa.field("code", pa.string(), nullable=False),  # CAMEO event/base/root code, or QuadClass "1".."4"
    pa.field("description", pa.string()),
    pa.field("root_code", pa.string()),  # null for level quad
    pa.field("quad_class", pa.int8(), nullable=False),
    pa.field("probability", pa.float64(), nullable=False),  # P(the label occurs on the target day), in [0, 1]
    pa.field("actor_pairs", pa.list_(ACTOR_PAIR_TYPE)),  # most likely (actor1, actor2) countries, best first
    pa.field("n_futures", pa.int32(), nullable=False),  # K sampled futures (baselines: history days used)
    pa.field("model_run", pa.string(), nullable=False),  # model run id, or baseline-<name>
    pa.field("issued_at", pa.timestamp("s", tz="UTC"), nullable=False),
])
"""``forecasts`` table, partitioned ``model=<run>/date=<target day>``: the
probability that each CAMEO label occurs in a country on the target day (events
added that day, located by ActionGeo). Levels nest (event → base → root →
quad) and a parent's probability is at least any child's. Sparse: rows with
probability 0 are omitted at the event/base/root levels; the 4 quad rows are
always written, so every forecast country has rows."""

FUTURES_SCHEMA: pa.Schema = pa.schema([
    pa.field("country", pa.string(), nullable=False),
    pa.field("future", pa.int32(), nullable=False),  # 0 … K−1
    pa.field("phrases", pa.list_(pa.string()), nullable=False),  # the sampled future, split into phrases
    pa.field("codes", pa.list_(pa.string()), nullable=False),  # event code each phrase was projected onto
    pa.field("sampling_key", pa.string()),  # hash of what the sampling depended on (see forecast.sampling_key)
])
"""``futures`` table, partitioned ``model=<run>/date=<target day>``: the K
sampled futures behind a model forecast (for ROUGE and the report). A forecast
whose ``sampling_key`` matches (same weights, sampling settings, countries and
context partitions; only the calibration changed) reuses them instead of sampling again."""

# ------------------------------------------------------------------- scores
SCORES_SCHEMA: pa.Schema = pa.schema([
    pa.field("country", pa.string(), nullable=False),
    pa.field("level", pa.string(), nullable=False),  # event | base | root | quad
    pa.field("n_events", pa.int64(), nullable=False),  # events located in the country that day
    pa.field("busy", pa.bool_(), nullable=False),  # among the top_countries busiest before the evaluation
    pa.field("n_true", pa.int32(), nullable=False),  # labels that occurred
    pa.field("n_pred", pa.int32(), nullable=False),  # labels with probability >= threshold
    pa.field("threshold", pa.float64(), nullable=False),  # decision threshold (tuned on validation days)
    pa.field("brier", pa.float64(), nullable=False),  # mean over the level's labels of (p − y)²
    pa.field("log_loss", pa.float64(), nullable=False),  # mean binary log loss over the level's labels (nats)
    pa.field("precision", pa.float64(), nullable=False),  # MIRAI per-day precision (0 when nothing predicted)
    pa.field("recall", pa.float64(), nullable=False),  # MIRAI per-day recall (0 when nothing occurred)
    pa.field("f1", pa.float64(), nullable=False),
    pa.field("quad_kl", pa.float64()),  # KL(actual ‖ forecast) of QuadClass distributions (level quad only)
    pa.field("rouge1", pa.float64()),  # mean over futures of ROUGE F (model runs with futures only)
    pa.field("rouge2", pa.float64()),
    pa.field("rougeL", pa.float64()),
    pa.field("model_run", pa.string(), nullable=False),
])
"""``scores`` table, partitioned ``model=<run>/date=<target day>``: one row per
country × level of every evaluated forecast. Aggregate skill (Brier skill
scores, Glean weighted F1/F2, Hamming loss, reliability) is computed over many
rows and written by ``evaluate`` to ``reports/eval-<start>_<end>/``."""


# ---------------------------------------------------------------- watchlist
WATCHLIST_SCHEMA: pa.Schema = pa.schema([
    pa.field("list", pa.string(), nullable=False),  # rises | falls | conflict rises | conflict falls
    pa.field("rank", pa.int32(), nullable=False),  # 1-based within the list
    pa.field("direction", pa.string(), nullable=False),  # rise | fall
    pa.field("conflict", pa.bool_(), nullable=False),  # root 13–20, or QuadClass 3/4 at the quad level
    pa.field("country", pa.string(), nullable=False),  # FIPS 10-4
    pa.field("country_name", pa.string(), nullable=False),
    pa.field("region", pa.string(), nullable=False),  # UN region of the country (pipeline.cameo.regions)
    pa.field("level", pa.string(), nullable=False),  # root | event | quad
    pa.field("code", pa.string(), nullable=False),
    pa.field("description", pa.string()),
    pa.field("probability", pa.float64(), nullable=False),  # the run's P for the day
    pa.field("usual", pa.float64(), nullable=False),  # the reference it departs from
    pa.field("difference", pa.float64(), nullable=False),  # probability − usual
    pa.field("ratio", pa.float64(), nullable=False),  # (probability + 0.01) / (usual + 0.01)
    pa.field("climatology", pa.float64(), nullable=False),  # P of baseline-climatology
    pa.field("baseline", pa.float64(), nullable=False),  # P of the reference baseline
    pa.field("baseline_run", pa.string(), nullable=False),
    pa.field("against", pa.string(), nullable=False),  # the usual taken: climatology | both (WatchlistConfig.usual)
    pa.field("actors", pa.string(), nullable=False),  # most likely actor pairs, "A → B (50%); …"
    pa.field("phrases", pa.list_(pa.string()), nullable=False),  # phrases of the futures projected onto the label
    pa.field("phrase_shares", pa.list_(pa.float32())),  # each phrase's share of the country's futures (null: older)
    pa.field("model_run", pa.string(), nullable=False),
])
"""``watchlist`` table, partitioned ``model=<run>/<target day>``: the day's ranked
departures of ``run``'s forecasts from the usual (``pipeline.scoring.watchlist``),
four lists stacked, ``top`` rows each. The morning page and ``inspect watchlist`` read it. Partitions
written before ``against`` existed are read with it inferred from their rows, those written before
``phrase_shares`` with it empty (``pipeline.scoring.watchlist.read_watchlist``)."""


GAPS_SCHEMA = pa.schema([
    pa.field("source", pa.string()),  # the ingest source that had no data for the day
    pa.field("reason", pa.string()),
    pa.field("recorded_at", pa.timestamp("s", tz="UTC")),
])
"""``gaps`` table, partitioned by ``date``: one row per day that ingest found without
any data (a hole in GDELT, or a day emptied by cross-day dedupe). Written and read
by ``pipeline.core.status``; every later stage skips such a day."""


TABLE_SCHEMAS: dict[str, pa.Schema] = {
    "events": LAKE_EVENTS_SCHEMA, "country": COUNTRY_SCHEMA, "manifest": MANIFEST_SCHEMA,
    "quarantine": QUARANTINE_SCHEMA, "descriptors": DESCRIPTORS_SCHEMA, "descriptor_days": DESCRIPTOR_DAYS_SCHEMA,
    "forecasts": FORECASTS_SCHEMA, "futures": FUTURES_SCHEMA, "scores": SCORES_SCHEMA, "watchlist": WATCHLIST_SCHEMA,
}
"""The current schema of each dated lake table (the ``date`` column aside): what ``lake upgrade`` brings a partition
written before a column existed up to."""
COLUMN_DEFAULTS: dict[tuple[str, str], object] = {("watchlist", "against"): ""}
"""The value a non-nullable column added to a table later takes in its older partitions (``""`` = not recorded: the
watch list's reader then tells the usual from the rows)."""
