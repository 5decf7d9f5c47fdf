"""Constrained against free decoding: what the futures say, and what they cost, on the same days.

    python bench/decoding.py --lake data/experiment/lake --model data/experiment/models/exp22-base \\
        --start 2025-06-04 --end 2025-06-06 --top 30 --futures 20

For each test day, the model's ``run_forecast`` twice on the same countries, seeds and K: once with
``forecast.constrained`` (phrases of the closed vocabulary only, :mod:`pipeline.model.grammar`), once
free (the BPE sampled unconstrained), written as runs ``<run>-constrained`` / ``<run>-free``. Rows:

* ``in vocabulary``: share of the sampled phrases that ``parse_phrase`` reads as a vocabulary phrase;
* ``ROUGE-1/2/L``: of each future against the day's target phrases (``evaluate.rouge_scores``), mean
  over country-days;
* ``Brier <level>`` / ``BSS clim``: of the futures' own probabilities (the share of the K futures with a
  phrase projected, argmax, onto the label: what ``forecast.probabilities: futures`` publishes with
  ``assignment: argmax``) against what happened, and its skill against the country's climatology;
* ``s``: seconds of the forecasts, ``new texts``: action texts the embedder had to embed.

The published probabilities (the occurrence head, calibrated) do not depend on the decoding; the
futures do, and the watch list and the report show their phrases and actor pairs.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GDELT_FORECAST_QUIET", "1")
warnings.filterwarnings("ignore", message="sinkhorn_divergence did not converge")

import numpy as np  # noqa: E402
import torch  # noqa: E402


def futures_share(rows, labels, countries: list[str]) -> dict[str, np.ndarray]:
    """(country, phrases, codes) futures rows → level → (C, L) share of futures with a phrase coded to the label."""
    from pipeline.cameo.labels import LEVELS

    K: dict[str, int] = {}
    out = {lv: np.zeros((len(countries), len(labels[lv]))) for lv in LEVELS}
    ci = {c: i for i, c in enumerate(countries)}
    for country, _, codes in rows:
        K[country] = K.get(country, 0) + 1
        for lv in LEVELS:
            hit = {labels[lv].index.get(labels.parent_code(c, lv)) for c in codes} - {None}
            out[lv][ci[country], list(hit)] += 1
    for lv in out:
        out[lv] /= np.array([max(K.get(c, 0), 1) for c in countries])[:, None]
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lake", type=Path, required=True)
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--start", required=True)
    ap.add_argument("--end", required=True)
    ap.add_argument("--top", type=int, default=30, help="the busiest countries before --start")
    ap.add_argument("--futures", type=int, default=20, help="K")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--decoding", default="constrained,free", help="constrained and/or free")
    args = ap.parse_args(argv)
    modes = [m.strip() for m in args.decoding.split(",") if m.strip()]
    if not modes or not set(modes) <= {"constrained", "free"}:
        ap.error(f"--decoding: constrained and/or free, not {args.decoding!r}")
    torch.set_num_threads(args.threads)

    from pipeline.cameo.labels import label_space, load_outcomes
    from pipeline.cameo.phrases import parse_phrase
    from pipeline.core.config import ForecastConfig
    from pipeline.core.lake import Lake, as_date, date_range
    from pipeline.features.embed import Embedder
    from pipeline.forecast.calibrate import blend_inputs
    from pipeline.forecast.forecast import load_model_run, run_forecast
    from pipeline.forecast.futures import phrase_codes
    from pipeline.scoring.backtest import _busiest
    from pipeline.scoring.evaluate import _target_phrases, rouge_scores

    lake, labels = Lake(args.lake), label_space()
    start, end = as_date(args.start), as_date(args.end)
    days = date_range(start, end)
    outcomes = load_outcomes(lake, None, end, labels)
    countries = _busiest(outcomes, start, args.top)
    mr = load_model_run(args.model)
    embedder = Embedder(mr.config.embed)
    base_run = mr.run
    targets = {d: _target_phrases(lake, d) for d in days}
    print(f"model {mr.directory.name}, {len(countries)} countries, K={args.futures}, days {start} … {end}, "
          f"torch {torch.get_num_threads()} threads\n")
    results = {}
    for mode in modes:
        mr.run = f"{base_run}-{mode}"
        n_new, spent = [0], 0.0
        encode = embedder.encode
        embedder.encode = lambda texts, *a, **k: (n_new.__setitem__(0, n_new[0] + len(texts)),  # noqa: E731
                                                  encode(texts, *a, **k))[1]
        try:
            for d in days:
                lake.delete_partition("futures", d, model=mr.run)
                t = time.perf_counter()
                run_forecast(lake, d, ForecastConfig(model=mr.directory, num_futures=args.futures,
                                                     countries=countries, constrained=mode == "constrained"),
                             mr, embedder)
                spent += time.perf_counter() - t
        finally:
            embedder.encode = encode
        phrases_in = phrases_all = 0
        rouge, brier, brier_clim = [], {}, {}
        for d in days:
            rows = phrase_codes(lake, mr.run, d, countries)
            by_country: dict[str, list[list[str]]] = {}
            for c, ph, _ in rows:
                by_country.setdefault(c, []).append(ph)
                phrases_all += len(ph)
                phrases_in += sum(parse_phrase(p) is not None for p in ph)
            rouge += [rouge_scores(f, targets[d][c]) for c, f in by_country.items() if targets[d].get(c)]
            share = futures_share(rows, labels, countries)
            clim, _ = blend_inputs(lake, d, countries, labels, outcomes=outcomes)
            di, oc = outcomes.day_index(d), outcomes.country_index()
            for lv in ("event", "base", "root"):
                y = np.zeros_like(share[lv], dtype=bool)
                for i, c in enumerate(countries):
                    if c in oc:
                        y[i] = outcomes.y[lv][di, oc[c]]
                brier.setdefault(lv, []).append(((share[lv] - y) ** 2).mean())
                brier_clim.setdefault(lv, []).append(((clim[lv] - y) ** 2).mean())
        r = np.nanmean(np.array(rouge), axis=0)
        results[mode] = {"s": spent, "new": n_new[0], "vocab": phrases_in / max(phrases_all, 1),
                         "phrases": phrases_all, "rouge": r,
                         **{f"brier_{lv}": float(np.mean(brier[lv])) for lv in brier},
                         **{f"bss_{lv}": 1 - float(np.mean(brier[lv])) / float(np.mean(brier_clim[lv])) for lv in brier}}
    head = f"{'':<22}" + "".join(f"{m:>14}" for m in results)
    print(head)
    print("-" * len(head))
    rows = [("seconds", lambda v: f"{v['s']:.1f}"), ("new texts embedded", lambda v: f"{v['new']}"),
            ("phrases", lambda v: f"{v['phrases']}"), ("in vocabulary", lambda v: f"{100 * v['vocab']:.1f} %"),
            ("ROUGE-1", lambda v: f"{v['rouge'][0]:.3f}"), ("ROUGE-2", lambda v: f"{v['rouge'][1]:.3f}"),
            ("ROUGE-L", lambda v: f"{v['rouge'][2]:.3f}")]
    for lv in ("event", "base", "root"):
        rows += [(f"Brier {lv}", lambda v, lv=lv: f"{v[f'brier_{lv}']:.4f}"),
                 (f"BSS clim {lv}", lambda v, lv=lv: f"{100 * v[f'bss_{lv}']:+.1f} %")]
    for name, fmt in rows:
        print(f"{name:<22}" + "".join(f"{fmt(v):>14}" for v in results.values()))


if __name__ == "__main__":
    main()
