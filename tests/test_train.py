"""Training loop: loss falls on the real sample, resume after a kill, λ = 0, NaN guard, outputs, CLI."""

from __future__ import annotations

import json
import math

import pytest
import torch

from pipeline.model import train as train_mod
from pipeline.core.config import Config, TrainConfig, load_config
from pipeline.model.forecaster import EventForecaster
from pipeline.model.train import NonFiniteLossError, _lr_lambda, phrase_metrics, train
from tests.test_model import synthetic_batch

pytestmark = [pytest.mark.filterwarnings("ignore:sinkhorn_divergence did not converge"),
              pytest.mark.usefixtures("one_torch_thread")]


# ------------------------------------------------------------------ synthetic data
class SyntheticSequences(torch.utils.data.Dataset):
    """``n`` single-sequence items following the collate contract (fast, for loop mechanics)."""

    def __init__(self, n: int, poison: frozenset[int] = frozenset()) -> None:
        self.items = []
        for i in range(n):
            item = synthetic_batch(B=1, T=4, N=8, D=16, S=5, M=4, seed=i)
            if i in poison:
                item["day_stats"] = torch.full_like(item["day_stats"], float("nan"))
            self.items.append(item)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return self.items[i]


def stack(items: list[dict]) -> dict:
    return {k: torch.cat([it[k] for it in items]) if torch.is_tensor(items[0][k]) else
            [x for it in items for x in it[k]] for k in items[0]}


def tiny_cfg(tmp_path, **train) -> Config:
    cfg = Config()
    cfg.model.dropout = 0.1  # dropout on: resuming must also restore the RNG
    cfg.train = TrainConfig(**{"run": "t", "models_dir": tmp_path, "epochs": 2, "batch_size": 4, "lr": 3e-3,
                               "warmup_steps": 2, "checkpoint_every": 2, "val_generate": 4,
                               "max_new_tokens": 16, **train})
    return cfg


def final_params(run_dir) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in EventForecaster.from_pretrained(run_dir).state_dict().items()}


# ------------------------------------------------------------------------- pieces
def test_schedule_warms_up_then_decays_to_min_ratio():
    f = _lr_lambda(TrainConfig(warmup_steps=4, min_lr_ratio=0.1), total_steps=20)
    lrs = [f(s) for s in range(21)]
    assert lrs[:4] == [0.25, 0.5, 0.75, 1.0] and lrs[4] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[4:], lrs[5:]))
    assert lrs[20] == pytest.approx(0.1)


def test_phrase_metrics_exact_sets_and_rouge():
    gen = [["Iran make statement", "China make a visit Iran"], ["praise or endorse"]]
    tgt = [["Iran make statement", "Israel praise or endorse"], ["praise or endorse"]]
    m = phrase_metrics(gen, tgt)
    assert m["phrase_precision"] == pytest.approx(2 / 3) and m["phrase_recall"] == pytest.approx(2 / 3)
    assert m["rouge1"] < 1.0 and phrase_metrics(tgt, tgt)["rouge1"] == pytest.approx(1.0)
    assert phrase_metrics(tgt, tgt)["rougeL"] == pytest.approx(1.0)


# ------------------------------------------------------------------ loop mechanics
def test_resume_after_kill_reaches_the_same_parameters(tmp_path, monkeypatch):
    data = (SyntheticSequences(12), SyntheticSequences(4))
    straight = train(tiny_cfg(tmp_path / "a"), None, datasets=data, collate_fn=stack)
    assert straight.steps == 6  # 2 epochs × 3 batches

    class Killed(Exception):
        pass

    def kill_at_5(state, info):  # dies after step 5, whose checkpoint (every 2) is not written
        if state.step == 5:
            raise Killed

    cfg = tiny_cfg(tmp_path / "b")
    monkeypatch.setattr(train_mod, "_on_step", kill_at_5)
    with pytest.raises(Killed):
        train(cfg, None, datasets=data, collate_fn=stack)
    monkeypatch.undo()
    with pytest.raises(FileExistsError, match="--resume"):
        train(cfg, None, datasets=data, collate_fn=stack)
    resumed = train(cfg, None, datasets=data, collate_fn=stack, resume=True)
    assert resumed.resumed_from == 4 and resumed.steps == 6

    a, b = final_params(straight.run_dir), final_params(resumed.run_dir)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(b[k], a[k], atol=1e-6, rtol=1e-5, msg=k)
    hist_a = json.loads((straight.run_dir / "metrics.json").read_text())["history"]
    hist_b = json.loads((resumed.run_dir / "metrics.json").read_text())["history"]
    assert [h["step"] for h in hist_a] == [h["step"] for h in hist_b] == [3, 6]
    assert hist_b[-1]["val_nll"] == pytest.approx(hist_a[-1]["val_nll"], rel=1e-5)


def test_nan_steps_are_skipped_counted_then_abort(tmp_path):
    data = (SyntheticSequences(8, poison=frozenset({3})), None)
    result = train(tiny_cfg(tmp_path, batch_size=1, epochs=1, max_bad_steps=2), None, datasets=data,
                   collate_fn=stack)
    assert result.bad_steps == 1 and result.steps == 8
    assert all(torch.isfinite(v).all() for v in final_params(result.run_dir).values())
    with pytest.raises(NonFiniteLossError, match="max_bad_steps"):
        train(tiny_cfg(tmp_path / "x", batch_size=1, epochs=1, max_bad_steps=2), None,
              datasets=(SyntheticSequences(8, poison=frozenset({1, 3, 5, 7})), None), collate_fn=stack)


def test_lambda_zero_ablation_still_measures_sinkhorn(tmp_path):
    data = (SyntheticSequences(8), SyntheticSequences(4))
    cfg = tiny_cfg(tmp_path, sinkhorn_lambda=0.0, occurrence_lambda=0.0, epochs=1)  # NLL only
    result = train(cfg, None, datasets=data, collate_fn=stack)
    m = result.metrics
    assert m["sinkhorn_lambda"] == 0.0 and m["train_sinkhorn"] == 0.0 and m["train_loss"] == m["train_nll"]
    assert m["val_sinkhorn"] > 0 and math.isfinite(m["val_nll"]) and m["val_occurrence_bce"] > 0


def test_grad_accumulation_takes_fewer_steps(tmp_path):
    data = (SyntheticSequences(8), None)
    result = train(tiny_cfg(tmp_path, batch_size=2, grad_accum=2, epochs=1), None, datasets=data, collate_fn=stack)
    assert result.steps == 2 and result.metrics["samples_seen"] == 8


def test_min_steps_adds_whole_epochs_only_where_an_epoch_is_short(tmp_path):
    data = (SyntheticSequences(8), None)  # batch 4: 2 steps an epoch
    short = train(tiny_cfg(tmp_path, run="short", epochs=1, min_steps=5, val_generate=0), None, datasets=data,
                  collate_fn=stack)
    assert short.steps == 6 and short.metrics["epoch"] == 3  # 5 steps need 3 whole epochs
    enough = train(tiny_cfg(tmp_path, run="enough", epochs=3, min_steps=2, val_generate=0), None, datasets=data,
                   collate_fn=stack)
    assert enough.steps == 6  # already 6 ≥ 2: epochs as asked
    capped = train(tiny_cfg(tmp_path, run="capped", epochs=1, min_steps=5, max_steps=3, val_generate=0), None,
                   datasets=data, collate_fn=stack)
    assert capped.steps == 3
    with pytest.raises(Exception, match="min_steps"):
        TrainConfig(min_steps=0)


# ------------------------------------------------------------------ real sample, end to end
def test_tiny_preset_learns_on_the_sample(tiny_run):
    hist = json.loads((tiny_run.run_dir / "metrics.json").read_text())["history"]
    assert len(hist) == 6 and tiny_run.steps == 30 and tiny_run.bad_steps == 0
    assert hist[-1]["train_nll"] < 0.8 * hist[0]["train_nll"]  # the loss falls (epoch 1 → 6)
    assert hist[-1]["val_nll"] < hist[0]["val_nll"] and hist[-1]["val_sinkhorn"] < hist[0]["val_sinkhorn"]
    for key in ("val_sinkhorn", "val_rouge1", "val_rouge2", "val_rougeL", "val_phrase_precision",
                "val_phrase_recall"):
        assert 0.0 <= hist[-1][key] <= 2.0, key


def test_run_directory_is_a_loadable_documented_model(tiny_run, sample_descriptors, embedder):
    from pipeline.core.config import DatasetConfig
    from pipeline.features.dataset import SequenceDataset, collate
    from tests.conftest import SAMPLE_COUNTRIES

    run = tiny_run.run_dir
    assert {"config.json", "model.safetensors", "tokenizer.json", "descriptor_encoder.safetensors",
            "forecaster.json", "config.yaml", "metrics.json", "README.md"} <= {p.name for p in run.iterdir()}
    card = (run / "README.md").read_text()
    assert all(c in card for c in SAMPLE_COUNTRIES) and "val_rouge1" in card
    resolved = load_config(run / "config.yaml")
    assert resolved.model.point_dim == 384 and resolved.model.d_model == 64
    model = EventForecaster.from_pretrained(run)
    ds = SequenceDataset(sample_descriptors, DatasetConfig(countries=list(SAMPLE_COUNTRIES), max_points=64),
                         embedder, split="test")
    futures = model.generate_phrases(collate([ds[0], ds[1]]), num_futures=3, seed=0, max_new_tokens=48)
    assert len(futures) == 2 and all(len(f) == 3 for f in futures)
    assert any(p for f in futures for fut in f for p in fut)  # it writes phrases


def test_cli_train_resume(sample_descriptors, tmp_path):
    from typer.testing import CliRunner

    from gdelt_forecast.cli import app

    runner = CliRunner()
    args = ["--lake", str(sample_descriptors.root), "train", "--config", "configs/tiny.yaml",
            "--models-dir", str(tmp_path), "--run", "cli", "--max-steps", "2", "--epochs", "1"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert (tmp_path / "cli" / "metrics.json").exists()
    again = runner.invoke(app, args)  # an existing run is never overwritten silently
    assert again.exit_code == 2 and "--resume" in again.output  # one line, no traceback
    resumed = runner.invoke(app, args + ["--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert json.loads((tmp_path / "cli" / "metrics.json").read_text())["final"]["steps"] == 2


def test_per_epoch_metrics_reach_the_train_flow_log(tmp_path):
    """A real ``train()`` inside the train flow's log forwarding: one INFO line per epoch with the metrics."""
    import logging

    from flows.train import pipeline_logs_to

    got: list[str] = []

    class RunLogger:  # the Prefect run logger's interface
        def log(self, level, msg, *args):
            got.append(msg % args if args else msg)

    class Console(logging.Handler):  # what the root logger's console handler would print
        def emit(self, record):
            printed.append(record.getMessage())

    printed: list[str] = []
    console = Console(logging.INFO)
    logging.getLogger().addHandler(console)
    data = (SyntheticSequences(12), SyntheticSequences(4))
    level, handlers = logging.getLogger("pipeline").level, list(logging.getLogger("pipeline").handlers)
    try:
        with pipeline_logs_to(RunLogger()):
            train(tiny_cfg(tmp_path), None, datasets=data, collate_fn=stack)
    finally:
        logging.getLogger().removeHandler(console)
    assert not [m for m in printed if m.startswith("epoch ")]  # once in the run's log, not twice on the terminal
    epochs = [m for m in got if m.startswith("pipeline.model.train: epoch ")]
    assert [m.split()[2].rstrip(":") for m in epochs] == ["1/2", "2/2"]
    for m in epochs:
        assert all(k in m for k in ("train_loss", "val_nll", "val_sinkhorn", "samples/s")), m
    source = logging.getLogger("pipeline")
    assert (source.level, source.handlers, source.propagate) == (level, handlers, True)  # no trace left


def test_two_trainings_of_one_seed_on_two_threads_are_bit_identical(sample_descriptors, embedder, tmp_path):
    """``train.deterministic`` (the default): the tiny model on the real sample, trained twice on 2 CPU threads,
    has the same weights to the bit (without it they drift apart by ~1e-7: the backward of a row lookup with
    repeats accumulates in thread order), and the caller's deterministic-algorithms mode is restored after."""
    from tests.conftest import REPO, SAMPLE_COUNTRIES

    def run(name: str) -> dict[str, torch.Tensor]:
        cfg = load_config(REPO / "configs" / "tiny.yaml")
        cfg.dataset.countries = list(SAMPLE_COUNTRIES)
        cfg.train.run, cfg.train.models_dir, cfg.train.num_threads = name, tmp_path, 2
        cfg.train.epochs, cfg.train.max_steps, cfg.train.val_generate = 1, 6, 0
        return final_params(train(cfg, sample_descriptors, embedder=embedder).run_dir)

    assert not torch.are_deterministic_algorithms_enabled()
    a, b = run("a"), run("b")
    assert not torch.are_deterministic_algorithms_enabled()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
