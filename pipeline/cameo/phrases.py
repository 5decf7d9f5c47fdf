"""One short English phrase per event: who did what to whom.

A phrase joins the actors' geo-country names (FIPS 10-4, the codes of the
``Actor1Geo_CountryCode`` / ``Actor2Geo_CountryCode`` columns) and the event
code's CAMEO description turned into a verb phrase::

    ("IR", "138", "IS")  →  "Iran threaten to use military force Israel"
    ("US", "042", "CH")  →  "United States make a visit China"
    ("UK", "010", None)  →  "United Kingdom make statement"
    (None, "190", "UP")  →  "use conventional military force Ukraine"
    (None, "051", None)  →  "praise or endorse"

Rules (deterministic):

* verb = the description with ``", not specified below"`` removed, the first
  letter lowered (all-caps root descriptions are lowered entirely), spaces
  collapsed; unknown codes read ``"event <code>"``;
* ``phrase = " ".join([actor1 name, verb, actor2 name])`` leaving out missing
  actors: a missing Actor1 makes the phrase start with the (lower-case) verb, so
  roles stay readable and :func:`parse_phrase` can invert it;
* country names are GDELT's FIPS names, ``"Korea, South"`` turned into
  ``"South Korea"``; unknown codes stand for themselves.

The vocabulary is closed (countries × codes × countries): the embedding cache
(``pipeline.features.embed``) stores each phrase once. Several phrases of generated text
are joined with :data:`PHRASE_SEP` (``"; "``); no verb or name contains ``";"``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

from pipeline.cameo import codes as cameo

PHRASE_SEP = "; "
"""Separator of phrases in one text (target text, generated text)."""

_NOT_SPECIFIED = re.compile(r",?\s*not specified below\s*$", re.IGNORECASE)


def verb(code: str) -> str:
    """The verb phrase of an event code (``"0871"`` → ``"declare truce, ceasefire"``)."""
    ev = cameo.event_codes().get(str(code))
    if ev is None:
        return f"event {code}"
    text = _NOT_SPECIFIED.sub("", ev.description).strip()
    if text.isupper():
        return text.lower()
    if len(text) > 1 and text[1].isupper():  # an acronym leads: keep it
        return text
    return text[:1].lower() + text[1:]


def make_phrase(actor1: str | None, code: str, actor2: str | None) -> str:
    """Phrase of one event from FIPS actor geo countries and its CAMEO event code."""
    parts = [cameo.country_name(actor1), verb(code), cameo.country_name(actor2)]
    return " ".join(p for p in parts if p)


def make_phrases(actor1: list[str | None], codes: list[str], actor2: list[str | None]) -> list[str]:
    """Vectorised :func:`make_phrase` over aligned lists (memoised per triple)."""
    return [_phrase(a, c, b) for a, c, b in zip(actor1, codes, actor2, strict=True)]


@lru_cache(maxsize=1_000_000)
def _phrase(actor1: str | None, code: str, actor2: str | None) -> str:
    return make_phrase(actor1, code, actor2)


@lru_cache(maxsize=1)
def _verb_to_code() -> dict[str, str]:
    # Several root codes read like their "X0" child ("02 APPEAL" / "020 Appeal,
    # not specified below" → "appeal"): the 3/4-digit code wins, as GDELT rows use it.
    out: dict[str, str] = {}
    for code in sorted(cameo.event_codes(), key=lambda c: (len(c) == 2, c)):
        out.setdefault(verb(code), code)
    return out


@lru_cache(maxsize=1)
def _name_to_fips() -> dict[str, str]:
    out: dict[str, str] = {}
    for code in sorted(cameo.fips_countries()):
        out.setdefault(cameo.country_name(code), code)  # type: ignore[arg-type]
    return out


def parse_phrase(phrase: str) -> tuple[str | None, str, str | None] | None:
    """Invert :func:`make_phrase`: ``(actor1 FIPS, event code, actor2 FIPS)`` or None.

    Matches the longest known verb such that what precedes and follows it are
    known country names (or empty). Generated text that is not an exact phrase
    of the closed vocabulary gives None.
    """
    phrase = " ".join(phrase.split())
    names = _name_to_fips()
    best: tuple[str | None, str, str | None] | None = None
    best_len = -1
    for v, code in _verb_to_code().items():
        start = phrase.find(v)
        while start >= 0:
            head, tail = phrase[:start].strip(), phrase[start + len(v):].strip()
            ok_head = head == "" or (head in names and phrase[start - 1] == " ")
            ok_tail = tail == "" or (tail in names and phrase[start + len(v)] == " ")
            if ok_head and ok_tail and len(v) > best_len:
                best = (names.get(head), code, names.get(tail))
                best_len = len(v)
            start = phrase.find(v, start + 1)
    return best


@lru_cache(maxsize=1)
def _names_longest_first() -> list[str]:
    return sorted((n for n in _name_to_fips() if n), key=len, reverse=True)


def split_actors(phrase: str) -> tuple[str | None, str, str | None]:
    """``"Iran threaten to use military force Israel"`` → ``("IR", "threaten to use military force", "IS")``.

    The longest country name opening (closing) the phrase, followed (preceded)
    by a space, is Actor1 (Actor2); what remains is the action text. A phrase
    that is only a name keeps it as its action text (no actors). Unlike
    :func:`parse_phrase` it accepts any action text (generated futures).
    """
    text = " ".join(phrase.split())
    fips, names = _name_to_fips(), _names_longest_first()
    a1 = a2 = None
    for name in names:
        if text.startswith(name + " "):
            a1, text = fips[name], text[len(name) + 1:]
            break
    for name in names:
        if text.endswith(" " + name):
            a2, text = fips[name], text[: -len(name) - 1]
            break
    return a1, text.strip(), a2


def vocabulary() -> tuple[list[str], list[str]]:
    """The closed phrase vocabulary's two kinds of piece: every country name and every verb (each sorted)."""
    names = sorted({n for n in (cameo.country_name(c) for c in cameo.fips_countries()) if n})
    return names, sorted({verb(c) for c in cameo.event_codes()})


def vocabulary_pieces() -> list[str]:
    """The closed phrase vocabulary's pieces, sorted: every verb and every country name.

    Train a tokenizer on these (every phrase is ``[name] verb [name]``).
    """
    names, verbs = vocabulary()
    return sorted(set(names) | set(verbs))


def join_phrases(phrases: list[str], sep: str = PHRASE_SEP) -> str:
    """``["a", "b"]`` → ``"a; b"`` (the text form of a phrase list)."""
    return sep.join(p.strip() for p in phrases if p and p.strip())


def split_phrases(text: str, sep: str = PHRASE_SEP) -> list[str]:
    """Inverse of :func:`join_phrases`: split, strip, drop empties, keep order and repeats."""
    return [p.strip() for p in text.split(sep.strip()) if p.strip()]


# ------------------------------------------------------------------- ROUGE
@lru_cache(maxsize=1)
def _rouge():
    """rouge-score's scorer with its own tokenizer (``tokenize.tokenize``) and NLTK's Porter stemmer, the stems
    memoised: the futures repeat the same few hundred phrase words, and stemming them again was 60 % of a day's
    ROUGE in ``evaluate`` (``bench/evaluate_metrics.py``). Same tokens, so the same scores (tested)."""
    from nltk.stem import porter
    from rouge_score import rouge_scorer, tokenize, tokenizers

    class _MemoStemmer:
        stem = staticmethod(lru_cache(maxsize=1 << 16)(porter.PorterStemmer().stem))

    class _Tokenizer(tokenizers.Tokenizer):
        def tokenize(self, text: str) -> list[str]:
            return tokenize.tokenize(text, _MemoStemmer)

    return rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], tokenizer=_Tokenizer())


def phrase_rouge(target: Sequence[str], generated: Sequence[str]) -> tuple[float, float, float]:
    """ROUGE-1/2/L F-measure of ``generated`` phrases against ``target`` phrases (``rouge-score``, Porter stemmer).

    The one ROUGE set-up of the project (training's validation metrics and ``evaluate``).
    Phrases are joined with :data:`PHRASE_SEP`; rouge-score's tokenizer drops the
    punctuation, so the separator only keeps phrases apart for ROUGE-L's LCS.
    """
    sc = _rouge().score(join_phrases(list(target)), join_phrases(list(generated)))
    return sc["rouge1"].fmeasure, sc["rouge2"].fmeasure, sc["rougeL"].fmeasure
