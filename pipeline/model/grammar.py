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

Construction. Two token tries, one of the names and one of the verbs, each piece tokenised as a
target phrase is (``tokenizer(piece, add_special_tokens=False)``); a nondeterministic automaton over
(segment, trie node), segment ∈ {first name, verb, last name}, with ε-moves name-end → verb root and
verb-end → last-name root; its subset construction (each DFA state a set of NFA states) is built once,
breadth-first. A state that ends a whole phrase (a verb, or a last name) also allows ``<sep>`` (back to
a phrase start) and ``</s>``; the initial state allows ``</s>`` (a day with no events).

The tries follow the *canonical* tokenisation of each piece, the one the model was trained on (a
character-level automaton would also admit spellings the model never saw, e.g. a name split into
unusual pieces). That needs the tokenizer to tokenise a phrase as the concatenation of its pieces'
tokens, which a byte-level BPE with a prefix space does (words are tokenised one by one);
:func:`phrase_grammar` checks it on the vocabulary and returns None (decode unconstrained) for a
tokenizer that does not, e.g. a pretrained one that merges across words.

A future cut by ``max_new_tokens`` inside a phrase keeps only its whole phrases (:meth:`trim`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import torch

SEGMENTS = ("first", "verb", "last")


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


def build_grammar(names: Sequence[Sequence[int]], verbs: Sequence[Sequence[int]], vocab_size: int,
                  sep_id: int, eos_id: int) -> PhraseGrammar:
    """The DFA of phrases ``[name] verb [name]`` (token ids of each piece), joined by ``sep_id``, ended by
    ``eos_id`` (see the module docstring)."""
    if not verbs:
        raise ValueError("build_grammar: no verbs")
    tries = {"first": _Trie(), "verb": _Trie(), "last": None}
    for ids in names:
        if ids:
            tries["first"].add(ids)
    for ids in verbs:
        if ids:
            tries["verb"].add(ids)
    tries["last"] = tries["first"]

    def closure(items: set[tuple[str, int]]) -> frozenset[tuple[str, int]]:
        todo, out = list(items), set(items)
        while todo:
            seg, node = todo.pop()
            trie = tries[seg]
            if trie.end[node] and seg != "last":
                nxt = ("verb", 0) if seg == "first" else ("last", 0)
                if nxt not in out:
                    out.add(nxt)
                    todo.append(nxt)
        return frozenset(out)

    def is_complete(items: frozenset[tuple[str, int]]) -> bool:
        return any(seg != "first" and tries[seg].end[node] for seg, node in items)

    phrase_start = closure({("first", 0), ("verb", 0)})
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


def vocabulary() -> tuple[list[str], list[str]]:
    """The phrase vocabulary's pieces: every country name and every verb (sorted)."""
    from pipeline.cameo import codes as cameo
    from pipeline.cameo.phrases import verb

    names = sorted({n for n in (cameo.country_name(c) for c in cameo.fips_countries()) if n})
    return names, sorted({verb(c) for c in cameo.event_codes()})


def _encode(tokenizer, texts: Sequence[str]) -> list[list[int]]:
    return tokenizer(list(texts), add_special_tokens=False)["input_ids"] if texts else []


def is_compositional(tokenizer, names: Sequence[str], verbs: Sequence[str]) -> bool:
    """Whether ``tokenizer`` tokenises ``"name verb name"`` as the concatenation of the pieces' tokens, for
    every name and verb given (each in both name positions)."""
    if not names or not verbs:
        return True
    triples = [(names[i % len(names)], v, names[(i * 7 + 3) % len(names)]) for i, v in enumerate(verbs)]
    triples += [(n, verbs[i % len(verbs)], n) for i, n in enumerate(names)]
    pieces = sorted({p for t in triples for p in t})
    of = dict(zip(pieces, _encode(tokenizer, pieces)))
    whole = _encode(tokenizer, [" ".join(t) for t in triples])
    return all(w == of[a] + of[v] + of[b] for w, (a, v, b) in zip(whole, triples))


def phrase_grammar(tokenizer, vocab_size: int | None = None) -> PhraseGrammar | None:
    """The grammar of ``tokenizer``'s phrase vocabulary, or None when the tokenizer does not tokenise
    phrases piece by piece (see the module docstring) or has no ``<sep>``."""
    from pipeline.model.tokenizer import SEP

    sep_id = tokenizer.convert_tokens_to_ids(SEP)
    if sep_id is None or sep_id == tokenizer.unk_token_id or tokenizer.eos_token_id is None:
        return None
    names, verbs = vocabulary()
    if not is_compositional(tokenizer, names, verbs):
        return None
    return build_grammar(_encode(tokenizer, names), _encode(tokenizer, verbs), vocab_size or len(tokenizer),
                         sep_id, tokenizer.eos_token_id)
