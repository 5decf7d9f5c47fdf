"""The occurrence head with history features: f(history) + g(encoder), ablations, old dirs, clear errors."""

from __future__ import annotations

import json

import pytest
import torch

from pipeline.features.history import N_FEATURES
from pipeline.model.forecaster import EventForecaster
from tests.test_model import build, synthetic_batch

pytestmark = [pytest.mark.filterwarnings("ignore:sinkhorn_divergence did not converge"),
              pytest.mark.usefixtures("one_torch_thread")]


def _with_history(batch: dict, seed: int = 0) -> dict:
    """The batch plus history features where feature 0 (``yesterday``) says which labels occur."""
    model = build(batch)
    y = model.occurrence.targets(batch["target_codes"])  # (B, L_all)
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(*y.shape, N_FEATURES, generator=g) * 0.1
    h[..., 0] = y
    return {**batch, "history": h}


def _build(batch: dict, **overrides) -> EventForecaster:
    phrases = [p for ps in batch["target_phrases"] for p in ps]
    from pipeline.core.config import ModelConfig

    return EventForecaster.build(ModelConfig(**overrides), batch["points"].shape[-1], batch["day_stats"].shape[-1],
                                 phrases, seed=0, history_dim=batch["history"].shape[-1])


def test_history_term_learns_what_the_features_say():
    batch = _with_history(synthetic_batch())
    model = _build(batch, occurrence_encoder=False)
    assert model.occurrence.mlp is None and model.cfg.history_features
    opt = torch.optim.Adam(model.occurrence.parameters(), lr=3e-2)
    first = None
    for _ in range(60):
        out = model(batch, sinkhorn_lambda=0.0)
        first = first if first is not None else out.occurrence.item()
        opt.zero_grad()
        out.occurrence.backward()
        opt.step()
    assert out.occurrence.item() < 0.2 * first
    p = model.occurrence_probs(batch)
    y = model.occurrence.split(model.occurrence.targets(batch["target_codes"]).numpy())
    assert ((p["root"] > 0.5) == (y["root"] > 0.5)).all()


def test_encoder_term_starts_as_a_zero_residual_and_needs_the_features():
    batch = _with_history(synthetic_batch())
    model = _build(batch)
    enc, mask = model.encode(batch)
    z = model.occurrence(enc, mask, batch["history"])
    only_history = model.occurrence.history(batch["history"]).squeeze(-1) + model.occurrence.label_bias
    torch.testing.assert_close(z, only_history)
    with pytest.raises(ValueError, match="history features"):
        model.occurrence_probs({k: v for k, v in batch.items() if k != "history"})


def test_save_load_keeps_the_history_term_and_old_dirs_still_load(tmp_path):
    batch = _with_history(synthetic_batch())
    model = _build(batch)
    with torch.no_grad():
        for p in model.occurrence.parameters():
            p.add_(0.01)
    model.save_pretrained(tmp_path / "new")
    again = EventForecaster.from_pretrained(tmp_path / "new")
    assert again.cfg.history_dim == N_FEATURES and again.occurrence.history is not None
    a, b = model.occurrence_probs(batch), again.occurrence_probs(batch)
    for lv in a:
        torch.testing.assert_close(torch.from_numpy(a[lv]), torch.from_numpy(b[lv]))
    # a model saved before history features existed: its forecaster.json lacks the keys
    old = build(synthetic_batch())
    old.save_pretrained(tmp_path / "old")
    meta = json.loads((tmp_path / "old" / "forecaster.json").read_text())
    for key in ("history_features", "occurrence_encoder", "history_dim"):
        meta["model"].pop(key)
    (tmp_path / "old" / "forecaster.json").write_text(json.dumps(meta))
    loaded = EventForecaster.from_pretrained(tmp_path / "old")
    assert loaded.occurrence.history is None and loaded.occurrence_probs(synthetic_batch()) is not None
    meta["model"]["from_the_future"] = 1
    (tmp_path / "old" / "forecaster.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="from_the_future"):
        EventForecaster.from_pretrained(tmp_path / "old")


def test_a_head_trained_on_fewer_features_reads_the_first_ones(tmp_path):
    """A model of an older version (fewer history features) still forecasts from today's wider batches."""
    batch = _with_history(synthetic_batch())
    narrow = {**batch, "history": batch["history"][..., :N_FEATURES - 3]}
    model = _build(narrow)
    model.save_pretrained(tmp_path / "old")
    again = EventForecaster.from_pretrained(tmp_path / "old")
    a, b = again.occurrence_probs(batch), again.occurrence_probs(narrow)
    for lv in a:
        torch.testing.assert_close(torch.from_numpy(a[lv]), torch.from_numpy(b[lv]))
    with pytest.raises(ValueError, match=f"reads {N_FEATURES - 3} history features, the batch has {N_FEATURES - 4}"):
        again.occurrence_probs({**batch, "history": batch["history"][..., :N_FEATURES - 4]})
