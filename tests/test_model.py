"""EventForecaster: day pooling, phrase boundaries → points, save/load, generation, λ = 0, pretrained base.

Batches here are synthetic but follow the ``pipeline.features.dataset.collate`` contract
(docs/ARCHITECTURE.md); training on the real sample is in ``test_train.py``.
"""

from __future__ import annotations

import datetime as dt
import pytest
import torch
import torch.nn.functional as F

from pipeline.core.config import ModelConfig
from pipeline.model.forecaster import DayPooler, EventForecaster, resolve_model_config
from pipeline.cameo.phrases import make_phrase
from pipeline.model.tokenizer import SEP, decode_phrases, encode_targets, phrase_corpus, train_phrase_tokenizer

pytestmark = [pytest.mark.filterwarnings("ignore:sinkhorn_divergence did not converge"),
              pytest.mark.usefixtures("one_torch_thread")]

COUNTRIES = ["US", "CH", "IR", "IS", "UP", "RS", None]
CODES = ["010", "042", "190", "051", "138", "036", "112"]


def synthetic_batch(B: int = 4, T: int = 5, N: int = 12, D: int = 16, S: int = 6, M: int = 4,
                    seed: int = 0) -> dict:
    """A batch with exactly ``collate``'s keys and shapes; one empty day, rows with M and M−1 targets."""
    g = torch.Generator().manual_seed(seed)
    points = F.normalize(torch.randn(B, T, N, D, generator=g), dim=-1)
    point_mask = torch.rand(B, T, N, generator=g) > 0.25
    point_mask[0, 0] = False  # an empty day
    weights = torch.rand(B, T, N, generator=g) * point_mask
    weights = weights / weights.sum(-1, keepdim=True).clamp_min(1e-12)
    phrases = [[make_phrase(COUNTRIES[(b + i + seed) % 7], CODES[(3 * b + i + seed) % 7], COUNTRIES[(b + 2 * i) % 7])
                for i in range(M - b % 2)] for b in range(B)]
    target_mask = torch.zeros(B, M, dtype=torch.bool)
    for b, ps in enumerate(phrases):
        target_mask[b, : len(ps)] = True
    return {
        "points": points, "point_weights": weights, "point_mask": point_mask,
        "day_stats": torch.randn(B, T, S, generator=g), "day_mask": torch.ones(B, T, dtype=torch.bool),
        "target_points": F.normalize(torch.randn(B, M, D, generator=g), dim=-1),
        "target_weights": target_mask.float() / target_mask.sum(1, keepdim=True),
        "target_mask": target_mask, "target_phrases": phrases,
        "target_codes": [[c for c in CODES[:2]] for _ in range(B)], "country": ["US"] * B,
        "target_date": [dt.date(2025, 6, 1)] * B,
    }


def build(batch: dict, **overrides) -> EventForecaster:
    cfg = ModelConfig(**overrides)
    phrases = [p for ps in batch["target_phrases"] for p in ps]
    return EventForecaster.build(cfg, batch["points"].shape[-1], batch["day_stats"].shape[-1], phrases, seed=0)


@pytest.fixture(scope="module")
def batch() -> dict:
    return synthetic_batch()


# ----------------------------------------------------------------- tokenizer
def test_tokenizer_roundtrip_and_whole_phrase_truncation():
    tok = train_phrase_tokenizer(phrase_corpus(), vocab_size=512)
    assert (tok.pad_token_id, tok.eos_token_id) == (0, 1) and tok.convert_tokens_to_ids(SEP) == 3
    phrases = ["Iran threaten to use military force Israel", "United States make a visit China", "Côte d'Ivoire"]
    t = encode_targets(tok, [phrases, phrases[:1]], max_tokens=256)
    assert t.n_phrases.tolist() == [3, 1] and t.n_truncated == 0
    assert decode_phrases(tok, t.labels[0].clamp_min(0).tolist()) == phrases  # byte-level: exact round trip
    # a budget that fits the first two phrases only: the third is dropped whole and counted
    n12 = len(tok(phrases[0] + phrases[1], add_special_tokens=False).input_ids) + 4
    t = encode_targets(tok, [phrases], max_tokens=n12)
    assert t.n_truncated == 1 and t.n_phrases.tolist() == [2]
    assert decode_phrases(tok, t.labels[0].clamp_min(0).tolist()) == phrases[:2]


def test_decoded_phrases_have_no_replacement_characters():
    """A tiny model can emit half a UTF-8 character (the byte decoder writes U+FFFD) or a control byte:
    the phrases drop both."""
    tok = train_phrase_tokenizer(phrase_corpus(), vocab_size=512)
    half = tok.convert_tokens_to_ids("Ã")  # byte 0xC3: the lead byte of "ô", alone it is not UTF-8
    assert half != tok.unk_token_id
    enc = lambda text: tok(text, add_special_tokens=False).input_ids  # noqa: E731
    sep, eos = tok.convert_tokens_to_ids(SEP), tok.eos_token_id
    ids = (enc("Iran") + [half] + enc(" threaten Israel\x07") + [sep, half, sep] + enc("Côte d'Ivoire\x00 now")
           + [eos])
    raw = tok.decode(ids, skip_special_tokens=True)
    assert "\ufffd" in raw and "\x07" in raw and "\x00" in raw  # what the tokenizer itself gives
    # no replacement or control characters; the half-only phrase is empty; accents are kept
    assert decode_phrases(tok, ids) == ["Iran threaten Israel", "Côte d'Ivoire now"]


# ------------------------------------------------------------------- pooling
def test_pooling_is_mass_weighted_mean_and_ignores_padding():
    torch.manual_seed(0)
    pool = DayPooler(point_dim=8, stats_dim=3, d_model=16, tokens_per_day=2, num_heads=2, max_days=8, dropout=0.0)
    b = synthetic_batch(B=2, T=3, N=6, D=8, S=3)
    # zero query projection: every score is log w_i, so each token must be out_proj(Σ_i w_i v_i)
    with torch.no_grad():
        pool.q_proj.weight.zero_()
        pool.q_proj.bias.zero_()
    pool.eval()
    out = pool(b["points"], b["point_weights"], b["point_mask"], b["day_stats"])  # (B, T·Q, d)
    assert out.shape == (2, 3 * 2, 16) and torch.isfinite(out).all()
    x = pool.point_in(b["points"])
    v = pool.kv_proj(x).chunk(2, dim=-1)[1]
    mean = pool.out_proj((b["point_weights"][..., None] * v).sum(2))  # (B, T, d)
    day = pool.stats_proj(b["day_stats"]) + pool.day_pos(torch.arange(2, -1, -1))
    expected = pool.norm(mean + day)
    expected[0, 0] = pool.norm(pool.empty + day[0, 0])  # the empty day
    torch.testing.assert_close(out.reshape(2, 3, 2, 16)[:, :, 0], expected, atol=1e-5, rtol=1e-5)
    # padded points (mask False) can be anything, even NaN weights' coordinates
    moved = b["points"].clone()
    moved[~b["point_mask"]] = 123.0
    torch.testing.assert_close(pool(moved, b["point_weights"], b["point_mask"], b["day_stats"]), out)


def test_context_longer_than_max_days_is_a_clear_error(batch):
    model = build(batch, max_days=3)
    with pytest.raises(ValueError, match="max_days"):
        model.encode(batch)


# ------------------------------------------------------------------- forward
def test_one_unit_point_per_phrase_and_loss_terms(batch):
    model = build(batch)
    out = model(batch, sinkhorn_lambda=0.5, sinkhorn_eps=0.05)
    n_phrases = [len(p) for p in batch["target_phrases"]]
    assert out.boundary.sum(1).tolist() == n_phrases
    pts = out.points[out.boundary]
    torch.testing.assert_close(pts.norm(dim=-1), torch.ones(len(pts)))
    assert out.sinkhorn.item() > 0 and out.occurrence.item() > 0
    torch.testing.assert_close(out.loss, out.nll + 0.5 * out.sinkhorn + out.occurrence)
    out.loss.backward()
    assert model.point_head.net[0].weight.grad.abs().sum() > 0  # the Sinkhorn term trains the head
    assert model.occurrence.mlp[-1].weight.grad.abs().sum() > 0  # the BCE term trains the occurrence head
    assert model.pooler.queries.grad.abs().sum() > 0  # and gradients reach the day pooling


def test_occurrence_head_targets_and_probabilities_follow_the_label_space(batch):
    from pipeline.cameo.labels import LEVELS, label_space

    model = build(batch)
    labels = label_space()
    y = model.occurrence.targets([["0871", "190"], []])
    parts = model.occurrence.split(y.numpy())
    on = {lv: {labels[lv].codes[j] for j in parts[lv][0].nonzero()[0]} for lv in LEVELS}
    assert on == {"event": {"0871", "190"}, "base": {"087", "190"}, "root": {"08", "19"},
                  "quad": {str(labels.quad_of("08")), str(labels.quad_of("19"))}}
    assert y[1].sum() == 0
    probs = model.occurrence_probs(batch)
    assert set(probs) == set(LEVELS) and all(p.shape == (len(batch["country"]), len(labels[lv]))
                                             for lv, p in probs.items())
    assert all(((p >= 0) & (p <= 1)).all() for p in probs.values())
    without = model(batch, sinkhorn_lambda=0.0, occurrence_lambda=0.0)  # the ablation: BCE measured, not trained
    assert without.occurrence.item() > 0 and torch.equal(without.loss, without.nll)


def test_lambda_zero_is_nll_only(batch):
    model = build(batch)
    out = model(batch, sinkhorn_lambda=0.0, occurrence_lambda=0.0)
    assert out.sinkhorn.item() == 0.0 and torch.equal(out.loss, out.nll)
    out.loss.backward()
    assert model.point_head.net[0].weight.grad is None
    measured = model(batch, sinkhorn_lambda=0.0, compute_sinkhorn=True, occurrence_lambda=0.0)  # measured anyway
    assert measured.sinkhorn.item() > 0 and torch.equal(measured.loss, measured.nll)


def test_single_batch_overfits_and_generation_recovers_targets(batch):
    model = build(batch, dropout=0.0)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = None
    for _ in range(120):
        out = model(batch, sinkhorn_lambda=1.0, sinkhorn_eps=0.05)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        first = first or (out.nll.item(), out.sinkhorn.item())
    assert out.nll.item() < 0.05 * first[0]
    assert out.sinkhorn.item() < 0.5 * first[1]
    greedy = model.generate_phrases(batch, num_futures=1, do_sample=False)
    hits = sum(g[0] == t for g, t in zip(greedy, batch["target_phrases"]))
    assert hits >= 3, (greedy, batch["target_phrases"])


# --------------------------------------------------------------- generation
def test_generate_phrases_shape_and_seeding(batch):
    model = build(batch)
    a = model.generate_phrases(batch, num_futures=3, temperature=1.0, top_p=0.95, seed=7, max_new_tokens=24)
    b = model.generate_phrases(batch, num_futures=3, temperature=1.0, top_p=0.95, seed=7, max_new_tokens=24)
    c = model.generate_phrases(batch, num_futures=3, temperature=1.0, top_p=0.95, seed=8, max_new_tokens=24)
    assert len(a) == 4 and all(len(f) == 3 for f in a)
    assert all(isinstance(p, str) for f in a for fut in f for p in fut)
    assert a == b and a != c
    state = torch.get_rng_state()
    model.generate_phrases(batch, num_futures=2, seed=1, max_new_tokens=8)
    assert torch.equal(state, torch.get_rng_state())  # sampling does not disturb the global RNG
    pts = model.phrase_points(batch, [f[0] or ["make statement"] for f in a])
    assert len(pts) == 4 and all(p.shape[-1] == 16 for p in pts)


# --------------------------------------------------------------- save / load
def test_save_load_gives_identical_outputs(batch, tmp_path):
    model = build(batch).eval()
    with torch.no_grad():
        model.pooler.empty.normal_()  # a non-default value must survive the round trip
        before = model(batch, 1.0, 0.05)
    model.save_pretrained(tmp_path / "m")
    assert {"config.json", "model.safetensors", "tokenizer.json", "descriptor_encoder.safetensors",
            "forecaster.json"} <= {p.name for p in (tmp_path / "m").iterdir()}
    loaded = EventForecaster.from_pretrained(tmp_path / "m")
    with torch.no_grad():
        after = loaded(batch, 1.0, 0.05)
    torch.testing.assert_close(after.logits, before.logits, atol=0, rtol=0)
    torch.testing.assert_close(after.points, before.points, atol=0, rtol=0)
    assert loaded.cfg == model.cfg
    assert loaded.generate_phrases(batch, 2, seed=3, max_new_tokens=16) == \
        model.generate_phrases(batch, 2, seed=3, max_new_tokens=16)


def test_from_pretrained_rejects_other_directories(tmp_path):
    with pytest.raises(FileNotFoundError, match="forecaster.json"):
        EventForecaster.from_pretrained(tmp_path)


def test_pretrained_base_gets_a_separator_token(batch, tmp_path):
    """``model.pretrained`` loads any T5 + tokenizer from a path (here a tiny one without ``<sep>``)."""
    from transformers import PreTrainedTokenizerFast, T5Config, T5ForConditionalGeneration
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2} | {w: i + 3 for i, w in enumerate(
        sorted({w for ps in batch["target_phrases"] for p in ps for w in p.split()}))}
    raw = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")
    T5ForConditionalGeneration(T5Config(vocab_size=len(vocab), d_model=32, d_kv=8, d_ff=64, num_layers=1,
                                        num_heads=4, decoder_start_token_id=0)).save_pretrained(tmp_path / "t5")
    tok.save_pretrained(tmp_path / "t5")
    model = build(batch, preset="pretrained", pretrained=str(tmp_path / "t5"))
    assert model.sep_id == len(vocab) and model.t5.get_input_embeddings().num_embeddings >= len(vocab) + 1
    out = model(batch, 1.0, 0.05)
    assert torch.isfinite(out.loss) and out.boundary.sum().item() == sum(map(len, batch["target_phrases"]))


def test_presets_resolve():
    small = resolve_model_config(ModelConfig(preset="small"))
    assert (small.d_model, small.num_layers, small.num_heads) == (512, 6, 8)
    assert resolve_model_config(ModelConfig(d_model=96)).d_model == 96
    with pytest.raises(ValueError, match="model.preset"):
        resolve_model_config(ModelConfig(preset="huge"))


def test_pack_boundaries_keeps_order_and_masks_rest():
    from pipeline.model.forecaster import pack_boundaries

    pts = torch.arange(2 * 5, dtype=torch.float32).reshape(2, 5, 1)
    boundary = torch.tensor([[False, True, False, True, True], [True, False, False, False, False]])
    packed, mask = pack_boundaries(pts, boundary)
    assert mask.tolist() == [[True, True, True], [True, False, False]]
    assert packed[0, :, 0].tolist() == [1.0, 3.0, 4.0] and packed[1, 0, 0].item() == 5.0
