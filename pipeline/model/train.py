"""Train an EventForecaster: setup → fit → validate → save.

    loss = NLL(target tokens) + λ · S_ε(predicted phrase points, target phrase points)
           + λ_occ · BCE(occurrence head, the target day's labels)

(``TrainConfig.sinkhorn_lambda`` = λ, ``sinkhorn_eps`` = ε, ``occurrence_lambda`` = λ_occ;
λ = 0 is the no-Sinkhorn ablation — NLL and the occurrence BCE stay — whose validation
still reports S_ε so both runs are comparable.)

* AdamW (decay on matrices only), linear warm-up then cosine decay to
  ``min_lr_ratio``·lr, global grad-norm clipping, gradient accumulation;
  bf16 autocast on CUDA, fp32 on CPU.
* Deterministic: the seed fixes the initial parameters, the data order
  (one permutation per epoch from ``(seed, epoch)``), dropout and sampling.
* NaN/inf guard: a step whose loss or gradient is not finite is skipped and
  counted; more than ``max_bad_steps`` of them abort the run.
* Resumable: every ``checkpoint_every`` steps and at each epoch end,
  ``models/<run>/checkpoint/`` receives the model, optimiser, scheduler, RNG
  states and counters (atomically). ``train(..., resume=True)`` continues a killed
  run from there and reaches the same parameters as an uninterrupted run.
* Output ``models/<run>/``: the model (``EventForecaster.save_pretrained``),
  ``config.yaml`` (resolved), ``metrics.json`` and a ``README.md`` model card.

Entry point: :func:`train` (``gdelt-forecast train`` and the Prefect flows call it).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import errno
import json
import logging
import math
import os
import random
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch.utils.data import Dataset

from pipeline.core.config import Config, TrainConfig
from pipeline.core.errors import UserError
from pipeline.core.lake import Lake
from pipeline.model.forecaster import EventForecaster, eval_mode, resolve_model_config
from pipeline.model.learned import LearnedBaseline
from pipeline.core.progress import make_progress

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoint"
STATE_FILE = "state.pt"


@dataclass
class TrainResult:
    """What a run produced: its directory (a loadable model), final metrics and counters."""

    run_dir: Path
    metrics: dict[str, Any]
    steps: int
    bad_steps: int = 0
    resumed_from: int | None = None


@dataclass
class TrainState:
    """Counters saved with each checkpoint (a step = one optimiser step = ``grad_accum`` micro-batches)."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    bad_steps: int = 0
    samples: int = 0
    tokens: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)


class NonFiniteLossError(RuntimeError):
    """Raised when more than ``max_bad_steps`` steps had a NaN/inf loss or gradient."""


# =================================================================== entry point
class RunExistsError(UserError, FileExistsError):
    """``train`` onto a run that has a checkpoint, without ``--resume``."""


@contextlib.contextmanager
def deterministic_algorithms(on: bool) -> Iterator[None]:
    """torch's deterministic algorithms inside the block (``train.deterministic``), the previous mode restored after.

    On CPU with more than one thread, an accumulating index (the backward of a row lookup with repeats) adds in
    whatever order the threads finish, so two trainings of one seed drifted apart by ~1e-7 in their weights
    within 30 steps; with these on they are bit-identical (cost: docs/model.md "Training"). ``warn_only``:
    an op with no deterministic kernel (some CUDA ones) warns instead of stopping the run; cuBLAS needs
    ``CUBLAS_WORKSPACE_CONFIG`` before its first use, set here unless already set."""
    if not on:
        yield
        return
    before = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])


def train(cfg: Config, lake: Lake | None, *, resume: bool = False,
          datasets: tuple[Dataset, Dataset | None] | None = None, embedder: Any = None,
          collate_fn: Callable[[list[Any]], dict[str, Any]] | None = None) -> TrainResult:
    """Train ``cfg.model`` on the windows of ``lake`` and write ``models/<run>/``.

    Args:
        cfg: resolved config (``cfg.dataset`` windows, ``cfg.model`` size, ``cfg.train`` optimisation).
        lake: the lake holding ``descriptors`` / ``descriptor_days`` (unused when ``datasets`` is given).
        resume: continue from ``models/<run>/checkpoint`` when it exists (else start fresh);
            without it an existing checkpoint is an error, so no run is overwritten by accident.
        datasets: ``(train, val)`` datasets of ``pipeline.features.dataset`` items, instead of building them.
        embedder: the ``pipeline.features.embed.Embedder`` for the dataset (None: built from ``cfg.embed``).
        collate_fn: items → batch (None: ``pipeline.features.dataset.collate``).

    Returns:
        ``TrainResult`` with ``run_dir`` (load it with ``EventForecaster.from_pretrained``) and metrics.
    """
    with deterministic_algorithms(cfg.train.deterministic):
        return _train(cfg, lake, resume=resume, datasets=datasets, embedder=embedder, collate_fn=collate_fn)


def _train(cfg: Config, lake: Lake | None, *, resume: bool,
           datasets: tuple[Dataset, Dataset | None] | None, embedder: Any,
           collate_fn: Callable[[list[Any]], dict[str, Any]] | None) -> TrainResult:
    """:func:`train`'s body, under its deterministic-algorithms setting."""
    # ---------------------------------------------------------------- setup
    tc = cfg.train
    if tc.num_threads:
        torch.set_num_threads(tc.num_threads)
    device = torch.device(tc.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else _null_autocast()
    run_dir = Path(tc.models_dir) / tc.run
    ckpt_dir = run_dir / CHECKPOINT_DIR
    _publish_run(run_dir)  # finish a save that a kill interrupted
    _recover_checkpoint(ckpt_dir)
    if ckpt_dir.exists() and not resume:
        raise RunExistsError(f"{ckpt_dir} exists: pass --resume to continue that run, "
                             f"or choose another train.run / delete {run_dir}")
    if datasets is None and (lake is None or not lake.partitions("descriptor_days")):
        where = lake.root if lake is not None else "no lake"
        raise UserError(f"no descriptors in {where}: run `gdelt-forecast descriptors --start … --end …` "
                        "(after ingest and reduce) before training")

    train_ds, val_ds = datasets if datasets is not None else build_datasets(cfg, lake, embedder)
    collate = collate_fn or default_collate()
    if len(train_ds) == 0:
        raise ValueError("no training windows: widen the lake's date range or lower dataset.context_days "
                         f"(now {cfg.dataset.context_days}) / val_days / test_days")
    batches_per_epoch = math.ceil(len(train_ds) / tc.batch_size)
    steps_per_epoch = math.ceil(batches_per_epoch / tc.grad_accum)
    epochs = epochs_for(tc, steps_per_epoch)
    total_steps = epochs * steps_per_epoch
    if tc.max_steps is not None:
        total_steps = min(tc.max_steps, total_steps)

    prior = fit_prior(cfg, lake, train_ds, val_ds) if cfg.model.occurrence_prior else None
    state = TrainState()
    resumed_from = None
    if resume and ckpt_dir.exists():
        model = EventForecaster.from_pretrained(ckpt_dir / "model").to(device)
        saved = torch.load(ckpt_dir / STATE_FILE, map_location="cpu", weights_only=False)
        state = TrainState(**saved["state"])
        resumed_from = state.step
    else:
        _seed_everything(tc.seed)
        model = _build_model(cfg, train_ds, collate).to(device)
    model.prior = prior  # the same fit on resume: seeded, from the same days
    model.train()
    optimizer = _make_optimizer(model, tc)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(tc, total_steps))
    if resumed_from is not None:
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        _set_rng_state(saved["rng"])
        log.info("resumed %s at step %d (epoch %d, batch %d)", run_dir, state.step, state.epoch, state.batch_in_epoch)

    # ------------------------------------------------------------------ fit
    progress = make_progress()
    t0, samples0 = time.perf_counter(), state.samples
    loss_sum = nll_sum = sink_sum = float("nan")  # last step's values (none yet in this session)
    with progress:
        task = progress.add_task(f"train {tc.run}", total=total_steps, completed=state.step, info="")
        while state.epoch < epochs and state.step < total_steps:
            batches = _epoch_batches(len(train_ds), tc.batch_size, tc.seed, state.epoch)
            while state.batch_in_epoch < len(batches) and state.step < total_steps:
                group = batches[state.batch_in_epoch: state.batch_in_epoch + tc.grad_accum]
                optimizer.zero_grad(set_to_none=True)
                loss_sum, nll_sum, sink_sum, n_tok = 0.0, 0.0, 0.0, 0
                for idx in group:
                    batch = collate([train_ds[i] for i in idx])
                    with amp:
                        out = model(batch, tc.sinkhorn_lambda, tc.sinkhorn_eps, occurrence_lambda=tc.occurrence_lambda)
                    (out.loss / len(group)).backward()
                    loss_sum += out.loss.item() / len(group)
                    nll_sum += out.nll.item() / len(group)
                    sink_sum += out.sinkhorn.item() / len(group)
                    n_tok += out.n_tokens
                    state.samples += len(idx)
                grad_norm = (torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip) if tc.grad_clip > 0
                             else _grad_norm(model))
                if math.isfinite(loss_sum) and torch.isfinite(grad_norm):
                    optimizer.step()
                else:  # NaN/inf guard: skip the update, count it, abort after too many
                    state.bad_steps += 1
                    log.warning("step %d: non-finite loss %s / grad norm %s, skipped (%d/%d)",
                                state.step, loss_sum, float(grad_norm), state.bad_steps, tc.max_bad_steps)
                    if state.bad_steps > tc.max_bad_steps:
                        raise NonFiniteLossError(
                            f"{state.bad_steps} steps with non-finite loss or gradient (train.max_bad_steps="
                            f"{tc.max_bad_steps}); lower train.lr, check the data, or disable bf16 (train.device=cpu)")
                optimizer.zero_grad(set_to_none=True)
                scheduler.step()
                state.step += 1
                state.batch_in_epoch += len(group)
                state.tokens += n_tok
                lr = scheduler.get_last_lr()[0]
                sps = (state.samples - samples0) / max(time.perf_counter() - t0, 1e-9)
                _on_step(state, {"loss": loss_sum, "nll": nll_sum, "sinkhorn": sink_sum, "lr": lr,
                                 "grad_norm": float(grad_norm)})
                progress.update(task, completed=state.step,
                                info=f"loss {loss_sum:.3f} nll {nll_sum:.3f} lr {lr:.1e} {sps:.1f} samples/s")
                if tc.checkpoint_every > 0 and state.step % tc.checkpoint_every == 0:
                    save_checkpoint(ckpt_dir, model, optimizer, scheduler, state)

            # ----------------------------------------------------- validate
            epoch_done = state.batch_in_epoch >= len(batches)
            metrics = {"epoch": state.epoch + 1 if epoch_done else state.epoch + state.batch_in_epoch / len(batches),
                       "step": state.step, "train_loss": loss_sum, "train_nll": nll_sum, "train_sinkhorn": sink_sum}
            if val_ds is not None and len(val_ds) > 0:
                metrics |= {f"val_{k}": v for k, v in validate(model, val_ds, tc, amp, collate).items()}
            state.history.append(metrics)
            sps = (state.samples - samples0) / max(time.perf_counter() - t0, 1e-9)  # not in the history: wall-clock
            log.info("epoch %s/%d: %s, %.1f samples/s", _round(metrics["epoch"]), epochs,
                     ", ".join(f"{k} {_round(v)}" for k, v in metrics.items() if k != "epoch"), sps)
            if epoch_done:
                state.epoch += 1
                state.batch_in_epoch = 0
            save_checkpoint(ckpt_dir, model, optimizer, scheduler, state)

    # ----------------------------------------------------------------- save
    elapsed = time.perf_counter() - t0
    final = dict(state.history[-1]) if state.history else {}
    final |= {"steps": state.step, "bad_steps": state.bad_steps, "samples_seen": state.samples,
              "tokens_seen": state.tokens,
              "samples_per_s_last_session": (state.samples - samples0) / max(elapsed, 1e-9),
              "n_parameters": model.num_parameters(), "sinkhorn_lambda": tc.sinkhorn_lambda}
    save_run(run_dir, model, cfg, final, state.history, train_ds, val_ds, collate)
    return TrainResult(run_dir, final, state.step, state.bad_steps, resumed_from)


def epochs_for(tc: TrainConfig, steps_per_epoch: int) -> int:
    """Passes over the training windows: ``tc.epochs``, or more where that is fewer than ``tc.min_steps`` steps."""
    if tc.min_steps is None or steps_per_epoch < 1:
        return tc.epochs
    return max(tc.epochs, math.ceil(tc.min_steps / steps_per_epoch))


# =================================================================== data
def build_datasets(cfg: Config, lake: Lake | None, embedder: Any = None) -> tuple[Dataset, Dataset | None]:
    """The train and validation ``pipeline.features.dataset.SequenceDataset`` splits of ``lake``."""
    from pipeline.features.dataset import SequenceDataset, build_index

    if lake is None:
        raise ValueError("train: a lake is required to build the datasets (--lake or lake.root)")
    if embedder is None:
        from pipeline.features.embed import Embedder

        embedder = Embedder(cfg.embed)
    index, _ = build_index(lake, cfg.dataset)  # one deterministic index, split by time
    train_ds = SequenceDataset(lake, cfg.dataset, embedder, split="train", index=index)
    try:
        val_ds = SequenceDataset(lake, cfg.dataset, embedder, split="val", index=index)
    except ValueError as exc:  # no validation days (dataset.val_days = 0): train without validation
        log.warning("no validation split: %s", exc)
        val_ds = None
    return train_ds, val_ds


def fit_prior(cfg: Config, lake: Lake | None, train_ds: Dataset, val_ds: Dataset | None) -> LearnedBaseline:
    """``model.occurrence_prior``: fit ``baseline-learned`` for the occurrence head to add to, and give every item
    of both datasets its prior (``ds.prior``: (country, target) → (L_all,) logits).

    The fit the model keeps (and the validation items use) is on the outcome days before the first validation
    target; each training target gets the prior of a fit without its block of days
    (:func:`pipeline.model.learned.fit_out_of_fold`, ``model.prior_folds`` blocks). Settings: ``forecast.learned_*``.
    Returns the kept fit."""
    from pipeline.cameo.labels import load_outcomes
    from pipeline.model.learned import fit_out_of_fold, training_days

    if lake is None or not all(getattr(ds, "history", None) is not None for ds in (train_ds, val_ds) if ds is not None):
        raise UserError("model.occurrence_prior needs the lake's 'country' table (the history features): "
                        "run `gdelt-forecast reduce`, or set model.occurrence_prior: false")
    t0 = time.perf_counter()
    targets = sorted({t for _, t in train_ds.keys()})
    end = min(t for _, t in val_ds.keys()) if val_ds is not None else targets[-1] + dt.timedelta(days=1)
    outcomes = load_outcomes(lake, None, end - dt.timedelta(days=1))
    days = training_days(outcomes, end)
    fc = cfg.forecast
    full, oof = fit_out_of_fold(outcomes, days, targets, cfg.model.prior_folds, fc.learned_estimator,
                                fc.learned_max_rows, fc.seed, cache=fc.learned_cache_dir)
    train_ds.prior = _priors(train_ds, oof.__getitem__)
    if val_ds is not None:
        val_ds.prior = _priors(val_ds, lambda _t: full)
    log.info("prior: baseline-learned (%s) on %d outcome days before %s, %d out-of-fold fits for %d training "
             "days, %.1f s", fc.learned_estimator, len(full.fitted_on), end, len(set(map(id, oof.values()))),
             len(targets), time.perf_counter() - t0)
    return full


def _priors(ds: Any, fit_for: Callable[[dt.date], LearnedBaseline]) -> dict[tuple[str, dt.date], np.ndarray]:
    """(country, target) → (L_all,) prior logits of every item of ``ds``, each from ``fit_for(target)``."""
    groups: dict[int, tuple[LearnedBaseline, list[tuple[str, dt.date]]]] = {}
    for key in ds.keys():
        fit = fit_for(key[1])
        groups.setdefault(id(fit), (fit, []))[1].append(key)
    out = {}
    for fit, keys in groups.values():
        z = fit.logits(np.stack([ds.history[k] for k in keys]))  # (n, L_all)
        out.update(zip(keys, z))
    return out


def default_collate() -> Callable[[list[Any]], dict[str, Any]]:
    """``pipeline.features.dataset.collate``: items → the batch dict of docs/ARCHITECTURE.md."""
    from pipeline.features.dataset import collate

    return collate


def _epoch_batches(n: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """The epoch's micro-batches of item indices: a permutation seeded by ``(seed, epoch)``."""
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    order = torch.randperm(n, generator=g).tolist()
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]


def _iter_batches(ds: Dataset, batch_size: int, collate: Callable) -> Iterator[dict[str, Any]]:
    for i in range(0, len(ds), batch_size):
        yield collate([ds[j] for j in range(i, min(i + batch_size, len(ds)))])


def _training_phrases(ds: Dataset, collate: Callable) -> list[str]:
    """Target phrases of the training split, sorted (they join the tokenizer's corpus)."""
    if callable(getattr(ds, "phrases", None)):  # SequenceDataset: from its index, without building items
        return list(ds.phrases())
    out: set[str] = set()
    for batch in _iter_batches(ds, 64, collate):
        for phrases in batch["target_phrases"]:
            out.update(phrases)
    return sorted(out)


def _build_model(cfg: Config, train_ds: Dataset, collate: Callable) -> EventForecaster:
    """A new model sized by ``cfg.model``; D and S come from the first training item when not set."""
    mcfg = resolve_model_config(cfg.model)
    first = collate([train_ds[0]])
    point_dim = mcfg.point_dim or first["points"].shape[-1]
    stats_dim = mcfg.stats_dim or first["day_stats"].shape[-1]
    history_dim = first["history"].shape[-1] if "history" in first else 0  # (B, L_all, F)
    if mcfg.history_features and not history_dim:
        log.warning("model.history_features is on but the dataset has no history features "
                    "(no 'country' table in the lake): the occurrence head reads the encoder only")
    return EventForecaster.build(mcfg, point_dim, stats_dim, _training_phrases(train_ds, collate),
                                 seed=cfg.train.seed, history_dim=history_dim)


# =================================================================== optimisation
def _make_optimizer(model: torch.nn.Module, tc: TrainConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices (≥ 2-D) only, not on biases, norms and scalars."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": tc.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=tc.lr, betas=tuple(tc.betas))


def _lr_lambda(tc: TrainConfig, total_steps: int):
    """Multiplier of ``lr`` at a step: linear warm-up, then cosine from 1 to ``min_lr_ratio``."""
    warmup = min(tc.warmup_steps, max(total_steps - 1, 0))

    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(total_steps - warmup, 1)
        return tc.min_lr_ratio + (1 - tc.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return f


def _grad_norm(model: torch.nn.Module) -> torch.Tensor:
    grads = [p.grad.detach().norm() for p in model.parameters() if p.grad is not None]
    return torch.stack(grads).norm() if grads else torch.zeros(())


def _round(v: Any) -> Any:
    """A metric for the log: floats to 4 significant digits."""
    return float(f"{v:.4g}") if isinstance(v, float) else v


def _on_step(state: TrainState, info: dict[str, float]) -> None:
    """Called after every optimiser step (a hook for logging; tests patch it to simulate a kill)."""
    log.debug("step %d: %s", state.step, info)


# =================================================================== validation
@torch.no_grad()
def validate(model: EventForecaster, ds: Dataset, tc: TrainConfig, amp: Any = None,
             collate: Callable | None = None) -> dict[str, float]:
    """NLL (nats/token), Sinkhorn S_ε, ROUGE-1/2/L F and phrase-set precision/recall on ``ds``.

    Generation (greedy) covers the first ``tc.val_generate`` sequences. The global
    RNG is not touched, so validating does not change the training trajectory.
    """
    amp = amp or _null_autocast()
    nll_sum, sink_sum, occ_sum, n_tok, n_seq = 0.0, 0.0, 0.0, 0, 0
    generated: list[list[str]] = []
    targets: list[list[str]] = []
    with eval_mode(model):
        for batch in _iter_batches(ds, tc.batch_size, collate or default_collate()):
            B = len(batch["target_phrases"])
            with amp:
                out = model(batch, tc.sinkhorn_lambda, tc.sinkhorn_eps, compute_sinkhorn=True)
            nll_sum += out.nll.item() * out.n_tokens
            n_tok += out.n_tokens
            sink_sum += out.sinkhorn.item() * B
            occ_sum += out.occurrence.item() * B if out.occurrence is not None else float("nan")
            n_seq += B
            room = tc.val_generate - len(generated)
            if room > 0:
                sub = _take(batch, min(room, B))
                with amp:
                    futures = model.generate_phrases(sub, num_futures=1, do_sample=False, seed=tc.seed,
                                                     max_new_tokens=tc.max_new_tokens)
                generated += [f[0] for f in futures]
                targets += [list(t) for t in sub["target_phrases"]]
    metrics = {"nll": nll_sum / max(n_tok, 1), "sinkhorn": sink_sum / max(n_seq, 1),
               "occurrence_bce": occ_sum / max(n_seq, 1)}
    if generated:
        metrics |= phrase_metrics(generated, targets)
    return metrics


def phrase_metrics(generated: Sequence[Sequence[str]], targets: Sequence[Sequence[str]]) -> dict[str, float]:
    """ROUGE-1/2/L F-measure (:func:`pipeline.cameo.phrases.phrase_rouge`, mean over rows) and
    exact phrase-set precision / recall (micro-averaged: matches / generated, matches / target)."""
    from pipeline.cameo.phrases import phrase_rouge

    sums = {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
    hits = n_gen = n_tgt = 0
    for gen, tgt in zip(generated, targets, strict=True):
        for k, v in zip(sums, phrase_rouge(tgt, gen), strict=True):
            sums[k] += v
        g, t = set(gen), set(tgt)
        hits += len(g & t)
        n_gen += len(g)
        n_tgt += len(t)
    n = max(len(generated), 1)
    return {**{k: v / n for k, v in sums.items()},
            "phrase_precision": hits / max(n_gen, 1), "phrase_recall": hits / max(n_tgt, 1)}


def _take(batch: Mapping[str, Any], n: int) -> dict[str, Any]:
    return {k: v[:n] for k, v in batch.items()}


# =================================================================== checkpoints
def save_checkpoint(ckpt_dir: Path, model: EventForecaster, optimizer: torch.optim.Optimizer,
                    scheduler: Any, state: TrainState) -> None:
    """Write model + optimiser + scheduler + RNG + counters to ``ckpt_dir`` atomically.

    The new checkpoint is written beside it (``.tmp``) and swapped in with
    renames; a kill at any moment leaves a complete old or new checkpoint
    (``_recover_checkpoint`` finishes an interrupted swap).
    """
    tmp, old = ckpt_dir.with_name(ckpt_dir.name + ".tmp"), ckpt_dir.with_name(ckpt_dir.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp / "model")
    torch.save({"state": dataclasses.asdict(state), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "rng": _rng_state()}, tmp / STATE_FILE)
    if ckpt_dir.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(ckpt_dir, old)
    os.replace(tmp, ckpt_dir)
    shutil.rmtree(old, ignore_errors=True)


def _recover_checkpoint(ckpt_dir: Path) -> None:
    """Finish a swap killed between its two renames (only ``checkpoint.old`` left)."""
    old = ckpt_dir.with_name(ckpt_dir.name + ".old")
    if not ckpt_dir.exists() and (old / STATE_FILE).exists():
        os.replace(old, ckpt_dir)
    shutil.rmtree(old, ignore_errors=True)
    shutil.rmtree(ckpt_dir.with_name(ckpt_dir.name + ".tmp"), ignore_errors=True)


def _rng_state() -> dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def _set_rng_state(rng: Mapping[str, Any]) -> None:
    random.setstate(rng["python"])
    np.random.set_state(rng["numpy"])
    torch.set_rng_state(rng["torch"])
    if rng.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class _null_autocast:
    """fp32 on CPU: a no-op context manager standing in for ``torch.autocast``."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


# =================================================================== outputs
def save_run(run_dir: Path, model: EventForecaster, cfg: Config, metrics: dict[str, Any],
             history: list[dict[str, Any]], train_ds: Dataset, val_ds: Dataset | None, collate: Callable) -> None:
    """``models/<run>/``: the model, ``config.yaml`` (resolved), ``metrics.json``, ``README.md`` card.

    Written whole into ``<models>/.staging/<run>.new/``, then published by ``_publish_run``:
    a kill at any moment leaves the previous ``models/<run>/`` or the new one, never a mix.
    """
    _publish_run(run_dir)  # finish an earlier swap first
    st = _Staging(run_dir)
    shutil.rmtree(st.new, ignore_errors=True)
    st.new.mkdir(parents=True)
    model.save_pretrained(st.new)
    resolved = cfg.to_dict()
    resolved["model"] = dataclasses.asdict(model.cfg)
    (st.new / "config.yaml").write_text(yaml.safe_dump(resolved, sort_keys=False))
    data = {"train": _describe(train_ds, collate), "val": _describe(val_ds, collate) if val_ds is not None else None}
    (st.new / "metrics.json").write_text(json.dumps(
        {"final": metrics, "history": history, "data": data}, indent=2, default=str) + "\n")
    (st.new / "README.md").write_text(model_card(cfg, model, metrics, data))
    for f in ("config.yaml", "metrics.json", "README.md"):
        (st.new / f).chmod(0o666 & ~_umask())
    _fsync_tree(st.new)
    st.intent_write(os.stat(st.new).st_ino)  # from here on the new run is complete and will be swapped in
    os.replace(st.new, st.ready)
    _publish_run(run_dir)


@dataclass
class _Staging:
    """``<models>/.staging/<run>.*``: where a run directory is prepared and swapped.

    ``.new`` is being written; ``.ready`` is complete (or, once swapped, the replaced run on
    its way out); ``.intent`` holds the inode of the new directory, which tells the two apart;
    ``.old`` is the replaced run, waiting for its ``checkpoint/`` to be moved out.
    """

    run_dir: Path

    def __post_init__(self) -> None:
        self.dir = self.run_dir.parent / ".staging"
        self.new, self.ready, self.old, self.intent = (self.dir / f"{self.run_dir.name}.{k}"
                                                       for k in ("new", "ready", "old", "intent"))

    def intent_write(self, inode: int) -> None:
        tmp = self.intent.with_name(self.intent.name + ".tmp")
        tmp.write_text(str(inode))
        os.replace(tmp, self.intent)

    def intent_inode(self) -> int | None:
        try:
            return int(self.intent.read_text())
        except (FileNotFoundError, ValueError):
            return None


def _publish_run(run_dir: Path) -> None:
    """Swap a complete staged run in for ``run_dir``, or finish a swap a kill interrupted.

    Steps: the staged ``.ready`` and ``run_dir`` are exchanged in one ``renameat2(RENAME_EXCHANGE)``
    (so ``run_dir`` is at every moment the previous run or the new one; where the call is
    missing, two renames, with ``run_dir`` absent between them); the replaced run goes to
    ``.old``, its training ``checkpoint/`` moves into the new ``run_dir``, ``.old`` is removed.
    Every state between two steps is recognised here, so calling this again after a kill
    (``train`` does, first thing) finishes the swap; an unfinished ``.new`` is removed.
    """
    st = _Staging(run_dir)
    if not st.dir.exists():
        return
    shutil.rmtree(st.new, ignore_errors=True)
    new_ino = st.intent_inode()
    if st.ready.exists() and (new_ino is None or os.stat(st.ready).st_ino == new_ino):  # not swapped in yet
        if run_dir.exists():
            if not _exchange(st.ready, run_dir):
                os.replace(run_dir, st.old)
                os.replace(st.ready, run_dir)
        else:
            os.replace(st.ready, run_dir)
    if st.ready.exists():  # the replaced run, after the exchange
        shutil.rmtree(st.old, ignore_errors=True)
        os.replace(st.ready, st.old)
    if st.old.exists():
        if run_dir.exists():
            if (st.old / CHECKPOINT_DIR).exists() and not (run_dir / CHECKPOINT_DIR).exists():
                os.replace(st.old / CHECKPOINT_DIR, run_dir / CHECKPOINT_DIR)
            shutil.rmtree(st.old)
        else:
            os.replace(st.old, run_dir)  # nothing was swapped in: the previous run stays
    for f in (st.intent, st.intent.with_name(st.intent.name + ".tmp")):
        with contextlib.suppress(FileNotFoundError):
            f.unlink()
    with contextlib.suppress(OSError):
        st.dir.rmdir()  # when empty


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux ``renameat2(RENAME_EXCHANGE)``); False where unsupported."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EXDEV, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(a), None, str(b))


def _fsync_tree(folder: Path) -> None:
    """fsync every file of ``folder`` and the folder itself (so a rename publishes durable bytes)."""
    for f in folder.rglob("*"):
        if f.is_file():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _describe(ds: Dataset, collate: Callable) -> dict[str, Any]:
    """Countries and target-day window of a split (from its batches' ``country`` / ``target_date``;
    a ``SequenceDataset``'s from its ``keys()``, without building items)."""
    countries: set[str] = set()
    dates: set[Any] = set()
    n = 0
    if callable(getattr(ds, "keys", None)):
        for c, d in ds.keys():
            countries.add(str(c))
            dates.add(d)
            n += 1
    else:
        for batch in _iter_batches(ds, 64, collate):
            countries.update(str(c) for c in batch["country"])
            dates.update(batch["target_date"])
            n += len(batch["country"])
    first, last = (str(min(dates)), str(max(dates))) if dates else (None, None)
    return {"n_sequences": n, "countries": sorted(countries), "first_target": first, "last_target": last}


def model_card(cfg: Config, model: EventForecaster, metrics: dict[str, Any], data: dict[str, Any]) -> str:
    """The model card (``README.md``): YAML metadata (``huggingface_hub.ModelCardData``: library, tags,
    data window, countries, held-out metrics), then what it is, data, metrics, how to load, intended use, limits."""
    from huggingface_hub import ModelCard, ModelCardData

    tr, va = data["train"], data.get("val") or {}
    m = model.cfg
    numbers = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    rows = "\n".join(f"| {k} | {v:.4f} |" for k, v in metrics.items() if isinstance(v, float))
    base = f"`{m.pretrained}` (pretrained)" if m.pretrained else (
        f"T5 built from preset `{m.preset}` (d_model {m.d_model}, {m.num_layers}+{m.num_layers} layers, "
        f"{m.num_heads} heads), byte-level BPE tokenizer on the phrase vocabulary")
    min_steps = f", at least {cfg.train.min_steps} steps" if cfg.train.min_steps else ""
    card_data = ModelCardData(
        library_name="gdelt-forecast", license="apache-2.0", language="en", datasets=["gdelt"],
        tags=["gdelt", "event-forecasting", "t5", "cameo", "sinkhorn"], pipeline_tag="text-generation",
        base_model=m.pretrained or None,
        run=cfg.train.run, n_parameters=model.num_parameters(), context_days=cfg.dataset.context_days,
        embedder=cfg.embed.model, trained_on=f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d}",
        data_window={"train": [tr.get("first_target"), tr.get("last_target")],
                     "validation": [va.get("first_target"), va.get("last_target")]},
        countries=list(tr.get("countries", [])), held_out_metrics=numbers,
        config={"model_preset": m.preset, "d_model": m.d_model, "num_layers": m.num_layers,
                "tokens_per_day": m.tokens_per_day, "sinkhorn_lambda": cfg.train.sinkhorn_lambda,
                "sinkhorn_eps": cfg.train.sinkhorn_eps, "epochs": cfg.train.epochs, "lr": cfg.train.lr,
                "batch_size": cfg.train.batch_size, "seed": cfg.train.seed},
    )
    directory = f"{cfg.train.models_dir}/{cfg.train.run}"
    content = f"""---
{card_data.to_yaml()}
---

# gdelt-forecast model `{cfg.train.run}`

Forecasts the next day's salient GDELT events of a country as 3–10 short phrases
("United States make a visit China"), conditioned on the previous
{cfg.dataset.context_days} days of descriptor clouds (points on the unit sphere, embedder
`{cfg.embed.model}`), and places each phrase on that sphere; an occurrence head gives the
probability of every CAMEO event, base and root code.

- Base: {base}; {model.num_parameters():,} parameters; {m.tokens_per_day} tokens per day.
- Objective: token NLL + λ·Sinkhorn divergence (λ = {cfg.train.sinkhorn_lambda}, ε = {cfg.train.sinkhorn_eps},
  cost 1 − cos) + {cfg.train.occurrence_lambda}·occurrence BCE (head reads history features:
  {m.history_features}, encoder term: {m.occurrence_encoder}, added to the `baseline-learned` prior in
  `prior/`: {m.occurrence_prior}).
- Trained {metrics.get('steps')} steps ({cfg.train.epochs} epochs max{min_steps},
  batch {cfg.train.batch_size}×{cfg.train.grad_accum},
  lr {cfg.train.lr}, seed {cfg.train.seed}) on {dt.datetime.now(dt.timezone.utc):%Y-%m-%d}.
- The resolved config is `config.yaml`; every metric of every epoch is in `metrics.json`.

## Data
- Training targets: {tr.get('first_target')} … {tr.get('last_target')} ({tr.get('n_sequences')} sequences).
- Validation targets (held out, later in time): {va.get('first_target')} … {va.get('last_target')}
  ({va.get('n_sequences')} sequences).
- Countries (FIPS): {', '.join(tr.get('countries', []))}.

## Metrics (held-out validation days)
| metric | value |
|---|---|
{rows}

Skill against the baselines on the test days (Brier, BSS with bootstrap intervals) is written by
the training flow (`gdelt-forecast retrain`) to `reports/eval-<start>_<end>/summary.csv`.

## Load the whole forecaster
The folder is a Hugging Face `save_pretrained` layout, but `AutoModelForSeq2SeqLM.from_pretrained`
loads only the T5 inside it (no descriptor encoder, point head or occurrence head, which live in
`descriptor_encoder.safetensors` and `forecaster.json`). Load the whole model with:
```python
from pipeline.model.forecaster import EventForecaster
model = EventForecaster.from_pretrained("{directory}")
futures = model.generate_phrases(batch, num_futures=100, temperature=1.0, top_p=0.95, seed=0)
```
or forecast from the lake: `gdelt-forecast forecast --date YYYY-MM-DD --model {directory}`.

## Intended use
Research on forecasting machine-coded news events: the probability that each CAMEO event is
reported tomorrow for a country, compared against simple baselines.

## Limitations
Trained on a short window of GDELT, whose events are machine-coded from news and over-represent
some countries and sources; coding errors and news cycles are learned as if they were events.
Forecasts are descriptive statistics of reporting, not predictions to act on, and not advice.
"""
    return str(ModelCard(content))
