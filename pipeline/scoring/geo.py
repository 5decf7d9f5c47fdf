"""Country shapes for the report's world map, offline and keyed to the FIPS 10-4 codes GDELT uses.

The geometry ships with the project (``resources/world-110m.topo.json``): the
1:110m Natural Earth admin-0 countries (public domain) as pre-built TopoJSON
from the ``world-atlas`` npm package 2.0.2 (ISC licence, ``world-atlas.LICENSE``),
177 shapes, 108 KB. ``resources/world-110m-fips.csv`` keys each shape to the
FIPS codes whose events it shows; it was derived once from the ISO 3166
numeric id of each shape → ISO alpha-2 → FIPS 10-4 via
``pipeline/cameo/resources/fips-10-4-to-iso-country-codes.csv``, with these
mismatches settled by hand:

- one shape, several FIPS codes: Palestine = West Bank ``WE`` + Gaza ``GZ``;
  Australia = ``AS`` (not Ashmore ``AT`` / Coral Sea ``CR``); United Kingdom =
  ``UK`` (not Guernsey, Man, Jersey); a shape with several codes is coloured by
  the largest value among them.
- shapes without an ISO id, by name: N. Cyprus → ``CY``, Somaliland → ``SO``,
  Kosovo → ``KV`` (GDELT's FIPS code for Kosovo).
- FIPS countries too small for 1:110m (Singapore, Bahrain, Malta, most
  islands) have no shape: :func:`map_values` returns them apart, and the page
  lists them under the map so no forecast is hidden.

TopoJSON → GeoJSON follows the TopoJSON specification: arcs are delta-encoded
integer positions, ``x = i·scale_x + translate_x`` (same for y), and a negative
arc index ``~i`` means arc ``i`` reversed.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

RESOURCES = Path(__file__).resolve().parent / "resources"
TOPOJSON = RESOURCES / "world-110m.topo.json"
FIPS_TABLE = RESOURCES / "world-110m-fips.csv"


@dataclass(frozen=True)
class Shape:
    """One map shape: its ``key`` (the feature id Plotly matches), name and the FIPS codes it stands for."""

    key: str
    name: str
    fips: tuple[str, ...]


def decode_topojson(topo: Mapping[str, Any], obj: str = "countries", digits: int = 2) -> list[dict[str, Any]]:
    """TopoJSON object ``obj`` → GeoJSON features (coordinates in degrees, rounded to ``digits``).

    >>> t = {"transform": {"scale": [1, 1], "translate": [0, 0]}, "arcs": [[[0, 0], [1, 0], [0, 1], [-1, -1]]],
    ...      "objects": {"c": {"geometries": [{"type": "Polygon", "arcs": [[0]], "properties": {"name": "x"}}]}}}
    >>> decode_topojson(t, "c")[0]["geometry"]["coordinates"]
    [[[0, 0], [1, 0], [1, 1], [0, 0]]]
    """
    tr = topo.get("transform")
    sx, sy = tr["scale"] if tr else (1, 1)
    tx, ty = tr["translate"] if tr else (0, 0)
    arcs: list[list[list[float]]] = []
    for arc in topo["arcs"]:
        x = y = 0
        pts = []
        for dx, dy in arc:
            x, y = (x + dx, y + dy) if tr else (dx, dy)
            px, py = round(x * sx + tx, digits), round(y * sy + ty, digits)
            pts.append([int(px) if px == int(px) else px, int(py) if py == int(py) else py])
        arcs.append(pts)

    def ring(indices: list[int]) -> list[list[float]]:
        out: list[list[float]] = []
        for i in indices:
            pts = arcs[i] if i >= 0 else arcs[~i][::-1]
            out.extend(pts if not out else pts[1:])  # consecutive arcs share their end point
        return out

    features = []
    for g in topo["objects"][obj]["geometries"]:
        if g["type"] == "Polygon":
            coords: Any = [ring(r) for r in g["arcs"]]
        elif g["type"] == "MultiPolygon":
            coords = [[ring(r) for r in poly] for poly in g["arcs"]]
        else:
            continue
        features.append({"type": "Feature", "id": g.get("id"), "properties": dict(g.get("properties") or {}),
                         "geometry": {"type": g["type"], "coordinates": coords}})
    return features


@lru_cache(maxsize=1)
def shapes() -> tuple[Shape, ...]:
    """The shipped shapes with their FIPS codes (``world-110m-fips.csv``), in TopoJSON order."""
    with FIPS_TABLE.open(encoding="utf-8") as f:
        return tuple(Shape(key=r["name"], name=r["name"], fips=tuple(r["fips"].split())) for r in csv.DictReader(f))


@lru_cache(maxsize=1)
def world_geojson() -> dict[str, Any]:
    """The world as a GeoJSON FeatureCollection whose feature ``id`` is :attr:`Shape.key`."""
    topo = json.loads(TOPOJSON.read_text(encoding="utf-8"))
    feats = decode_topojson(topo, "countries")
    keyed = shapes()
    if len(feats) != len(keyed):
        raise ValueError(f"{TOPOJSON.name} has {len(feats)} shapes but {FIPS_TABLE.name} has {len(keyed)} rows")
    for f, s in zip(feats, keyed):
        if f["properties"].get("name") != s.name:
            raise ValueError(f"{FIPS_TABLE.name}: row {s.name!r} does not match shape {f['properties'].get('name')!r}")
        f["id"] = s.key
        f["properties"] = {"name": s.name, "fips": " ".join(s.fips)}
    return {"type": "FeatureCollection", "features": feats}


@dataclass
class MapValues:
    """Per-shape values for a choropleth, and the FIPS values that no shape shows."""

    keys: list[str]  # Shape.key of each coloured shape
    values: list[float]  # the largest value among the shape's FIPS codes
    source: list[str]  # the FIPS code that value came from
    off_map: dict[str, float]  # FIPS code → value, for countries without a shape


def map_values(values: Mapping[str, float]) -> MapValues:
    """FIPS code → value  ⟶  shape key → value (max over the shape's codes), plus the codes left off the map.

    >>> mv = map_values({"WE": 0.2, "GZ": 0.7, "SN": 0.5})
    >>> [(k, v, s) for k, v, s in zip(mv.keys, mv.values, mv.source)], mv.off_map
    ([('Palestine', 0.7, 'GZ')], {'SN': 0.5})
    """
    out = MapValues([], [], [], {})
    shown: set[str] = set()
    for s in shapes():
        have = [(values[c], c) for c in s.fips if c in values]
        if not have:
            continue
        v, c = max(have)
        out.keys.append(s.key)
        out.values.append(float(v))
        out.source.append(c)
        shown.update(c for _, c in have)
    out.off_map = {c: float(v) for c, v in sorted(values.items()) if c not in shown}
    return out
