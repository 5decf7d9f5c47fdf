"""Where a FIPS 10-4 country is: its UN region (M49 sub-region) and continent.

Read from ``resources/fips-regions.csv``, which ``scripts/make_regions.py``
generates from the ``country_converter`` package's country table (UN regions
and continents by ISO 3166 code) through the project's FIPS ↔ ISO table, with
the FIPS codes that have no ISO code settled by hand in that script (UK base
areas on Cyprus → Cyprus's region, Kosovo → coco's ``XK``, Netherlands Antilles →
Curaçao's, the Paracel / Spratly / southern Kuril islands by location, and
``Other`` for codes that name no country: oceans, undersea features, no man's
land, undesignated sovereignty). ``tests/test_regions.py`` checks that the
shipped table is what the script writes and that every FIPS code GDELT uses
has a region.

>>> region("GM"), continent("GM"), region("IS"), region("KV")
('Western Europe', 'Europe', 'Western Asia', 'Southern Europe')
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

OTHER = "Other"
"""Region and continent of a code the table does not place (no country, or unknown)."""


@dataclass(frozen=True)
class Place:
    """A FIPS code's region (e.g. ``Western Africa``) and continent (``Africa``, ``America``, ``Asia``, …)."""

    region: str
    continent: str


@lru_cache(maxsize=1)
def places() -> dict[str, Place]:
    """FIPS code → :class:`Place`, from ``resources/fips-regions.csv``."""
    with (resources.files("pipeline.cameo") / "resources" / "fips-regions.csv").open(encoding="utf-8") as f:
        return {r["fips"]: Place(r["region"], r["continent"]) for r in csv.DictReader(f)}


def place(fips: str | None) -> Place:
    """The :class:`Place` of a FIPS code; ``Other`` for None, empty or unknown codes."""
    return places().get(str(fips or "").strip(), Place(OTHER, OTHER))


def region(fips: str | None) -> str:
    return place(fips).region


def continent(fips: str | None) -> str:
    return place(fips).continent


def grouped(fips_codes: list[str] | set[str]) -> dict[str, list[str]]:
    """continent → its regions among ``fips_codes``, both sorted (``Other`` last): the page's region menu."""
    out: dict[str, set[str]] = {}
    for c in fips_codes:
        p = place(c)
        out.setdefault(p.continent, set()).add(p.region)
    key = lambda s: (s == OTHER, s)  # noqa: E731
    return {k: sorted(out[k], key=key) for k in sorted(out, key=key)}
