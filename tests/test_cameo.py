"""CAMEO/FIPS lookups and event phrases (no model, no lake except the QuadClass check)."""

from __future__ import annotations

import pyarrow.compute as pc
import pytest

from pipeline.cameo import codes as cameo
from pipeline.cameo import phrases


def test_event_codes_are_strings_with_repairs():
    codes = cameo.event_codes()
    assert len(codes) == 311  # 310 lines + code 106 split out of line 1056
    assert all(isinstance(c, str) and c.isdigit() and 2 <= len(c) <= 4 for c in codes)
    assert "010" in codes and "0871" in codes and "10" not in [c for c in codes if len(c) == 1]
    assert codes["044"].description == "Meet at a third location"
    assert all(ev.description.isascii() for ev in codes.values())
    assert codes["106"].description == "Demand withdrawal" and codes["106"].goldstein == -5.0
    assert codes["1056"].description == "Demand de-escalation of military engagement"
    assert all(ev.goldstein is not None and -10 <= ev.goldstein <= 10 for ev in codes.values())
    assert all(ev.root == c[:2] for c, ev in codes.items())
    # every 4-digit code has its 3-digit base, every code its root
    assert all(c[:3] in codes for c in codes if len(c) == 4)
    assert all(c[:2] in codes for c in codes)


def test_quad_class_per_root():
    assert [cameo.quad_class(r) for r in cameo.ROOT_CODES] == [1] * 5 + [2] * 4 + [3] * 5 + [4] * 6
    for bad in ("00", "21", "1", "x", None):
        with pytest.raises(ValueError):
            cameo.quad_class(bad)


def test_quad_class_and_goldstein_match_real_rows(sample_lake):
    """Independent check: GDELT's own QuadClass/GoldsteinScale columns on every sample row."""
    t = sample_lake.read("country", columns=["EventCode", "EventRootCode", "QuadClass", "GoldsteinScale"])
    pairs = set(zip(t["EventRootCode"].to_pylist(), t["QuadClass"].to_pylist()))
    assert all(cameo.quad_class(r) == q for r, q in pairs)
    gold = {(c, g) for c, g in zip(t["EventCode"].to_pylist(), t["GoldsteinScale"].to_pylist()) if c}
    assert all(cameo.goldstein(c) == pytest.approx(g) for c, g in gold)
    assert pc.count_distinct(t["EventCode"]).as_py() > 150


def test_country_names():
    assert len(cameo.fips_countries()) == 274
    assert cameo.country_name("US") == "United States"
    assert cameo.country_name("KS") == "South Korea" and cameo.country_name("KN") == "North Korea"
    assert cameo.country_name("BF") == "The Bahamas"
    assert cameo.country_name("GV") == "Guinea" and cameo.country_name("EK") == "Equatorial Guinea"
    assert cameo.country_name(None) is None and cameo.country_name("") is None
    assert cameo.country_name("QQ") == "QQ"  # unknown code stands for itself
    assert cameo.cameo_countries()["IRN"] == "Iran"


@pytest.mark.parametrize("triple, text", [
    (("IR", "138", "IS"), "Iran threaten to use military force Israel"),
    (("US", "042", "CH"), "United States make a visit China"),
    (("UK", "010", None), "United Kingdom make statement"),
    ((None, "190", "UP"), "use conventional military force Ukraine"),
    ((None, "051", None), "praise or endorse"),
    (("KS", "1385", "KN"), "South Korea threaten attack with WMD North Korea"),
])
def test_phrase_examples_and_parse(triple, text):
    assert phrases.make_phrase(*triple) == text
    assert phrases.parse_phrase(text) == triple


def test_parse_inverts_make_on_all_codes():
    for i, code in enumerate(sorted(cameo.event_codes())):
        a1, a2 = [("US", "RS"), (None, "FR"), ("CH", None), (None, None)][i % 4]
        got = phrases.parse_phrase(phrases.make_phrase(a1, code, a2))
        assert got is not None and got[0] == a1 and got[2] == a2
        assert phrases.verb(got[1]) == phrases.verb(code)  # "02"/"020" read alike: the 3-digit code comes back
    assert phrases.parse_phrase("Atlantis conquer Mars") is None


def test_vocabulary_pieces_and_join_split():
    pieces = phrases.vocabulary_pieces()
    assert pieces == sorted(set(pieces))
    assert "Israel" in pieces and "make a visit" in pieces and "meet at a third location" in pieces
    assert all(phrases.PHRASE_SEP.strip() not in p for p in pieces)
    ps = [phrases.make_phrase("IR", "138", "IS"), phrases.make_phrase(None, "051", None), "praise or endorse"]
    text = phrases.join_phrases(ps)
    assert text == "Iran threaten to use military force Israel; praise or endorse; praise or endorse"
    assert phrases.split_phrases(text) == ps
    assert phrases.split_phrases(" ;a;; b ") == ["a", "b"]
