"""Tomorrow's forecast: K sampled futures projected onto the standard CAMEO events.

For one country and target day d:

1. context: the T days of descriptors before d (:func:`pipeline.features.dataset.load_contexts`:
   one read for all countries);
2. sample K futures (``model.generate_phrases``: temperature, top-p, one seed per country,
   :func:`country_seed`), each a list of phrases ``"[actor1 country] verb [actor2 country]"``,
   constrained to that closed vocabulary (``forecast.constrained``, :mod:`pipeline.model.grammar`), so
   each action text below is a basis verb already in the embedding cache;
3. split each phrase into its actor countries (leading / trailing FIPS country
   names, mapped back to FIPS codes) and its action text;
4. embed the action texts (through the lake's embedding cache) and project
   them onto the **basis**: the 291 CAMEO event codes, each represented by
   its verb text (``pipeline.cameo.phrases.verb``: the description with "not
   specified below" removed) embedded with the same embedder. The basis
   carries no actors: actors are read off the phrase, not guessed from the
   embedding. Assignment of phrase i to code e, with x, b unit vectors::

       soft:    a_ie = softmax_e(cos(x_i, b_e) / τ)      (τ = projection_temperature)
       argmax:  a_ie = 1[e = argmax_e' cos(x_i, b_e')]

5. a future k *contains* a label l (an event, base or root code or a
   QuadClass) with probability c_kl = 1 − Π_{i ∈ k} (1 − Σ_{e ∈ l} a_ie), and
   P(l) = (1/K) Σ_k c_kl. The same definition at every level makes a parent's
   probability at least any child's (Σ over more codes). With ``argmax`` it is
   exactly the share of futures with a phrase projected onto l.
   With ``forecast.probabilities = "occurrence"`` (default) and a model that has an
   occurrence head, P comes from that head instead (P(label occurs tomorrow), trained
   with BCE on the target day's codes, parent ≥ child restored), and the futures give
   the phrases and actor pairs; ``"futures"`` uses the share of futures above.
6. when the model directory holds a ``calibration.json`` (fitted on validation
   days, :mod:`pipeline.forecast.calibrate`), P is mapped through it per level (and blended
   with the country's climatology when the calibration has a blend, and with the stacked
   ``baseline-learned``'s probability when it has a stack) and the hierarchy restored (parent ≥ child);
7. actor pairs of a label: the (actor1, actor2) pairs of the phrases, weighted
   by Σ_{e ∈ l} a_ie, most likely first.

Written to ``forecasts/model=<run>/date=<d>/`` (the label probabilities) and
``futures/model=<run>/date=<d>/`` (the K futures and the code each phrase was
projected onto; :mod:`pipeline.forecast.futures` owns that table), each replaced atomically.
"""

from __future__ import annotations

import datetime as dt
import json
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from pipeline.cameo import phrases
from pipeline.cameo.phrases import split_actors
from pipeline.features.descriptors import check_countries
from pipeline.forecast.futures import futures_by_country, futures_rows, write_futures
from pipeline.forecast.table import MIN_PAIR_SHARE, forecast_rows
from pipeline.forecast.calibrate import Calibration, blend_inputs
from pipeline.model.hierarchy import restore_hierarchy
from pipeline.core.config import Config, ForecastConfig, load_config
from pipeline.cameo.labels import LEVELS, LabelSpace, label_space
from pipeline.core.lake import DateLike, Lake, as_date
from pipeline.core.progress import console, track
from pipeline.core.schemas import FORECASTS_SCHEMA

EmbedFn = Callable[[list[str]], np.ndarray]
"""Phrases (P) → unit vectors (P, D) float32."""


# ================================================================ phrases → actors + action


# ================================================================ basis + projection
@dataclass
class Basis:
    """The standard events: event codes (L) and their unit vectors (L, D)."""

    codes: tuple[str, ...]
    texts: list[str]
    vectors: np.ndarray  # (L, D) float32, unit norm


def basis_texts(labels: LabelSpace | None = None) -> list[str]:
    """The text standing for each event code of the label space (its verb phrase)."""
    labels = labels or label_space()
    return [phrases.verb(c) for c in labels["event"].codes]


def build_basis(embed: EmbedFn, labels: LabelSpace | None = None) -> Basis:
    labels = labels or label_space()
    texts = basis_texts(labels)
    vectors = np.asarray(embed(texts), dtype=np.float32)
    if vectors.shape[0] != len(texts):
        raise ValueError(f"embedder returned {vectors.shape[0]} vectors for {len(texts)} basis texts")
    return Basis(labels["event"].codes, texts, vectors)


def project(x: np.ndarray, basis: Basis, temperature: float = 0.05, mode: str = "soft") -> np.ndarray:
    """Assignment (P, L) of points x (P, D) to the basis codes; rows sum to 1.

    ``soft``: softmax over codes of cos / τ; ``argmax``: one-hot of the most
    similar code (ties: the first code).
    """
    if x.shape[0] == 0:
        return np.zeros((0, len(basis.codes)))
    cos = x.astype(np.float64) @ basis.vectors.T.astype(np.float64)  # (P, L)
    if mode == "argmax":
        a = np.zeros_like(cos)
        a[np.arange(len(cos)), cos.argmax(axis=1)] = 1.0
        return a
    if mode != "soft":
        raise ValueError(f"forecast.assignment must be 'soft' or 'argmax', got {mode!r}")
    if temperature <= 0:
        raise ValueError(f"forecast.projection_temperature must be > 0, got {temperature}")
    z = cos / temperature
    z -= z.max(axis=1, keepdims=True)
    a = np.exp(z)
    return a / a.sum(axis=1, keepdims=True)


def aggregate(assign: np.ndarray, future: np.ndarray, K: int, labels: LabelSpace | None = None
              ) -> dict[str, np.ndarray]:
    """Label probabilities per level from phrase assignments.

    Args:
        assign: (P, L_event) assignment of every phrase of the K futures.
        future: (P,) int, the future (0 … K−1) each phrase belongs to.
        K: number of futures (futures without phrases contain nothing).

    Returns:
        level → (L_level,) P(l) = mean_k [1 − Π_{i∈k} (1 − Σ_{e∈l} a_ie)].
    """
    labels = labels or label_space()
    out = {}
    for lv in LEVELS:
        a = assign @ labels.parent_matrix("event", lv) if lv != "event" else assign  # (P, L_lv)
        miss = np.ones((K, a.shape[1]))  # Π_{i∈k} (1 − a_il), (K, L_lv)
        np.multiply.at(miss, future, 1.0 - np.clip(a, 0.0, 1.0))
        out[lv] = np.clip((1.0 - miss).mean(axis=0), 0.0, 1.0)
    return out


def top_actor_pairs(assign: np.ndarray, pairs: Sequence[tuple[str | None, str | None]], level_matrix: np.ndarray,
                    top: int) -> list[list[dict]]:
    """Per label of a level (L_lv): the ``top`` (actor1, actor2) pairs by assigned mass, with their share;
    after the first, only pairs with at least :data:`MIN_PAIR_SHARE` of the label's mass."""
    if not len(pairs):
        return [[] for _ in range(level_matrix.shape[1])]
    mass = assign @ level_matrix  # (P, L_lv)
    keys = sorted(set(pairs), key=lambda p: (p[0] or "", p[1] or ""))
    kidx = {k: i for i, k in enumerate(keys)}
    onehot = np.zeros((len(pairs), len(keys)))
    onehot[np.arange(len(pairs)), [kidx[p] for p in pairs]] = 1.0
    per_pair = mass.T @ onehot  # (L_lv, n_pairs)
    out = []
    for row in per_pair:
        total = row.sum()
        if total <= 0:
            out.append([])
            continue
        order = np.argsort(-row, kind="stable")[:top]
        out.append([{"actor1": keys[j][0], "actor2": keys[j][1], "share": float(row[j] / total)}
                    for i, j in enumerate(order) if row[j] > 0 and (i == 0 or row[j] >= MIN_PAIR_SHARE * total)])
    return out


# ================================================================ one country
@dataclass
class CountryForecast:
    """Probabilities (level → (L,)), actor pairs (level → per label list) and the futures behind them.

    From :func:`project_futures` ``probs`` is the futures' share; :func:`run_forecast` publishes the one
    :func:`published_probabilities` decides."""

    country: str
    probs: dict[str, np.ndarray]
    pairs: dict[str, list[list[dict]]]
    futures: list[list[str]]
    codes: list[list[str]]


def project_futures(country: str, futures: Sequence[Sequence[str]], basis: Basis, embed: EmbedFn,
                    cfg: ForecastConfig, labels: LabelSpace | None = None) -> CountryForecast:
    """K futures (lists of phrases) of one country → label probabilities and actor pairs."""
    labels = labels or label_space()
    K = len(futures)
    flat = [(k, p) for k, fut in enumerate(futures) for p in fut if p and p.strip()]
    split = [split_actors(p) for _, p in flat]
    actions = [s[1] for s in split]
    x = np.asarray(embed(actions), dtype=np.float32) if actions else np.zeros((0, basis.vectors.shape[1]), np.float32)
    assign = project(x, basis, cfg.projection_temperature, cfg.assignment)  # (P, L)
    future = np.array([k for k, _ in flat], dtype=np.int64)
    probs = aggregate(assign, future, K, labels)
    pairs_of_phrase = [(s[0], s[2]) for s in split]
    pairs = {lv: top_actor_pairs(assign, pairs_of_phrase,
                                 labels.parent_matrix("event", lv) if lv != "event" else np.eye(len(basis.codes)),
                                 cfg.max_actor_pairs) for lv in LEVELS}
    best = assign.argmax(axis=1) if len(assign) else np.zeros(0, np.int64)
    codes: list[list[str]] = [[] for _ in range(K)]
    for (k, _), j in zip(flat, best):
        codes[k].append(basis.codes[j])
    kept = [[p for p in fut if p and p.strip()] for fut in futures]
    return CountryForecast(country, probs, pairs, kept, codes)


def forecast_tables(results: Sequence[CountryForecast], model_run: str, K: int, issued_at: dt.datetime,
                    labels: LabelSpace | None = None, sampling_key: str | None = None) -> tuple[pa.Table, pa.Table]:
    """``forecasts`` and ``futures`` partitions (their schemas) for one target day."""
    labels = labels or label_space()
    results = sorted(results, key=lambda r: r.country)
    countries = [r.country for r in results]
    probs = {lv: np.stack([r.probs[lv] for r in results]) if results else np.zeros((0, len(labels[lv])))
             for lv in LEVELS}
    pairs = {(i, lv, j): p for i, r in enumerate(results) for lv in LEVELS for j, p in enumerate(r.pairs[lv]) if p}
    fc = forecast_rows(countries, probs, np.ones(len(countries), bool), model_run, K, issued_at, labels, pairs)
    fut = futures_rows(countries, [r.futures for r in results], [r.codes for r in results], sampling_key)
    return fc, fut


# ================================================================ the model run
@dataclass
class ModelRun:
    """A trained model directory: the model, its run name, resolved config and countries."""

    directory: Path
    run: str
    model: Any
    config: Config
    countries: list[str] = field(default_factory=list)


def load_model_run(directory: str | Path, device: str | None = None) -> ModelRun:
    """Load ``models/<run>/`` (``save_pretrained`` layout + ``config.yaml`` + ``metrics.json``)."""
    from pipeline.model.forecaster import EventForecaster

    src = Path(directory)
    if not src.exists():
        raise FileNotFoundError(f"model directory {src} not found: train one with `gdelt-forecast train` "
                                "or pass --model models/<run>")
    src = src.resolve()
    model = EventForecaster.from_pretrained(src, device=device)
    cfg = load_config(src / "config.yaml") if (src / "config.yaml").exists() else Config()
    countries = list(cfg.dataset.countries)
    if not countries and (src / "metrics.json").exists():
        data = json.loads((src / "metrics.json").read_text()).get("data", {})
        countries = list((data.get("train") or {}).get("countries") or [])
    return ModelRun(src, src.name, model, cfg, countries)


def sampling_key(lake: Lake, mr: ModelRun, cfg: ForecastConfig, target: dt.date, countries: Sequence[str]) -> str:
    """What the K futures of ``target`` depend on, hashed: the model's weights and files (its calibration
    excepted), the sampler and its settings, the countries and the context partitions. Not the batches:
    each country samples from its own seed (:func:`country_seed`)."""
    import hashlib

    from pipeline.forecast.calibrate import FILE as CALIBRATION_FILE
    from pipeline.core.registry import model_fingerprint

    files = model_fingerprint(mr.directory, exclude={CALIBRATION_FILE})
    T = mr.config.dataset.context_days
    context = [lake.fingerprint(t, target - dt.timedelta(days=i)) for i in range(1, T + 1)
               for t in ("descriptors", "descriptor_days")]
    settings = [SAMPLER, cfg.num_futures, cfg.temperature, cfg.top_p, cfg.seed, list(countries)]
    if cfg.constrained and mr.model.grammar() is not None:
        settings.append("grammar:closed-phrases/v1")
    return hashlib.sha1(json.dumps([files, settings, context]).encode()).hexdigest()[:16]


def _stored_futures(lake: Lake, run: str, target: dt.date, key: str) -> dict[str, list[list[str]]]:
    """The futures already sampled for ``target`` under the same ``sampling_key`` ({} when none)."""
    return futures_by_country(lake, run, target, sampling_key=key)


SAMPLER = "nucleus-inverse-cdf/per-country-generator/v3-clean-phrases"
"""Names the sampling algorithm in ``sampling_key`` (futures stored by another sampler are not reused)."""


def country_seed(seed: int, country: str) -> int:
    """The sampling seed of ``country``'s futures: they depend on it and the country's context only, not on
    which other countries are forecast or share its ``generate`` batch."""
    return (seed * 1_000_003 + zlib.crc32(country.encode())) % (2**31 - 1)


def published_probabilities(futures_probs: dict[str, np.ndarray], occurrence: dict[str, np.ndarray] | None,
                            calibration: Calibration | None, clim: dict[str, np.ndarray] | None,
                            labels: LabelSpace, learned: dict[str, np.ndarray] | None = None
                            ) -> dict[str, np.ndarray]:
    """Step 6, the one place a country's published P is decided (level → (L,)).

    The source is the occurrence head when ``occurrence`` is given (parent ≥ child restored), else the
    futures' share; then the model directory's calibration (with the climatology blend when it has one
    and ``clim`` is given, stacked with ``baseline-learned``'s ``learned`` when the calibration has a
    stack). Without a calibration the source is published as it is.
    """
    raw = futures_probs if occurrence is None else restore_hierarchy(occurrence, labels)
    return raw if calibration is None else calibration.apply(raw, labels, clim, learned)


def sample_futures(mr: ModelRun, items: dict[str, Any], countries: Sequence[str], cfg: ForecastConfig,
                   stored: dict[str, list[list[str]]], target: dt.date,
                   ) -> tuple[dict[str, list[list[str]]], dict[str, dict[str, np.ndarray]], int]:
    """Steps 2 and 5's occurrence source: K futures per country and, with ``probabilities = "occurrence"``,
    the occurrence head's P. Countries go in batches (one ``generate`` call for B countries × K futures),
    each from its own random stream (:func:`country_seed`), so the batches do not change the futures; a
    batch whose futures are all ``stored`` under the same sampling key is not sampled again.
    Returns (futures by country, occurrence P by country ({} when not used), countries reused)."""
    from pipeline.features.dataset import collate

    futures_of: dict[str, list[list[str]]] = {}
    occurrence_of: dict[str, dict[str, np.ndarray]] = {}
    reused = 0
    chunks = [list(countries[i:i + cfg.batch_countries]) for i in range(0, len(countries), cfg.batch_countries)]
    for chunk in track(chunks, f"forecast {target}"):
        batch = collate([items[c] for c in chunk])
        if all(len(stored.get(c, ())) == cfg.num_futures for c in chunk):
            futures = [stored[c] for c in chunk]
            reused += len(chunk)
        else:
            futures = mr.model.generate_phrases(batch, num_futures=cfg.num_futures, temperature=cfg.temperature,
                                                top_p=cfg.top_p, seed=[country_seed(cfg.seed, c) for c in chunk],
                                                constrained=cfg.constrained)
        futures_of.update(zip(chunk, futures))
        if cfg.probabilities == "occurrence":
            occurrence = mr.model.occurrence_probs(batch)
            occurrence_of.update({c: {lv: occurrence[lv][i] for lv in LEVELS} for i, c in enumerate(chunk)})
    return futures_of, occurrence_of, reused


def run_forecast(
    lake: Lake,
    target: DateLike,
    cfg: ForecastConfig | None = None,
    model_run: ModelRun | None = None,
    embedder: Any = None,
) -> dict[str, Any]:
    """Forecast ``target`` for every country (``cfg.countries`` or the model's) and write both partitions.

    The steps of the module docstring, each named: contexts (one read) → :func:`sample_futures` →
    :func:`project_futures` (actors, codes) → :func:`published_probabilities` → both partitions.
    Countries without any descriptor in the T days before the target are
    skipped and listed in the result (``skipped``); nothing is written when no
    country could be forecast. Returns counts, the run name and the skips.
    """
    from pipeline.features.dataset import load_contexts
    from pipeline.features.embed import Embedder, embed_phrases

    cfg = cfg or ForecastConfig()
    target = as_date(target)
    mr = model_run or load_model_run(cfg.model)
    check_countries(cfg.countries, "forecast --countries", also_known=mr.countries)  # before any embedding
    countries = sorted(cfg.countries or mr.countries)
    if not countries:
        raise ValueError(f"forecast: no countries: pass --countries or use a model whose config lists them ({mr.directory})")
    embedder = embedder or Embedder(mr.config.embed)
    embed: EmbedFn = lambda texts: embed_phrases(lake, embedder, list(texts))  # noqa: E731
    labels = label_space()
    basis = build_basis(embed, labels)
    items, skipped = load_contexts(lake, countries, target, mr.config.dataset, embedder)  # one read for all
    if skipped:
        console.print(f"[yellow]forecast {target}: {len(skipped)} countries without context skipped: "
                      f"{', '.join(sorted(skipped))}[/]")
    ready = list(items)
    if not ready:
        raise ValueError(f"forecast {target}: no country has descriptors in the {mr.config.dataset.context_days} days "
                         f"before it in {lake.root}; run `gdelt-forecast descriptors` first")
    key = sampling_key(lake, mr, cfg, target, ready)
    stored = _stored_futures(lake, mr.run, target, key)  # only the calibration changed: no need to sample again
    futures_of, occurrence_of, reused = sample_futures(mr, items, ready, cfg, stored, target)

    calibration = Calibration.load(mr.directory)  # fitted on validation days (pipeline.forecast.calibrate)
    clim, learned = None, None
    if calibration is not None and calibration.needs_history:
        clim, learned = blend_inputs(lake, target, ready, labels, calibration.stack,
                                     weekday_prior=calibration.weekday_prior)
        if clim is None:
            console.print(f"[yellow]forecast {target}: no history before it; climatology blend not applied[/]")
    row = lambda per_level, i: None if per_level is None else {lv: v[i] for lv, v in per_level.items()}  # noqa: E731
    results = []
    for i, country in enumerate(ready):
        projected = project_futures(country, futures_of[country], basis, embed, cfg, labels)
        probs = published_probabilities(projected.probs, occurrence_of.get(country), calibration,
                                        row(clim, i), labels, row(learned, i))
        results.append(replace(projected, probs=probs))

    issued = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    fc, fut = forecast_tables(results, mr.run, cfg.num_futures, issued, labels, key)
    lake.write_partition("forecasts", fc, target, schema=FORECASTS_SCHEMA, model=mr.run)
    write_futures(lake, fut, target, mr.run)
    return {"run": mr.run, "date": str(target), "countries": len(results), "rows": fc.num_rows,
            "skipped": skipped, "reused_futures": reused}
