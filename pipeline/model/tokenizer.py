"""The target text of the forecaster: phrases joined by a delimiter token.

A day's target is written as ``phrase_1 <sep> phrase_2 <sep> … phrase_M </s>``.
The decoder's state at each boundary token (``<sep>`` or ``</s>``) has read a
whole phrase; the model projects it onto the sphere (see ``pipeline.model.forecaster``).

The offline default tokenizer is a byte-level BPE trained with the
``tokenizers`` library on the project's closed phrase vocabulary (CAMEO event
descriptions and country names shipped in ``pipeline/cameo/resources/``, plus the
training targets). Byte-level means no phrase is ever out of vocabulary and
``decode(encode(p)) == p`` for every string. It is wrapped as a transformers
``PreTrainedTokenizerFast`` with ``<pad>`` = 0, ``</s>`` = 1 (T5's ids),
``<unk>`` = 2 and the delimiter ``<sep>`` = 3.
"""

from __future__ import annotations

import csv
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

PAD, EOS, UNK, SEP = "<pad>", "</s>", "<unk>", "<sep>"
SPECIAL_TOKENS = [PAD, EOS, UNK, SEP]
IGNORE_INDEX = -100
"""Label value ignored by the NLL (padding)."""


# ------------------------------------------------------------------ corpus
def resource_corpus() -> list[str]:
    """CAMEO event descriptions and country names from ``pipeline/cameo/resources/`` (sorted, unique)."""
    root = resources.files("pipeline.cameo") / "resources"
    texts: set[str] = set()
    for name, col in (("CAMEO.eventcodes.txt", 1), ("CAMEO.country.txt", 1), ("FIPS.country.txt", 1)):
        with (root / name).open(encoding="utf-8") as fh:
            for row in csv.reader(fh, delimiter="\t"):
                if len(row) > col and row[col].strip() and row[col] not in ("EVENTDESCRIPTION", "LABEL"):
                    texts.add(row[col].strip())
    return sorted(texts)


def phrase_corpus(extra: Iterable[str] = ()) -> list[str]:
    """The tokenizer's training text: the closed phrase vocabulary plus ``extra`` phrases.

    The vocabulary is every verb and country name of ``pipeline.cameo.phrases``
    (``vocabulary_pieces``) and the raw CAMEO/FIPS descriptions. Sorted and
    de-duplicated, so the trained tokenizer is deterministic.
    """
    from pipeline.cameo.phrases import vocabulary_pieces

    texts = set(resource_corpus()) | set(vocabulary_pieces())
    texts.update(str(p) for p in extra if p)
    return sorted(texts)


# --------------------------------------------------------------- tokenizer
def train_phrase_tokenizer(corpus: Sequence[str], vocab_size: int = 2048) -> PreTrainedTokenizerFast:
    """Byte-level BPE on ``corpus`` (≤ ``vocab_size`` tokens incl. the 4 specials), wrapped for transformers."""
    if not corpus:
        raise ValueError("train_phrase_tokenizer: empty corpus (no phrases to learn from)")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, min_frequency=1,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator(list(corpus), trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=PAD, eos_token=EOS, unk_token=UNK, additional_special_tokens=[SEP],
    )
    assert fast.pad_token_id == 0 and fast.eos_token_id == 1, "special token ids must follow T5 (pad 0, eos 1)"
    return fast


def ensure_separator(tokenizer: PreTrainedTokenizerFast) -> bool:
    """Add ``<sep>`` to a (pretrained) tokenizer that lacks it; True when the vocab grew."""
    if tokenizer.convert_tokens_to_ids(SEP) not in (None, tokenizer.unk_token_id):
        return False
    tokenizer.add_special_tokens({"additional_special_tokens": [SEP]})
    return True


def train_piece_tokenizer(pieces: Sequence[str] | None = None) -> PreTrainedTokenizerFast:
    """One token per vocabulary piece: every country name and every verb is a single token.

    A phrase ``"[name] verb [name]"`` is then 1–3 tokens instead of the BPE's ~9, so a future is a
    third as many decode steps. Built with ``tokenizers`` (serialisable, no Python code in it): a
    ``Split`` pre-tokenizer isolating the longest piece at each position (``" ?"`` + the pieces,
    longest first; a piece after another carries its leading space), a ``WordLevel`` model over
    ``{piece, " " + piece}`` and the 4 specials (ids as the BPE's), and a ``Fuse`` decoder that joins
    the pieces back (``decode(encode(p)) == p`` for every vocabulary phrase). Text outside the
    vocabulary (an unknown code's ``"event 999"``) becomes ``<unk>``: the vocabulary is closed.
    """
    import re

    from tokenizers import Regex

    from pipeline.cameo.phrases import vocabulary_pieces

    pieces = sorted(set(pieces if pieces is not None else vocabulary_pieces()))
    vocab = {t: i for i, t in enumerate(SPECIAL_TOKENS)}
    for p in pieces:
        for form in (p, " " + p):
            vocab.setdefault(form, len(vocab))
    alternation = "|".join(re.escape(p) for p in sorted(pieces, key=len, reverse=True))
    tok = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(f" ?(?:{alternation})(?= |$)"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=PAD, eos_token=EOS, unk_token=UNK, additional_special_tokens=[SEP],
        clean_up_tokenization_spaces=False,
    )
    assert fast.pad_token_id == 0 and fast.eos_token_id == 1, "special token ids must follow T5 (pad 0, eos 1)"
    return fast


# ----------------------------------------------------------- encode/decode
@dataclass
class TargetTokens:
    """Tokenised targets of a batch.

    labels: (B, L) int64, ``IGNORE_INDEX`` after the ``</s>``;
    boundary: (B, L) bool, True at each ``<sep>`` / ``</s>`` (one per kept phrase);
    n_phrases: (B,) int64 kept phrases; n_truncated: phrases dropped for length (whole phrases).
    """

    labels: torch.Tensor
    boundary: torch.Tensor
    n_phrases: torch.Tensor
    n_truncated: int


def encode_targets(
    tokenizer: PreTrainedTokenizerFast, phrase_lists: Sequence[Sequence[str]], max_tokens: int,
) -> TargetTokens:
    """``[[p1, p2, …], …]`` → ``p1 <sep> p2 <sep> … </s>`` label ids, at most ``max_tokens`` each.

    Phrases that do not fit are dropped whole (counted in ``n_truncated``);
    the first phrase is cut to fit when it alone is too long, so every row
    keeps at least one boundary.
    """
    sep_id, eos_id = tokenizer.convert_tokens_to_ids(SEP), tokenizer.eos_token_id
    flat = [p for ps in phrase_lists for p in ps]
    flat_ids = tokenizer(flat, add_special_tokens=False)["input_ids"] if flat else []
    rows: list[list[int]] = []
    truncated, i = 0, 0
    for ps in phrase_lists:
        row: list[int] = []
        for j in range(len(ps)):
            ids = flat_ids[i + j]
            if j == 0:
                ids = ids[: max_tokens - 1]
            elif len(row) + len(ids) + 1 > max_tokens:
                truncated += len(ps) - j
                break
            row += ids + [sep_id]
        i += len(ps)
        if row:
            row[-1] = eos_id
        else:
            row = [eos_id]  # no target phrases: the model learns to stop
        rows.append(row)
    L = max(len(r) for r in rows)
    labels = torch.full((len(rows), L), IGNORE_INDEX, dtype=torch.long)
    for b, r in enumerate(rows):
        labels[b, : len(r)] = torch.tensor(r)
    boundary = (labels == sep_id) | (labels == eos_id)
    return TargetTokens(labels, boundary, boundary.sum(1), truncated)


def decode_phrases(tokenizer: PreTrainedTokenizerFast, ids: Sequence[int]) -> list[str]:
    """Generated ids → phrases: split at ``<sep>``, stop at ``</s>``, skip pad and empty pieces; each phrase
    cleaned by :func:`clean_phrase` (no U+FFFD from half-decoded bytes)."""
    return decode_phrase_lists(tokenizer, [ids])[0]


def decode_phrase_lists(tokenizer: PreTrainedTokenizerFast, rows: Sequence[Sequence[int]]) -> list[list[str]]:
    """:func:`decode_phrases` of many rows, with one ``batch_decode`` call for all their pieces."""
    sep_id, eos_id, pad_id = tokenizer.convert_tokens_to_ids(SEP), tokenizer.eos_token_id, tokenizer.pad_token_id
    pieces: list[list[int]] = []
    owner: list[int] = []  # row of each piece
    for r, ids in enumerate(rows):
        piece: list[int] = []
        for t in list(ids) + [eos_id]:
            t = int(t)
            if t == sep_id or t == eos_id:
                if piece:
                    pieces.append(piece)
                    owner.append(r)
                piece = []
                if t == eos_id:
                    break
            elif t != pad_id:
                piece.append(t)
    out: list[list[str]] = [[] for _ in rows]
    for r, text in zip(owner, tokenizer.batch_decode(pieces, skip_special_tokens=True) if pieces else []):
        text = clean_phrase(text)
        if text:
            out[r].append(text)
    return out


REPLACEMENT_CHAR = "\ufffd"
"""What a byte-level decoder writes for bytes that are not valid UTF-8 (a tiny model can emit half a character)."""


def clean_phrase(text: str) -> str:
    """A decoded phrase without replacement characters (U+FFFD) or control characters, whitespace runs
    collapsed, stripped.

    A byte-level BPE can emit any byte: half a UTF-8 character decodes to U+FFFD, a
    control byte (0x00–0x1F, 0x7F) to an invisible character. Both are dropped (Unicode
    category ``C*``: control, format, unassigned, private use); tabs and newlines
    become spaces. The BPE writes spaces as bytes of their own, so dropping the rest
    keeps the words apart; a phrase of nothing else is empty.

    >>> clean_phrase(" Iran \ufffd\ufffdthreaten  Isr\ufffdael\\x07\\tnow\\x00 ")
    'Iran threaten Israel now'
    """
    kept = (" " if ch.isspace() else ch for ch in text
            if ch.isspace() or (ch != REPLACEMENT_CHAR and not unicodedata.category(ch).startswith("C")))
    return " ".join("".join(kept).split())
