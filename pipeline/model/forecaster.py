"""EventForecaster: T days of descriptor clouds → T5 → tomorrow's phrases and their points on the sphere.

::

    points (B, T, N, D), weights (B, T, N) ──DayPooler──▶ tokens (B, T·Q, d)   Q learned queries per day,
    day_stats (B, T, S), day position t                  (+ stats, + position)  log-mass bias in the logits
        │
        ▼ T5 encoder (inputs_embeds, attention mask from day_mask)
    T5 decoder writes  "p_1 <sep> p_2 <sep> … p_M </s>"            → token NLL
        │ decoder state at every <sep>/</s> (one per phrase)
        ▼ PointHead: MLP, then normalise onto S^{D-1}          → predicted points (uniform weights)

    loss = NLL + λ · S_ε(predicted points, target points)     (S_ε: debiased Sinkhorn, cost 1 − cos)

The base is a T5 built from a preset config (``tiny``, ``small``) with a BPE
tokenizer trained on the phrase vocabulary (offline default), or any
``T5ForConditionalGeneration.from_pretrained(name or path)`` with its own
tokenizer (``ModelConfig.pretrained``).

A saved model is one directory: the T5 in Hugging Face layout (``config.json``,
``model.safetensors``), the tokenizer files, ``descriptor_encoder.safetensors``
(day pooling + point head + occurrence head), ``forecaster.json`` (the model config) and, with
``model.occurrence_prior``, ``prior/`` (the ``baseline-learned`` fit the occurrence head adds to).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoTokenizer, PreTrainedTokenizerFast, T5Config, T5ForConditionalGeneration

from pipeline.core.config import ModelConfig
from pipeline.core.errors import UserError
from pipeline.core.progress import quiet_transformers
from pipeline.model.grammar import PhraseGrammar, phrase_grammar
from pipeline.model.learned import LearnedBaseline
from pipeline.model.sampling import row_seeds, sample_futures
from pipeline.model.tokenizer import (IGNORE_INDEX, SEP, decode_phrase_lists, encode_targets, ensure_separator,
                                      phrase_corpus, train_phrase_tokenizer, train_piece_tokenizer)

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(d_model=64, num_layers=2, num_heads=4, d_ff=128, dropout=0.1, vocab_size=1024),
    "small": dict(d_model=512, num_layers=6, num_heads=8, d_ff=2048, dropout=0.1, vocab_size=4096),
}
"""T5 sizes built from config. ``small`` is t5-small's shape with a phrase-vocabulary tokenizer."""

CONFIG_FILE = "forecaster.json"
ENCODER_FILE = "descriptor_encoder.safetensors"
PRIOR_DIR = "prior"
"""The occurrence head's ``baseline-learned`` prior inside a model directory (``model.occurrence_prior``)."""


def resolve_model_config(cfg: ModelConfig) -> ModelConfig:
    """Fill the ``None`` size fields of ``cfg`` from its preset (a copy; ``pretrained`` keeps them None)."""
    if cfg.pretrained is None and cfg.preset not in PRESETS:
        raise ValueError(f"model.preset={cfg.preset!r}: expected one of {sorted(PRESETS)} "
                         "(or set model.pretrained to a T5 name or path)")
    out = dataclasses.replace(cfg)
    for key, value in PRESETS.get(cfg.preset, PRESETS["tiny"]).items():
        if getattr(out, key) is None:
            setattr(out, key, value)
    return out


# ---------------------------------------------------------------- modules
class DayPooler(nn.Module):
    """Each day's weighted cloud → ``Q`` tokens by attention pooling with learned queries.

    For query q of day t, head h:  attn(q, i) = softmax_i( ⟨W_q q, W_k x_i⟩ / √d_h + log w_i ),
    so the pooled token is a mass-aware mean of the points (with uniform scores it
    is exactly the weighted mean ∑ w_i v_i). Masked points get −∞; an empty day
    becomes a learned ``empty`` token. Then the day's statistics (projected) and
    a day-position embedding (position 0 = the most recent day) are added.
    """

    def __init__(self, point_dim: int, stats_dim: int, d_model: int, tokens_per_day: int, num_heads: int,
                 max_days: int, dropout: float) -> None:
        super().__init__()
        if d_model % num_heads:
            raise ValueError(f"d_model={d_model} must be divisible by num_heads={num_heads}")
        self.num_heads, self.max_days = num_heads, max_days
        self.point_in = nn.Sequential(nn.Linear(point_dim, d_model), nn.GELU(), nn.LayerNorm(d_model))
        self.queries = nn.Parameter(torch.randn(tokens_per_day, d_model) * d_model**-0.5)
        self.q_proj = nn.Linear(d_model, d_model)
        self.kv_proj = nn.Linear(d_model, 2 * d_model)
        self.out_proj = nn.Linear(d_model, d_model)
        self.empty = nn.Parameter(torch.zeros(d_model))
        self.stats_proj = nn.Linear(stats_dim, d_model)
        self.day_pos = nn.Embedding(max_days, d_model)
        self.norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, points: torch.Tensor, weights: torch.Tensor, point_mask: torch.Tensor,
                day_stats: torch.Tensor) -> torch.Tensor:
        """points (B, T, N, D), weights (B, T, N), point_mask (B, T, N), day_stats (B, T, S) → (B, T·Q, d)."""
        B, T, N, _ = points.shape
        Q, H = self.queries.shape[0], self.num_heads
        if T > self.max_days:
            raise ValueError(f"context of T={T} days exceeds model.max_days={self.max_days}; raise it and retrain")
        scores, v = self.point_scores_values(points)  # (B, T, N, H·Q), (B, T, N, d)
        d = v.shape[-1]
        # log-mass bias: log w on real points, −∞ on padding; an all-empty day gets 0 (no NaN) and is replaced below
        has_points = point_mask.any(-1)  # (B, T)
        bias = torch.where(point_mask, torch.log(weights.float().clamp_min(1e-12)), float("-inf"))
        bias = torch.where(has_points[..., None], bias, 0.0)  # (B, T, N)
        z = scores.float().reshape(B, T, N, H, Q) + bias[..., None, None]
        attn = torch.softmax(z, dim=2).to(v.dtype)  # (B, T, N, H, Q), over the day's points
        pooled = torch.einsum("btnhq,btnhe->btqhe", attn, v.reshape(B, T, N, H, d // H))  # (B, T, Q, H, dh)
        pooled = self.out_proj(pooled.reshape(B, T, Q, d))  # (B, T, Q, d)
        pooled = torch.where(has_points[..., None, None], pooled, self.empty.to(pooled.dtype))
        position = torch.arange(T - 1, -1, -1, device=points.device)  # most recent day = 0
        day = self.stats_proj(day_stats) + self.day_pos(position)  # (B, T, d)
        tokens = self.norm(pooled + day[:, :, None, :])
        return self.dropout(tokens).reshape(B, T * Q, d)

    def point_scores_values(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Attention logits of every point for each query and head, (B, T, N, H·Q), and its values (B, T, N, d).

        With x = point_in(point), keys k = W_k x + b_k and values v = W_v x + b_v (``kv_proj``),
        the logit of query q in head h is ⟨q_h, k_h⟩/√d_h = ((W_k,hᵀ q_h)ᵀ x + ⟨q_h, b_k,h⟩)/√d_h:
        the queries are the same for every day, so they are folded into one (H·Q + d) × d map and
        keys are never formed. Each point is mapped alone, and a country's phrases recur from day
        to day (padding is one zero vector), so the map runs once per distinct point vector of the
        batch (:func:`unique_rows`) and is gathered back.
        """
        Q, H = self.queries.shape[0], self.num_heads
        d = self.q_proj.out_features
        dh = d // H
        q = self.q_proj(self.queries).reshape(Q, H, dh)  # (Q, H, dh)
        w_k, w_v = self.kv_proj.weight.chunk(2, dim=0)  # (d, d) each: out × in
        b_k, b_v = self.kv_proj.bias.chunk(2)
        w_score = torch.einsum("hei,qhe->hqi", w_k.reshape(H, dh, d), q).reshape(H * Q, d) * dh**-0.5
        b_score = torch.einsum("he,qhe->hq", b_k.reshape(H, dh), q).reshape(H * Q) * dh**-0.5
        weight, bias = torch.cat([w_score, w_v]), torch.cat([b_score, b_v])  # (H·Q + d, d), (H·Q + d,)

        flat = points.reshape(-1, points.shape[-1])  # (B·T·N, D)
        unique = unique_rows(flat)
        if unique is None:  # few repeats: map every point
            out = F.linear(self.point_in(points), weight, bias)
        else:
            rows, inverse = unique
            out = F.linear(self.point_in(rows), weight, bias)[inverse].reshape(*points.shape[:-1], -1)
        return out[..., :H * Q], out[..., H * Q:]


class PointHead(nn.Module):
    """Decoder state at a phrase boundary → a point on the unit sphere S^{D-1}."""

    def __init__(self, d_model: int, point_dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_model, d_model), nn.GELU(), nn.Linear(d_model, point_dim))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """(…, d) → (…, D), unit norm (computed in fp32)."""
        return F.normalize(self.net(h).float(), dim=-1)


@dataclass
class ForecastOutput:
    """Result of ``EventForecaster.forward``.

    loss = nll + λ·sinkhorn (scalar); nll: mean token NLL (nats/token); sinkhorn: mean S_ε over
    rows with targets (0 when not computed); logits (B, L, V); points (B, L, D) unit vectors,
    valid where ``boundary`` (B, L); n_tokens: label tokens; n_truncated: target phrases cut.
    """

    loss: torch.Tensor
    nll: torch.Tensor
    sinkhorn: torch.Tensor
    logits: torch.Tensor
    points: torch.Tensor
    boundary: torch.Tensor
    n_tokens: int
    n_truncated: int
    occurrence: torch.Tensor | None = None
    """Mean BCE of the occurrence head over labels and rows (None without the head)."""


# ------------------------------------------------------------------ model
class EventForecaster(nn.Module):
    """T5 conditioned on descriptor days; writes phrases and places them on the sphere.

    Build with ``EventForecaster.build(cfg, point_dim, stats_dim, phrases)`` (new model) or
    ``EventForecaster.from_pretrained(dir)`` (saved model). Batches follow
    ``pipeline.features.dataset.collate``.
    """

    def __init__(self, cfg: ModelConfig, t5: T5ForConditionalGeneration, tokenizer: PreTrainedTokenizerFast) -> None:
        super().__init__()
        if cfg.point_dim is None or cfg.stats_dim is None:
            raise ValueError("ModelConfig.point_dim and stats_dim must be set (EventForecaster.build infers them)")
        self.cfg = cfg
        self.t5 = t5
        self.tokenizer = tokenizer
        d_model = t5.config.d_model
        heads = cfg.num_heads or t5.config.num_heads
        dropout = cfg.dropout if cfg.dropout is not None else t5.config.dropout_rate
        self.pooler = DayPooler(cfg.point_dim, cfg.stats_dim, d_model, cfg.tokens_per_day, heads, cfg.max_days, dropout)
        self.point_head = PointHead(d_model, cfg.point_dim)
        history_term = cfg.history_features and cfg.occurrence_history_term
        self.occurrence = (OccurrenceHead(d_model, cfg.history_dim if history_term else None,
                                          cfg.occurrence_encoder, cfg.occurrence_prior)
                           if cfg.occurrence_head else None)
        self.prior: LearnedBaseline | None = None
        """The occurrence head's prior (``model.occurrence_prior``): ``baseline-learned`` as fitted by ``train``,
        saved in ``prior/`` of the model directory."""
        self.sep_id = tokenizer.convert_tokens_to_ids(SEP)

    # ............................................................ building
    @classmethod
    def build(cls, cfg: ModelConfig, point_dim: int, stats_dim: int, phrases: Sequence[str] = (),
              seed: int = 0, history_dim: int | None = None) -> EventForecaster:
        """A new model: T5 from ``cfg.pretrained`` or from the preset, tokenizer trained on ``phrases``
        plus the phrase vocabulary. ``seed`` fixes the initial parameters. ``history_dim`` (F) sizes the
        occurrence head's history term; None/0 (the data has no history features) builds it without one."""
        cfg = resolve_model_config(cfg)
        cfg.point_dim, cfg.stats_dim = int(point_dim), int(stats_dim)
        cfg.history_dim = int(history_dim or 0)
        cfg.history_features = cfg.history_features and cfg.history_dim > 0
        if cfg.occurrence_prior and not cfg.history_features:
            raise UserError("model.occurrence_prior needs the history features, and the data has none: build the "
                            "lake's 'country' table (`gdelt-forecast reduce`) or set model.occurrence_prior: false")
        torch.manual_seed(seed)
        if cfg.pretrained:
            tokenizer = AutoTokenizer.from_pretrained(cfg.pretrained)
            t5 = T5ForConditionalGeneration.from_pretrained(cfg.pretrained)
            if ensure_separator(tokenizer):
                t5.resize_token_embeddings(len(tokenizer))
        else:
            tokenizer = (train_piece_tokenizer() if cfg.tokenizer == "pieces"
                         else train_phrase_tokenizer(phrase_corpus(phrases), cfg.vocab_size))
            t5 = T5ForConditionalGeneration(T5Config(
                vocab_size=len(tokenizer), d_model=cfg.d_model, d_kv=cfg.d_model // cfg.num_heads, d_ff=cfg.d_ff,
                num_layers=cfg.num_layers, num_decoder_layers=cfg.num_layers, num_heads=cfg.num_heads,
                dropout_rate=cfg.dropout, feed_forward_proj="gated-gelu", tie_word_embeddings=True,
                pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                decoder_start_token_id=tokenizer.pad_token_id,
            ))
        return cls(cfg, t5, tokenizer)

    @property
    def device(self) -> torch.device:
        return self.pooler.queries.device

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # ............................................................. forward
    def encode(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """Descriptor days → T5 encoder states (B, T·Q, d) and their attention mask (B, T·Q)."""
        dev = self.device
        tokens = self.pooler(batch["points"].to(dev), batch["point_weights"].to(dev),
                             batch["point_mask"].to(dev), batch["day_stats"].to(dev))
        mask = batch["day_mask"].to(dev).repeat_interleave(self.cfg.tokens_per_day, dim=1).long()  # (B, T·Q)
        hidden = self.t5.encoder(inputs_embeds=tokens, attention_mask=mask).last_hidden_state
        return hidden, mask

    def forward(self, batch: Mapping[str, Any], sinkhorn_lambda: float = 1.0, sinkhorn_eps: float = 0.05,
                compute_sinkhorn: bool | None = None, occurrence_lambda: float = 1.0) -> ForecastOutput:
        """Teacher-forced pass on a batch with targets.

        ``compute_sinkhorn`` defaults to ``sinkhorn_lambda > 0``; validation forces it on to
        measure the λ = 0 ablation on the same scale.
        """
        from pipeline.model.losses import sinkhorn_divergence

        dev = self.device
        targets = encode_targets(self.tokenizer, batch["target_phrases"], self.cfg.max_target_tokens)
        labels, boundary = targets.labels.to(dev), targets.boundary.to(dev)  # (B, L)
        enc, enc_mask = self.encode(batch)
        decoder_input_ids = self.t5._shift_right(labels)
        dec = self.t5.decoder(input_ids=decoder_input_ids, attention_mask=(labels != IGNORE_INDEX).long(),
                              encoder_hidden_states=enc, encoder_attention_mask=enc_mask).last_hidden_state
        h = dec * (self.t5.model_dim**-0.5) if _scales_decoder_output(self.t5.config) else dec
        logits = self.t5.lm_head(h)  # (B, L, V)
        nll = F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), ignore_index=IGNORE_INDEX)
        points = self.point_head(dec)  # (B, L, D) fp32, unit norm

        sinkhorn = torch.zeros((), device=dev)
        if compute_sinkhorn if compute_sinkhorn is not None else sinkhorn_lambda > 0:
            y = batch["target_points"].to(dev).float()  # (B, M, D)
            b, y_mask = batch["target_weights"].to(dev).float(), batch["target_mask"].to(dev)
            has = y_mask.any(1) & boundary.any(1)
            if not torch.isfinite(points[boundary]).all():  # diverged: report NaN, the trainer skips the step
                sinkhorn = torch.full((), float("nan"), device=dev)
            elif has.any():
                x, x_mask = pack_boundaries(points, boundary)  # (B, M', D), (B, M')
                a = x_mask.float() / x_mask.sum(1, keepdim=True).clamp_min(1)  # uniform over predicted phrases
                s = sinkhorn_divergence(x[has], a[has], y[has], b[has], sinkhorn_eps,
                                        x_mask=x_mask[has], y_mask=y_mask[has])  # (B',)
                sinkhorn = s.mean()
        loss = nll + sinkhorn_lambda * sinkhorn if sinkhorn_lambda > 0 else nll
        occurrence = None
        if self.occurrence is not None and "target_codes" in batch:
            z = self.occurrence(enc, enc_mask, batch.get("history"), self.prior_logits(batch))  # (B, L_all)
            y = self.occurrence.targets(batch["target_codes"]).to(dev)  # (B, L_all) in {0, 1}
            occurrence = F.binary_cross_entropy_with_logits(z.float(), y)
            if occurrence_lambda > 0:
                loss = loss + occurrence_lambda * occurrence
        return ForecastOutput(loss, nll, sinkhorn, logits, points, boundary,
                              int((labels != IGNORE_INDEX).sum()), targets.n_truncated, occurrence)

    @torch.no_grad()
    def occurrence_probs(self, batch: Mapping[str, Any]) -> dict[str, np.ndarray] | None:
        """P(label occurs on the target day) per level: {level: (B, L_level)}; None without the head."""
        if self.occurrence is None:
            return None
        with eval_mode(self):
            enc, enc_mask = self.encode(batch)
            z = self.occurrence(enc, enc_mask, batch.get("history"), self.prior_logits(batch))  # (B, L_all)
            p = torch.sigmoid(z.float()).cpu().numpy()
        return self.occurrence.split(p)

    def prior_logits(self, batch: Mapping[str, Any]) -> torch.Tensor | None:
        """(B, L_all) logits of the occurrence head's prior: the batch's ``prior`` when it has one (the training
        days' out-of-fold prior, set by ``train``), else :attr:`prior` on its ``history``; None without a prior."""
        if self.occurrence is None or not self.occurrence.prior:
            return None
        if "prior" in batch:
            return batch["prior"]
        if self.prior is None:
            raise ValueError("this model adds to a baseline-learned prior but has none loaded (its prior/ folder)")
        if "history" not in batch:
            raise ValueError("this model's prior reads history features, but the batch has none: build batches "
                             "with pipeline.features.dataset from a lake with a 'country' table")
        return torch.from_numpy(self.prior.logits(batch["history"].numpy()))

    # .......................................................... generation
    def grammar(self) -> PhraseGrammar | None:
        """The closed phrase vocabulary as a token automaton for this model's tokenizer (built once; None
        when the tokenizer does not tokenise phrases piece by piece, see :mod:`pipeline.model.grammar`)."""
        if not hasattr(self, "_grammar"):
            self._grammar = phrase_grammar(self.tokenizer, self.t5.config.vocab_size)
        return self._grammar

    @torch.no_grad()
    def generate_ids(self, batch: Mapping[str, Any], num_futures: int = 1, do_sample: bool = True,
                     temperature: float = 1.0, top_p: float = 0.95, seed: int | Sequence[int] = 0,
                     max_new_tokens: int | None = None, constrained: bool = True) -> torch.Tensor:
        """Token ids (B·K, L') of ``K`` futures per row (rows b·K … b·K+K−1 belong to row b).

        The encoder runs once per row; its states are repeated for the K futures, which are
        decoded together with a key/value cache (:func:`sample_futures`). ``seed`` is one seed
        per row (e.g. one per country), or an int from which row b's seed is derived
        (:func:`row_seeds`): a row's futures depend only on its inputs and its seed, not on
        the other rows of the batch. The global torch RNG is untouched. ``constrained``: write only
        phrases of the closed vocabulary (:meth:`grammar`; unconstrained when the tokenizer has none).
        """
        with eval_mode(self):
            enc, enc_mask = self.encode(batch)  # (B, T·Q, d), (B, T·Q)
            seeds = row_seeds(seed, enc.shape[0]) if isinstance(seed, int) else [int(s) for s in seed]
            if len(seeds) != enc.shape[0]:
                raise ValueError(f"generate: {len(seeds)} seeds for a batch of {enc.shape[0]} rows")
            return sample_futures(self.t5, enc, enc_mask, num_futures, seeds,
                                  max_new_tokens or self.cfg.max_target_tokens, self.tokenizer.eos_token_id,
                                  temperature=temperature if do_sample else None, top_p=top_p,
                                  grammar=self.grammar() if constrained else None)

    def generate_phrases(self, batch: Mapping[str, Any], num_futures: int = 1, temperature: float = 1.0,
                         top_p: float = 0.95, seed: int | Sequence[int] = 0, max_new_tokens: int | None = None,
                         do_sample: bool = True, constrained: bool = True) -> list[list[list[str]]]:
        """``K`` sampled futures per row: a list (B) of lists (K) of phrase lists.

        ``seed``: one per row, or one int for the batch (see :meth:`generate_ids`).
        ``do_sample=False`` decodes greedily (then all K futures are equal).
        ``constrained``: every phrase is one of the closed vocabulary (see :meth:`generate_ids`).
        """
        ids = self.generate_ids(batch, num_futures, do_sample, temperature, top_p, seed, max_new_tokens,
                                constrained)
        phrases = decode_phrase_lists(self.tokenizer, ids.tolist())
        K = num_futures
        return [phrases[b * K:(b + 1) * K] for b in range(len(phrases) // K)]

    @torch.no_grad()
    def phrase_points(self, batch: Mapping[str, Any], phrase_lists: Sequence[Sequence[str]]) -> list[torch.Tensor]:
        """Points the model places for given phrase lists (e.g. generated futures), one (M_b, D) tensor per row."""
        with eval_mode(self):
            targets = encode_targets(self.tokenizer, phrase_lists, self.cfg.max_target_tokens)
            labels, boundary = targets.labels.to(self.device), targets.boundary.to(self.device)
            enc, enc_mask = self.encode(batch)
            dec = self.t5.decoder(input_ids=self.t5._shift_right(labels),
                                  attention_mask=(labels != IGNORE_INDEX).long(),
                                  encoder_hidden_states=enc, encoder_attention_mask=enc_mask).last_hidden_state
            points = self.point_head(dec)
        return [points[b][boundary[b]].cpu() for b in range(len(phrase_lists))]

    # ...................................................... save / restore
    def save_pretrained(self, directory: str | Path) -> Path:
        """Write T5 (HF layout), tokenizer, ``descriptor_encoder.safetensors`` and ``forecaster.json``."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        with quiet_transformers(errors_only=False):  # no "Writing model shards" bar per checkpoint
            self.t5.save_pretrained(out)
        self.tokenizer.save_pretrained(out)
        state = {f"pooler.{k}": v for k, v in self.pooler.state_dict().items()}
        state |= {f"point_head.{k}": v for k, v in self.point_head.state_dict().items()}
        if self.occurrence is not None:
            state |= {f"occurrence.{k}": v for k, v in self.occurrence.state_dict().items()}
        save_file({k: v.detach().contiguous().cpu() for k, v in state.items()}, str(out / ENCODER_FILE))
        if self.prior is not None:
            self.prior.save(out / PRIOR_DIR)
        meta = {"format": 1, "model": dataclasses.asdict(self.cfg), "sep_token": SEP,
                "n_parameters": self.num_parameters()}
        (out / CONFIG_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        _make_readable(out)
        return out

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str | torch.device | None = None) -> EventForecaster:
        """Load a directory written by ``save_pretrained`` (in eval mode).

        Raises ``ModelFilesError`` (a ``UserError``: one line naming the file) for a directory
        that is not a saved model, a corrupt ``forecaster.json``, a missing tokenizer, or a
        truncated/corrupt ``model.safetensors`` or ``descriptor_encoder.safetensors``.
        """
        src = Path(directory)
        if not (src / CONFIG_FILE).exists():
            raise ModelFilesError(f"{src / CONFIG_FILE} not found: {src} is not a saved EventForecaster "
                                  "(train one with `gdelt-forecast train`)")
        meta = _model_files_step(src / CONFIG_FILE, "is not a valid forecaster config",
                                 lambda: json.loads((src / CONFIG_FILE).read_text()))
        saved = dict(meta.get("model", {}) if isinstance(meta, dict) else {})
        saved.setdefault("history_features", False)  # saved before the head read history features
        unknown = sorted(set(saved) - {f.name for f in dataclasses.fields(ModelConfig)})
        if unknown:
            raise ModelFilesError(f"{src / CONFIG_FILE} is not a valid forecaster config: model settings {unknown} "
                                  "are unknown to this version of "
                                  "gdelt-forecast; load it with the version that trained it, or retrain")
        cfg = _model_files_step(src / CONFIG_FILE, "is not a valid forecaster config", lambda: ModelConfig(**saved))
        if not any((src / name).exists() for name in ("tokenizer.json", "spiece.model", "vocab.json")):
            raise ModelFilesError(f"{src / 'tokenizer.json'} not found: the model directory lacks its tokenizer; "
                                  "copy the whole run directory again or retrain")
        tokenizer = _model_files_step(src / "tokenizer.json", "cannot be loaded", lambda: AutoTokenizer.from_pretrained(src))
        # the T5 LM head and embeddings are tied to `shared`: transformers v5 lists them as
        # "MISSING" in its load report although they are restored by tying; keep that noise quiet
        with quiet_transformers():
            t5 = _model_files_step(src / "model.safetensors", "is missing, truncated or corrupt",
                                   lambda: T5ForConditionalGeneration.from_pretrained(src))
        model = cls(cfg, t5, tokenizer)
        state = _model_files_step(src / ENCODER_FILE, "is missing, truncated or corrupt",
                                  lambda: load_file(str(src / ENCODER_FILE)))
        model.pooler.load_state_dict({k[7:]: v for k, v in state.items() if k.startswith("pooler.")})
        model.point_head.load_state_dict({k[11:]: v for k, v in state.items() if k.startswith("point_head.")})
        occurrence = {k[11:]: v for k, v in state.items() if k.startswith("occurrence.")}
        if model.occurrence is not None and occurrence:
            model.occurrence.load_state_dict(occurrence)
        else:  # saved without the head (older runs)
            model.occurrence, model.cfg.occurrence_head = None, False
        if model.occurrence is not None and model.occurrence.prior:
            model.prior = _model_files_step(src / PRIOR_DIR, "cannot be loaded",
                                            lambda: LearnedBaseline.load(src / PRIOR_DIR))
            if model.prior is None:
                raise ModelFilesError(f"{src / PRIOR_DIR} not found: this model adds to a baseline-learned prior "
                                      "saved there; copy the whole run directory again or retrain")
        if device is not None:
            model.to(device)
        return model.eval()


class ModelFilesError(UserError, FileNotFoundError):
    """A model directory that cannot be loaded (missing, truncated or corrupt files): one line naming the file."""


def _model_files_step(path: Path, problem: str, load):
    """``load()``, with any failure turned into one ``ModelFilesError`` line naming ``path``."""
    try:
        return load()
    except UserError:
        raise
    except Exception as exc:  # safetensors, json, transformers and torch errors all mean: this file is bad
        detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ModelFilesError(f"{path} {problem} ({type(exc).__name__}: {detail}); copy the run directory "
                              "again or retrain with `gdelt-forecast train`") from exc


class OccurrenceHead(nn.Module):
    """Which labels occur on the target day: one logit per event, base and root code and QuadClass.

    ::

        logit_l = [logit r_l] + g(encoder)_l + f(h_l) + c_l

    g: the encoder states (B, T·Q, d) mean-pooled over valid tokens, then a two-layer MLP
    → (B, L_all), L_all = Σ_levels L_level (``pipeline.cameo.labels.label_space``), in level order
    event, base, root, quad. f: one small MLP shared by every label, on that label's history
    features h_l (F, :mod:`pipeline.features.history`), and c_l a per-label bias. With f, g's last
    layer starts at zero, so the encoder learns what the history misses. Either term can be
    absent (``history_dim=None``: encoder only, the older head; ``encoder=False``: history only).
    With ``prior=True`` (``model.occurrence_prior``) the logits are offsets on a fixed prior r, the
    probability ``baseline-learned`` gives the label (passed to :meth:`forward` as its logit); f then
    starts at zero too, so the untrained head is the prior and training learns only what it misses.
    Trained with BCE against the target day's codes.
    """

    def __init__(self, d_model: int, history_dim: int | None = None, encoder: bool = True,
                 prior: bool = False) -> None:
        super().__init__()
        from pipeline.cameo.labels import LEVELS, label_space

        labels = label_space()
        self.levels = [(lv, len(labels[lv])) for lv in LEVELS]
        self._code_columns: dict[str, list[int]] = {}  # event code → its label columns (``targets``)
        n = sum(size for _, size in self.levels)
        if not encoder and not history_dim and not prior:
            raise ValueError("occurrence head: without the encoder term it needs history features (history_dim)")
        self.mlp = (nn.Sequential(nn.LayerNorm(d_model), nn.Linear(d_model, d_model), nn.GELU(),
                                  nn.Linear(d_model, n)) if encoder else None)
        self.history = None
        if history_dim:
            hidden = 64
            self.history = nn.Sequential(nn.Linear(history_dim, hidden), nn.GELU(), nn.Linear(hidden, hidden),
                                         nn.GELU(), nn.Linear(hidden, 1))
            self.label_bias = nn.Parameter(torch.zeros(n))
            if prior:  # the history term starts as a zero residual on top of the prior
                nn.init.zeros_(self.history[-1].weight)
                nn.init.zeros_(self.history[-1].bias)
        if self.mlp is not None and (history_dim or prior):  # the encoder: a zero residual on top of the rest
            nn.init.zeros_(self.mlp[-1].weight)
            nn.init.zeros_(self.mlp[-1].bias)
        self.prior = prior

    def forward(self, enc: torch.Tensor, enc_mask: torch.Tensor, history: torch.Tensor | None = None,
                prior: torch.Tensor | None = None) -> torch.Tensor:
        """enc (B, T·Q, d), enc_mask (B, T·Q), history (B, L_all, F), prior (B, L_all) logits → logits (B, L_all)."""
        z = torch.zeros(enc.shape[0], sum(size for _, size in self.levels), device=enc.device)
        if self.prior:
            if prior is None:
                raise ValueError("this model's occurrence head adds to a prior (model.occurrence_prior), but none "
                                 "was given: EventForecaster computes it from the batch's history features")
            z = z + prior.to(enc.device).float()
        if self.mlp is not None:
            m = enc_mask.unsqueeze(-1).to(enc.dtype)  # (B, T·Q, 1)
            pooled = (enc * m).sum(1) / m.sum(1).clamp_min(1.0)  # (B, d)
            z = z + self.mlp(pooled).float()
        if self.history is not None:
            if history is None:
                raise ValueError("this model's occurrence head reads history features, but the batch has none: "
                                 "build batches with pipeline.features.dataset from a lake with a 'country' table")
            width = self.history[0].in_features  # F it was trained on; FEATURES only grows at its end
            if history.shape[-1] < width:
                raise ValueError(f"this model's occurrence head reads {width} history features, the batch has "
                                 f"{history.shape[-1]}: forecast with the gdelt-forecast version that trained it")
            z = z + self.history(history[..., :width].to(enc.device)).squeeze(-1).float() + self.label_bias
        return z  # (B, L_all)

    def targets(self, codes: Sequence[Sequence[str]]) -> torch.Tensor:
        """Multi-hot (B, L_all) of the event codes that occurred, with their base, root and QuadClass."""
        from pipeline.cameo.labels import label_space

        labels = label_space()
        cache = self._code_columns
        rows: list[int] = []
        cols: list[int] = []
        for b, row in enumerate(codes):
            for code in set(row):
                if code not in cache:  # the columns of a code at every level (none when unknown)
                    known, out, offset = code in labels["event"].index, [], 0
                    for lv, size in self.levels:
                        if known:
                            out.append(offset + labels[lv].index[labels.parent_code(code, lv)])
                        offset += size
                    cache[code] = out
                rows += [b] * len(cache[code])
                cols += cache[code]
        y = torch.zeros(len(codes), sum(size for _, size in self.levels))
        y[torch.tensor(rows, dtype=torch.long), torch.tensor(cols, dtype=torch.long)] = 1.0
        return y

    def split(self, p: np.ndarray) -> dict[str, np.ndarray]:
        """(B, L_all) → {level: (B, L_level)}."""
        from pipeline.cameo.labels import label_space

        return label_space().split(p)


def _make_readable(directory: Path) -> None:
    """Model files readable by the group and others as the umask allows (some writers leave them 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    for f in directory.iterdir():
        if f.is_file():
            f.chmod(0o666 & ~umask)


def pack_boundaries(points: torch.Tensor, boundary: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Gather the boundary rows of ``points`` (B, L, D) to the front: (B, M', D) and mask (B, M'), in order."""
    counts = boundary.sum(1)  # (B,)
    m = max(int(counts.max()), 1)
    order = torch.argsort((~boundary).to(torch.int8), dim=1, stable=True)[:, :m]  # boundary positions first
    packed = points.gather(1, order[..., None].expand(-1, -1, points.shape[-1]))
    mask = torch.arange(m, device=points.device)[None, :] < counts[:, None]
    return packed, mask


def _scales_decoder_output(config: T5Config) -> bool:
    """T5 rescales the decoder output by d_model^-½ before a tied LM head (v5: ``scale_decoder_outputs``)."""
    return bool(getattr(config, "scale_decoder_outputs", config.tie_word_embeddings))


DEDUPE_BELOW = 0.75
"""``unique_rows`` is used only when the distinct rows are fewer than this share of all rows."""


@torch.no_grad()
def unique_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The distinct rows of x (P, D) and the index of each row among them: ``rows[inverse] == x``.

    Rows are keyed by the bit patterns of their first two coordinates (one int64) and every
    group is checked on eight more coordinates and on the row sums; None when a check fails
    (rows that share a key but differ), or when at least ``DEDUPE_BELOW`` of the rows are
    distinct (then deduplicating would not pay). A pass over a few columns, not over x.
    """
    P, D = x.shape
    if P < 2 or D < 2 or x.dtype != torch.float32:
        return None
    bits = x[:, :2].contiguous().view(torch.int32).long()  # (P, 2)
    key = (bits[:, 0] << 32) | (bits[:, 1] & 0xFFFFFFFF)  # (P,)
    _, inverse = torch.unique(key, return_inverse=True)
    n = int(inverse.max()) + 1
    if n >= DEDUPE_BELOW * P:
        return None
    first = torch.full((n,), P, dtype=torch.long, device=x.device)
    first = first.scatter_reduce(0, inverse, torch.arange(P, device=x.device), reduce="amin")
    probe = torch.cat([x[:, 2:10], x.sum(1, keepdim=True)], dim=1)  # (P, ≤ 9)
    if not torch.equal(probe[first][inverse], probe):
        return None
    return x[first], inverse


@contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """``module`` in eval mode (no dropout) inside the block, its train/eval mode restored after."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


__all__ = ["EventForecaster", "ForecastOutput", "DayPooler", "PointHead", "PRESETS", "resolve_model_config",
           "pack_boundaries", "eval_mode"]
