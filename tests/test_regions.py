"""FIPS 10-4 → UN region / continent: the shipped table is what scripts/make_regions.py writes from
country_converter, every FIPS code GDELT uses has a region, and the codes without an ISO one are settled."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from pipeline.cameo import codes as cameo
from pipeline.cameo import regions

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "make_regions.py"


def _script():
    spec = importlib.util.spec_from_file_location("make_regions", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_shipped_table_is_what_the_script_writes_from_country_converter():
    mod = _script()
    shipped = (Path(regions.__file__).parent / "resources" / "fips-regions.csv").read_text(encoding="utf-8")
    assert mod.render(mod.build()) == shipped


def test_every_gdelt_fips_code_has_a_region():
    places = regions.places()
    missing = sorted(set(cameo.fips_countries()) - set(places))
    assert missing == []
    other = sorted(c for c, p in places.items() if p.region == regions.OTHER)
    assert other == ["NM", "OS", "UF", "UU"]  # no man's land, oceans, undersea features, undesignated
    assert all(p.region and p.continent for p in places.values())


def test_fips_codes_that_differ_from_iso_and_the_hand_settled_ones():
    r = regions.region
    # FIPS ≠ ISO: Germany GM (DE), Israel IS (IL), Algeria AG (DZ), Namibia WA (NA, not a missing value)
    assert (r("GM"), r("IS"), r("AG"), r("WA")) == ("Western Europe", "Western Asia", "Northern Africa",
                                                     "Southern Africa")
    # coco keys Greece and the UK by a pattern (^GR$|^EL$, ^GB$|^UK$); Guernsey (FIPS GK, ISO GB) follows the UK
    assert (r("GR"), r("UK"), r("GK")) == ("Southern Europe", "Northern Europe", "Northern Europe")
    # no ISO code: Kosovo, the UK bases on Cyprus, the South China Sea islands, the Netherlands Antilles
    assert (r("KV"), r("AX"), r("DX"), r("PG"), r("NT")) == ("Southern Europe", "Western Asia", "Western Asia",
                                                              "South-eastern Asia", "Caribbean")
    assert regions.continent("KV") == "Europe" and regions.continent("US") == "America"
    assert regions.place(None) == regions.place("") == regions.place("ZZ") == regions.Place("Other", "Other")


def test_region_menu_groups_regions_by_continent():
    g = regions.grouped(["IS", "IR", "GM", "US", "UF", "SN"])
    assert g == {"America": ["Northern America"], "Asia": ["South-eastern Asia", "Southern Asia", "Western Asia"],
                 "Europe": ["Western Europe"], "Other": ["Other"]}
