"""The model directory documents itself: a card with YAML metadata, readable weights."""

from __future__ import annotations

import stat


def test_model_card_has_metadata_and_weights_are_readable(tiny_run):
    from huggingface_hub import ModelCard

    from tests.conftest import SAMPLE_COUNTRIES

    run = tiny_run.run_dir
    card = ModelCard.load(run / "README.md")
    data = card.data.to_dict()
    assert data["library_name"] == "gdelt-forecast" and data["license"] == "apache-2.0"
    assert set(data["countries"]) == set(SAMPLE_COUNTRIES)
    assert data["held_out_metrics"]["val_rouge1"] == tiny_run.metrics["val_rouge1"]
    assert data["data_window"]["validation"][0] > data["data_window"]["train"][0]
    assert data["config"]["d_model"] == 64 and data["n_parameters"] > 0
    assert "EventForecaster.from_pretrained" in card.text and "AutoModelForSeq2SeqLM" in card.text
    assert "Intended use" in card.text and "Limitations" in card.text
    for name in ("model.safetensors", "descriptor_encoder.safetensors", "README.md"):
        assert (run / name).stat().st_mode & stat.S_IROTH or (run / name).stat().st_mode & stat.S_IRGRP, name
