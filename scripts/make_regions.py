"""Write ``pipeline/cameo/resources/fips-regions.csv``: every FIPS 10-4 code GDELT uses → UN region and continent.

Source: the ``country_converter`` package (``coco``, PyPI, GPL-3 data file
``country_data.tsv``: UN M49 sub-regions as ``UNregion`` and ``continent``),
reached from FIPS through the project's FIPS ↔ ISO 3166 table
(``pipeline/cameo/resources/fips-10-4-to-iso-country-codes.csv``). coco's ISO2
column holds regular expressions for a few countries (``^GR$|^EL$``), matched
in full as coco does.

FIPS codes with no ISO code are settled by hand (``MANUAL`` below, each with its
reason); codes that name no country (oceans, undersea features, no man's land)
get the region ``Other``. Usage::

    pip install country_converter && python scripts/make_regions.py [--check]

``--check`` exits 1 when the shipped table differs from what the script would write
(``tests/test_regions.py`` runs the same comparison).
"""

from __future__ import annotations

import argparse
import csv
import io
import re
import sys
from importlib import resources
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "pipeline" / "cameo" / "resources" / "fips-regions.csv"
FIPS_ISO = REPO / "pipeline" / "cameo" / "resources" / "fips-10-4-to-iso-country-codes.csv"
FIPS_NAMES = REPO / "pipeline" / "cameo" / "resources" / "FIPS.country.txt"
COLUMNS = ["fips", "name", "iso2", "region", "continent", "source"]
OTHER = "Other"

MANUAL: dict[str, tuple[str, str, str]] = {
    # FIPS: (ISO2 whose region is used, or "" when the region is given, region or "", reason)
    "AX": ("CY", "", "UK base area on Cyprus: Cyprus's region"),
    "DX": ("CY", "", "UK base area on Cyprus: Cyprus's region"),
    "KV": ("XK", "", "Kosovo: no ISO 3166 code; coco's user-assigned XK"),
    "NT": ("CW", "", "Netherlands Antilles (dissolved 2010): Curaçao's region"),
    "PJ": ("", "Eastern Asia|Asia", "southern Kuril Islands: located in Eastern Asia"),
    "PF": ("", "South-eastern Asia|Asia", "Paracel Islands (South China Sea): located in South-eastern Asia"),
    "PG": ("", "South-eastern Asia|Asia", "Spratly Islands (South China Sea): located in South-eastern Asia"),
    "NM": ("", f"{OTHER}|{OTHER}", "no man's land: no country"),
    "OS": ("", f"{OTHER}|{OTHER}", "oceans: no country"),
    "UF": ("", f"{OTHER}|{OTHER}", "undersea features: no country"),
    "UU": ("", f"{OTHER}|{OTHER}", "undesignated sovereignty: no country"),
}


def coco_table() -> list[dict[str, str]]:
    """coco's ``country_data.tsv`` rows (read with every value a string: ``NA`` is Namibia, not missing)."""
    text = (resources.files("country_converter") / "country_data.tsv").read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text), delimiter="\t"))


def iso_lookup(rows: list[dict[str, str]]) -> dict[str, tuple[str, str]]:
    """A function of ISO2 → (UN region, continent) over coco's rows, as a dict of every ISO2 it matches."""
    out: dict[str, tuple[str, str]] = {}
    for r in rows:
        pattern = r["ISO2"]
        codes = re.findall(r"[A-Z]{2}", pattern) if any(ch in pattern for ch in "^$|") else [pattern]
        for code in codes:
            if re.fullmatch(pattern, code, flags=re.IGNORECASE):
                out.setdefault(code.upper(), (r["UNregion"], r["continent"]))
    return out


def fips_codes() -> dict[str, tuple[str, str]]:
    """FIPS code → (name, ISO2 or "") over GDELT's FIPS list and the FIPS ↔ ISO table."""
    out: dict[str, tuple[str, str]] = {}
    with FIPS_NAMES.open(encoding="utf-8") as f:
        for row in csv.reader(f, delimiter="\t"):
            if len(row) >= 2 and row[0].strip():
                out[row[0].strip()] = (row[1].strip(), "")
    with FIPS_ISO.open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            fips, iso = row["FIPS 10-4"].strip(), row["ISO 3166"].strip()
            if fips == "-":
                continue  # an ISO code without a FIPS one: GDELT never uses it
            name = out.get(fips, (row["Name"], ""))[0]
            out[fips] = (name, "" if iso == "-" else iso)
    return out


def build() -> list[dict[str, str]]:
    """The table's rows, sorted by FIPS code. Raises when a FIPS code can be placed in no region."""
    lookup = iso_lookup(coco_table())
    rows, unplaced = [], []
    for fips, (name, iso) in sorted(fips_codes().items()):
        if fips in MANUAL:
            via, given, reason = MANUAL[fips]
            if via:
                region, continent = lookup[via]
            else:
                region, continent = given.split("|")
            rows.append(dict(fips=fips, name=name, iso2=iso, region=region, continent=continent,
                             source=f"manual: {reason}"))
        elif iso and iso in lookup and lookup[iso][0]:
            region, continent = lookup[iso]
            rows.append(dict(fips=fips, name=name, iso2=iso, region=region, continent=continent, source="coco"))
        else:
            unplaced.append(f"{fips} ({name}, ISO {iso or '-'})")
    if unplaced:
        raise SystemExit(f"no region for {', '.join(unplaced)}: add them to MANUAL in {Path(__file__).name}")
    return rows


def render(rows: list[dict[str, str]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="Compare with the shipped table instead of writing it.")
    a = ap.parse_args()
    text = render(build())
    if a.check:
        same = OUT.exists() and OUT.read_text(encoding="utf-8") == text
        print(f"{OUT.relative_to(REPO)} {'is up to date' if same else 'differs: run scripts/make_regions.py'}")
        return 0 if same else 1
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT.relative_to(REPO)}: {text.count(chr(10)) - 1} FIPS codes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
