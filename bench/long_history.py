"""Benchmark: a morning's reads and fits against how much history the lake holds (1 month … years).

    python bench/long_history.py [--sizes 22,365,730] [--stages outcomes,features,baselines,evaluate,fit]
                                 [--peer d3dca67] [--work /tmp/gdelt-long]

SYNTHETIC LAKES. Only 22 real days exist here (``../shared/data/gdelt-v2-15min``, 40 % of each day's
exports). A lake of N days is N re-dated copies of their ``country`` partitions (2025-05-16 … 06-06 in
turn, ending on 2025-06-06, each copy's ``date`` column rewritten) with the matching re-dated
``manifest`` rows, so coverage reads every day as whole. The real days are ingested and reduced once into
``<work>/base``. Nothing here measures forecast quality: the copies repeat three weeks of news.

Each (size, stage) runs in a fresh process (its peak RSS is its own), the stages of one size back to back,
and with ``--peer REV`` the same stage at that git revision right after (``git archive`` of ``pipeline/``
into ``<work>/peer-REV``): before and after, side by side, on the same lake. The stages are what a morning
run does with the lake's history, for the target 2025-06-07:

- **outcomes** — ``load_outcomes`` of every day (what baselines, the forecast's blend and evaluate read);
- **features** — ``history_features`` of the one target, at all four levels, from outcomes already read;
- **baselines** — ``run_baselines`` of the target with the six baselines and a stored ``baseline-learned``
  (the daily flow's baselines task; the bar's artefact is fitted by the ``fit`` stage first);
- **evaluate** — ``evaluate`` of 2025-06-06 (its baselines' forecasts written first, outside the timing);
- **morning** — what the daily flow does with the history after descriptors, in one process: the baselines
  of the target, the model forecast's climatology blend and the bar's rows
  (``blend_inputs``, the part of ``run_forecast`` that reads the history; every country the baselines forecast), and evaluate of 2025-06-06, inside
  ``remembered_outcomes`` as the daily flow runs them (a peer revision without it reads three times);
- **fit** — ``fit_learned`` on every day (the training flow's bar fit; 1,000,000 rows a level);
- **backfill** — the baselines a backfill of the last 14 days writes into a lake without a stored
  ``baseline-learned`` (a backfill before any training): at a revision without refit origins, one
  ``run_baselines`` a day (each reads the history and fits the bar); now, one a block of
  ``flows.backfill.refit_blocks`` (one read and one fit a refit week once 60 days precede it);
- **backfill-threads** — the same blocks run side by side on 4 threads, as the backfill flow's task runner
  would run them once their reduces are done (against **backfill**: one after the other).

Reported: seconds and peak RSS of each, and the ratio of each size to the smallest.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO.parent / "shared" / "data" / "gdelt-v2-15min"
REAL = [dt.date(2025, 5, 16) + dt.timedelta(days=i) for i in range(22)]
LAST = REAL[-1]
TARGET = LAST + dt.timedelta(days=1)
STAGES = ("outcomes", "features", "baselines", "evaluate", "morning", "fit", "backfill", "backfill-threads")
BACKFILL_DAYS = 14


def build_base(work: Path) -> Path:
    """The 22 real days, ingested and reduced (once)."""
    from pipeline.core.config import IngestConfig
    from pipeline.core.lake import Lake
    from pipeline.ingest.reduce import reduce
    from pipeline.ingest.run import ingest

    root = work / "base"
    if not (root / "country").exists():
        lake = Lake(root)
        ingest(lake, "local", REAL[0], REAL[-1], IngestConfig(), path=SOURCE, progress=False)
        reduce(lake, REAL[0], REAL[-1])
    return root


def build_lake(work: Path, base_root: Path, n: int) -> Path:
    """N re-dated copies of the real days' country and manifest partitions, ending on ``LAST`` (synthetic)."""
    import pyarrow as pa

    from pipeline.core.lake import Lake
    from pipeline.core.schemas import MANIFEST_SCHEMA

    root = work / f"lake-{n}"
    if (root / ".built").exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    base, lake = Lake(base_root), Lake(root)
    manifest = base.read("manifest", columns=MANIFEST_SCHEMA.names).to_pylist()
    for i in range(n):
        day = LAST - dt.timedelta(days=n - 1 - i)
        real = REAL[(i - n) % len(REAL)]  # the last copy is the last real day
        t = base.read("country", real, real)
        t = t.set_column(t.schema.get_field_index("date"), "date", pa.array([day] * t.num_rows, pa.date32()))
        lake.write_partition("country", t, day, schema=t.schema)
        rows = []
        for r in (r for r in manifest if r["day"] == real):
            name = r["name"].replace(f"{real:%Y%m%d}", f"{day:%Y%m%d}")
            rows.append(dict(r, name=name, url=str(Path(r["url"]).with_name(name)), day=day))
        lake.write_partition("manifest", pa.Table.from_pylist(rows, schema=MANIFEST_SCHEMA), day,
                             schema=MANIFEST_SCHEMA)
    (root / ".built").touch()
    return root


def peer_tree(work: Path, rev: str) -> Path:
    """``pipeline/`` of git revision ``rev``, unpacked under ``work`` (its imports resolve there first)."""
    out = work / f"peer-{rev}"
    if not (out / "pipeline").exists():
        out.mkdir(parents=True, exist_ok=True)
        tar = subprocess.run(["git", "-C", str(REPO), "archive", rev, "pipeline"], check=True,
                             capture_output=True).stdout
        with tarfile.open(fileobj=io.BytesIO(tar)) as t:
            t.extractall(out, filter="data")
    return out


def one(lake_root: str, stage: str, scratch: str) -> dict:
    """Run one stage in this process; seconds and peak RSS (MB)."""
    import resource

    from pipeline.core.config import load_config
    from pipeline.core.lake import Lake

    lake = Lake(lake_root)
    cfg = load_config(None, {"lake.root": lake_root, "forecast.learned_dir": f"{scratch}/learned",
                             "evaluate.reports_dir": f"{scratch}/reports"})
    info: dict = {}
    if stage in ("evaluate", "morning"):  # the forecasts evaluate scores, outside the timing
        from pipeline.forecast.baselines import BASELINES, run_baselines

        fast = dataclasses.replace(cfg.forecast, baselines=list(BASELINES), learned_dir=None)  # none needs a fit
        run_baselines(lake, LAST, LAST, fast)
    if stage == "features":
        from pipeline.cameo.labels import LEVELS, load_outcomes

        outcomes = load_outcomes(lake, None, LAST)
    if stage.startswith("backfill"):  # the flow's schedule of baselines tasks, worked out outside the timing
        fresh = dataclasses.replace(cfg.forecast, learned_dir=None, learned_cache_dir=None)
        data_days = [LAST - dt.timedelta(days=k) for k in range(BACKFILL_DAYS - 1, -1, -1)]
        if hasattr(fresh, "learned_refit_days"):
            from flows.backfill import refit_blocks

            blocks = refit_blocks(data_days, fresh.learned_refit_days)
        else:  # a revision before refit origins: one task a day
            blocks = [[d] for d in data_days]
    t0 = time.perf_counter()
    if stage == "outcomes":
        from pipeline.cameo.labels import load_outcomes

        o = load_outcomes(lake, None, LAST)
        info = {"days": len(o.days), "countries": len(o.countries)}
    elif stage == "features":
        from pipeline.features.history import history_features

        info = {lv: list(history_features(outcomes, [TARGET], lv).X.shape) for lv in LEVELS}
    elif stage == "baselines":
        from pipeline.forecast.baselines import run_baselines

        info = run_baselines(lake, TARGET, TARGET, cfg.forecast)
    elif stage == "evaluate":
        from pipeline.scoring.evaluate import evaluate

        info = {"runs": len(evaluate(lake, LAST, LAST, cfg=cfg.evaluate).runs)}
    elif stage == "morning":
        import contextlib

        from pipeline.forecast.baselines import run_baselines
        from pipeline.forecast.calibrate import blend_inputs
        from pipeline.model.learned import LearnedBaseline
        from pipeline.scoring.evaluate import evaluate

        try:
            from pipeline.cameo.labels import remembered_outcomes
        except ImportError:  # a revision before it
            remembered_outcomes = contextlib.nullcontext
        with remembered_outcomes():
            run_baselines(lake, TARGET, TARGET, cfg.forecast)
            forecast = sorted(set(lake.read("forecasts", TARGET, TARGET, model="baseline-climatology",
                                            columns=["country"])["country"].to_pylist()))  # every country
            clim, learned = blend_inputs(lake, TARGET, forecast, stack=LearnedBaseline.load(cfg.forecast.learned_dir))
            info = {"runs": len(evaluate(lake, LAST, LAST, cfg=cfg.evaluate).runs), "blend": learned is not None}
    elif stage == "fit":
        from pipeline.cameo.labels import load_outcomes
        from pipeline.model.learned import fit_learned, training_days

        o = load_outcomes(lake, None, LAST)
        t1 = time.perf_counter()
        model = fit_learned(o, training_days(o, TARGET), seed=0)
        model.save(cfg.forecast.learned_dir)
        info = {"read_s": round(t1 - t0, 1)}
    elif stage.startswith("backfill"):
        from concurrent.futures import ThreadPoolExecutor

        from pipeline.forecast.baselines import run_baselines

        def one_block(block: list) -> dict:
            return run_baselines(lake, block[0] + dt.timedelta(days=1), block[-1] + dt.timedelta(days=1), fresh)

        with ThreadPoolExecutor(4 if stage == "backfill-threads" else 1) as pool:
            list(pool.map(one_block, blocks))
        info = {"tasks": len(blocks)}
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "info": info}


def run_child(tree: Path, lake_root: Path, stage: str, scratch: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=f"{tree}{os.pathsep}{REPO}", HF_HUB_OFFLINE="1")
    res = subprocess.run([sys.executable, __file__, "--one", str(lake_root), stage, str(scratch)], env=env,
                         capture_output=True, text=True)
    if res.returncode:
        raise SystemExit(f"{stage} on {lake_root} ({tree}) failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--one":
        print(json.dumps(one(*sys.argv[2:5]), default=str))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="22,365,730", help="days of history, comma-separated")
    ap.add_argument("--stages", default=",".join(STAGES))
    ap.add_argument("--peer", default=None, help="a git revision to run each stage at too (before/after)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/gdelt-long"))
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = ap.parse_args()
    if not SOURCE.exists():
        raise SystemExit(f"{SOURCE} not found: this bench needs the shared real data")
    sizes, stages = [int(s) for s in args.sizes.split(",")], [s for s in args.stages.split(",") if s]
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise SystemExit(f"unknown stage {unknown[0]!r}; stages: {', '.join(STAGES)}")
    trees = {"now": REPO} | ({f"at {args.peer}": None} if args.peer else {})
    scratch_of = lambda n, name: args.work / f"scratch-{n}-{name.replace(' ', '-')}"  # noqa: E731
    if ({"baselines", "morning"} & set(stages) and "fit" not in stages
            and not all((scratch_of(n, name) / "learned").exists() for n in sizes for name in trees)):
        stages.append("fit")  # the bar's artefact the baselines read (kept from an earlier run of the bench)
    stages.sort(key=lambda s: s != "fit")  # the bar's artefact first: baselines reads it
    args.work.mkdir(parents=True, exist_ok=True)
    base = build_base(args.work)
    if args.peer:
        trees[f"at {args.peer}"] = peer_tree(args.work, args.peer)
    results: dict = {}
    for n in sizes:
        t0 = time.perf_counter()
        lake = build_lake(args.work, base, n)
        print(f"N={n}: synthetic lake ready ({time.perf_counter() - t0:.1f} s)", flush=True)
        for stage in stages:
            for name, tree in trees.items():
                r = run_child(tree, lake, stage, scratch_of(n, name))
                results.setdefault(name, {}).setdefault(stage, {})[n] = r
                print(f"  {stage:<9} {name:<12} {r['seconds']:8.1f} s  {r['peak_mb']:8.0f} MB  {r['info']}", flush=True)
    print("\n| stage | code | " + " | ".join(f"N = {n}: s / peak MB" for n in sizes) + f" | ×(N = {sizes[-1]} / {sizes[0]}) |")
    print("|---|---|" + "---|" * (len(sizes) + 1))
    for stage in stages:
        for name in trees:
            r = results[name][stage]
            cells = " | ".join(f"{r[n]['seconds']:.1f} / {r[n]['peak_mb']:,.0f}" for n in sizes)
            print(f"| {stage} | {name} | {cells} | {r[sizes[-1]]['seconds'] / max(r[sizes[0]]['seconds'], 1e-9):.1f} |")
    if args.out:
        args.out.write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
