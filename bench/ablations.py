"""Issue-10 ablations on the 22-day experiment lake: each variant trained, calibrated and scored alike.

Every variant is ``configs/experiment-history.yaml`` with a few settings changed (written to
``data/experiment/configs/<variant>.yaml``), trained with the CLI (``gdelt-forecast train``) and
scored with ``bench/skill.py`` on the same validation (calibration) and test days, so the rows of
their summaries compare. Variants:

    base      occurrence head g(encoder) + f(history), λ = 1, T = 7 (the model as shipped)
    noenc     model.occurrence_encoder: false (the head without the encoder term: history only)
    lam0      train.sinkhorn_lambda: 0 (no Sinkhorn term; NLL + occurrence BCE)
    T14       dataset.context_days: 14 (on descriptors from 05-16: 2 training target days, 05-30 and 05-31)
    T<k>-<n>d context T = k on n training target days (``dataset.first_target``): T3-3d, T7-3d, T13-3d train on
              the same 3 days 05-29 … 05-31, so they differ only in context length; T7-6d, T7-9d and T3-13d
              give more training days (the learning curve). Needs the descriptors from 05-16
              (``scripts/build_experiment_lake.sh``).
    c100-T3-13d  the 100 busiest countries, T = 3, every training day the lake allows (13)
    c100      dataset.top_countries: 100 (the 100 busiest countries)
    pieces    model.tokenizer: pieces (one token per country name and per verb instead of the BPE)
    pieces48  the same with model.max_target_tokens: 48 (a target day's 10 phrases are ≤ 40 piece tokens)

    PYTHONPATH=. python bench/ablations.py base noenc lam0 c100 [--skip-train]
    PYTHONPATH=. python bench/ablations.py T7-3d T7-9d --table     # the summaries as one Markdown table

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

BASE = Path("configs/experiment-history.yaml")
VARIANTS: dict[str, dict[str, dict]] = {
    "base": {},
    "noenc": {"model": {"occurrence_encoder": False}},
    "lam0": {"train": {"sinkhorn_lambda": 0.0}},
    "T14": {"dataset": {"context_days": 14}},
    "c100": {"dataset": {"top_countries": 100}},
    "pieces": {"model": {"tokenizer": "pieces"}},
    "pieces48": {"model": {"tokenizer": "pieces", "max_target_tokens": 48}},
}
_FIRST_TARGET = {3: "2025-05-29", 6: "2025-05-26", 9: "2025-05-23", 13: "2025-05-19"}  # last training day 05-31
for _T, _n in [(3, 3), (7, 3), (13, 3), (7, 6), (7, 9), (3, 13)]:
    VARIANTS[f"T{_T}-{_n}d"] = {"dataset": {"context_days": _T, "first_target": _FIRST_TARGET[_n]}}
VARIANTS["c100-T3-13d"] = {"dataset": {"top_countries": 100, "context_days": 3, "first_target": _FIRST_TARGET[13]}}


def config_for(variant: str, out_dir: Path) -> Path:
    cfg = yaml.safe_load(BASE.read_text())
    for section, values in VARIANTS[variant].items():
        cfg.setdefault(section, {}).update(values)
    cfg["train"]["run"] = f"exp22-{variant}"
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{variant}.yaml"
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("variants", nargs="+", help=f"of {', '.join(VARIANTS)} (with --table: any summary's tag)")
    ap.add_argument("--skip-train", action="store_true", help="models already trained")
    ap.add_argument("--skip-baselines", action="store_true", help="baselines already written for these countries")
    ap.add_argument("--table", action="store_true", help="print the variants' scored summaries; run nothing")
    args = ap.parse_args()
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
