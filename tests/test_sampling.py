"""Sampling the futures: nucleus sampling against transformers' warpers, the cached decode loop against
``T5ForConditionalGeneration.generate``, per-row random streams, and the encoder-side point dedupe."""

from __future__ import annotations

import datetime as dt

import pytest
import torch
import torch.nn.functional as F

from pipeline.core.config import ModelConfig
from pipeline.model.forecaster import EventForecaster, eval_mode, unique_rows
from pipeline.model.sampling import TOP_K_SEARCH, row_uniforms, sample_tokens

PHRASES = ["Iran threaten Israel", "Israel use conventional military force Iran", "Russia make statement",
           "Ukraine appeal for aid", "United States make a visit China", "France host a visit"]


@pytest.fixture(scope="module")
def model(one_torch_thread):
    return EventForecaster.build(ModelConfig(), point_dim=16, stats_dim=5, phrases=PHRASES, seed=0).eval()


def context_batch(B: int, T: int = 3, N: int = 5, D: int = 16, S: int = 5, seed: int = 0,
                  points_per_row: list[int] | None = None) -> dict:
    """A ``collate``-shaped batch without targets; row b has ``points_per_row[b]`` real points per day."""
    g = torch.Generator().manual_seed(seed)
    n = points_per_row or [N] * B
    N = max(n)
    mask = torch.zeros(B, T, N, dtype=torch.bool)
    for b, k in enumerate(n):
        mask[b, :, :k] = True
    points = torch.where(mask[..., None], F.normalize(torch.randn(B, T, N, D, generator=g), dim=-1), 0.0)
    weights = torch.rand(B, T, N, generator=g) * mask
    return {"points": points, "point_weights": weights / weights.sum(-1, keepdim=True), "point_mask": mask,
            "day_stats": torch.randn(B, T, S, generator=g), "day_mask": torch.ones(B, T, dtype=torch.bool),
            "country": [f"C{b}" for b in range(B)], "target_date": [dt.date(2025, 6, 1)] * B}


def select(batch: dict, rows: list[int]) -> dict:
    """Rows of a batch, trimmed to their own largest point count (as ``collate`` would pad them)."""
    n = int(batch["point_mask"][rows].sum(-1).max())
    out = {k: (v[rows][:, :, :n] if k.startswith("point") else v[rows]) for k, v in batch.items() if torch.is_tensor(v)}
    return out | {k: [batch[k][r] for r in rows] for k in ("country", "target_date")}


# ------------------------------------------------------------------ next-token sampling
@pytest.mark.parametrize("temperature, top_p", [(1.0, 0.95), (0.7, 0.5), (1.3, 1.0)])
def test_nucleus_frequencies_match_transformers_warpers(top_p, temperature):
    """Inverse CDF on an even grid of u: token frequencies = transformers' temperature + top-p distribution."""
    from transformers.generation.logits_process import TemperatureLogitsWarper, TopPLogitsWarper

    g = torch.Generator().manual_seed(1)
    V = 200
    peaked = torch.randn(2, V, generator=g) * 6  # nucleus inside the top-k search
    flat = torch.randn(2, V, generator=g) * 0.1  # nucleus wider than TOP_K_SEARCH: the full-sort path
    logits = torch.cat([peaked, flat])
    n = 5_000
    u = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    warped = TemperatureLogitsWarper(temperature)(None, logits.clone())
    if top_p < 1:
        warped = TopPLogitsWarper(top_p)(None, warped)
    expect = torch.softmax(warped, dim=-1)  # (R, V)
    for r in range(len(logits)):
        tokens = sample_tokens(logits[r].expand(n, V), u.float(), temperature, top_p)
        freq = torch.bincount(tokens, minlength=V).double() / n
        assert (freq[expect[r] == 0] == 0).all(), "a token outside the nucleus was sampled"
        assert torch.allclose(freq, expect[r].double(), atol=1e-3), (r, (freq - expect[r]).abs().max())
    wide = torch.softmax(flat / temperature, -1).topk(TOP_K_SEARCH).values.sum(-1) < top_p
    assert top_p == 1.0 or wide.all()  # the flat rows did take the full-sort path


def test_greedy_is_argmax():
    logits = torch.randn(7, 50)
    assert torch.equal(sample_tokens(logits, None, None), logits.argmax(-1))


def test_row_uniforms_depend_on_the_row_seed_only():
    a = row_uniforms([5, 9], K=3, L=4)
    b = row_uniforms([9], K=3, L=4)
    assert a.shape == (6, 4) and torch.equal(a[3:], b) and not torch.equal(a[:3], a[3:])
    assert ((a >= 0) & (a < 1)).all()


# ------------------------------------------------------------------ the decode loop
def test_greedy_decode_equals_transformers_generate(model):
    """The cached loop (finished rows leaving the batch) writes what ``generate`` writes, greedily
    (unconstrained; tests/test_grammar.py checks the constrained loop against ``generate`` too)."""
    from transformers.modeling_outputs import BaseModelOutput

    batch = context_batch(4, points_per_row=[5, 2, 4, 1])
    ids = model.generate_ids(batch, num_futures=1, do_sample=False, max_new_tokens=20, constrained=False)
    with eval_mode(model), torch.no_grad():
        enc, mask = model.encode(batch)
        ref = model.t5.generate(encoder_outputs=BaseModelOutput(last_hidden_state=enc), attention_mask=mask,
                                do_sample=False, max_new_tokens=20, pad_token_id=0, eos_token_id=1,
                                decoder_start_token_id=model.t5.config.decoder_start_token_id)[:, 1:]
    L = max(ids.shape[1], ref.shape[1])
    assert torch.equal(F.pad(ids, (0, L - ids.shape[1])), F.pad(ref, (0, L - ref.shape[1])))


def test_futures_are_seeded_per_row_and_independent_of_the_batch(model):
    batch = context_batch(3, points_per_row=[5, 2, 4])
    kw = dict(num_futures=4, temperature=1.0, top_p=0.95, max_new_tokens=12)
    together = model.generate_phrases(batch, seed=[11, 22, 33], **kw)
    alone = model.generate_phrases(select(batch, [1]), seed=[22], **kw)  # fewer points: padded less
    swapped = model.generate_phrases(select(batch, [2, 1]), seed=[33, 22], **kw)
    assert together[1] == alone[0] == swapped[1] and together[2] == swapped[0]
    assert model.generate_phrases(batch, seed=[11, 22, 33], **kw) == together  # deterministic
    assert model.generate_phrases(batch, seed=[11, 23, 33], **kw)[1] != together[1]  # the seed matters
    assert model.training is False


def test_generation_restores_train_mode(model):
    model.train()
    try:
        model.generate_ids(context_batch(1), num_futures=2, max_new_tokens=3)
        assert model.training
    finally:
        model.eval()


# ------------------------------------------------------------------ encoder: distinct points once
def reference_pooling(pooler, points, weights, point_mask, day_stats):
    """DayPooler as first written (keys and values of every point, then ``scaled_dot_product_attention``):
    the peer ``bench/train.py`` times the folded pooler against, so the bench and this test share it."""
    from bench.train import per_point_pooling

    return per_point_pooling(pooler, points, weights, point_mask, day_stats)


@pytest.mark.parametrize("repeated", [True, False])
def test_pooling_equals_attention_over_every_point(model, repeated):
    """Folded queries + one map per distinct point = attention pooling over every point's keys and values."""
    batch = context_batch(3, T=4, N=6, points_per_row=[6, 3, 0] if repeated else [6, 6, 6])  # [6, 3, 0]: empty days
    batch["point_weights"] = torch.nan_to_num(batch["point_weights"])
    if repeated:
        batch["points"][:, 1:] = batch["points"][:, :1]  # every day repeats the first day's cloud
    args = [batch[k] for k in ("points", "point_weights", "point_mask", "day_stats")]
    flat = batch["points"].reshape(-1, 16)
    unique = unique_rows(flat)
    assert (unique is not None) == repeated
    if unique is not None:
        rows, inverse = unique
        assert torch.equal(rows[inverse], flat) and len(rows) == 9 + 1  # 6 + 3 points and the zero padding
    with torch.no_grad():
        assert torch.allclose(model.pooler(*args), reference_pooling(model.pooler, *args), atol=1e-5)


def test_unique_rows_rejects_rows_that_only_share_a_key():
    x = torch.randn(40, 16)
    x[20:] = x[:20]
    x[25, 12] += 1.0  # same first coordinates as row 5, different elsewhere
    assert unique_rows(x) is None


def test_generation_builds_no_autograd_graph(model):
    """Generating runs the encoder without autograd (no graph kept for the encoder states of B·K futures)."""
    grad_enabled = []
    encode = model.encode
    model.encode = lambda batch: (grad_enabled.append(torch.is_grad_enabled()), encode(batch))[1]
    try:
        model.generate_ids(context_batch(2), num_futures=2, max_new_tokens=4)
        model.generate_ids(context_batch(2), num_futures=2, max_new_tokens=4, constrained=False)
    finally:
        del model.encode
    assert grad_enabled == [False, False]
