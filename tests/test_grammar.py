"""Constrained decoding: the phrase grammar accepts exactly the closed vocabulary's phrases, the constrained
decode loop equals ``generate`` with the same constraint, and sampled futures are vocabulary phrases."""

from __future__ import annotations

import random

import pytest
import torch
import torch.nn.functional as F

from pipeline.cameo.phrases import make_phrase, parse_phrase
from pipeline.core.config import ModelConfig
from pipeline.model.forecaster import EventForecaster, eval_mode
from pipeline.model.grammar import phrase_grammar, vocabulary
from pipeline.model.tokenizer import SEP, decode_phrase_lists
from test_sampling import PHRASES, context_batch


@pytest.fixture(scope="module")
def model(one_torch_thread):
    return EventForecaster.build(ModelConfig(), point_dim=16, stats_dim=5, phrases=PHRASES, seed=0).eval()


@pytest.fixture(scope="module")
def grammar(model):
    g = model.grammar()
    assert g is not None
    return g


def walk(grammar, tokens: list[int]) -> list[int]:
    """The grammar's states along ``tokens`` (AssertionError at the first token it does not allow)."""
    states, s = [], torch.tensor([grammar.start])
    for t in tokens:
        assert grammar.allowed[s, t].item(), f"token {t} not allowed after {tokens[:len(states)]}"
        s = grammar.advance(s, torch.tensor([t]))
        states.append(int(s))
    return states


def test_every_vocabulary_phrase_is_accepted(model, grammar):
    """Each verb alone, after a name, before a name and between two names, several phrases in one future."""
    tok, sep, eos = model.tokenizer, model.tokenizer.convert_tokens_to_ids(SEP), model.tokenizer.eos_token_id
    names, verbs = vocabulary()
    rng = random.Random(0)
    phrases = []
    for v in verbs:
        a, b = rng.choice(names), rng.choice(names)
        phrases += [v, f"{a} {v}", f"{v} {b}", f"{a} {v} {b}"]
    ids = tok(phrases, add_special_tokens=False)["input_ids"]
    for i in range(0, len(ids), 3):  # three phrases per future
        seq = [t for p in ids[i:i + 3] for t in p + [sep]][:-1] + [eos]
        states = walk(grammar, seq)
        assert grammar.complete[states[-2]]  # the last phrase is whole before </s>
    assert grammar.allowed[grammar.start, eos]  # a future may be empty (a day without events)
    after_sep = walk(grammar, ids[0] + [sep])[-1]
    assert not grammar.allowed[after_sep, eos] and not grammar.allowed[after_sep, sep]  # no empty phrase


def test_every_accepted_path_is_a_vocabulary_phrase(model, grammar):
    """Random walks through the automaton (uniform over the allowed tokens) decode to phrases that
    ``parse_phrase`` inverts exactly: nothing outside the vocabulary can be written."""
    g = torch.Generator().manual_seed(3)
    eos, pad = model.tokenizer.eos_token_id, model.tokenizer.pad_token_id
    rows = []
    for _ in range(300):
        s, seq = torch.tensor([grammar.start]), []
        while len(seq) < 200:
            allowed = grammar.allowed[s[0]].nonzero().squeeze(1)
            t = allowed[torch.randint(len(allowed), (1,), generator=g)]
            seq.append(int(t))
            if int(t) == eos:
                break
            s = grammar.advance(s, t)
        if seq[-1] == eos:
            rows.append(seq)
    assert len(rows) > 100
    phrases = [p for ps in decode_phrase_lists(model.tokenizer, rows) for p in ps]
    assert len(phrases) > 200
    for p in phrases:
        parsed = parse_phrase(p)
        assert parsed is not None and make_phrase(*parsed) == p, p
    assert pad not in {t for r in rows for t in r[:-1]}


def test_constrained_greedy_decode_equals_generate_with_the_same_constraint(model, grammar):
    """Our cached loop with the grammar's mask = ``T5.generate`` with ``prefix_allowed_tokens_fn`` walking
    the grammar (transformers applies the mask), up to the trim of a future cut inside a phrase."""
    from transformers.modeling_outputs import BaseModelOutput

    batch = context_batch(4, points_per_row=[5, 2, 4, 1])
    L = 24
    ids = model.generate_ids(batch, num_futures=1, do_sample=False, max_new_tokens=L)

    def allowed(_, prefix: torch.Tensor) -> list[int]:
        s = torch.tensor([grammar.start])
        for t in prefix[1:].tolist():  # prefix[0] is the decoder start token
            if t == model.tokenizer.pad_token_id:
                return [t]
            s = grammar.advance(s, torch.tensor([t]))
        return grammar.allowed[s[0]].nonzero().squeeze(1).tolist()

    with eval_mode(model), torch.no_grad():
        enc, mask = model.encode(batch)
        ref = model.t5.generate(encoder_outputs=BaseModelOutput(last_hidden_state=enc), attention_mask=mask,
                                do_sample=False, max_new_tokens=L, pad_token_id=0, eos_token_id=1,
                                decoder_start_token_id=model.t5.config.decoder_start_token_id,
                                prefix_allowed_tokens_fn=allowed)[:, 1:]
    eos = model.tokenizer.eos_token_id
    for r in range(len(ref)):  # the reference, cut after its last whole phrase when it has no </s>
        row = ref[r].tolist()
        if eos not in row:
            states = walk(grammar, [t for t in row if t != 0])
            last = max([i for i, s in enumerate(states) if grammar.complete[s]], default=-1)
            ref[r, last + 1:] = 0
    n = max(ids.shape[1], ref.shape[1])
    assert torch.equal(F.pad(ids, (0, n - ids.shape[1])), F.pad(ref, (0, n - ref.shape[1])))


@pytest.mark.parametrize("max_new_tokens", [7, 40])
def test_sampled_futures_are_vocabulary_phrases_even_when_cut(model, max_new_tokens):
    """At temperature 1, top-p 0.95: unconstrained an untrained model writes text outside the vocabulary;
    constrained every phrase parses, including futures cut by ``max_new_tokens`` (whole phrases kept)."""
    batch = context_batch(3, points_per_row=[5, 2, 4])
    kw = dict(num_futures=8, temperature=1.0, top_p=0.95, seed=[1, 2, 3], max_new_tokens=max_new_tokens)
    free = [p for b in model.generate_phrases(batch, constrained=False, **kw) for f in b for p in f]
    assert sum(parse_phrase(p) is None for p in free) > len(free) // 2
    futures = model.generate_phrases(batch, **kw)
    phrases = [p for b in futures for f in b for p in f]
    assert phrases and all(parse_phrase(p) is not None for p in phrases)
    assert model.generate_phrases(batch, **kw) == futures  # still deterministic per seed


def test_a_tokenizer_that_merges_across_pieces_gets_no_grammar():
    """Without a prefix space a piece's first word tokenises differently inside a phrase: the grammar would
    not match the training tokenisation, so there is none (decoding stays unconstrained)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from pipeline.model.tokenizer import SPECIAL_TOKENS, phrase_corpus

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(phrase_corpus(), trainers.BpeTrainer(vocab_size=600, special_tokens=SPECIAL_TOKENS,
                                                                 show_progress=False))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
                                   additional_special_tokens=[SEP])
    assert phrase_grammar(fast) is None
