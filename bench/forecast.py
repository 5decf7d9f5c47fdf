"""Daily forecast speed: one day's ``run_forecast`` for 30, 100 and all countries, beside the baselines.

    python bench/forecast.py                         # K = 100, sizes 30,100,all, 2 torch threads
    python bench/forecast.py --futures 2 --sizes 30  # the issue's "before" setting
    python bench/forecast.py --lake L --model M      # an existing lake and trained model
    python bench/forecast.py --sampling-only         # context + sampling alone (what issue 10 sped up)
    python bench/forecast.py --decoding constrained  # the default decoding only (free: the BPE unconstrained)
    python bench/forecast.py --tokenizer pieces      # a bench model with one token per name and verb

Set-up (cached under ``--work``, default ``/tmp/gdelt-bench-forecast``): a lake built from the
shipped real sample (``data/sample/gdelt-v2``, 22 days × 3 slices: ingest → reduce → descriptors
for every country) and a tiny model trained on its 30 busiest countries (a few minutes once).
The target day is the day after the lake's last descriptor day (forecasting tomorrow).

Rows, each on the same countries (the busiest by events over the context days; ``all`` = every
country with a descriptor in the context), same lake, same thread count:

* ``model``      ``pipeline.forecast.forecast.run_forecast``: context → K futures → projection → write,
  with the time spent inside ``generate_phrases`` (sampling) and in the embedder (``embed s``: the
  generated action texts not yet in the lake's embedding cache, ``new texts`` of them) reported apart;
  once per ``--decoding``: ``constrained`` (the default forecast: phrases of the closed vocabulary only,
  :mod:`pipeline.model.grammar`, so no text is new to the embedding cache) and ``free`` (the BPE sampled
  without the grammar, as before it existed: every malformed action text is embedded);
* ``baselines``  ``pipeline.forecast.baselines.run_baselines`` for the same day and countries (the
  frequency baselines of ``ForecastConfig.baselines``; the reference a model must beat, at its cost).

Each forecast starts from an empty ``futures`` partition, so nothing is reused. The embedding cache
is warmed by an untimed first run at K = 4; texts first written at K = 100 are embedded in the
timed runs (once, ever: later days and reruns find them in the cache). ``--repeat 2`` times each
size twice, the second time with a warm cache.
Goal (issue 10): all countries at K = 100 in under 5 min on 2 cores.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GDELT_FORECAST_QUIET", "1")
warnings.filterwarnings("ignore", message="sinkhorn_divergence did not converge")

import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample" / "gdelt-v2"
START, END = "2025-05-16", "2025-06-06"


def build_lake(root: Path, embedder) -> None:
    """ingest → reduce → descriptors (all countries) of the shipped sample into ``root``, once."""
    from pipeline.core.config import DescriptorConfig, IngestConfig
    from pipeline.core.lake import Lake
    from pipeline.features.descriptors import build_range
    from pipeline.ingest.reduce import reduce
    from pipeline.ingest.run import ingest

    lake = Lake(root)
    if lake.partitions("descriptor_days"):
        return
    print(f"building the bench lake in {root} (once) …", flush=True)
    ingest(lake, "local", START, END, IngestConfig(), path=SAMPLE)
    reduce(lake, START, END)
    build_range(lake, START, END, DescriptorConfig(), embedder)


def train_model(lake, models: Path, embedder, tokenizer: str = "bpe") -> Path:
    """A tiny model on the lake's 30 busiest countries (T = 7), once (per ``tokenizer``)."""
    from pipeline.core.config import load_config
    from pipeline.model.train import train

    name = "bench-tiny" if tokenizer == "bpe" else f"bench-tiny-{tokenizer}"
    run_dir = models / name
    if (run_dir / "forecaster.json").exists():
        return run_dir
    print(f"training the bench model in {run_dir} (once) …", flush=True)
    cfg = load_config(REPO / "configs" / "tiny.yaml")
    cfg.dataset.top_countries, cfg.dataset.countries = 30, []
    cfg.train.run, cfg.train.models_dir, cfg.train.epochs = name, models, 4
    cfg.model.tokenizer = tokenizer
    cfg.train.val_generate = 0
    return train(cfg, lake, embedder=embedder).run_dir


def busiest(lake, target: dt.date, T: int) -> list[str]:
    """Countries with a descriptor in the T days before ``target``, busiest first (ties by code)."""
    days = lake.read("descriptor_days", target - dt.timedelta(days=T), target - dt.timedelta(days=1),
                     columns=["country", "n_events"]).to_pandas()
    g = days.groupby("country").n_events.sum().reset_index().sort_values(["n_events", "country"],
                                                                        ascending=[False, True])
    return list(g.country)


def time_forecast(lake, mr, embedder, target: dt.date, countries: list[str], K: int, seed: int,
                  constrained: bool = True) -> dict:
    """Seconds of one ``run_forecast`` (nothing reused) and of its sampling inside it."""
    from pipeline.core.config import ForecastConfig
    from pipeline.forecast.forecast import run_forecast

    lake.delete_partition("futures", target, model=mr.run)
    spent = [0.0]
    generate = mr.model.generate_phrases

    def timed(*a, **k):
        t = time.perf_counter()
        try:
            return generate(*a, **k)
        finally:
            spent[0] += time.perf_counter() - t

    embedded = [0.0, 0]
    encode = embedder.encode

    def timed_encode(texts, *a, **k):
        t = time.perf_counter()
        try:
            return encode(texts, *a, **k)
        finally:
            embedded[0] += time.perf_counter() - t
            embedded[1] += len(texts)

    mr.model.generate_phrases, embedder.encode = timed, timed_encode
    try:
        t = time.perf_counter()
        res = run_forecast(lake, target, ForecastConfig(model=mr.directory, num_futures=K, countries=countries,
                                                        seed=seed, constrained=constrained), mr, embedder)
        total = time.perf_counter() - t
    finally:
        mr.model.generate_phrases, embedder.encode = generate, encode
    futures = lake.read("futures", target, target, columns=["phrases"], model=mr.run).column("phrases").to_pylist()
    return {"s": total, "sample_s": spent[0], "embed_s": embedded[0], "embedded": embedded[1],
            "countries": res["countries"], "phrases": sum(len(f) for f in futures) / max(len(futures), 1)}


def time_sampling(lake, mr, embedder, target: dt.date, countries: list[str], K: int, seed: int,
                  batch_countries: int = 16, constrained: bool = True) -> dict:
    """Seconds of the context read and of sampling alone (``generate_phrases``), batched as ``run_forecast`` does."""
    from pipeline.features.dataset import collate, load_contexts
    from pipeline.forecast.forecast import country_seed

    t = time.perf_counter()
    items, _ = load_contexts(lake, countries, target, mr.config.dataset, embedder)
    ready = sorted(items)
    t_ctx = time.perf_counter() - t
    t = time.perf_counter()
    n_phrases = n_futures = 0
    for i in range(0, len(ready), batch_countries):
        chunk = ready[i:i + batch_countries]
        futures = mr.model.generate_phrases(collate([items[c] for c in chunk]), num_futures=K,
                                            seed=[country_seed(seed, c) for c in chunk], constrained=constrained)
        n_futures += sum(len(f) for f in futures)
        n_phrases += sum(len(p) for f in futures for p in f)
    return {"s": t_ctx + time.perf_counter() - t, "sample_s": time.perf_counter() - t, "embed_s": 0.0,
            "embedded": 0, "countries": len(ready), "phrases": n_phrases / max(n_futures, 1)}


def time_baselines(lake, target: dt.date, countries: list[str]) -> float:
    from pipeline.core.config import ForecastConfig
    from pipeline.forecast.baselines import run_baselines

    t = time.perf_counter()
    run_baselines(lake, target, target, ForecastConfig(countries=countries))
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/gdelt-bench-forecast"), help="cache of lake and model")
    ap.add_argument("--lake", type=Path, default=None, help="an existing lake (default: WORK/lake from the sample)")
    ap.add_argument("--model", type=Path, default=None, help="a trained model directory (default: trained once)")
    ap.add_argument("--futures", type=int, default=100, help="K")
    ap.add_argument("--tokenizer", choices=["bpe", "pieces"], default="bpe",
                    help="of the bench model trained once (pieces: one token per country name and verb)")
    ap.add_argument("--sizes", default="30,100,all", help="country counts (comma-separated, 'all')")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sampling-only", action="store_true",
                    help="time the context read + sampling only (no projection, embedding or writes)")
    ap.add_argument("--repeat", type=int, default=1, help="time each size this many times (later: warm cache)")
    ap.add_argument("--decoding", default="constrained,free",
                    help="constrained (closed phrase vocabulary, the default forecast) and/or free (BPE unconstrained)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from pipeline.core.config import EmbedConfig
    from pipeline.core.lake import Lake
    from pipeline.features.embed import Embedder
    from pipeline.forecast.forecast import load_model_run

    embedder = Embedder(EmbedConfig())
    root = args.lake or args.work / "lake"
    if args.lake is None:
        build_lake(root, embedder)
    lake = Lake(root)
    model_dir = args.model or train_model(lake, args.work / "models", embedder, args.tokenizer)
    mr = load_model_run(model_dir)
    T = mr.config.dataset.context_days
    target = max(lake.partitions("descriptor_days")) + dt.timedelta(days=1)
    ranked = busiest(lake, target, T)
    sizes = [len(ranked) if s == "all" else min(int(s), len(ranked)) for s in args.sizes.split(",")]

    if not args.sampling_only:  # warm caches
        time_forecast(lake, mr, embedder, target, ranked[: sizes[0]], min(args.futures, 4), args.seed)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, model {mr.directory.name} "
          f"({mr.model.num_parameters():,} parameters, T={T}), target {target}, K={args.futures}\n")
    decodings = [d.strip() for d in args.decoding.split(",") if d.strip()]
    if not set(decodings) <= {"constrained", "free"}:
        ap.error(f"--decoding: constrained and/or free, not {args.decoding!r}")
    head = (f"{'decoding':>11} {'countries':>9} {'model s':>8} {'sampling s':>10} {'embed s':>8} {'new texts':>9} {'s/country':>9} "
            f"{'phrases/future':>14} {'baselines s':>11} {'model/baselines':>15}")
    print(head)
    print("-" * len(head))
    for dec, n in [(d, n) for d in decodings for n in sizes for _ in range(args.repeat)]:
        countries, constrained = ranked[:n], dec == "constrained"
        if args.sampling_only:
            r = time_sampling(lake, mr, embedder, target, countries, args.futures, args.seed, constrained=constrained)
        else:
            r = time_forecast(lake, mr, embedder, target, countries, args.futures, args.seed, constrained)
        b = time_baselines(lake, target, countries)
        print(f"{dec:>11} {r['countries']:>9} {r['s']:>8.1f} {r['sample_s']:>10.1f} {r['embed_s']:>8.1f} {r['embedded']:>9} "
              f"{r['s'] / r['countries']:>9.2f} "
              f"{r['phrases']:>14.1f} {b:>11.2f} {r['s'] / b:>14.0f}x", flush=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
