"""Walk-forward (rolling-origin) backtest: every test day forecast from its own past only.

For each test day d in [start, end]:

1. the frequency baselines from the ``country`` days before d, and ``baseline-learned``
   refitted on the outcome days before d (:func:`pipeline.forecast.baselines.learned_model`
   with no stored artefact);
2. with a model (``refit_every = k``): every k days, at origin o, a model is trained on the
   descriptor days before o (``dataset.until = o − 1``, its validation days the last
   ``dataset.val_days`` targets before o, no test split), then forecasts o … o+k−1 uncalibrated
   (run ``<run>``); its calibration (``train.calibration_form``: by default the stack's ``baseline-learned``
   plus shrunk differences toward the raw model and climatology, else isotonic maps + a logistic blend; with a
   ``baseline-learned`` fitted on the days before those calibration days unless
   ``train.calibration_stack`` is off) is refitted for each day d on the raw forecasts of the
   ``calibration_days`` days before d and written as run ``<run>-cal``. The stack's input on each
   calibration day p is, by default (``stack="rolling"``), the ``baseline-learned`` of step 1 for p
   (fitted on the days before p), and on d the one of d: weights learned on fits as fresh as the one
   they are applied to. ``stack="fixed"`` (before session 9): one fit before the calibration days,
   applied on d too;
3. every run is scored by :func:`pipeline.scoring.evaluate.evaluate` on [start, end] (thresholds
   tuned on the ``evaluate.val_days`` days before ``start``, which are forecast the same way),
   in one pass with intervals by days and by countries.

Everything it writes goes to its own directory ``reports/backtest-<start>_<end>-<what>/``: the origins' models
in ``models/``, and every run's forecasts, futures and scores and the origins' dataset indexes in its own lake
``lake/``, which reads the source lake's other tables through links
(:func:`backtest_lake`): the source's daily forecasts and scores are never replaced, and backtests of other windows
or country sets never overwrite each other's baselines.

The summary (``reports/backtest-<start>_<end>-<what>/summary.csv``, ``summary.md``; ``<what>`` is the model's
``train.run``, or ``baselines``, and the number of countries, e.g. ``exp22-wf100-100c``, so backtests of other
configs or country sets over the same days never overwrite each other) has per run × group ×
level: Brier, log loss, weighted F1 and the BSS against climatology and against ``baseline-learned``,
each with its 95 % cluster-bootstrap interval by days and by countries, and against ``baseline-weekday``
(the weekly cycle alone) with its interval by countries. With a model, ``summary.md`` opens with where the published
run stands against every baseline (:func:`standing`, also ``standing.csv``). It scores the page's watch lists of the
test days against what happened (``watchlist_record.csv`` and a table in ``summary.md``): the published run's, and
without a model ``baseline-learned``'s, the page the daily flow shows without one.
"""

from __future__ import annotations

import dataclasses
import re
import datetime as dt
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.cameo.labels import Outcomes, label_space, load_outcomes
from pipeline.core.config import Config
from pipeline.core.errors import UserError
from pipeline.core.lake import DateLike, Lake, OverlayLake, as_date, date_range
from pipeline.core.progress import console
from pipeline.core.schemas import FORECASTS_SCHEMA
from pipeline.forecast.futures import has_futures, read_futures, write_futures
from pipeline.forecast.table import baseline_run, forecast_rows, is_baseline, load_forecast
from pipeline.scoring.evaluate import CLIMATOLOGY, LEARNED, SUMMARY_LEVELS, evaluate, forecast_runs

COLUMNS = ("run", "group", "level", "n_country_days", "brier", "log_loss", "glean_f1_w",
           "bss_climatology", "clim_lo_day", "clim_hi_day", "clim_lo_country", "clim_hi_country",
           "bss_learned", "learned_lo_day", "learned_hi_day", "learned_lo_country", "learned_hi_country",
           "bss_weekday", "weekday_lo_country", "weekday_hi_country")


@dataclass
class Backtest:
    """What :func:`backtest` ran and found."""

    start: dt.date
    end: dt.date
    runs: list[str]
    summary: pd.DataFrame
    origins: list[str] = field(default_factory=list)
    """Days on which a model was (re)trained."""
    directory: Path | None = None
    name: str = "baselines"
    """What was backtested: the model's ``train.run`` and the number of countries (``<run>-<N>c``), or
    ``baselines-<N>c``; the summary's directory name ends with it."""
    watch: pd.DataFrame | None = None
    """The page's watch lists of the test days against what happened (:func:`pipeline.scoring.watchlist.record`,
    one row per list): the published run's, without a model ``baseline-learned``'s (``watch_run``)."""
    watch_run: str | None = None
    actors: pd.DataFrame | None = None
    """With a model: its runs' actor pairs against the recent events' (:func:`pipeline.scoring.actors.evaluate_pairs`)."""
    notes: list[str] = field(default_factory=list)
    """What the evaluation said of the test days (days not scored, and why)."""


STACKS = ("rolling", "fixed")


def backtest(lake: Lake, start: DateLike, end: DateLike, cfg: Config, refit_every: int | None = None,
             calibration_days: int = 3, countries: list[str] | None = None, stack: str = "rolling",
             bar_cache: bool = True) -> Backtest:
    """Run the walk-forward backtest over the test days [start, end] (see the module doc).

    ``refit_every`` None: baselines only; k ≥ 1: also the model, retrained every k days.
    ``countries``: the countries forecast and scored (default: ``cfg.dataset.countries``, else the
    ``cfg.dataset.top_countries`` busiest before the first forecast day). ``stack``: which
    ``baseline-learned`` fits the calibration's stack reads (:data:`STACKS`, module doc).
    ``lake`` is only read: what the backtest writes goes to its own lake (:func:`backtest_lake`).
    ``bar_cache``: read the ``baseline-learned`` fits an earlier backtest made of the same inputs from
    ``forecast.learned_cache_dir`` (default ``<train.models_dir>/cache/baseline-learned``) instead of refitting
    them (:func:`pipeline.model.learned.fit_cached`); False: fit every one, save none.
    """
    if stack not in STACKS:
        raise UserError(f"backtest: --stack must be one of {', '.join(STACKS)}, not {stack!r}")
    start, end = as_date(start), as_date(end)
    if end < start:
        raise UserError(f"backtest: --end {end} is before --start {start}")
    if refit_every is not None and refit_every < 1:
        raise UserError(f"backtest: --refit-every must be ≥ 1, not {refit_every}")
    if calibration_days < 1:  # 0 would read as "every raw day before d" ([-0:]), not as none
        raise UserError(f"backtest: --calibration-days must be ≥ 1, not {calibration_days}")
    first = start - dt.timedelta(days=cfg.evaluate.val_days)  # threshold-tuning days, forecast the same way
    days = date_range(first, end)
    outcomes = load_outcomes(lake, None, end)
    if outcomes.day_index(start) is None or start <= outcomes.days[0]:
        why = (f" ({start} is left out, too thin to read: lake.leave_out_share)" if start in outcomes.left_out
               else "")
        raise UserError(f"backtest: --start {start} needs 'country' partitions on and before it in {lake.root}{why}")
    countries = countries or list(cfg.dataset.countries) or _busiest(outcomes, first, cfg.dataset.top_countries)
    name = f"{cfg.train.run if refit_every is not None else 'baselines'}-{len(countries)}c"
    directory = backtest_dir(Path(cfg.evaluate.reports_dir), start, end, name)
    lake = backtest_lake(directory, lake)
    console.print(f"backtest: writing into {lake.root} (reading {lake.source.root})")

    # ---- baselines, each day from its own past (baseline-learned refitted per day)
    cache = (cfg.forecast.learned_cache_dir or Path(cfg.evaluate.reports_dir) / "cache" / "baseline-learned"
             if bar_cache else None)
    cfg = dataclasses.replace(cfg, forecast=dataclasses.replace(cfg.forecast, learned_cache_dir=cache))
    fcfg = dataclasses.replace(cfg.forecast, countries=countries, learned_dir=None, learned_refit_days=1)
    from pipeline.forecast.baselines import run_baselines

    fits: dict[dt.date, Any] = {}  # baseline-learned by first forecast day: the model's stack reuses them
    for d in days:
        run_baselines(lake, d, d, fcfg, outcomes, learned_fits=fits)
    written = set(forecast_runs(lake))  # a baseline with no day to learn from writes nothing: not scored
    runs = [r for r in (baseline_run(n) for n in fcfg.baselines) if r in written]

    # ---- the model, retrained every k days, calibration refitted every day
    origins: list[str] = []
    if refit_every is not None:
        model_runs, origins = _model_backtest(lake, days, cfg, refit_every, calibration_days, countries, outcomes,
                                              fits, stack, models_dir=directory / "models")
        runs = model_runs + runs

    # ---- scores: one pass, intervals by days and by countries
    ev = evaluate(lake, start, end, runs, dataclasses.replace(cfg.evaluate, bootstrap_unit="day"),
                  also_by=("country",))
    summary = _merge(ev.summary, ev.also["country"])
    bt = Backtest(start, end, runs, summary, origins, name=name, actors=ev.actors, notes=ev.notes)
    page = runs[0] if refit_every is not None else (LEARNED if LEARNED in runs else None)
    if page is not None and CLIMATOLOGY in runs:
        # the watch lists the page gives (the published forecast's; without a model baseline-learned's, as the
        # daily flow's page without one), against what happened; they need climatology's forecasts
        from pipeline.scoring.watchlist import WatchlistConfig, record, write_watchlist

        test_days = date_range(start, end)
        wcfg = WatchlistConfig.of(cfg.evaluate)
        for d in test_days:
            write_watchlist(lake, d, page, wcfg)
        bt.watch, bt.watch_run = record(lake, test_days, page, outcomes), page
    bt.directory = write_backtest(bt, Path(cfg.evaluate.reports_dir))
    return bt


OWN_TABLES = ("forecasts", "futures", "scores", "watchlist", "dataset")
"""What a backtest writes, into its own lake (:func:`backtest_lake`); every other table is the source lake's."""


def backtest_dir(reports_dir: Path, start: DateLike, end: DateLike, name: str) -> Path:
    """``<reports_dir>/backtest-<start>_<end>-<name>``: the summary, and the lake (``lake/``) it was scored from."""
    return Path(reports_dir) / f"backtest-{as_date(start)}_{as_date(end)}-{name}"


def backtests_of(reports_dir: Path, start: DateLike, end: DateLike, run: str) -> list[Path]:
    """The backtest directories of ``run`` over [start, end] in ``reports_dir``, one per country count: exactly
    ``backtest-<start>_<end>-<run>-<N>c`` (not a longer run name that starts with ``run``, e.g. ``<run>-noenc``)."""
    base = backtest_dir(reports_dir, start, end, run)
    name = re.compile(rf"{re.escape(base.name)}-\d+c")
    return sorted(p for p in base.parent.glob(f"{base.name}-*c") if name.fullmatch(p.name))


def backtest_lake(directory: Path, source: Lake) -> OverlayLake:
    """The backtest's own lake, ``<directory>/lake``: its forecasts, futures, scores and training indexes, with
    ``source``'s other tables (``country``, ``descriptors`` …) read through links. So a backtest never replaces
    the daily flow's forecasts or scores in ``source``, two backtests (other windows, other country sets) never
    overwrite each other's baselines, and the forecasts each summary was scored from stay beside it. The
    embedding cache is ``source``'s (shared, as every run's)."""
    if isinstance(source, OverlayLake):
        source = source.source
    return OverlayLake(Path(directory) / "lake", source, own=OWN_TABLES, shared=("embeddings",))


def _busiest(outcomes, before: dt.date, top: int) -> list[str]:
    idx = [i for i, d in enumerate(outcomes.days) if d < before]
    totals = outcomes.n_events[idx].sum(axis=0)
    return sorted(outcomes.countries[i] for i in np.argsort(-totals, kind="stable")[:top] if totals[i] > 0)


def model_days(days: list[dt.date], k: int, calibration_days: int) -> tuple[list[dt.date], list[dt.date]]:
    """(the days the model forecasts raw: ``calibration_days`` before ``days`` then ``days``; the origins:
    every k-th of those, the first included, where a model is trained on the days before it)."""
    raw_days = [days[0] - dt.timedelta(days=i) for i in range(calibration_days, 0, -1)] + list(days)
    return raw_days, raw_days[::k]


def _model_backtest(lake: Lake, days: list[dt.date], cfg: Config, k: int, calibration_days: int,
                    countries: list[str], outcomes: Outcomes, fits: dict[dt.date, Any], stack: str = "rolling",
                    models_dir: Path | None = None) -> tuple[list[str], list[str]]:
    """Train at every k-th day, forecast raw, calibrate each day on the raw forecasts before it.

    ``outcomes``: the ``country`` table up to the last test day, read once; each day's calibration,
    stack and blend inputs see only its slice up to the days before that day (``Outcomes.until``).
    ``fits``: the baselines' ``baseline-learned`` fits by first forecast day; the stack's fit for day p
    is the one the baselines used for p (one fit, not two). ``stack``: see :func:`backtest`. ``models_dir``: where
    the origins' models go (:func:`backtest` gives its own directory's ``models/``)."""
    from pipeline.features.embed import Embedder
    from pipeline.forecast.calibrate import blend_inputs, fit_from_lake, form_of, stack_for, weekday_prior_of
    from pipeline.forecast.forecast import load_model_run, run_forecast
    from pipeline.model.train import train

    run = f"{cfg.train.run}-bt"
    models_dir = Path(models_dir or Path(cfg.train.models_dir) / "backtest")
    embedder = Embedder(cfg.embed)
    origins = []
    raw_days, origin_days = model_days(days, k, calibration_days)
    labels = label_space()
    mr = None
    for d in raw_days:
        if d in origin_days:  # a new origin: train on the days before it
            tcfg = dataclasses.replace(cfg)
            tcfg.dataset = dataclasses.replace(cfg.dataset, until=str(d - dt.timedelta(days=1)), test_days=0,
                                               countries=countries)
            tcfg.train = dataclasses.replace(cfg.train, run=f"{run}-{d}", models_dir=models_dir)
            # the origin's model is the backtest's own: a rerun (or one after a kill) trains it afresh, which
            # gives the same model for the same config, and a model of a changed config otherwise
            shutil.rmtree(models_dir / tcfg.train.run, ignore_errors=True)
            result = train(tcfg, lake, embedder=embedder, resume=False)
            mr = load_model_run(result.run_dir)
            mr.run = run  # every origin's forecasts form one run
            origins.append(str(d))
        fcfg = dataclasses.replace(cfg.forecast, countries=countries)
        run_forecast(lake, d, fcfg, mr, embedder)
    # calibration per day from the raw forecasts of the days before it (stacked with a baseline-learned
    # fitted on the days before those), then applied to that day's raw forecast
    stacked = cfg.train.calibration_blend and cfg.train.calibration_stack
    scfg = dataclasses.replace(cfg.forecast, learned_dir=None)
    for d in days:
        past = [p for p in raw_days if p < d][-calibration_days:]
        one, per_day = None, None
        if stacked and stack == "fixed":
            one = stack_for(lake, past[0], scfg, outcomes, fits)
        elif stacked:
            per_day = {p: f for p in past if (f := stack_for(lake, p, scfg, outcomes, fits)) is not None}
            per_day = per_day if len(per_day) == len(past) else None  # a day without history: no stack
        cal = fit_from_lake(lake, run, past, labels, blend=cfg.train.calibration_blend, stack=one,
                            outcomes=outcomes, stacks=per_day, weekday_prior=weekday_prior_of(cfg),
                            form=form_of(cfg))
        cs, probs = load_forecast(lake, run, d, labels)
        # "fixed": the stack's input on d comes from the fit its weights were learned with (before the calibration
        # days), not d's fresher fit: weights learned on an older fit, applied to a sharper one, scored worse
        # (docs/forecast.md, session 8). "rolling": every calibration day had its own fresh fit, and so has d
        on_d = cal.stack
        if stack == "rolling" and cal.stack is not None:
            on_d = stack_for(lake, d, scfg, outcomes, fits)  # d's own fit, the one baseline-learned forecast d with
        clim, learned = (blend_inputs(lake, d, cs, labels, on_d, outcomes, cal.weekday_prior) if cal.blend
                         else (None, None))
        pairs, n_futures = _behind(lake, run, d, cs, labels)
        table = forecast_rows(cs, cal.apply(probs, labels, clim, learned), np.ones(len(cs), bool), f"{run}-cal",
                              n_futures, dt.datetime.now(dt.timezone.utc).replace(microsecond=0), labels, pairs)
        lake.write_partition("forecasts", table, d, schema=FORECASTS_SCHEMA, model=f"{run}-cal")
        if has_futures(lake, run, d):  # the published run's futures are the raw run's: calibration changes only P
            write_futures(lake, read_futures(lake, run, d), d, f"{run}-cal")
    console.print(f"backtest: model retrained at {', '.join(origins)}")
    return [f"{run}-cal", run], origins


def _behind(lake: Lake, run: str, day: dt.date, countries: list[str], labels
            ) -> tuple[dict[tuple[int, str, int], list[dict]], np.ndarray]:
    """The raw run's actor pairs and number of futures for ``day``, as :func:`forecast_rows` takes them: what the
    calibrated run publishes beside its probabilities (as the daily forecast does)."""
    raw = lake.read("forecasts", day, day, columns=["country", "level", "code", "actor_pairs", "n_futures"],
                    model=run).to_pandas()
    ci = {c: i for i, c in enumerate(countries)}
    pairs = {(ci[c], lv, labels[lv].index[code]): list(p)
             for c, lv, code, p in zip(raw.country, raw.level, raw.code, raw.actor_pairs) if p is not None and len(p)}
    n_futures = raw.groupby("country").n_futures.first().reindex(countries).fillna(0).to_numpy(np.int32)
    return pairs, n_futures


def _merge(by_day: pd.DataFrame, by_country: pd.DataFrame) -> pd.DataFrame:
    """One row per run × group × level with both interval units."""
    key = ["run", "group", "level"]
    a = by_day.rename(columns={"bss_climatology_lo": "clim_lo_day", "bss_climatology_hi": "clim_hi_day",
                               "bss_learned_lo": "learned_lo_day", "bss_learned_hi": "learned_hi_day"})
    b = by_country[key + ["bss_climatology_lo", "bss_climatology_hi", "bss_learned_lo", "bss_learned_hi",
                          "bss_weekday_lo", "bss_weekday_hi"]].rename(
        columns={"bss_climatology_lo": "clim_lo_country", "bss_climatology_hi": "clim_hi_country",
                 "bss_learned_lo": "learned_lo_country", "bss_learned_hi": "learned_hi_country",
                 "bss_weekday_lo": "weekday_lo_country", "bss_weekday_hi": "weekday_hi_country"})
    m = a.merge(b, on=key, how="left")
    order = {lv: i for i, lv in enumerate(SUMMARY_LEVELS)}
    m = m.sort_values(["group", "level", "brier"], key=lambda s: s.map(order) if s.name == "level" else s)
    return m[list(COLUMNS)].reset_index(drop=True)


def markdown(summary: pd.DataFrame, group: str = "all") -> str:
    """The summary of one group as a Markdown table (BSS with 95 % intervals by days / by countries)."""
    ci = lambda lo, hi: "" if pd.isna(lo) else f"{lo:+.3f} … {hi:+.3f}"  # noqa: E731
    lines = ["| level | run | Brier | log loss | F1w | BSS clim | 95 % days | 95 % countries "
             "| BSS learned | 95 % days | 95 % countries | BSS weekday | 95 % countries |", "|" + "---|" * 13]
    for r in summary[summary.group == group].itertuples():
        lines.append(f"| {r.level} | {r.run} | {r.brier:.4f} | {r.log_loss:.4f} | {r.glean_f1_w:.3f} "
                     f"| {r.bss_climatology:+.4f} | {ci(r.clim_lo_day, r.clim_hi_day)} "
                     f"| {ci(r.clim_lo_country, r.clim_hi_country)} | {r.bss_learned:+.4f} "
                     f"| {ci(r.learned_lo_day, r.learned_hi_day)} | {ci(r.learned_lo_country, r.learned_hi_country)} "
                     f"| {r.bss_weekday:+.4f} | {ci(r.weekday_lo_country, r.weekday_hi_country)} |")
    return "\n".join(lines) + "\n"


def standing(summary: pd.DataFrame, run: str) -> pd.DataFrame:
    """Where ``run`` stands against every baseline of ``summary``, one row per group and level: its BSS against
    climatology and against ``baseline-learned`` with their 95 % intervals by countries (``above_learned``: that
    interval wholly above 0), the best baseline by Brier and the BSS against it (``bss_best``; ≥ 0: no worse than
    any baseline), and its log loss and weighted F1 beside the best of any baseline's (lower and higher is
    better). Empty when ``summary`` has no baseline beside ``run``."""
    rows = []
    for (group, level), g in summary.groupby(["group", "level"], sort=False):
        me, base = g[g.run == run], g[g.run.map(is_baseline)]
        if me.empty or base.empty:
            continue
        me, best = me.iloc[0], base.loc[base.brier.idxmin()]
        rows.append(dict(
            group=group, level=level, n_country_days=int(me.n_country_days),
            bss_climatology=me.bss_climatology, clim_lo_country=me.clim_lo_country,
            clim_hi_country=me.clim_hi_country, bss_learned=me.bss_learned,
            learned_lo_country=me.learned_lo_country, learned_hi_country=me.learned_hi_country,
            above_learned=bool(me.learned_lo_country > 0), best_baseline=best.run,
            bss_best=1.0 - me.brier / best.brier if best.brier > 0 else 0.0,
            brier=me.brier, best_baseline_brier=best.brier,
            log_loss=me.log_loss, best_baseline_log_loss=base.log_loss.min(),
            f1w=me.glean_f1_w, best_baseline_f1w=base.glean_f1_w.max()))
    return pd.DataFrame(rows)


NEAR_CERTAIN_BRIER = 1e-3
"""Below this Brier score a level's labels happen (or not) in nearly every country-day, for every forecaster (the
QuadClasses of the busiest countries): a BSS there is a ratio of two near-zero numbers, and the standing table says
so instead of printing, say, −480 %."""


def standing_markdown(table: pd.DataFrame, run: str) -> str:
    """:func:`standing` as a Markdown section; ✓ where ``run`` is ahead (the interval by countries above 0, no
    worse than the best baseline in Brier, a lower log loss or a higher weighted F1 than every baseline); ‡ where
    the best baseline's Brier is below :data:`NEAR_CERTAIN_BRIER` (its BSS are not worth reading)."""
    ok = lambda b: " ✓" if b else ""  # noqa: E731
    lines = [f"## {run} against the baselines\n",
             "BSS in %, [95 % interval by countries]; ✓ where it is ahead of every baseline (against "
             "`baseline-learned`: the interval above 0).\n",
             "| group | level | country-days | BSS climatology | BSS baseline-learned | best baseline (Brier) "
             "| BSS against it | log loss (best baseline's) | F1w (best baseline's) |", "|" + "---|" * 9]
    for r in table.itertuples():
        certain = " ‡" if r.best_baseline_brier < NEAR_CERTAIN_BRIER else ""
        lines.append(
            f"| {r.group} | {r.level}{certain} | {r.n_country_days} | {100 * r.bss_climatology:+.2f} "
            f"[{100 * r.clim_lo_country:+.2f}, {100 * r.clim_hi_country:+.2f}] | {100 * r.bss_learned:+.2f} "
            f"[{100 * r.learned_lo_country:+.2f}, {100 * r.learned_hi_country:+.2f}]{ok(r.above_learned)} "
            f"| {r.best_baseline} | {100 * r.bss_best:+.2f}{ok(r.bss_best >= 0)} "
            f"| {r.log_loss:.4f} ({r.best_baseline_log_loss:.4f}){ok(r.log_loss < r.best_baseline_log_loss)} "
            f"| {r.f1w:.3f} ({r.best_baseline_f1w:.3f}){ok(r.f1w > r.best_baseline_f1w)} |")
    if (table.best_baseline_brier < NEAR_CERTAIN_BRIER).any():
        lines.append(f"\n‡ Every forecaster's Brier score is below {NEAR_CERTAIN_BRIER:g} here (the labels happen in "
                     "nearly every country-day): its BSS are ratios of near-zero numbers; read the log loss.")
    return "\n".join(lines) + "\n"


def write_backtest(bt: Backtest, reports_dir: Path) -> Path:
    """``reports/backtest-<start>_<end>-<what>/summary.csv`` and ``summary.md`` (with a model, where the published run
    stands first, also in ``standing.csv``; then one table per group)."""
    out = backtest_dir(reports_dir, bt.start, bt.end, bt.name)
    out.mkdir(parents=True, exist_ok=True)
    bt.summary.to_csv(out / "summary.csv", index=False)
    text = f"# Walk-forward backtest {bt.start} … {bt.end}\n\nRuns: {', '.join(bt.runs)}\n"
    if bt.origins:
        text += f"\nModel retrained at: {', '.join(bt.origins)}\n"
    if bt.notes:
        text += "\n" + "".join(f"- {n}\n" for n in bt.notes)
    if bt.origins and len(table := standing(bt.summary, bt.runs[0])):
        table.to_csv(out / "standing.csv", index=False)
        text += "\n" + standing_markdown(table, bt.runs[0])
    for group in ("all", "busy", "small"):
        if (bt.summary.group == group).any():
            text += f"\n## {group} countries\n\n" + markdown(bt.summary, group)
    if bt.watch is not None and len(bt.watch):
        bt.watch.to_csv(out / "watchlist_record.csv", index=False)
        text += (f"\n## Watch list of {bt.watch_run} against what happened\n\nThe rows its watch lists listed on the "
                 "test days (`lake/watchlist`): rises worth reading happen more often than their usual value, falls "
                 "less often.\n\n| list | rows | days | usual | P | happened |\n|---|---|---|---|---|---|\n"
                 + "".join(f"| {r.list} | {r.rows} | {r.days} | {r.usual:.3f} | {r.probability:.3f} | {r.happened:.3f} |\n"
                           for r in bt.watch.itertuples()))
    if bt.actors is not None and len(bt.actors):
        bt.actors.to_csv(out / "actors.csv", index=False)
        text += ("\n## Actor pairs against the recent events'\n\nShare of the day's events of a label that happened "
                 "whose actor pair is among the 3 pairs shown (coverage), and top-1, for the run's pairs (from its "
                 "futures) and for the label's pairs in the `evaluate.actor_days` days before (what the page shows; "
                 "docs/report.md \"Actor pairs\"); run − recent with its 95 % interval by countries.\n\n"
                 "| run | level | rows | run's pairs | recent events' pairs | run − recent |\n|---|---|---|---|---|---|\n"
                 + "".join(f"| {r.run} | {r.level} | {r.rows} | {r.coverage:.3f} / {r.top1:.3f} | "
                           f"{r.history_coverage:.3f} / {r.history_top1:.3f} | "
                           f"{r.diff:+.3f} [{r.diff_lo:+.3f}, {r.diff_hi:+.3f}] |\n" for r in bt.actors.itertuples()))
    (out / "summary.md").write_text(text)
    return out
