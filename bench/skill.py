"""Held-out skill of a trained model against the baselines, baseline-learned included (docs/forecast.md).

The steps of the training flow without Prefect (for busy machines where its ephemeral server
does not start): baseline-learned fitted on the outcome days before the first validation day →
raw model forecasts of the validation and test days → calibration in the shipped form (``train.calibration_form``,
``calibrate.form_of``: by default the residual stack on baseline-learned and the weekday climatology; the
``--no-stack-too`` and ``--maps-only-too`` ablations are the logistic form's maps + climatology blend, and maps
only) fitted on the validation days → applied to the stored raw probabilities (run
``<run>-cal``) → baselines → evaluate on the test days, with 95 % intervals by days and by
countries. Prints one Markdown table per group.

    PYTHONPATH=. python bench/skill.py -c configs/experiment-history.yaml --model data/experiment/models/exp22-hist
    ... --resume-raw --skip-baselines --maps-only-too   # + the maps without the climatology blend
    ... --no-stack-too                                  # + maps and blend without the stacked baseline-learned
    ... --knockout-encoder --run-suffix -noenc   # the trained model with its encoder term g set to 0
                                                 # (a knock-out, not a model trained without g)
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import shutil
import time
from pathlib import Path

from pipeline.cameo.labels import load_outcomes
from pipeline.core.config import load_config
from pipeline.core.lake import Lake
from pipeline.features.dataset import build_index
from pipeline.scoring.backtest import Backtest, _merge, markdown


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-c", "--config", required=True)
    ap.add_argument("--model", help="trained model dir (omit: baselines only)")
    ap.add_argument("--no-blend", action="store_true", help="calibration maps without the climatology blend")
    ap.add_argument("--tag", default=None, help="name of the summary folder's suffix (default: --run-suffix)")
    ap.add_argument("--run-suffix", default="", help="copy the model dir to <model><suffix> first (ablations)")
    ap.add_argument("--knockout-encoder", action="store_true",
                    help="zero the occurrence head's encoder term g in the copy (needs --run-suffix)")
    ap.add_argument("--no-stack", action="store_true",
                    help="calibrate without stacking baseline-learned (maps + climatology blend only)")
    ap.add_argument("--no-stack-too", action="store_true",
                    help="also score the calibration without the stack (run <run>-blend)")
    ap.add_argument("--maps-only-too", action="store_true",
                    help="also score the calibration maps without the climatology blend (run <run>-maps)")
    ap.add_argument("--resume-raw", action="store_true",
                    help="keep raw forecasts already in the lake for the model's run (an interrupted run)")
    ap.add_argument("--skip-baselines", action="store_true", help="baselines already written for these days")
    args = ap.parse_args()
    cfg = load_config(args.config)
    lake = Lake(cfg.lake.root)
    t0 = time.perf_counter()
    _, manifest = build_index(lake, cfg.dataset)
    days = {k: [dt.date.fromisoformat(d) for d in v] for k, v in manifest["target_days"].items()}
    val, test = days["val"], days["test"]
    runs = []
    if args.model:
        from pipeline.features.embed import Embedder
        from pipeline.forecast.calibrate import FILE, fit_from_lake, form_of, stack_for, weekday_prior_of
        from pipeline.forecast.forecast import load_model_run, run_forecast

        src = Path(args.model)
        if args.run_suffix:
            dst = src.with_name(src.name + args.run_suffix)
            if not dst.exists():
                shutil.copytree(src, dst, ignore=shutil.ignore_patterns("checkpoint"))
            src = dst
            if args.knockout_encoder:
                _knock_out_encoder(src)
        (src / FILE).unlink(missing_ok=True)
        mr = load_model_run(src)
        embedder = Embedder(mr.config.embed)
        fcfg = dataclasses.replace(cfg.forecast, countries=list(manifest["countries"]))
        for d in val + test:  # raw forecasts (kept from an interrupted run when --resume-raw)
            if not (args.resume_raw and lake.has_partition("forecasts", d, model=mr.run)):
                run_forecast(lake, d, fcfg, mr, embedder)
        learned_cfg = dataclasses.replace(cfg.forecast, learned_dir=Path(cfg.train.models_dir) / "baseline-learned")
        stack = None if args.no_blend or args.no_stack else stack_for(lake, val[0], learned_cfg)
        cal = fit_from_lake(lake, mr.run, val, blend=not args.no_blend, stack=stack, form=form_of(cfg),
                            weekday_prior=weekday_prior_of(cfg))  # what the training flow publishes
        cal.save(src)
        runs += [_calibrated(lake, mr.run, cal, val + test), mr.run]
        if stack is not None and args.no_stack_too:  # the ablation without the stack: maps + climatology blend
            runs.append(_calibrated(lake, mr.run, fit_from_lake(lake, mr.run, val), val + test, "-blend"))
        if args.maps_only_too:  # the ablation without the climatology blend, on the same raw forecasts
            runs.append(_calibrated(lake, mr.run, fit_from_lake(lake, mr.run, val, blend=False), val + test,
                                    "-maps"))
    if not args.skip_baselines:
        from pipeline.forecast.baselines import run_baselines
        from pipeline.model.learned import fit_learned, training_days

        outcomes = load_outcomes(lake, None, test[-1])
        learned = fit_learned(outcomes, training_days(outcomes, val[0]), cfg.forecast.learned_estimator,
                              cfg.forecast.learned_max_rows, cfg.forecast.seed)  # every outcome day before val
        learned_dir = Path(cfg.train.models_dir) / "baseline-learned"
        learned.save(learned_dir)
        bcfg = dataclasses.replace(cfg.forecast, countries=list(manifest["countries"]), learned_dir=learned_dir)
        run_baselines(lake, val[0], test[-1], bcfg, load_outcomes(lake, None, test[-1] - dt.timedelta(days=1)))
    runs += [f"baseline-{n}" for n in cfg.forecast.baselines]
    from pipeline.scoring.evaluate import evaluate

    summaries = {}
    for unit in ("day", "country"):
        ecfg = dataclasses.replace(cfg.evaluate, bootstrap_unit=unit, val_days=len(val))
        summaries[unit] = evaluate(lake, test[0], test[-1], runs, ecfg, write=unit == "day").summary
    summary = _merge(summaries["day"], summaries["country"])
    bt = Backtest(test[0], test[-1], runs, summary)
    tag = args.run_suffix if args.tag is None else args.tag
    out = Path(cfg.evaluate.reports_dir) / f"skill-{test[0]}_{test[-1]}{tag}"
    out.mkdir(parents=True, exist_ok=True)
    summary.to_csv(out / "summary.csv", index=False)
    print(f"# test {test[0]} … {test[-1]}, val {val[0]} … {val[-1]}, {len(manifest['countries'])} countries, "
          f"{time.perf_counter() - t0:.0f} s")
    for group in ("all", "busy", "small"):
        if (bt.summary.group == group).any():
            print(f"\n## {group}\n" + markdown(bt.summary[bt.summary.level != "quad"], group))
    print(f"summary: {out / 'summary.csv'}")


def _calibrated(lake: Lake, run: str, cal, days: list[dt.date], suffix: str = "-cal") -> str:
    """Apply ``cal`` to the raw forecasts of ``run`` on ``days`` (as ``run_forecast`` would with the model's
    calibration.json) and write them as run ``<run><suffix>``; returns that run name."""
    import numpy as np

    from pipeline.cameo.labels import label_space
    from pipeline.core.schemas import FORECASTS_SCHEMA
    from pipeline.forecast.calibrate import blend_inputs
    from pipeline.forecast.table import forecast_rows, load_forecast

    labels = label_space()
    for d in days:
        countries, probs = load_forecast(lake, run, d, labels)
        clim, learned = (blend_inputs(lake, d, countries, labels, cal.stack, weekday_prior=cal.weekday_prior)
                         if cal.blend else (None, None))
        table = forecast_rows(countries, cal.apply(probs, labels, clim, learned), np.ones(len(countries), bool),
                              f"{run}{suffix}", 0, dt.datetime.now(dt.timezone.utc).replace(microsecond=0), labels)
        lake.write_partition("forecasts", table, d, schema=FORECASTS_SCHEMA, model=f"{run}{suffix}")
    return f"{run}{suffix}"


def _knock_out_encoder(model_dir: Path) -> None:
    """Set the last layer of the occurrence head's encoder MLP to zero: logit = f(history) + c only."""
    from safetensors.torch import load_file, save_file

    from pipeline.model.forecaster import ENCODER_FILE

    state = load_file(str(model_dir / ENCODER_FILE))
    last = sorted({k.rsplit(".", 1)[0] for k in state if k.startswith("occurrence.mlp.")})[-1]
    for k in (f"{last}.weight", f"{last}.bias"):
        state[k] = state[k] * 0
    save_file(state, str(model_dir / ENCODER_FILE))


if __name__ == "__main__":
    main()
