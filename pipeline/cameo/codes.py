"""CAMEO and FIPS lookup tables, read once from ``pipeline/cameo/resources/``.

The files are GDELT's own (tab-separated, CRLF line endings, one header line
except ``FIPS.country.txt``). Codes are strings and keep their leading zeros
(``"010"``, ``"0871"``). Two known defects of GDELT's ``CAMEO.eventcodes.txt``
are repaired here, explicitly:

* code ``044`` reads ``Meet at a ÒhirdÓlocation`` (curly quotes mangled through
  MacRoman); it becomes ``Meet at a third location``;
* code ``106`` has no line of its own: it is glued to the end of ``1056``
  (``...engagement106:[-5.0] Demand withdrawal``); the line is split back into
  ``1056`` and ``106 Demand withdrawal`` (Goldstein −5.0);
* ``FIPS.country.txt`` names both ``GV`` and ``EK`` "Equatorial Guinea"; ``GV``
  is Guinea.

QuadClass per root code, as GDELT assigns it (checked against every row of the
shipped sample): 01–05 verbal cooperation (1), 06–09 material cooperation (2),
10–14 verbal conflict (3), 15–20 material conflict (4).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

RESOURCES = Path(__file__).resolve().parent / "resources"

ROOT_CODES: tuple[str, ...] = tuple(f"{i:02d}" for i in range(1, 21))
"""The 20 CAMEO root codes, ``"01"`` … ``"20"``."""

QUAD_CLASSES: dict[int, str] = {
    1: "Verbal Cooperation",
    2: "Material Cooperation",
    3: "Verbal Conflict",
    4: "Material Conflict",
}

_GLUED = re.compile(r"^(?P<desc>.*?)(?P<code>\d{2,4}):\[(?P<gold>-?\d+(?:\.\d+)?)\]\s*(?P<desc2>.+)$")
_FIPS_FIXES = {"GV": "Guinea"}  # GDELT's FIPS.country.txt names both GV and EK "Equatorial Guinea"
_TYPOS = {"matyerial": "material", "radiologicalweapons": "radiological weapons"}


@dataclass(frozen=True)
class EventCode:
    """One CAMEO event code.

    Attributes:
        code: ``"0871"`` (2 digits for a root, 3 for a base code, 4 for a sub-code).
        description: GDELT's text, repaired (``"Declare truce, ceasefire"``).
        root: root code ``"08"``; ``quad_class``: 1–4; ``goldstein``: −10 … +10.
    """

    code: str
    description: str
    root: str
    quad_class: int
    goldstein: float | None


def quad_class(root_code: str) -> int:
    """QuadClass (1–4) of a root code ``"01"`` … ``"20"`` (raises on anything else)."""
    try:
        r = int(root_code)
    except (TypeError, ValueError):
        r = -1
    if not 1 <= r <= 20 or len(str(root_code)) != 2:
        raise ValueError(f"not a CAMEO root code: {root_code!r} (expected '01' … '20')")
    return 1 if r <= 5 else 2 if r <= 9 else 3 if r <= 14 else 4


def root_of(code: str) -> str:
    """Root code of an event code: its first two digits (``"0871"`` → ``"08"``)."""
    return str(code)[:2]


def _read_tsv(name: str, header: bool = True) -> list[tuple[str, str]]:
    """(key, value) pairs of a two-column tab-separated resource; CRLF-safe."""
    text = (RESOURCES / name).read_text(encoding="utf-8")
    rows = []
    for i, line in enumerate(text.splitlines()):
        if (header and i == 0) or not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 2:
            raise ValueError(f"pipeline/cameo/resources/{name} line {i + 1}: expected 2 tab-separated fields, got {parts!r}")
        rows.append((parts[0].strip(), parts[1].strip()))
    return rows


def _repair(text: str) -> str:
    if any(q in text for q in ("Ò", "Ó", "“", "”")):  # 044: 'a “third” location' mangled
        text = re.sub(r"[Ò“]\s*t?hird\s*[Ó”]\s*", "third ", text)
        text = re.sub(r"[ÒÓ“”]", "", text)
    text = text.replace('"', "")
    for bad, good in _TYPOS.items():
        text = text.replace(bad, good)
    return re.sub(r"\s+", " ", text).strip()


@lru_cache(maxsize=1)
def event_codes() -> dict[str, EventCode]:
    """All CAMEO event codes (311 after the ``106`` repair), keyed by code, in file order."""
    gold: dict[str, float] = {}
    for code, value in _read_tsv("CAMEO.goldsteinscale.txt"):
        gold[code] = float(value)
    out: dict[str, EventCode] = {}

    def add(code: str, desc: str, g: float | None) -> None:
        if code in out:
            raise ValueError(f"pipeline/cameo/resources/CAMEO.eventcodes.txt: duplicate event code {code!r}")
        root = root_of(code)
        out[code] = EventCode(code, _repair(desc), root, quad_class(root), g)

    for code, desc in _read_tsv("CAMEO.eventcodes.txt"):
        m = _GLUED.match(desc)
        if m:  # "1056 ...engagement106:[-5.0] Demand withdrawal"
            add(code, m["desc"], gold.get(code))
            add(m["code"], m["desc2"], float(m["gold"]))
        else:
            add(code, desc, gold.get(code))
    return out


@lru_cache(maxsize=1)
def fips_countries() -> dict[str, str]:
    """FIPS 10-4 geo country code → name (``"IR"`` → ``"Iran"``), as GDELT spells it."""
    names = dict(_read_tsv("FIPS.country.txt", header=False))
    names.update(_FIPS_FIXES)
    return names


@lru_cache(maxsize=1)
def cameo_countries() -> dict[str, str]:
    """CAMEO 3-letter actor country code → name (``"IRN"`` → ``"Iran"``)."""
    return dict(_read_tsv("CAMEO.country.txt"))


def description(code: str) -> str:
    """Repaired description of an event code; unknown codes give ``"event <code>"``."""
    ev = event_codes().get(str(code))
    return ev.description if ev else f"event {code}"


def goldstein(code: str) -> float | None:
    """Goldstein scale (−10 … +10) of an event code, None when unknown."""
    ev = event_codes().get(str(code))
    return ev.goldstein if ev else None


def country_name(fips: str | None) -> str | None:
    """Readable name of a FIPS geo country code (``"UK"`` → ``"United Kingdom"``).

    ``"Korea, South"`` style names are turned around (``"South Korea"``);
    unknown codes give the code itself; None/empty gives None.
    """
    if fips is None or str(fips).strip() == "":
        return None
    name = fips_countries().get(str(fips).strip())
    if name is None:
        return str(fips).strip()
    if name.count(",") == 1:
        head, tail = (s.strip() for s in name.split(","))
        name = f"{tail} {head}"
    return name
