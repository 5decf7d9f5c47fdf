"""Constrained decoding: the phrase grammar accepts exactly the closed vocabulary's phrases, the constrained
decode loop equals ``generate`` with the same constraint, and sampled futures are vocabulary phrases."""

from __future__ import annotations

import random

import pytest
import torch
import torch.nn.functional as F

from pipeline.cameo.phrases import make_phrase, parse_phrase, vocabulary
from pipeline.core.config import ModelConfig
from pipeline.model.forecaster import EventForecaster, eval_mode
from pipeline.model.grammar import phrase_grammar
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


def _bpe(pre_tokenizer, trained_on) -> "PreTrainedTokenizerFast":  # noqa: F821
    from tokenizers import Tokenizer, decoders, models, trainers
    from transformers import PreTrainedTokenizerFast

    from pipeline.model.tokenizer import SPECIAL_TOKENS

    tok = Tokenizer(models.BPE())
    if pre_tokenizer is not None:
        tok.pre_tokenizer = pre_tokenizer
        tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(trained_on, trainers.BpeTrainer(vocab_size=800, special_tokens=SPECIAL_TOKENS,
                                                            show_progress=False))
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
                                   additional_special_tokens=[SEP])


def test_the_grammar_follows_where_a_piece_stands_and_refuses_tokens_across_pieces():
    """A BPE without a prefix space writes a phrase's first piece differently from the same piece after
    another: the grammar takes each piece's tokens where it stands, and accepts the phrases. A tokenizer
    whose tokens span the space between pieces (no pre-tokenizer, trained on whole phrases) cannot be
    followed piece by piece: no grammar (decoding stays unconstrained)."""
    from tokenizers import pre_tokenizers

    from pipeline.model.tokenizer import phrase_corpus

    names, verbs = vocabulary()
    no_prefix = _bpe(pre_tokenizers.ByteLevel(add_prefix_space=False), phrase_corpus())
    g = phrase_grammar(no_prefix)
    assert g is not None
    phrase = f"{names[3]} {verbs[5]} {names[7]}"
    walk(g, no_prefix(phrase, add_special_tokens=False)["input_ids"] + [no_prefix.eos_token_id])
    walk(g, no_prefix(verbs[5], add_special_tokens=False)["input_ids"] + [no_prefix.eos_token_id])
    rng = random.Random(2)
    whole = [f"{rng.choice(names)} {rng.choice(verbs)} {rng.choice(names)}" for _ in range(3000)]
    assert phrase_grammar(_bpe(None, whole)) is None


# ------------------------------------------------------------------ one token per piece
@pytest.fixture(scope="module")
def pieces_model(one_torch_thread):
    return EventForecaster.build(ModelConfig(tokenizer="pieces"), point_dim=16, stats_dim=5, seed=0).eval()


def test_the_piece_tokenizer_writes_a_phrase_as_its_pieces_and_round_trips(tmp_path):
    """Every vocabulary phrase is 1–3 tokens, one per piece, and decodes back to itself, also after a
    save/load; text outside the vocabulary becomes <unk>."""
    from transformers import AutoTokenizer

    from pipeline.model.tokenizer import train_piece_tokenizer

    tok = train_piece_tokenizer()
    names, verbs = vocabulary()
    rng = random.Random(1)
    phrases = [f"{rng.choice(names)} {v} {rng.choice(names)}" for v in verbs] + verbs
    phrases += [f"{n} {rng.choice(verbs)}" for n in names]
    ids = tok(phrases, add_special_tokens=False)["input_ids"]
    assert [len(i) for i in ids] == [3] * len(verbs) + [1] * len(verbs) + [2] * len(names)
    assert [tok.decode(i) for i in ids] == phrases
    tok.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    assert again(phrases, add_special_tokens=False)["input_ids"] == ids
    assert tok("event 999", add_special_tokens=False)["input_ids"] == [tok.unk_token_id]


def test_a_piece_model_decodes_only_vocabulary_phrases_in_a_third_of_the_steps(pieces_model, model):
    """The grammar of the piece tokenizer (a verb opening a phrase has its own token) accepts every
    vocabulary phrase and its sampled futures parse; the same phrases take ~3× fewer tokens than BPE."""
    g = pieces_model.grammar()
    assert g is not None
    tok, sep, eos = pieces_model.tokenizer, pieces_model.tokenizer.convert_tokens_to_ids(SEP), 1
    names, verbs = vocabulary()
    phrases = [f"{names[i % len(names)]} {v} {names[-1 - i % len(names)]}" for i, v in enumerate(verbs)] + verbs
    ids = tok(phrases, add_special_tokens=False)["input_ids"]
    for i in range(0, len(ids), 4):
        walk(g, [t for p in ids[i:i + 4] for t in p + [sep]][:-1] + [eos])
    bpe = model.tokenizer(phrases, add_special_tokens=False)["input_ids"]
    assert sum(map(len, bpe)) > 3 * sum(map(len, ids))
    batch = context_batch(3, points_per_row=[5, 2, 4])
    futures = pieces_model.generate_phrases(batch, num_futures=6, seed=[1, 2, 3], max_new_tokens=10)
    flat = [p for b in futures for f in b for p in f]
    assert flat and all(parse_phrase(p) is not None for p in flat)
