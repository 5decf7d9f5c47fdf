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


# ------------------------------------------------------------------ a pre-rendered map
LAT_RANGE = (-57.0, 84.0)
"""Latitudes shown (the Plotly map's ``lataxis.range``): Antarctica and the Arctic sea are cut off."""


def natural_earth(lon_deg: Any, lat_deg: Any) -> tuple[Any, Any]:
    """The Natural Earth projection (Šavrič, Patterson, Jenny & Hurni, *Cartographic Perspectives* 69, 2011),
    as d3-geo's ``geoNaturalEarth1`` (which Plotly's ``natural earth`` uses), on the unit sphere.

    With λ, φ in radians: x = λ (0.8707 − 0.131979 φ² + φ⁴ (−0.013791 + φ⁴ (0.003971 φ² − 0.001529 φ⁴))),
    y = φ (1.007226 + φ² (0.015085 + φ⁴ (−0.044475 + 0.028874 φ² − 0.005916 φ⁴))); y points north.

    On the equator x = 0.8707 λ, so the map is 0.8707 · 2π wide:

    >>> [round(float(v), 6) for v in natural_earth(180.0, 0.0)], round(float(natural_earth(0.0, 90.0)[1]), 6)
    ([2.735385, 0.0], 1.422391)
    """
    import numpy as np

    lam, phi = np.radians(lon_deg), np.radians(lat_deg)
    p2 = phi * phi
    p4 = p2 * p2
    x = lam * (0.8707 - 0.131979 * p2 + p4 * (-0.013791 + p4 * (0.003971 * p2 - 0.001529 * p4)))
    y = phi * (1.007226 + p2 * (0.015085 + p4 * (-0.044475 + 0.028874 * p2 - 0.005916 * p4)))
    return x, y


@dataclass(frozen=True)
class SvgWorld:
    """Every shape as an SVG path in a ``width`` × ``height`` box (x east, y down), Natural Earth projection.

    Paths reach outside the box (Antarctica below, rings across the antimeridian moved to its east
    side): draw them clipped to it.
    """

    width: float
    height: float
    paths: dict[str, str]  # Shape.key → path data ("M x y …Z" per ring)


@lru_cache(maxsize=1)
def svg_world(width: float = 1000.0, digits: int = 0) -> SvgWorld:
    """The shipped shapes projected (:func:`natural_earth`) and scaled so that longitudes −180…180 fill ``width``
    and latitudes :data:`LAT_RANGE` the height; coordinates rounded to ``digits`` (1 of 1000 ≈ 0.36°, about
    a pixel where the map is shown), as relative steps (``l``), so the paths weigh ≈ 50 KB."""
    import numpy as np

    x_max, _ = natural_earth(180.0, 0.0)
    _, y_top = natural_earth(0.0, LAT_RANGE[1])
    _, y_bottom = natural_earth(0.0, LAT_RANGE[0])
    k = width / (2 * float(x_max))
    height = round(k * float(y_top - y_bottom), digits)

    def ring(points: list[list[float]]) -> str:
        """One closed ring: an absolute move, then relative line steps between the rounded points."""
        a = np.asarray(points, dtype=np.float64)
        lon = a[:, 0]
        if lon.max() - lon.min() > 180:  # a ring across the antimeridian (Fiji, Chukotka): one side, clipped
            lon = np.where(lon < 0, lon + 360, lon)
        x, y = natural_earth(lon, a[:, 1])
        pts = np.stack([np.round(k * (x + x_max), digits), np.round(k * (y_top - y), digits)], axis=1)
        keep = np.ones(len(pts), bool)
        keep[1:] = np.any(pts[1:] != pts[:-1], axis=1)  # rounding merges neighbours: drop the repeats
        pts = pts[keep]
        steps = np.diff(pts, axis=0)
        rel = " ".join(f"{u:g} {v:g}" for u, v in steps)
        return f"M{pts[0, 0]:g} {pts[0, 1]:g}" + (f"l{rel}" if rel else "") + "z"

    paths = {}
    for f in world_geojson()["features"]:
        g = f["geometry"]
        polys = [g["coordinates"]] if g["type"] == "Polygon" else g["coordinates"]
        paths[f["id"]] = "".join(ring(r) for poly in polys for r in poly)
    return SvgWorld(width, height, paths)
