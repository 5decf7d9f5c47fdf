"""Sampling the K futures: a cached, batched decode loop with one random stream per row.

For encoder states of B rows (countries), every row's K futures are decoded together (R = B·K
sequences) by the T5 decoder with its key/value cache: step t feeds only the token of step t−1,
and the encoder's cross-attention keys/values are computed once. A sequence that has written
``</s>`` leaves the batch (its cache rows are dropped, a few at a time), so the cost follows the
futures' real lengths, not the longest.

Next token, from the logits z (V,) of one sequence at temperature τ and nucleus mass p
(Holtzman et al. 2020, "The curious case of neural text degeneration")::

    q = softmax(z / τ);   order the tokens by q, descending: q_(1) ≥ q_(2) ≥ …
    nucleus = the first n tokens with Σ_{i<n} q_(i) < p  (the fewest whose mass reaches p)
    token   = q_(j), j = min { j : Σ_{i≤j} q_(i) > u · Σ_{i≤n} q_(i) }     (inverse CDF, u ~ U[0, 1))

The nucleus is searched among the ``TOP_K_SEARCH`` most likely tokens first and only rows whose
nucleus is wider get a full sort: the same tokens as a full sort, at a fraction of its cost.
τ = None decodes greedily (argmax).

Randomness: row b draws all its uniforms u, (K, L), up front from ``torch.Generator`` seeded with
its own seed, so a country's futures depend on its inputs and its seed only, never on which other
countries share the batch (up to float round-off in batched matrix products, far below the
sampling resolution).
"""

from __future__ import annotations

import inspect
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from transformers import T5ForConditionalGeneration
from transformers.cache_utils import DynamicCache, EncoderDecoderCache

from pipeline.model.grammar import PhraseGrammar

TOP_K_SEARCH = 64
"""Candidates searched for the nucleus before falling back to a full sort of the vocabulary."""
COMPACT_EVERY = 8
"""Finished sequences leave the batch once they are 1/8 of it (each removal copies the cache)."""


def row_seeds(seed: int, n: int) -> list[int]:
    """Seeds of rows 0 … n−1 derived from one ``seed`` (distinct, stable across runs)."""
    return [zlib.crc32(f"{seed}:{b}".encode()) for b in range(n)]


def row_uniforms(seeds: Sequence[int], K: int, L: int) -> torch.Tensor:
    """(B·K, L) uniforms in [0, 1): rows b·K … b·K+K−1 from ``torch.Generator(seed_b)`` alone."""
    out = torch.empty(len(seeds) * K, L)
    for b, s in enumerate(seeds):
        g = torch.Generator().manual_seed(int(s))
        out[b * K:(b + 1) * K] = torch.rand(K, L, generator=g)
    return out


def sample_tokens(logits: torch.Tensor, u: torch.Tensor, temperature: float | None = 1.0,
                  top_p: float = 1.0) -> torch.Tensor:
    """Next tokens (R,) from logits (R, V) by temperature + nucleus (top-p) sampling, inverse CDF at u (R,).

    ``temperature=None``: greedy (argmax, u unused). See the module docstring for the maths.
    """
    if temperature is None:
        return logits.argmax(-1)
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0 (or None for greedy), got {temperature}")
    probs = torch.softmax(logits.float() / temperature, dim=-1)  # (R, V)
    R, V = probs.shape
    if top_p >= 1.0:  # no truncation: inverse CDF over the whole vocabulary
        return _inverse_cdf(probs, torch.arange(V).expand(R, V), u)
    out = torch.empty(R, dtype=torch.long)
    top, idx = probs.topk(min(TOP_K_SEARCH, V), dim=-1)  # (R, k) descending
    wide = top.sum(-1) < top_p  # nucleus not inside the top k: sort the whole row
    narrow = ~wide
    if narrow.any():
        out[narrow] = _nucleus(top[narrow], idx[narrow], u[narrow], top_p)
    if wide.any():
        full, full_idx = probs[wide].sort(dim=-1, descending=True, stable=True)
        out[wide] = _nucleus(full, full_idx, u[wide], top_p)
    return out


def _nucleus(sorted_p: torch.Tensor, idx: torch.Tensor, u: torch.Tensor, top_p: float) -> torch.Tensor:
    """Sample among the nucleus of descending probabilities ``sorted_p`` (R, k) with token ids ``idx``."""
    before = sorted_p.cumsum(-1) - sorted_p  # mass of the more likely tokens
    kept = torch.where(before < top_p, sorted_p, 0.0)  # the first token is always kept
    return _inverse_cdf(kept, idx, u)


def _inverse_cdf(p: torch.Tensor, idx: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Token ``idx[j]`` with j the first index where cumsum(p) > u · Σ p (unnormalised p, (R, k))."""
    cdf = p.cumsum(-1)
    j = torch.searchsorted(cdf, (u * cdf[:, -1]).unsqueeze(1).contiguous(), right=True)
    last = (p > 0).sum(-1, keepdim=True) - 1  # round-off guard: never past the last kept token
    return idx.gather(1, torch.minimum(j, last).clamp_min(0)).squeeze(1)


def _cache_kwarg(t5: T5ForConditionalGeneration) -> str:
    """Name of the decoder's cache argument (``cache`` in transformers ≥ 5, ``past_key_values`` before)."""
    return "cache" if "cache" in inspect.signature(t5.decoder.forward).parameters else "past_key_values"


SMALL_STEP = 1 << 18
"""Decode steps with fewer than this many activations (rows × d_model) run on one torch thread."""


@contextmanager
def _threads_for(work: int) -> Iterator[None]:
    """One intra-op thread for small per-step work: matrices of (rows × d_model) this small gain nothing
    from more threads and, on a busy machine, lose several-fold to their synchronisation."""
    n = torch.get_num_threads()
    if work < SMALL_STEP and n > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


@torch.no_grad()
def sample_futures(t5: T5ForConditionalGeneration, enc: torch.Tensor, enc_mask: torch.Tensor, K: int,
                   seeds: Sequence[int], max_new_tokens: int, eos_id: int, temperature: float | None = 1.0,
                   top_p: float = 1.0, grammar: PhraseGrammar | None = None) -> torch.Tensor:
    """Decode K futures per encoder row: ids (B·K, L') padded after ``</s>``, L' ≤ ``max_new_tokens``.

    Args:
        t5: the T5 (its decoder and LM head are used; call in eval mode).
        enc: (B, S, d) encoder states; enc_mask: (B, S) their attention mask.
        K: futures per row; seeds: one per row (``row_uniforms``).
        temperature: τ, or None for greedy decoding (then the K futures of a row are equal).
        grammar: when given, every step samples only the tokens that continue a phrase of the closed
            vocabulary (:mod:`pipeline.model.grammar`); a future cut by ``max_new_tokens`` keeps its
            whole phrases only.
    """
    if temperature is None and K > 1:  # greedy: the K futures are one decode, repeated
        return sample_futures(t5, enc, enc_mask, 1, seeds, max_new_tokens, eos_id, None,
                              grammar=grammar).repeat_interleave(K, 0)
    B = enc.shape[0]
    R, dev = B * K, enc.device
    pad = t5.config.pad_token_id if t5.config.pad_token_id is not None else 0
    start = t5.config.decoder_start_token_id if t5.config.decoder_start_token_id is not None else pad
    scale = t5.model_dim ** -0.5 if getattr(t5.config, "scale_decoder_outputs", t5.config.tie_word_embeddings) else 1.0
    u = row_uniforms(seeds, K, max_new_tokens).to(dev) if temperature is not None else None  # (R, L)
    enc = enc.repeat_interleave(K, dim=0)  # (R, S, d): row b·K + k is future k of row b
    enc_mask = enc_mask.repeat_interleave(K, dim=0)
    grammar = grammar.to(dev) if grammar is not None else None
    with _threads_for(R * t5.config.d_model):
        return _decode(t5, enc, enc_mask, u, max_new_tokens, eos_id, pad, start, scale, temperature, top_p, grammar)


def _decode(t5: T5ForConditionalGeneration, enc: torch.Tensor, enc_mask: torch.Tensor, u: torch.Tensor | None,
            max_new_tokens: int, eos_id: int, pad: int, start: int, scale: float, temperature: float | None,
            top_p: float, grammar: PhraseGrammar | None = None) -> torch.Tensor:
    """The decode loop of :func:`sample_futures` on R = B·K expanded encoder rows."""
    R, dev = enc.shape[0], enc.device
    out = torch.full((R, max_new_tokens), pad, dtype=torch.long, device=dev)
    rows = torch.arange(R, device=dev)  # the sequence of each batch row
    done = torch.zeros(R, dtype=torch.bool, device=dev)  # rows that wrote </s> (still in the batch)
    token = torch.full((R, 1), start, dtype=torch.long, device=dev)
    if grammar is not None:
        state = torch.full((R,), grammar.start, dtype=torch.long, device=dev)  # each row's grammar state
        complete = torch.zeros(R, max_new_tokens, dtype=torch.bool, device=dev)  # a whole phrase ends at t
    cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
    kw = _cache_kwarg(t5)
    steps = 0
    for t in range(max_new_tokens):
        h = t5.decoder(input_ids=token, encoder_hidden_states=enc, encoder_attention_mask=enc_mask,
                       use_cache=True, **{kw: cache}).last_hidden_state[:, -1]  # (R_t, d)
        logits = t5.lm_head(h * scale)  # (R_t, V)
        if grammar is not None:
            logits = grammar.mask(logits, state)
        nxt = sample_tokens(logits, u[rows, t] if u is not None else None, temperature, top_p)
        nxt = nxt.masked_fill(done, pad)
        out[rows, t] = nxt
        steps = t + 1
        if grammar is not None:
            state = grammar.advance(state, nxt)
            complete[rows, t] = grammar.complete[state]
        done |= nxt == eos_id
        n_done = int(done.sum())
        if n_done == len(rows):
            break
        if n_done * COMPACT_EVERY >= len(rows):  # finished sequences leave the batch, with their cache rows
            keep = (~done).nonzero().squeeze(1)
            rows, nxt, enc, enc_mask, done = rows[keep], nxt[keep], enc[keep], enc_mask[keep], done[keep]
            if grammar is not None:
                state = state[keep]
            cache.batch_select_indices(keep)
        token = nxt.unsqueeze(1)
    if grammar is not None:
        ids = out[:, :steps]
        return grammar.trim(ids, (ids == eos_id).any(dim=1), complete[:, :steps], pad)
    return out[:, :steps]
