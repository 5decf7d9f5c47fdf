"""Constrained decoding: futures written only in the closed phrase vocabulary.

Every target phrase is ``[actor1 name] verb [actor2 name]`` (:mod:`pipeline.cameo.phrases`): a country
name of the FIPS table, the verb of a CAMEO code, a country name, the names optional. A free sampler
can write text outside that vocabulary ("threaten to use military Israel force"); each such action
text is new to the embedding cache, must be embedded before it can be projected onto the CAMEO basis
(most of a forecast's time on CPU), and projects onto a code only approximately.

:class:`PhraseGrammar` is that vocabulary as a deterministic automaton over token ids, applied in the
decode loop (:func:`pipeline.model.sampling.sample_futures`): at each step the logits of tokens that
cannot continue a vocabulary phrase are set to −∞ before sampling (the rest renormalise), and each
row's state advances with the token it wrote. So every generated phrase is a vocabulary phrase, its
action text is a basis verb whose embedding is already cached, and its actors are read off exactly.

Construction. Token tries of the names and of the verbs, each piece tokenised as it stands in a target
phrase (``tokenizer(phrase, add_special_tokens=False)``): a piece opening the phrase alone, a piece after
another as the tokens it adds after a name (:func:`piece_tokens`); a nondeterministic automaton over
(segment, trie node), segment ∈ {first name, opening verb, verb after a name, last name}, with ε-moves
name-end → verb root and verb-end → last-name root; its subset construction (each DFA state a set of NFA
states) is built once, breadth-first. A state that ends a whole phrase (a verb, or a last name) also
allows ``<sep>`` (back to a phrase start) and ``</s>``; the initial state allows ``</s>`` (a day with no
events).

The tries follow the *canonical* tokenisation of each piece, the one the model was trained on (a
character-level automaton, e.g. a regex index, would also admit spellings the model never saw, such as
a name split into unusual pieces). That needs a tokenizer that writes a phrase as its pieces' tokens
concatenated, each piece's tokens depending only on where it stands: a byte-level BPE with a prefix
space (words are tokenised one by one), or without one (the first piece differs, and is handled), and
the piece tokenizer (one token per piece, :func:`pipeline.model.tokenizer.train_piece_tokenizer`) do.
:func:`piece_tokens` checks it on the whole vocabulary and :func:`phrase_grammar` returns None (decode
unconstrained) for a tokenizer whose tokens span pieces.

A future cut by ``max_new_tokens`` inside a phrase keeps only its whole phrases (:meth:`trim`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from pipeline.cameo.phrases import vocabulary


@dataclass
class PhraseGrammar:
    """A token-level DFA of the phrase vocabulary (S states, V tokens).

    allowed: (S, V) bool, the tokens each state may write;
    keys / next_states: the transitions, ``keys = state · V + token`` sorted (E,) and their next state (E,);
    complete: (S,) bool, states after a whole phrase (where a cut future may end);
    start: the initial state.
    """

    allowed: torch.Tensor
    keys: torch.Tensor
    next_states: torch.Tensor
    complete: torch.Tensor
    start: int

    @property
    def n_states(self) -> int:
        return int(self.allowed.shape[0])

    def to(self, device: torch.device | str) -> "PhraseGrammar":
        return PhraseGrammar(self.allowed.to(device), self.keys.to(device), self.next_states.to(device),
                             self.complete.to(device), self.start)

    def mask(self, logits: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """``logits`` (R, V) with the tokens the rows' ``states`` (R,) do not allow at −∞."""
        V = self.allowed.shape[1]
        allowed = self.allowed[states]
        if logits.shape[1] > V:  # a model vocabulary padded past the tokenizer's: those ids are never allowed
            allowed = torch.nn.functional.pad(allowed, (0, logits.shape[1] - V))
        return logits.masked_fill(~allowed[:, : logits.shape[1]], float("-inf"))

    def advance(self, states: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Next states (R,) after each row wrote its token (an allowed one: see :meth:`mask`)."""
        key = states * self.allowed.shape[1] + tokens
        i = torch.searchsorted(self.keys, key).clamp_max(len(self.keys) - 1)
        if not bool((self.keys[i] == key).all()):
            raise ValueError("PhraseGrammar.advance: a token the grammar does not allow in its state")
        return self.next_states[i]

    def trim(self, ids: torch.Tensor, finished: torch.Tensor, complete: torch.Tensor, pad: int) -> torch.Tensor:
        """Futures (R, L) whose rows did not write ``</s>`` (``finished`` False) cut after their last whole
        phrase: ``complete`` (R, L) marks the positions whose state ends a phrase; later tokens become pad."""
        L = ids.shape[1]
        pos = torch.arange(L, device=ids.device).expand_as(ids)
        last = torch.where(complete, pos, -1).max(dim=1).values  # (R,) −1: no whole phrase
        cut = (~finished).unsqueeze(1) & (pos > last.unsqueeze(1))
        return ids.masked_fill(cut, pad)


class _Trie:
    def __init__(self) -> None:
        self.children: list[dict[int, int]] = [{}]
        self.end: list[bool] = [False]

    def add(self, ids: Sequence[int]) -> None:
        node = 0
        for t in ids:
            nxt = self.children[node].get(t)
            if nxt is None:
                nxt = len(self.children)
                self.children[node][t] = nxt
                self.children.append({})
                self.end.append(False)
            node = nxt
        self.end[node] = True


def build_grammar(pieces: "PieceTokens", vocab_size: int, sep_id: int, eos_id: int) -> PhraseGrammar:
    """The DFA of phrases ``[name] verb [name]`` (the token ids of each piece where it stands), joined by
    ``sep_id``, ended by ``eos_id`` (see the module docstring)."""
    if not pieces.verbs:
        raise ValueError("build_grammar: no verbs")

    def trie(seqs: Sequence[Sequence[int]]) -> _Trie:
        t = _Trie()
        for ids in seqs:
            if ids:
                t.add(ids)
        return t

    tries = {"first": trie(pieces.first_names), "verb": trie(pieces.verbs), "last": trie(pieces.last_names)}
    # a verb opening a phrase: the same trie when it is written as after a name (a BPE with a prefix space)
    tries["verb0"] = tries["verb"] if pieces.first_verbs == pieces.verbs else trie(pieces.first_verbs)

    def closure(items: set[tuple[str, int]]) -> frozenset[tuple[str, int]]:
        todo, out = list(items), set(items)
        while todo:
            seg, node = todo.pop()
            trie = tries[seg]
            if trie.end[node] and seg != "last":
                nxt = ("verb", 0) if seg == "first" else ("last", 0)  # verb0 / verb → the last name
                if nxt not in out:
                    out.add(nxt)
                    todo.append(nxt)
        return frozenset(out)

    def is_complete(items: frozenset[tuple[str, int]]) -> bool:
        return any(seg != "first" and tries[seg].end[node] for seg, node in items)

    phrase_start = closure({("first", 0), ("verb0", 0)})
    INIT, START, DONE = ("init", phrase_start), ("start", phrase_start), ("done", frozenset())
    ids: dict[tuple, int] = {INIT: 0, START: 1, DONE: 2}
    edges: dict[int, dict[int, int]] = {}
    complete = [False, False, False]
    queue = deque([INIT, START])

    def state_id(key: tuple) -> int:
        if key not in ids:
            ids[key] = len(ids)
            complete.append(is_complete(key[1]))
            queue.append(key)
        return ids[key]

    while queue:
        key = queue.popleft()
        kind, items = key
        out: dict[int, set[tuple[str, int]]] = {}
        for seg, node in items:
            for tok, child in tries[seg].children[node].items():
                out.setdefault(tok, set()).add((seg, child))
        trans = {tok: state_id(("in", closure(nxt))) for tok, nxt in sorted(out.items())}
        if kind == "init":
            trans[eos_id] = ids[DONE]
        if kind == "in" and is_complete(items):
            trans[sep_id], trans[eos_id] = ids[START], ids[DONE]
        edges[ids[key]] = trans
    S = len(ids)
    allowed = torch.zeros(S, vocab_size, dtype=torch.bool)
    allowed[ids[DONE]] = True  # after </s> the sampler writes pad whatever is drawn
    keys, nexts = [], []
    for s, trans in edges.items():
        for tok, nxt in trans.items():
            allowed[s, tok] = True
            keys.append(s * vocab_size + tok)
            nexts.append(nxt)
    done = ids[DONE]
    keys += [done * vocab_size + t for t in range(vocab_size)]
    nexts += [done] * vocab_size
    order = sorted(range(len(keys)), key=keys.__getitem__)
    return PhraseGrammar(allowed, torch.tensor([keys[i] for i in order], dtype=torch.long),
                         torch.tensor([nexts[i] for i in order], dtype=torch.long),
                         torch.tensor(complete, dtype=torch.bool), ids[INIT])


def _encode(tokenizer, texts: Sequence[str]) -> list[list[int]]:
    return tokenizer(list(texts), add_special_tokens=False)["input_ids"] if texts else []


def _encode_after(tokenizer, texts: Sequence[str], context: str) -> list[list[int]] | None:
    """Token ids of each text as it is tokenised after ``context + " "`` inside a phrase (None when the
    context's own tokens change with what follows: the tokenizer merges across pieces)."""
    head = _encode(tokenizer, [context])[0]
    out = []
    for ids in _encode(tokenizer, [f"{context} {t}" for t in texts]):
        if ids[:len(head)] != head:
            return None
        out.append(ids[len(head):])
    return out


@dataclass
class PieceTokens:
    """The vocabulary's token ids: names and verbs opening a phrase, and verbs and names after a piece."""

    first_names: list[list[int]]
    first_verbs: list[list[int]]
    verbs: list[list[int]]
    last_names: list[list[int]]


def piece_tokens(tokenizer) -> PieceTokens | None:
    """How ``tokenizer`` writes each piece where a target phrase has it, or None when phrases are not
    tokenised piece by piece: ``tok("a v b") == tok(a) + after(v) + after(b)`` must hold for every name
    and verb (each in both name positions), and ``tok("v b") == tok(v) + after(b)``. A byte-level BPE
    with a prefix space writes a piece alike in every position; the piece tokenizer
    (:func:`pipeline.model.tokenizer.train_piece_tokenizer`) gives a piece after another its own token."""
    names, verbs = vocabulary()
    if not names or not verbs:
        return None
    context = names[0]
    pt = PieceTokens(_encode(tokenizer, names), _encode(tokenizer, verbs),
                     _encode_after(tokenizer, verbs, context) or [], _encode_after(tokenizer, names, context) or [])
    if not pt.verbs or not pt.last_names:
        return None
    name_of = dict(zip(names, zip(pt.first_names, pt.last_names)))
    verb_of = dict(zip(verbs, zip(pt.first_verbs, pt.verbs)))
    triples = [(names[i % len(names)], v, names[(i * 7 + 3) % len(names)]) for i, v in enumerate(verbs)]
    triples += [(n, verbs[i % len(verbs)], n) for i, n in enumerate(names)]
    whole = _encode(tokenizer, [" ".join(t) for t in triples])
    if any(w != name_of[a][0] + verb_of[v][1] + name_of[b][1] for w, (a, v, b) in zip(whole, triples)):
        return None
    pairs = [(v, names[i % len(names)]) for i, v in enumerate(verbs)]
    whole = _encode(tokenizer, [f"{v} {b}" for v, b in pairs])
    if any(w != verb_of[v][0] + name_of[b][1] for w, (v, b) in zip(whole, pairs)):
        return None
    return pt


def phrase_grammar(tokenizer, vocab_size: int | None = None) -> PhraseGrammar | None:
    """The grammar of ``tokenizer``'s phrase vocabulary, or None when the tokenizer does not tokenise
    phrases piece by piece (:func:`piece_tokens`) or has no ``<sep>``."""
    from pipeline.model.tokenizer import SEP

    sep_id = tokenizer.convert_tokens_to_ids(SEP)
    if sep_id is None or sep_id == tokenizer.unk_token_id or tokenizer.eos_token_id is None:
        return None
    pt = piece_tokens(tokenizer)
    if pt is None:
        return None
    return build_grammar(pt, vocab_size or len(tokenizer), sep_id, tokenizer.eos_token_id)
