"""Every lake table's schema, written once.

Codes (CAMEO event/actor codes, FIPS geo codes) are strings and keep their
leading zeros. Dates are ``date32``; DATEADDED is a UTC timestamp (GDELT 2.0
gives YYYYMMDDHHMMSS, GDELT 1.0 YYYYMMDD, read as midnight UTC).

Partitioning is by folder, Hive style (``date=YYYY-MM-DD``); the partition key
is *not* stored inside the Parquet files (readers add it from the path).
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
"""``country`` table: the 14 columns of the country dataset plus
ActionGeo_CountryCode, DATEADDED, NumMentions. Multi_Country_Flag is true when
both actor geo countries are known and differ. Same partitions as ``events``."""

# Later stages add their table schemas below (descriptors, embeddings,
# forecasts, scores, manifest, quarantine), each with a docstring.
