"""Issue-10 ablations on the 22-day experiment lake: each variant trained, calibrated and scored alike.

Every variant is ``configs/experiment-history.yaml`` with a few settings changed (written to
``data/experiment/configs/<variant>.yaml``), trained with the CLI (``gdelt-forecast train``) and
scored with ``bench/skill.py`` on the same validation (calibration) and test days, so the rows of
their summaries compare. Variants:

    base      occurrence head g(encoder) + f(history), λ = 1, T = 7 (the model as shipped)
    noenc     model.occurrence_encoder: false (the head without the encoder term: history only)
    lam0      train.sinkhorn_lambda: 0 (no Sinkhorn term; NLL + occurrence BCE)
    T5        dataset.context_days: 5 (the walk-forward's longest: its first origin, 05-24, has 3 target days)
    seed1     train.seed: 1 (the same model, another initialisation and batch order: how much is seed noise)
    noenc-seed1  noenc with train.seed: 1
    T14       dataset.context_days: 14 (on descriptors from 05-16: 2 training target days, 05-30 and 05-31)
    T<k>-<n>d context T = k on n training target days (``dataset.first_target``): T3-3d, T7-3d, T13-3d train on
              the same 3 days 05-29 … 05-31, so they differ only in context length; T7-6d, T7-9d and T3-13d
              give more training days (the learning curve). Needs the descriptors from 05-16
              (``scripts/build_experiment_lake.sh``).
    c100-T3-13d  the 100 busiest countries, T = 3, every training day the lake allows (13)
    c100      dataset.top_countries: 100 (the 100 busiest countries)
    c100-every4  c100 on the lake of every 4th of the shared slices (``bench/coverage.py``; with
              ``configs/experiment-walkforward-half.yaml``, whose header says how its descriptors are made)
    thin3     on a lake of full days but three (05-30, 06-01, 06-03 hold a quarter of their slices:
              ``bench/coverage.py --mix 2025-05-30 2025-06-01 2025-06-03 --keep 4``), those days left out as the
              pipeline does (``lake.leave_out_share``); ``thin3-read`` reads them as they are
    pieces    model.tokenizer: pieces (one token per country name and per verb instead of the BPE)
    pieces48  the same with model.max_target_tokens: 48 (a target day's 10 phrases are ≤ 40 piece tokens)

    PYTHONPATH=. python bench/ablations.py base noenc lam0 c100 [--skip-train]
    PYTHONPATH=. python bench/ablations.py T7-3d T7-9d --table     # the summaries as one Markdown table

``--walkforward CONFIG`` runs each variant through the walk-forward backtest instead (``gdelt-forecast
backtest``, the published calibration form, every test day's model, calibration and ``baseline-learned``
fitted on its past only), on CONFIG with the variant's settings and ``train.run: <run>-<variant>``; ``base`` is
CONFIG itself. Its table reads each backtest's ``summary.csv`` (the ``-bt-cal`` run) and also gives the raw
model (``-bt``) and log loss:

    PYTHONPATH=. python bench/ablations.py --walkforward configs/experiment-walkforward-100countries.yaml \
        --start 2025-06-01 --end 2025-06-06 --refit-every 3 --calibration-days 6 base noenc nohist lam0

The baselines (and ``baseline-learned``) are written once by ``bench/skill.py`` without ``--model``
for each country set; each summary lands in ``data/experiment/reports/skill-<test days>-<variant>/``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import yaml

from pipeline.scoring.backtest import backtests_of
from pipeline.scoring.evaluate import bootstrap_bss

BASE = Path("configs/experiment-history.yaml")
VARIANTS: dict[str, dict[str, dict]] = {
    "base": {},
    "noenc": {"model": {"occurrence_encoder": False}},
    "nohist": {"model": {"occurrence_history_term": False}},
    "lam0": {"train": {"sinkhorn_lambda": 0.0}},
    "T5": {"dataset": {"context_days": 5}},
    "seed1": {"train": {"seed": 1}},
    "noenc-seed1": {"model": {"occurrence_encoder": False}, "train": {"seed": 1}},
    "wide": {"model": {"d_model": 128, "d_ff": 256}},  # the tiny preset twice as wide (≈ 3.5× the parameters)
    "ep6": {"train": {"epochs": 6}},  # the walk-forward configs' epochs since session 16 (3 before)
    "ep3": {"train": {"epochs": 3}},  # the walk-forward configs' epochs until session 15: their tables
    "wide-seed1": {"model": {"d_model": 128, "d_ff": 256}, "train": {"seed": 1}},
    "ep6-seed1": {"train": {"epochs": 6, "seed": 1}},
    "ep10": {"train": {"epochs": 10}},
    "ep10-seed1": {"train": {"epochs": 10, "seed": 1}},
    "min600": {"train": {"epochs": 6, "min_steps": 600}},  # every origin at least 600 optimiser steps
    "min600-seed1": {"train": {"epochs": 6, "min_steps": 600, "seed": 1}},
    "T14": {"dataset": {"context_days": 14}},
    "c100": {"dataset": {"top_countries": 100}},
    "c100-every4": {"dataset": {"top_countries": 100}, "lake": {"root": "data/experiment/coverage/every-4/lake"}},
    # a lake of full days but three (05-30, 06-01, 06-03: a quarter of their slices; bench/coverage.py --mix):
    # read as the pipeline does (those days left out, as gaps), and read as they are
    "thin3": {"lake": {"root": "data/experiment/coverage/thin-days/lake"}},
    "thin3-read": {"lake": {"root": "data/experiment/coverage/thin-days/lake", "leave_out_share": 0.0}},
    "pieces": {"model": {"tokenizer": "pieces"}},
    "pieces48": {"model": {"tokenizer": "pieces", "max_target_tokens": 48}},
}
_FIRST_TARGET = {3: "2025-05-29", 6: "2025-05-26", 9: "2025-05-23", 13: "2025-05-19"}  # last training day 05-31
for _T, _n in [(3, 3), (7, 3), (13, 3), (7, 6), (7, 9), (3, 13)]:
    VARIANTS[f"T{_T}-{_n}d"] = {"dataset": {"context_days": _T, "first_target": _FIRST_TARGET[_n]}}
VARIANTS["c100-T3-13d"] = {"dataset": {"top_countries": 100, "context_days": 3, "first_target": _FIRST_TARGET[13]}}


def config_for(variant: str, out_dir: Path, base: Path = BASE, run: str = "exp22") -> Path:
    cfg = yaml.safe_load(base.read_text())
    for section, values in VARIANTS[variant].items():
        cfg.setdefault(section, {}).update(values)
    cfg["train"]["run"] = f"{run}-{variant}"
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / (f"{variant}.yaml" if base == BASE else f"{run}-{variant}.yaml")
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def run(cmd: list[str]) -> float:
    print("$", " ".join(cmd), flush=True)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - t0


def table(variants: list[str], reports: Path = Path("data/experiment/reports"),
          test: str = "2025-06-04_2025-06-06", group: str = "all") -> str:
    """One row per variant's stacked run (``-cal``): BSS in % against climatology and against
    ``baseline-learned`` (95 % interval by countries) per level, from its ``summary.csv``."""
    import pandas as pd

    levels = ("event", "base", "root", "rare")
    head = "| run | country-days | " + " | ".join(f"{lv} clim | {lv} learned" for lv in levels) + " |"
    lines = [head, "|" + "---|" * (2 + 2 * len(levels))]
    pct = lambda v: f"{100 * v:+.1f}"  # noqa: E731
    for v in variants:
        s = pd.read_csv(reports / f"skill-{test}-{v}" / "summary.csv")
        cal = sorted(r for r in s.run.unique() if r.endswith("-cal"))  # the variant's stacked run
        s = s[(s.run == cal[0]) & (s.group == group)].set_index("level")
        cells = []
        for lv in levels:
            r = s.loc[lv]
            cells += [pct(r.bss_climatology),
                      f"{pct(r.bss_learned)} [{pct(r.learned_lo_country)}, {pct(r.learned_hi_country)}]"]
        lines.append(f"| {v} | {int(s.loc['event'].n_country_days)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def walkforward_dir(cfg_path: Path, start: str, end: str) -> Path:
    """The backtest directory ``gdelt-forecast backtest`` writes for this config (one per country count)."""
    cfg = yaml.safe_load(cfg_path.read_text())
    reports = Path(cfg.get("evaluate", {}).get("reports_dir", "reports"))
    found = backtests_of(reports, start, end, cfg["train"]["run"])
    if not found:
        raise FileNotFoundError(reports / f"backtest-{start}_{end}-{cfg['train']['run']}-<N>c")
    return found[-1]


def walkforward_table(rows: list[tuple[str, Path]], group: str = "all") -> str:
    """One row per variant's backtest: its published (``-bt-cal``) and raw (``-bt``) run, BSS in % against
    climatology and against ``baseline-learned`` [95 % by countries], and the published run's log loss."""
    import pandas as pd

    levels = ("event", "base", "root", "rare")
    lines = ["| variant | run | " + " | ".join(levels) + " | log loss " + " · ".join(levels) + " |",
             "|" + "---|" * (3 + len(levels))]
    pct = lambda v: f"{100 * v:+.2f}"  # noqa: E731
    for name, directory in rows:
        s = pd.read_csv(directory / "summary.csv")
        s = s[s.group == group]
        for suffix in ("-bt-cal", "-bt"):
            run = next(r for r in s.run.unique() if r.endswith(suffix))
            r = s[s.run == run].set_index("level")
            cells = [f"{pct(r.loc[lv].bss_climatology)} / {pct(r.loc[lv].bss_learned)} "
                     f"[{pct(r.loc[lv].learned_lo_country)}, {pct(r.loc[lv].learned_hi_country)}]" for lv in levels]
            loss = " · ".join(f"{r.loc[lv].log_loss:.4f}" for lv in levels)
            lines.append(f"| {name} | {'published' if suffix == '-bt-cal' else 'raw'} | "
                         + " | ".join(cells) + f" | {loss} |")
    bar = s[s.run == "baseline-learned"].set_index("level")
    lines.append("| baseline-learned | | " + " | ".join(f"{pct(bar.loc[lv].bss_climatology)}" for lv in levels)
                 + " | " + " · ".join(f"{bar.loc[lv].log_loss:.4f}" for lv in levels) + " |")
    if len(rows) > 1:
        lines += ["", "Paired against the first row's published run, on the same country-days (the busiest: the "
                  "first row's `busy` group): BSS in % [95 % by countries] (event · base · root)", "",
                  "| variant | countries | country-days | event | base | root |", "|---|---|---|---|---|---|"]
        ref = published_scores(rows[0][1])
        for name, directory in rows[1:]:
            both = published_scores(directory).merge(ref, on=["date", "country", "level"], suffixes=("", "_ref"))
            for label, part in (("all", both), ("busiest", both[both.busy_ref])):
                cells = []
                for lv in levels[:3]:
                    g = part[part.level == lv]
                    lo, hi, _ = bootstrap_bss(g.brier.to_numpy(), g.brier_ref.to_numpy(), g.country.to_numpy())
                    cells.append(f"{pct(1 - g.brier.sum() / g.brier_ref.sum())} [{pct(lo)}, {pct(hi)}]")
                lines.append(f"| {name} − {rows[0][0]} | {label} | {int((part.level == 'event').sum())} | "
                             + " | ".join(cells) + " |")
    return "\n".join(lines)


def published_scores(directory: Path):
    """The per country-day Brier scores of a backtest's published (``-bt-cal``) run, from its own lake."""
    from pipeline.core.lake import Lake

    lake = Lake(directory / "lake")
    run = next(p.name.split("=", 1)[1] for p in lake.table_dir("scores").glob("model=*-bt-cal"))
    return lake.read("scores", columns=["country", "level", "brier", "busy", "date"], model=run).to_pandas()


def walkforward(args, ap) -> None:
    base = Path(args.walkforward)
    run_name = yaml.safe_load(base.read_text())["train"]["run"]
    rows = []
    for v in args.variants:
        cfg_path = base if v == "base" else config_for(v, Path("data/experiment/configs"), base, run_name)
        if not args.table:
            t = run([sys.executable, "-m", "gdelt_forecast", "-c", str(cfg_path), "backtest", "--start", args.start,
                     "--end", args.end, "--refit-every", str(args.refit_every),
                     "--calibration-days", str(args.calibration_days)])
            print(f"# {v}: walk-forward in {t:.0f} s", flush=True)
        try:
            rows.append((v, walkforward_dir(cfg_path, args.start, args.end)))
        except FileNotFoundError as e:
            ap.error(f"no backtest of {v}: {e} (run it without --table first)")
    print(walkforward_table(rows))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("variants", nargs="+", help=f"of {', '.join(VARIANTS)} (with --table: any summary's tag)")
    ap.add_argument("--skip-train", action="store_true", help="models already trained")
    ap.add_argument("--skip-baselines", action="store_true", help="baselines already written for these countries")
    ap.add_argument("--table", action="store_true", help="print the variants' scored summaries; run nothing")
    ap.add_argument("--walkforward", metavar="CONFIG", help="run each variant as a walk-forward backtest of CONFIG")
    ap.add_argument("--start", help="first test day (--walkforward)")
    ap.add_argument("--end", help="last test day (--walkforward)")
    ap.add_argument("--refit-every", type=int, default=3, help="retrain the model every k days (--walkforward)")
    ap.add_argument("--calibration-days", type=int, default=6, help="(--walkforward)")
    args = ap.parse_args()
    if args.walkforward:
        unknown = sorted(set(args.variants) - set(VARIANTS))
        if unknown:
            ap.error(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}")
        if not (args.start and args.end):
            ap.error("--walkforward needs --start and --end")
        walkforward(args, ap)
        return
    if args.table:
        try:
            print(table(args.variants))
        except FileNotFoundError as e:
            ap.error(f"no scored summary: {e.filename} (score the variant first)")
        return
    unknown = sorted(set(args.variants) - set(VARIANTS))
    if unknown:
        ap.error(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}")
    py = sys.executable
    baselines_done: set[int] = set()
    for v in args.variants:
        cfg_path = config_for(v, Path("data/experiment/configs"))
        cfg = yaml.safe_load(cfg_path.read_text())
        model = Path(cfg["train"]["models_dir"]) / cfg["train"]["run"]
        top = cfg["dataset"]["top_countries"]
        if top not in baselines_done and not args.skip_baselines:  # baselines + baseline-learned for this country set
            run([py, "bench/skill.py", "-c", str(cfg_path), f"--tag=-baselines{top}"])
            baselines_done.add(top)
        if not args.skip_train:
            t = run([py, "-m", "gdelt_forecast", "-c", str(cfg_path), "train", "--no-register"])
            print(f"# {v}: trained in {t:.0f} s", flush=True)
        t = run([py, "bench/skill.py", "-c", str(cfg_path), "--model", str(model), "--skip-baselines",
                 f"--tag=-{v}", "--no-stack-too", "--maps-only-too"])
        print(f"# {v}: scored in {t:.0f} s", flush=True)


if __name__ == "__main__":
    main()
