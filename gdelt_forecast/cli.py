"""The ``gdelt-forecast`` command line (typer): one command per stage.

Global options (before the command): ``--config configs/x.yaml`` and
``--lake PATH``. Command flags override the YAML, which overrides defaults.
"""

from __future__ import annotations

import functools
import inspect as _inspect
import os
import sys
from pathlib import Path
from typing import Annotated, Any, Callable, Literal, Optional, get_args

import typer
from rich.console import Console
from rich.markup import escape

from pipeline.core.config import Config, load_config
from pipeline.core.errors import UserError
from pipeline.core.lake import Lake
from pipeline.core.progress import console

Source = Literal["gdelt1", "gdelt2", "local", "bigquery"]
Runner = Literal["local", "dask", "ray"]
SOURCES, RUNNERS = get_args(Source), get_args(Runner)
WIDE = 1000
"""Console width when the output is not a terminal (a log, a pipe, a Prefect run): tables keep every column."""
USER_ERRORS: tuple[type[BaseException], ...] = (UserError, ValueError, FileNotFoundError)
"""Mistakes in what the user gave (flags, config, files, a lake lacking a stage's inputs): one line, exit 2."""

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__.split("\n")[0],
                  context_settings={"help_option_names": ["-h", "--help"]}, rich_markup_mode="markdown")


class State:
    config_path: Optional[Path] = None
    lake_root: Optional[Path] = None
    debug: bool = False


state = State()


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            v = version("gdelt-forecast")
        except PackageNotFoundError:
            v = "unknown (not installed)"
        typer.echo(f"gdelt-forecast {v}")
        raise typer.Exit()


ConfigOpt = Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML config (see configs/); "
                                                   "accepted before or after the command.")]
LakeOpt = Annotated[Optional[Path], typer.Option("--lake", help="Lake root (default: lake.root of the config, data/lake).")]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show tracebacks (also GDELT_FORECAST_DEBUG=1).")]


@app.callback()
def _global(
    config: ConfigOpt = None,
    lake: LakeOpt = None,
    debug: DebugOpt = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    state.config_path, state.lake_root = config, lake
    state.debug = debug or os.environ.get("GDELT_FORECAST_DEBUG", "") not in ("", "0")
    for c in (console, _OUT):  # full width in logs and pipes: no "hid…" cells
        if not c.is_terminal:
            c.width = WIDE


_OUT = Console()
"""Results (tables, what was written) go to stdout; progress, notes and errors to stderr (``console``)."""


def out() -> Console:
    """The stdout console (re-bound to the current ``sys.stdout``, so tests and pipes capture it)."""
    _OUT.file = sys.stdout
    return _OUT


def command(name: Optional[str] = None, **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``@app.command`` plus what every command shares: ``--config``/``--lake``/``--debug`` accepted after
    the command too, and one error tail — a user mistake (``USER_ERRORS``) prints one line and exits 2, a
    failure of the machine or the network (``OSError``: GDELT unreachable, a full disk) one line and exits 1,
    with the traceback only under ``--debug`` / ``GDELT_FORECAST_DEBUG=1``."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any, config: Optional[Path] = None, lake: Optional[Path] = None, debug: bool = False,
                    **kw: Any) -> Any:
            state.config_path = config or state.config_path
            state.lake_root = lake or state.lake_root
            state.debug = state.debug or debug
            try:
                return fn(*args, **kw)
            except USER_ERRORS as exc:
                if state.debug:
                    raise
                console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
                raise typer.Exit(2) from None
            except OSError as exc:  # a server unreachable, a disk full: not the user's mistake, yet one line says it
                if state.debug:
                    raise
                console.print(f"[red]failed:[/red] {escape(str(exc))} (--debug shows the traceback)", highlight=False)
                raise typer.Exit(1) from None

        sig = _inspect.signature(fn, eval_str=True)  # typer reads Annotated[...] objects, not strings
        extra = [_inspect.Parameter(n, _inspect.Parameter.KEYWORD_ONLY, default=d, annotation=a)
                 for n, a, d in (("config", ConfigOpt, None), ("lake", LakeOpt, None), ("debug", DebugOpt, False))]
        wrapper.__signature__ = sig.replace(parameters=[*sig.parameters.values(), *extra])  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in wrapper.__signature__.parameters.values()}  # type: ignore[attr-defined]
        wrapper.__annotations__["return"] = sig.return_annotation
        del wrapper.__wrapped__  # typer reads the signature above, not the wrapped function's
        return app.command(name, **kwargs)(wrapper)

    return decorate


def get_config(**overrides: object) -> Config:
    """Resolved config: defaults ← ``--config`` YAML ← ``--lake`` ← command flags."""
    ov: dict[str, object] = {"lake.root": state.lake_root}
    ov.update(overrides)
    return load_config(state.config_path, ov)


def get_lake(cfg: Config) -> Lake:
    return cfg.lake.open()


# ============================================================ ingest / reduce / inspect
def _table(title: str, rows: list[dict], columns: list[str] | None = None):
    from rich.table import Table

    from pipeline.core.inspection import fmt_value

    t = Table(title=title, show_lines=False)
    cols = columns or (list(rows[0]) if rows else [])
    for c in cols:
        t.add_column(c, justify="right" if rows and isinstance(rows[0].get(c), (int, float)) else "left")
    for r in rows:
        t.add_row(*[fmt_value(r.get(c)) for c in cols])
    return t


def _print_ingest_report(report) -> None:
    by_status: dict[str, int] = {}
    for f in report.files:
        by_status[f.status] = by_status.get(f.status, 0) + 1
    out().print(_table(
        f"ingest {report.source} {report.start} … {report.end} ({report.seconds:.1f} s)",
        [dict(files=len(report.files), **{s: by_status.get(s, 0) for s in ("ok", "skipped", "missing", "failed")},
              **({"refused": by_status["refused"]} if by_status.get("refused") else {}),
              rows_kept=report.rows_kept, quarantined=report.rows_quarantined, duplicate=report.rows_duplicate,
              days_written=len(report.days))]))
    bad = [f for f in report.files if f.status in ("failed", "missing", "refused") or f.rows_quarantined]
    if bad:
        out().print(_table("files needing attention", [
            dict(file=f.name, status=f.status, quarantined=f.rows_quarantined, error=(f.error or "")[:120])
            for f in bad[:50]]))
        if len(bad) > 50:
            console.print(f"… and {len(bad) - 50} more (see `gdelt-forecast inspect manifest`)")


SourceOpt = Annotated[Optional[Source], typer.Option("--source", "-s",
                                                  help="Where events come from (default: flow.source of the config).")]
PathOpt = Annotated[Optional[Path], typer.Option("--path", help="File or folder for --source local "
                                                 "(default: flow.path of the config).")]


@command()
def ingest(
    start: Annotated[str, typer.Option("--start", help="First day, YYYY-MM-DD.")],
    end: Annotated[Optional[str], typer.Option("--end", help="Last day (default: --start).")] = None,
    source: SourceOpt = None,
    path: PathOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Re-ingest files the manifest marks done.")] = False,
    keep_going: Annotated[bool, typer.Option("--keep-going", help="Record failed files and go on; exit 0.")] = False,
    concurrency: Annotated[Optional[int], typer.Option("--concurrency", help="Parallel downloads.")] = None,
    download_dir: Annotated[Optional[Path], typer.Option("--download-dir", help="Where zips are kept.")] = None,
    bq_table: Annotated[Optional[str], typer.Option("--bq-table", help="BigQuery events table.")] = None,
    max_bytes_billed: Annotated[Optional[int], typer.Option("--max-bytes-billed", help="BigQuery guard.")] = None,
) -> None:
    """Ingest GDELT events of [--start, --end] into the lake (events, manifest, quarantine)."""
    from pipeline.ingest.run import IngestError
    from pipeline.ingest.run import ingest as run_ingest

    cfg = get_config(**{"ingest.concurrency": concurrency, "ingest.download_dir": download_dir,
                        "ingest.bigquery_table": bq_table, "ingest.bigquery_max_bytes_billed": max_bytes_billed})
    src, src_path = cfg.flow.resolve_source(source, path)
    try:
        report = run_ingest(get_lake(cfg), src, start, end or start, cfg.ingest, path=src_path, force=force,
                            keep_going=keep_going)
    except IngestError as exc:
        _print_ingest_report(exc.report)
        console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
        raise typer.Exit(1)
    except (OSError, RuntimeError) as exc:  # unreachable file lists, BigQuery cost guard: the user's to fix
        if isinstance(exc, FileNotFoundError):
            raise
        raise UserError(str(exc)) from exc
    _print_ingest_report(report)
    if not report.files:
        console.print(f"[yellow]no {src} files found for {start} … {end or start}[/yellow]"
                      + (f" under {src_path}" if src_path else ""))


@command()
def reduce(
    start: Annotated[str, typer.Option("--start", help="First day, YYYY-MM-DD.")],
    end: Annotated[Optional[str], typer.Option("--end", help="Last day (default: --start).")] = None,
    source: Annotated[Literal["lake", "bigquery"], typer.Option("--source",
                                        help="The lake's events table, or BigQuery.")] = "lake",
) -> None:
    """Reduce events to the country table (14 columns + 3) for [--start, --end]."""
    from pipeline.ingest.reduce import reduce as run_reduce

    cfg = get_config()
    try:
        report = run_reduce(get_lake(cfg), start, end or start, source=source, cfg=cfg.ingest)
    except (OSError, RuntimeError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise UserError(str(exc)) from exc
    out().print(_table(f"reduce {report.start} … {report.end} ({report.seconds:.1f} s)",
                       [dict(date=d, rows=n, **({"quarantined": report.quarantined.get(d, 0)}
                                                if source == "bigquery" else {}))
                        for d, n in sorted(report.days.items())]))
    if report.quarantined:
        console.print(f"[yellow]{sum(report.quarantined.values())} unparsable BigQuery rows quarantined[/yellow] "
                      "(gdelt-forecast inspect quarantine)")
    if report.missing:
        console.print(f"[yellow]{len(report.missing)} days without events:[/yellow] "
                      + ", ".join(str(d) for d in report.missing[:10]))
    if not report.days:
        console.print("[red]error:[/red] no events partitions in range; run `gdelt-forecast ingest` first")
        raise typer.Exit(1)


@command()
def inspect(
    table: Annotated[Optional[str], typer.Argument(help="Table to detail (default: all tables).")] = None,
    date: Annotated[Optional[str], typer.Option("--date", help="One partition day.")] = None,
    sql: Annotated[Optional[str], typer.Option("--sql", help="DuckDB SQL over the lake's views.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=0, help="Rows shown for --sql.")] = 50,
    country: Annotated[Optional[str], typer.Option("--country", help="descriptors: one country (FIPS) of --date.")] = None,
    top: Annotated[int, typer.Option("--top", min=1, help="descriptors --country: heaviest phrases shown; watchlist: rows per list.")] = 15,
) -> None:
    """Tables, partitions, row counts and quarantine summary of the lake; or run --sql.

    `inspect descriptors --date D --country C` shows that country-day's top phrases, weights, counts."""
    from pipeline.core import inspection as insp

    cfg = get_config()
    lake = get_lake(cfg)
    if not Path(lake.root).is_dir():
        raise UserError(f"no lake at {lake.root}: ingest some days first (gdelt-forecast ingest), "
                        "or point --lake / lake.root at an existing one")
    try:
        if sql:
            result = insp.sql(lake, sql)
            out().print(_table(f"{result.num_rows} rows", result.slice(0, limit).to_pylist(), result.column_names))
        elif table == "descriptors" and country:  # descriptors / dataset section's view
            _print_descriptors(out(), lake, date, country, top)
        elif table == "watchlist":  # report section's view
            _print_watchlist(out(), lake, date, top)
        elif table:
            out().print(_table(f"{table} partitions", insp.partitions(lake, table, date)))
        else:
            out().print(_table(f"lake {lake.root}", insp.tables(lake)))
            if m := insp.manifest_summary(lake):
                out().print(_table("manifest", m))
            if q := insp.quarantine_summary(lake):
                out().print(_table("quarantine", q))
            if t := insp.coverage_summary(lake, cfg.flow.min_day_share):
                out().print(_table("thin days (fewer GDELT exports than usual: docs/flows.md \"Thin days\")", t))
    except USER_ERRORS:
        raise
    except Exception as exc:  # DuckDB errors in --sql, unknown tables: one clear line, not a traceback
        raise UserError(f"inspect: {exc}".replace("\n", " ")) from exc


# ============================================================ watch list (report)
def _print_watchlist(out, lake: Lake, date: Optional[str], top: int) -> None:
    """``inspect watchlist --date D [--top N]``: the day's ``watchlist`` partition (pipeline/scoring/watchlist.py)."""
    from pipeline.scoring.watchlist import phrase_text, read_watchlist

    if date is None:
        raise ValueError("inspect watchlist needs --date YYYY-MM-DD (the forecast's target day)")
    w = read_watchlist(lake, date, top=top)
    if w.empty:
        out.print(f"{date}: nothing departs from the usual range (watchlist partition is empty)")
        return
    cols = ["rank", "country", "region", "level", "code", "description", "probability", "usual", "difference",
            "ratio", "climatology", "baseline", "phrases"]
    w["phrases"] = [phrase_text(p, s, " | ") for p, s in zip(w.phrases, w.phrase_shares)]
    for name, g in w.groupby("list", sort=False):
        rows = [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()}
                for r in g[cols].to_dict("records")]
        out.print(_table(f"{date} {name} ({w.model_run.iloc[0]} vs usual; baseline {w.baseline_run.iloc[0]})",
                         rows, cols))


# ============================================================ descriptors / dataset
def _print_descriptors(o: Console, lake: Lake, date: Optional[str], country: str, top: int) -> None:
    """Rich view of one country-day: top phrases with weights and counts, then the day's targets."""
    from pipeline.features.descriptors import describe_day, describe_descriptors

    if date is None:
        raise UserError("inspect descriptors --country needs --date YYYY-MM-DD")
    country = country.strip().upper()  # FIPS codes are upper case
    t = describe_descriptors(lake, date, country, top)
    day = describe_day(lake, date, country)
    o.print(_table(
        f"{country} {date}: {day['n_events']} events, {day['n_points']} points"
        f"{' (small)' if day['small'] else ''}, Goldstein {day['goldstein_mean'] or 0:.2f}", t.to_pylist()))
    o.print(_table("targets", [dict(phrase=p, weight=round(w, 4)) for p, w in
                               zip(day["target_phrases"], day["target_weights"])]))


@command()
def descriptors(
    start: Annotated[str, typer.Option("--start", help="First day, YYYY-MM-DD.")],
    end: Annotated[Optional[str], typer.Option("--end", help="Last day (default: --start).")] = None,
    countries: Annotated[Optional[list[str]], typer.Option("--countries", help="FIPS codes (repeat or comma-separate; default all).")] = None,
    weight: Annotated[Optional[Literal["count", "mentions"]], typer.Option("--weight",
                                                  help="Point weights.")] = None,
    actor_countries: Annotated[Optional[bool], typer.Option("--actor-countries/--no-actor-countries", help="Also count events by actor geo country.")] = None,
    model: Annotated[Optional[str], typer.Option("--model", help="sentence-transformers name or path.")] = None,
) -> None:
    """Build the daily descriptors (phrase clouds, stats, targets) of [--start, --end] from the country table."""
    from pipeline.features.descriptors import build_range
    from pipeline.features.embed import CacheStats, Embedder

    cfg = get_config(**{"descriptors.countries": ",".join(countries) if countries else None,
                        "descriptors.weight": weight, "descriptors.include_actor_countries": actor_countries,
                        "embed.model": model})
    embedder = Embedder(cfg.embed)
    days = build_range(get_lake(cfg), start, end or start, cfg.descriptors, embedder)
    total = CacheStats()
    for d in days:
        total.add(d.cache)
    out().print(_table(f"descriptors {start} … {end or start} (embedder {embedder.id})", [
        dict(date=d.date, rows=d.rows, countries=d.countries, points=d.points, small=d.small,
             unlocated=d.unlocated, uncoded=d.uncoded, misdated=d.misdated,
             embedded=d.cache.misses, hit_rate=round(d.cache.hit_rate, 3)) for d in days]))
    console.print(f"embedding cache: {total.hits} hits, {total.misses} embedded, hit rate {total.hit_rate:.1%}")


@command()
def dataset(
    name: Annotated[str, typer.Option("--name", help="Dataset name (`lake/dataset/name=<name>/`).")] = "default",
    context_days: Annotated[Optional[int], typer.Option("--context-days", "-T", help="T: days per sequence.")] = None,
    countries: Annotated[Optional[list[str]], typer.Option("--countries", help="FIPS codes (default: the busiest).")] = None,
    top_countries: Annotated[Optional[int], typer.Option("--top-countries", help="How many busiest countries.")] = None,
    val_days: Annotated[Optional[int], typer.Option("--val-days", help="Validation target days.")] = None,
    test_days: Annotated[Optional[int], typer.Option("--test-days", help="Test target days.")] = None,
) -> None:
    """Index the training sequences (time split train/val/test, no leakage) and write their manifest."""
    from pipeline.features.dataset import build_dataset

    cfg = get_config(**{"dataset.context_days": context_days, "dataset.top_countries": top_countries,
                        "dataset.countries": ",".join(countries) if countries else None,
                        "dataset.val_days": val_days, "dataset.test_days": test_days})
    lake = get_lake(cfg)
    m = build_dataset(lake, cfg.dataset, name)
    days = m["target_days"]
    out().print(_table(f"dataset {name}: T={cfg.dataset.context_days}, {len(m['countries'])} countries", [
        dict(split=s, sequences=m["sequences"][s], target_days=len(days[s]),
             first=days[s][0] if days[s] else "", last=days[s][-1] if days[s] else "") for s in days]))
    from pipeline.features.dataset import manifest_path

    out().print(f"manifest: {manifest_path(lake, name)}; skipped {m['skipped']}", highlight=False)


# ============================================================ train / models / register
@command("train")
def train_cmd(
    resume: Annotated[bool, typer.Option("--resume", help="Continue `models/<run>/checkpoint` if present.")] = False,
    run: Annotated[Optional[str], typer.Option(help="Run name (`models/<run>/`).")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Epochs.")] = None,
    max_steps: Annotated[Optional[int], typer.Option(help="Stop after this many optimiser steps.")] = None,
    sinkhorn_lambda: Annotated[Optional[float], typer.Option("--lambda", help="λ of the Sinkhorn term (0: no Sinkhorn; the NLL and the occurrence BCE stay).")] = None,
    device: Annotated[Optional[str], typer.Option(help="cpu, cuda, cuda:1 … (default: CUDA when available).")] = None,
    models_dir: Annotated[Optional[Path], typer.Option(help="Where runs are written (default models/).")] = None,
    register_run: Annotated[bool, typer.Option("--register/--no-register",
                                               help="Point `<models-dir>/latest` (what `forecast` uses) at the new run.")] = True,
) -> None:
    """Train the forecaster on the lake's descriptors; writes `models/<run>/` (model, config, metrics, card)
    and registers it as models/latest unless `--no-register`."""
    from pipeline.core.registry import register
    from pipeline.model.train import train

    cfg = get_config(**{"train.run": run, "train.epochs": epochs, "train.max_steps": max_steps,
                        "train.sinkhorn_lambda": sinkhorn_lambda, "train.device": device,
                        "train.models_dir": models_dir})
    result = train(cfg, get_lake(cfg), resume=resume)
    o = out()
    o.print(f"[bold]trained[/] {result.run_dir} in {result.steps} steps"
            + (f" (resumed at step {result.resumed_from})" if result.resumed_from is not None else ""))
    for key, value in result.metrics.items():
        if isinstance(value, (int, float)):
            o.print(f"  {key:<28} {value:.4g}" if isinstance(value, float) else f"  {key:<28} {value}")
    if register_run:
        o.print(f"[bold]registered[/] {register(result.run_dir, cfg.train.models_dir)} → {result.run_dir.name}")


@command()
def models(
    models_dir: Annotated[Optional[Path], typer.Option(help="Where runs live (default: train.models_dir).")] = None,
) -> None:
    """List the trained runs (newest first): when written, their final metrics, and which one is `latest`."""
    from pipeline.core.registry import list_runs

    cfg = get_config(**{"train.models_dir": models_dir})
    runs = list_runs(cfg.train.models_dir)
    if not runs:
        raise UserError(f"no trained runs under {cfg.train.models_dir}/: train one (gdelt-forecast train)")
    keys = list(dict.fromkeys(k for r in runs for k in r.metrics))
    out().print(_table(f"runs in {cfg.train.models_dir}", [
        {"run": r.name, "latest": "*" if r.latest else "", "written (UTC)": f"{r.written:%Y-%m-%d %H:%M}" if r.written else "",
         **{k: r.metrics.get(k) for k in keys}} for r in runs], ["run", "latest", "written (UTC)", *keys]))
    if not any(r.latest for r in runs):
        console.print("[yellow]no run is registered as latest:[/] gdelt-forecast register RUN")


@command("register")
def register_cmd(
    run: Annotated[str, typer.Argument(help="Run name under the models folder, or a model directory.")],
    models_dir: Annotated[Optional[Path], typer.Option(help="Where runs live (default: train.models_dir).")] = None,
) -> None:
    """Point models/latest (the model `forecast`, `daily` and `backfill` use) at RUN."""
    from pipeline.core.registry import find_run, register

    cfg = get_config(**{"train.models_dir": models_dir})
    run_dir = find_run(run, cfg.train.models_dir)
    out().print(f"[bold]registered[/] {register(run_dir, cfg.train.models_dir)} → {run_dir.name}")


# ============================================================ forecast / evaluate / report
def _csv(values: Optional[list[str]]) -> Optional[str]:
    return ",".join(values) if values else None


@command()
def forecast(
    date: Annotated[str, typer.Option("--date", help="Target day, YYYY-MM-DD (forecast from the days before it).")],
    countries: Annotated[Optional[list[str]], typer.Option("--countries", help="FIPS codes (default: the model's).")] = None,
    model: Annotated[Optional[Path], typer.Option("--model", help="Model directory (default models/latest).")] = None,
    num_futures: Annotated[Optional[int], typer.Option("--num-futures", "-K", help="Sampled futures per country.")] = None,
    temperature: Annotated[Optional[float], typer.Option(help="Sampling temperature.")] = None,
    top_p: Annotated[Optional[float], typer.Option("--top-p", help="Nucleus sampling mass.")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Sampling seed.")] = None,
    assignment: Annotated[Optional[Literal["soft", "argmax"]], typer.Option(
                                                      help="Projection onto CAMEO codes.")] = None,
    constrained: Annotated[Optional[bool], typer.Option(
        "--constrained/--unconstrained",
        help="Futures only as phrases of the closed vocabulary (default) or sampled freely.")] = None,
    baselines: Annotated[bool, typer.Option("--baselines/--no-baselines", help="Also write the baselines.")] = True,
) -> None:
    """Forecast --date: K futures per country projected onto CAMEO codes (`forecasts/model=<run>/date=<D>/`)."""
    from pipeline.forecast.baselines import run_baselines
    from pipeline.forecast.forecast import run_forecast

    cfg = get_config(**{"forecast.countries": _csv(countries), "forecast.model": model,
                        "forecast.num_futures": num_futures, "forecast.temperature": temperature,
                        "forecast.top_p": top_p, "forecast.seed": seed, "forecast.assignment": assignment,
                        "forecast.constrained": constrained})
    lake = get_lake(cfg)
    res = run_forecast(lake, date, cfg.forecast)
    out().print(f"[bold]forecast[/] {res['date']} · run {res['run']} · {res['countries']} countries · "
                f"{res['rows']} rows" + (f" · skipped {sorted(res['skipped'])}" if res["skipped"] else ""))
    if baselines:
        written = run_baselines(lake, date, date, cfg.forecast)
        out().print(f"[bold]baselines[/] {date}: " + ", ".join(f"{k} {v} rows" for k, v in written.items()))


@command("baselines")
def baselines_cmd(
    date: Annotated[str, typer.Option("--date", help="First target day, YYYY-MM-DD.")],
    end: Annotated[Optional[str], typer.Option("--end", help="Last target day (default: --date).")] = None,
    countries: Annotated[Optional[list[str]], typer.Option("--countries", help="FIPS codes (default: all seen).")] = None,
    names: Annotated[Optional[list[str]], typer.Option("--names", help="climatology, persistence, freq7, freq30, ewm, weekday, learned (default: forecast.baselines).")] = None,
) -> None:
    """Baseline forecasts for [--date, --end], each day from the days before it (`model=baseline-<name>`; one read of the history, baseline-learned fitted once per refit week)."""
    from pipeline.forecast.baselines import run_baselines

    cfg = get_config(**{"forecast.countries": _csv(countries), "forecast.baselines": _csv(names)})
    written = run_baselines(get_lake(cfg), date, end or date, cfg.forecast)
    out().print(f"[bold]baselines[/] {date} … {end or date}: " + ", ".join(f"{k} {v} rows" for k, v in written.items()))


@command()
def evaluate(
    start: Annotated[str, typer.Option("--start", help="First target day scored.")],
    end: Annotated[Optional[str], typer.Option("--end", help="Last target day scored (default: --start).")] = None,
    runs: Annotated[Optional[list[str]], typer.Option("--runs", help="Runs to score (default: all in forecasts/).")] = None,
    backtest: Annotated[bool, typer.Option("--backtest", help="First forecast every day (validation days too) "
                                           "from its past only: baselines, and the model when --model is given.")] = False,
    model: Annotated[Optional[Path], typer.Option("--model", help="Model directory for --backtest.")] = None,
    val_days: Annotated[Optional[int], typer.Option("--val-days", help="Days before --start that tune thresholds.")] = None,
    levels: Annotated[Optional[list[str]], typer.Option("--levels", help="Levels printed (event, base, root, quad, rare).")] = None,
) -> None:
    """Score forecasts against what happened: Brier / BSS, log loss, ECE, Glean F1/F2, MIRAI, ROUGE; scores table."""
    import datetime as dt

    from pipeline.core.lake import as_date
    from pipeline.forecast.baselines import run_baselines
    from pipeline.scoring.evaluate import evaluate as run_evaluate
    from pipeline.scoring.evaluate import evaluation_dir, print_summary

    cfg = get_config(**{"evaluate.val_days": val_days, "forecast.model": model})
    lake = get_lake(cfg)
    last = end or start
    if backtest:
        first = as_date(start) - dt.timedelta(days=cfg.evaluate.val_days)
        run_baselines(lake, first, last, cfg.forecast)
        if model is not None:
            from pipeline.core.lake import date_range
            from pipeline.forecast.forecast import load_model_run, run_forecast

            mr = load_model_run(model)
            for day in date_range(first, last):
                res = run_forecast(lake, day, cfg.forecast, model_run=mr)
                console.print(f"forecast {day}: {res['countries']} countries")
            runs = (runs or []) + [mr.run] if runs else None
    ev = run_evaluate(lake, start, last, runs, cfg.evaluate)
    if ev.summary.empty:  # nothing had both a forecast and an outcome: say why in one line, not an empty table
        why = (ev.unscored[0] if ev.unscored  # the days have no outcome (yet), or too thin a one
               else f"no forecast of {', '.join(runs) if runs else 'any run'} targets a day of it")
        raise UserError(f"evaluate {ev.start}…{ev.end}: nothing to score: {why}")
    with console.capture() as tables:  # the skill tables are the result: stdout, full width
        print_summary(ev, levels=tuple(levels) if levels else ("root", "base", "rare"))
    out().file.write(tables.get())
    folder = evaluation_dir(cfg.evaluate.reports_dir, ev.start, ev.end)
    out().print(f"summary: {folder / 'summary.csv'} (also per_label.csv, reliability.csv, evaluation.json); "
                f"per country-day: {lake.table_dir('scores')}", highlight=False, soft_wrap=True)


@command()
def calibrate(
    model: Annotated[Path, typer.Option("--model", help="Model directory (its forecasts must exist for the days).")],
    start: Annotated[str, typer.Option("--start", help="First validation target day.")],
    end: Annotated[Optional[str], typer.Option("--end", help="Last validation target day (default: --start).")] = None,
    blend: Annotated[bool, typer.Option("--blend/--no-blend", help="Also fit the blend with climatology.")] = True,
    stack: Annotated[bool, typer.Option("--stack/--no-stack", help="Stack baseline-learned (fitted before the "
                                        "validation days) as the blend's third input.")] = True,
) -> None:
    """Fit the model's calibration maps on its (uncalibrated) forecasts of validation days; later forecasts use them."""
    from pipeline.core.lake import date_range
    from pipeline.core.registry import resolve
    from pipeline.forecast.calibrate import fit_from_lake, form_of, stack_for, weekday_prior_of

    cfg = get_config()
    model_dir = resolve(model)
    lake, days = get_lake(cfg), date_range(start, end or start)
    learned = stack_for(lake, min(days), cfg.forecast) if blend and stack else None
    cal = fit_from_lake(lake, model_dir.name, days, blend=blend, stack=learned, weekday_prior=weekday_prior_of(cfg),
                        form=form_of(cfg))
    path = cal.save(model_dir)
    o = out()
    o.print(f"[green]calibration[/] {path}: fitted on {', '.join(cal.fitted_on)} "
            f"({', '.join(f'{k} {v}' for k, v in cal.n.items())} label-days)")
    for lv, coef in (cal.blend or {}).items():
        if cal.form == "residual":
            o.print(f"  blend {lv}: σ(logit learned + {coef[0]:.2f}·(logit p − logit learned) "
                    f"+ {coef[1]:.2f}·(logit climatology − logit learned))")
            continue
        learned_term = f" + {coef[2]:.2f}·logit learned" if len(coef) == 4 else ""
        o.print(f"  blend {lv}: σ({coef[0]:.2f}·logit p + {coef[1]:.2f}·logit climatology{learned_term} {coef[-1]:+.2f})")
    if cal.blend:
        o.print("  climatology: " + ("all days" if cal.weekday_prior is None else
                                     f"at the day's weekend/weekday volume (prior {cal.weekday_prior:g} days)"))
    if cal.stack is not None:
        o.print(f"  stack: baseline-learned fitted on {cal.stack.fitted_on[0]} … {cal.stack.fitted_on[-1]}")


@command()
def watchlist(
    date: Annotated[str, typer.Option("--date", help="Forecast (target) day.")],
    run: Annotated[Optional[str], typer.Option("--run", help="Forecast run (default: the model's, else baseline-learned, else climatology).")] = None,
    top: Annotated[int, typer.Option("--top", min=1, help="Rows per list (rises, falls, conflict rises, conflict falls).")] = 10,
) -> None:
    """Write the `watchlist` table for --date: the forecasts that depart most from the usual (after forecast)."""
    from pipeline.scoring.watchlist import WatchlistConfig, write_watchlist

    cfg = get_config()
    w = write_watchlist(get_lake(cfg), date, run, WatchlistConfig.of(cfg.evaluate, top=top))
    if w.empty:
        out().print(f"[bold]watchlist[/] {date}: nothing departs from the usual range", highlight=False)
        return
    sizes = ", ".join(f"{n} {name}" for name, n in w.groupby("list", sort=False).size().items())
    out().print(f"[bold]watchlist[/] {date} ({w.model_run.iloc[0]}): {sizes} "
                f"(gdelt-forecast inspect watchlist --date {date})", highlight=False)


@command()
def report(
    date: Annotated[str, typer.Option("--date", help="Forecast day of the page.")],
    run: Annotated[Optional[str], typer.Option("--run", help="Forecast run shown (default: the model's, else baseline-learned, else climatology).")] = None,
    top: Annotated[Optional[int], typer.Option("--top", min=1, help="Rewrite the watch list with this many rows per list (default: the stored one, 10).")] = None,
) -> None:
    """Write `reports/<date>/`: the morning page (watch list, map, track record), a page per country, the index."""
    from pipeline.scoring.report import build_report
    from pipeline.scoring.watchlist import WatchlistConfig

    cfg = get_config()
    wcfg = WatchlistConfig.of(cfg.evaluate, top=top) if top else None
    path = build_report(get_lake(cfg), date, cfg, run=run, wcfg=wcfg)
    out().print(f"[bold]report[/] {path}", highlight=False)



# ============================================================ backtest (walk-forward)
@command()
def backtest(
    start: Annotated[str, typer.Option("--start", help="First test day, YYYY-MM-DD.")] = ...,
    end: Annotated[str, typer.Option("--end", help="Last test day.")] = ...,
    refit_every: Annotated[Optional[int], typer.Option("--refit-every", help="Also backtest the model, retrained every k days (default: baselines only).")] = None,
    calibration_days: Annotated[int, typer.Option("--calibration-days", help="Raw forecast days before each test day its calibration is fitted on.")] = 3,
    countries: Annotated[Optional[str], typer.Option("--countries", help="FIPS codes, comma-separated (default: dataset.countries or the busiest).")] = None,
    stack: Annotated[str, typer.Option("--stack", help="The stack's baseline-learned: 'rolling' (each calibration day's own fit, and the test day's) or 'fixed' (one fit before the calibration days).")] = "rolling",
    bar_cache: Annotated[bool, typer.Option("--bar-cache/--no-bar-cache", help="Read baseline-learned fits of the same inputs from an earlier backtest (forecast.learned_cache_dir, default <train.models_dir>/cache/baseline-learned) instead of refitting them.")] = True,
) -> None:
    """Walk-forward backtest: each test day forecast from its past only (baseline-learned refitted per day; the model
    every k days); writes `reports/backtest-<start>_<end>-<what>/summary.{csv,md}` (<what>: train.run or baselines, and the number of countries)."""
    from pipeline.scoring.backtest import backtest as run_backtest
    from pipeline.scoring.backtest import markdown

    cfg = get_config()
    bt = run_backtest(get_lake(cfg), start, end, cfg, refit_every, calibration_days,
                      [c for c in (countries or "").replace(" ", ",").split(",") if c] or None, stack=stack,
                      bar_cache=bar_cache)
    # the result goes to stdout, full width (progress and notes stay on stderr)
    out().print(markdown(bt.summary[bt.summary.level.isin(["event", "base", "root", "rare"])], "all"),
                highlight=False, soft_wrap=True, markup=False)
    if bt.watch is not None and len(bt.watch):
        out().print(f"watch list of {bt.runs[0]} against what happened: " + "; ".join(
            f"{r.list}: {r.rows} rows, usual {r.usual:.2f}, P {r.probability:.2f}, happened {r.happened:.2f}"
            for r in bt.watch.itertuples()), highlight=False, soft_wrap=True)
    out().print(f"summary: {bt.directory}/summary.md", highlight=False, soft_wrap=True)


# ============================================================ flows: daily / backfill / serve / demo
# These run as Prefect flows (a temporary local Prefect server starts unless PREFECT_API_URL is set).
def _day_opt(value: Optional[str]):
    from pipeline.core.lake import as_date

    return as_date(value) if value else None


def _cfg_path() -> Optional[str]:
    return str(state.config_path) if state.config_path else None


@command()
def daily(
    date: Annotated[Optional[str], typer.Option("--date", help="Data day (default: yesterday UTC); forecasts the day after.")] = None,
    source: SourceOpt = None,
    path: PathOpt = None,
    model: Annotated[Optional[Path], typer.Option(help="Model directory (default: forecast.model).")] = None,
) -> None:
    """The daily run: ingest → reduce → descriptors → forecast tomorrow → evaluate → report."""
    cfg = get_config()
    cfg.flow.resolve_source(source, path)  # a missing path fails here, before a Prefect server starts
    from flows.daily import daily as daily_flow

    res = daily_flow(day=_day_opt(date), config=_cfg_path(), lake=str(cfg.lake.root), source=source,
                     path=str(path) if path else None, model=str(model) if model else None)
    out().print(f"[green]daily {res['day']} done[/]: forecast for {res['target']}"
                + (f", report {res['report']}" if res.get("report") else ""), highlight=False)
    if (cov := res.get("coverage") or {}).get("thin") or cov.get("left_out"):
        what = ("too few to read: it is left out of the forecasts and scores until its missing exports are ingested"
                if cov.get("left_out") else "so its forecasts read low")
        out().print(f"[yellow]{res['day']} is a thin day[/]: {cov['exports']} GDELT exports against a usual "
                    f"{cov['usual']:g}, {what} (docs/flows.md, \"Thin days\")", highlight=False)


@command()
def backfill(
    start: Annotated[str, typer.Option(help="First day (YYYY-MM-DD).")],
    end: Annotated[str, typer.Option(help="Last day (YYYY-MM-DD).")],
    source: SourceOpt = None,
    path: PathOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Redo finished days.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would run, run nothing (no Prefect server).")] = False,
    keep_going: Annotated[bool, typer.Option("--keep-going", help="Bad source files don't fail their day.")] = False,
    stages: Annotated[Optional[str], typer.Option(help="Comma-separated subset of ingest,reduce,descriptors,baselines,forecast,evaluate (forecast brings the baselines).")] = None,
    runner: Annotated[Runner, typer.Option(help="Task runner: threads, a Dask or a Ray cluster.")] = "local",
    address: Annotated[Optional[str], typer.Option(help="Dask scheduler / Ray cluster address to join.")] = None,
) -> None:
    """The daily stages over a date range: resumable, bounded concurrency, failed days reported."""
    from pipeline.core.lake import as_date, date_range

    cfg = get_config()
    cfg.flow.resolve_source(source, path)
    stage_list = stages.split(",") if stages else None
    date_range(start, end)  # a reversed range or an unknown stage fails here in one line, before Prefect starts
    from pipeline.core.status import STAGES

    if bad := [s for s in stage_list or () if s not in STAGES]:
        raise UserError(f"backfill --stages: unknown stage {bad[0]!r}; known: {', '.join(STAGES)}")
    if dry_run:  # a plan needs the lake only, not Prefect
        from flows.backfill import dry_run_plan

        res = dry_run_plan(cfg, as_date(start), as_date(end), force=force, stages=stage_list)
        o = out()
        o.print(f"backfill {start} … {end}: would run {len(res['submitted'])} steps, {res['skipped']} already done")
        for step in res["submitted"]:
            o.print(f"  {step}", highlight=False)
        _print_gaps_and_thin(res, cfg)
        return
    from flows.backfill import BackfillFailed, with_runner

    flow = with_runner(runner, address, cfg.flow.backfill_concurrency)
    try:
        res = flow(as_date(start), as_date(end), config=_cfg_path(), lake=str(cfg.lake.root), source=source,
                   path=str(path) if path else None, force=force, keep_going=keep_going, stages=stage_list)
    except BackfillFailed as exc:
        console.print(f"[red]{escape(str(exc))}[/]", highlight=False)
        raise typer.Exit(1) from exc
    out().print(f"backfill {start} … {end}: ran {len(res['submitted'])} steps, {res['skipped']} already done")
    _print_gaps_and_thin(res, cfg)


def _print_gaps_and_thin(res: dict, cfg: Config) -> None:
    """A backfill's days without source data, and those holding too few GDELT exports to forecast from as usual."""
    if res.get("gaps"):
        out().print(f"gaps (no source data, skipped by every stage): {', '.join(res['gaps'])}", highlight=False)
    if read_low := [d for d in res.get("thin", []) if d not in res.get("left_out", [])]:
        out().print(f"thin days (fewer GDELT exports than {cfg.flow.min_day_share:.0%} of their usual; forecasts made "
                    f"from them read low): {', '.join(read_low)}", highlight=False)
    if res.get("left_out"):
        out().print(f"left out (fewer than {cfg.lake.leave_out_share:.0%}: the forecasts, training and scores read "
                    f"them as gaps): {', '.join(res['left_out'])}", highlight=False)


@command()
def retrain(
    run: Annotated[Optional[str], typer.Option(help="Run name (`models/<run>/`).")] = None,
    resume: Annotated[bool, typer.Option("--resume")] = False,
    no_register: Annotated[bool, typer.Option("--no-register", help="Don't point models/latest at the new run.")] = False,
) -> None:
    """The training flow: dataset → train → evaluate vs baselines on the test days → register models/latest."""
    from flows.train import train_flow

    cfg = get_config()
    res = train_flow(config=_cfg_path(), lake=str(cfg.lake.root), run=run, resume=resume,
                     register_model=not no_register)
    out().print(f"[green]model[/] {res['run_dir']}" + (f"  (registered {res['registered']})" if res.get("registered") else ""),
                highlight=False)


@command()
def serve() -> None:
    """Serve the deployments (daily on flow.cron, backfill, train); needs `prefect server start` + PREFECT_API_URL."""
    from flows.serve import serve as serve_flows

    serve_flows(get_config(), _cfg_path())


@command()
def demo() -> None:
    """Everything on the shipped real sample, offline: backfill → train → daily → report (under data/demo/;
    `--config` defaults to configs/demo.yaml)."""
    import datetime as dt

    from rich.table import Table

    from flows.demo import DEMO_CONFIG, demo as demo_flow, unusual_tomorrow

    path = str(_cfg_path() or DEMO_CONFIG)
    res = demo_flow(config=path)
    cfg = load_config(path)
    lake = get_lake(cfg)
    target = dt.date.fromisoformat(res["daily"]["target"])
    run = res["daily"].get("model_run") or "baseline-climatology"
    table = Table(title=f"Most unusual on {target}: forecast ({run}) vs usual (the watch list)")
    for col in ("country", "label", "P", "usual", "diff", "actors (recent events) · phrase (share of futures)"):
        table.add_column(col, justify="right" if col in ("P", "usual", "diff") else "left")
    for r in unusual_tomorrow(lake, target, run):
        table.add_row(r["country"], f"{r['label']} ({r['level']} {r['code']})", f"{r['p']:.2f}", f"{r['usual']:.2f}",
                      f"[{'red' if r['direction'] == 'rise' else 'blue'}]{r['difference']:+.2f}[/]",
                      " · ".join(x for x in (r["actors"], r["phrase"]) if x))
    o = out()
    o.print(table)
    o.print(f"lake:   {Path(res['lake']).resolve()}\nmodel:  {Path(res['model']).resolve()}\n"
            f"report: {Path(res['report']).resolve() if res.get('report') else '-'}", highlight=False)


def main() -> None:
    # offline by default: the packaged embedder needs no hub, and Prefect's telemetry has no network here
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    app()


if __name__ == "__main__":
    main()
