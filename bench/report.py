"""Benchmark: the morning page for ~250 countries — build time, weight, open time in headless Chromium.

A synthetic lake (performance only, no skill is claimed): 250 real FIPS
countries, ``--days`` days of ``country`` events with heavy-tailed counts, the
real baselines (:func:`run_baselines`), a "model" run = climatology × noise with
actor pairs and 100 futures per country, every window day evaluated (``scores``).
Then, for the day after the last (tomorrow, as the daily flow does):

* build — wall time of :func:`build_report` (day page + 250 country pages + index);
* weight — the day's folder plus the shared assets (what a browser loads);
* open — headless Chromium (system ``chromium``), network blocked, from ``goto`` until the
  first screen is drawn (the watch list and the map) and until every chart is drawn,
  scrolling to each in turn (the page draws charts below the first screen when they come into
  view); median of ``--repeat`` cold loads, the variants interleaved;
* peers — the same page with every chart drawn at load (the page before lazy drawing), and
  with the full ``plotly.min.js`` of the plotly Python package (every trace type, what
  ``include_plotlyjs`` embeds) instead of the geo bundle we ship.

Usage::

    python bench/report.py [--countries 250] [--days 14] [--repeat 5] [--keep DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("GDELT_FORECAST_QUIET", "1")

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402

from pipeline.cameo import codes as cameo  # noqa: E402
from pipeline.cameo.labels import LEVELS, label_space, load_outcomes  # noqa: E402
from pipeline.core.config import Config, EvaluateConfig, ForecastConfig  # noqa: E402
from pipeline.core.lake import Lake  # noqa: E402
from pipeline.core.schemas import COUNTRY_SCHEMA, FORECASTS_SCHEMA, FUTURES_SCHEMA  # noqa: E402
from pipeline.forecast.baselines import run_baselines  # noqa: E402
from pipeline.forecast.table import forecast_rows, load_forecast  # noqa: E402
from pipeline.scoring.evaluate import evaluate  # noqa: E402
from pipeline.scoring.report import build_report  # noqa: E402
from pipeline.scoring.watchlist import write_watchlist  # noqa: E402

START = dt.date(2025, 5, 1)


def synth_country_days(lake: Lake, countries: list[str], days: list[dt.date], rng: np.random.Generator) -> None:
    """``country`` partitions: per country a heavy-tailed daily event count over a country-specific code mix."""
    labels = label_space()
    codes = np.array(labels["event"].codes)
    size = rng.pareto(1.2, len(countries)) * 40 + 2  # mean events per day, a few busy countries
    mix = rng.dirichlet(np.full(len(codes), 0.05), len(countries))
    gid = 1
    for day in days:
        loc, code = [], []
        for i, c in enumerate(countries):
            n = int(min(rng.poisson(size[i]), 4000))
            loc += [c] * n
            code += list(rng.choice(codes, n, p=mix[i]))
        n = len(code)
        t = pa.table({
            "GLOBALEVENTID": np.arange(gid, gid + n), "SQLDATE": [day] * n,
            "MonthYear": [day.year * 100 + day.month] * n, "Year": [day.year] * n,
            "FractionDate": [day.year + 0.5] * n, "IsRootEvent": [True] * n, "EventCode": code,
            "EventBaseCode": [c[:3] for c in code], "EventRootCode": [c[:2] for c in code],
            "QuadClass": [labels.quad_of_root.get(c[:2], 1) for c in code], "GoldsteinScale": [0.0] * n,
            "Actor1Geo_CountryCode": loc, "Actor2Geo_CountryCode": loc, "Multi_Country_Flag": [False] * n,
            "ActionGeo_CountryCode": loc,
            "DATEADDED": [dt.datetime(day.year, day.month, day.day, 12, tzinfo=dt.timezone.utc)] * n,
            "NumMentions": [1] * n})
        gid += n
        lake.write_partition("country", t, day, schema=COUNTRY_SCHEMA)


def synth_model(lake: Lake, day: dt.date, rng: np.random.Generator, run: str = "bench-model") -> None:
    """A "model" forecast for ``day``: climatology × lognormal noise, actor pairs, 100 futures per country."""
    labels = label_space()
    countries, clim = load_forecast(lake, "baseline-climatology", day)
    probs = {lv: np.clip(clim[lv] * rng.lognormal(0, 0.5, clim[lv].shape), 0, 1) for lv in LEVELS}
    pairs = {}
    for ci in range(len(countries)):
        for j in range(len(labels["root"])):
            a = [countries[ci], countries[(ci + j + 1) % len(countries)]]
            pairs[(ci, "root", j)] = [{"actor1": a[0], "actor2": a[1], "share": 0.6},
                                      {"actor1": a[1], "actor2": a[0], "share": 0.3}]
    t = forecast_rows(countries, probs, np.ones(len(countries), bool), run, 100,
                      dt.datetime.now(dt.timezone.utc), labels, pairs)
    lake.write_partition("forecasts", t, day, schema=FORECASTS_SCHEMA, model=run)
    ev_codes = np.array(labels["event"].codes)
    rows = {"country": [], "future": [], "phrases": [], "codes": [], "sampling_key": []}
    for c in countries:
        for k in range(100):
            cs = list(rng.choice(ev_codes, 8))
            rows["country"].append(c)
            rows["future"].append(k)
            rows["codes"].append(cs)
            rows["phrases"].append([f"{labels.description[x].lower()} in {c}" for x in cs])
            rows["sampling_key"].append("bench")
    lake.write_partition("futures", pa.table(rows), day, schema=FUTURES_SCHEMA, model=run)


def build_lake(root: Path, n_countries: int, n_days: int, window: int) -> tuple[Lake, dt.date, Config]:
    rng = np.random.default_rng(0)
    lake = Lake(root / "lake")
    countries = sorted(cameo.fips_countries())[:n_countries]
    days = [START + dt.timedelta(days=i) for i in range(n_days)]
    synth_country_days(lake, countries, days, rng)
    targets = days[-window:] + [days[-1] + dt.timedelta(days=1)]
    outcomes = load_outcomes(lake, None, days[-1])
    run_baselines(lake, targets[0], targets[-1], ForecastConfig(), outcomes=outcomes)
    for d in targets:
        synth_model(lake, d, rng)
    cfg = Config()
    cfg.evaluate = EvaluateConfig(val_days=1, reports_dir=root / "reports", report_window_days=window)
    for d in targets[1:-1]:
        evaluate(lake, d, d, cfg=cfg.evaluate, write=True)
    return lake, targets[-1], cfg


def folder_bytes(*paths: Path) -> int:
    return sum(f.stat().st_size for p in paths for f in (p.rglob("*") if p.is_dir() else [p]) if f.is_file())


FIRST_SCREEN = ("() => document.querySelector('#unusual .item') !== null && (document.querySelector('#map-static a')"
                " !== null || document.querySelectorAll('#map .choroplethlocation').length > 0)")
"""The first screen: the watch list's top and a map (the pre-rendered one, or Plotly's)."""
INTERACTIVE_MAP = "() => document.querySelectorAll('#map .choroplethlocation').length > 0"
SCROLL_THROUGH = ("async () => { for (const s of document.querySelectorAll('script[data-plot]')) {"
                  " document.getElementById(s.dataset.plot).scrollIntoView();"
                  " await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r))); } }")
"""Scroll to each chart in turn (a frame each), as a reader scrolling down the page does."""
ALL_CHARTS = ("() => [...document.querySelectorAll('script[data-plot]')].every(s =>"
              " document.getElementById(s.dataset.plot).querySelector('.main-svg'))")


def open_times(page_path: Path, repeat: int) -> tuple[list[float], list[float], list[float]]:
    """Seconds from ``goto`` until (a) the first screen is painted (the watch list's top and a map), (b) the
    interactive (Plotly) map is drawn, (c) every chart is, scrolling to each in turn (charts below the first
    screen are drawn when they come into view). Checks run in animation frames (``polling="raf"``), so a
    time is that of a frame that shows it. A fresh browser context each time (cold caches)."""
    from playwright.sync_api import sync_playwright

    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        raise SystemExit("no system chromium: apt-get install chromium")
    first, interactive, full = [], [], []
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=["--no-sandbox", "--disable-gpu"])
        for _ in range(repeat):
            ctx = b.new_context(viewport={"width": 1400, "height": 900})
            page = ctx.new_page()
            page.route("**/*", lambda r: r.continue_() if r.request.url.startswith("file:") else r.abort())
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            t0 = time.perf_counter()
            page.goto(page_path.as_uri(), wait_until="commit")
            page.wait_for_function(FIRST_SCREEN, polling="raf", timeout=60_000)
            first.append(time.perf_counter() - t0)
            page.wait_for_function(INTERACTIVE_MAP, polling="raf", timeout=60_000)
            interactive.append(time.perf_counter() - t0)
            page.evaluate(SCROLL_THROUGH)
            page.wait_for_function(ALL_CHARTS, timeout=60_000)
            full.append(time.perf_counter() - t0)
            if errors:
                raise SystemExit(f"page errors: {errors}")
            ctx.close()
        b.close()
    return first, interactive, full


def _fmt(ts: list[float]) -> str:
    return f"median {statistics.median(ts):.2f} s ({', '.join(f'{t:.2f}' for t in ts)})"


def peer_copy(reports: Path, root: Path, name: str) -> Path:
    """A copy of the reports folder to change one thing in (a peer)."""
    peer_dir = root / name
    shutil.rmtree(peer_dir, ignore_errors=True)
    shutil.copytree(reports, peer_dir)
    return peer_dir


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--countries", type=int, default=250)
    ap.add_argument("--days", type=int, default=21)
    ap.add_argument("--window", type=int, default=7, help="report_window_days (scored days shown)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--keep", type=Path, default=None,
                    help="Build here and keep it (default: a temp folder); a lake already there is reused.")
    ap.add_argument("--no-browser", action="store_true", help="Only build and weigh (no Chromium).")
    a = ap.parse_args()
    root = a.keep or Path(tempfile.mkdtemp(prefix="bench-report-"))
    t0 = time.perf_counter()
    if a.keep and (root / "lake" / "scores").exists():  # reuse a kept lake
        lake, day = Lake(root / "lake"), START + dt.timedelta(days=a.days)
        cfg = Config()
        cfg.evaluate = EvaluateConfig(val_days=1, reports_dir=root / "reports", report_window_days=a.window)
        print(f"synthetic lake reused from {root}")
    else:
        lake, day, cfg = build_lake(root, a.countries, a.days, a.window)
        print(f"synthetic lake: {a.countries} countries, {a.days} days, {time.perf_counter() - t0:.1f} s to make")
    stage = []
    for _ in range(3):  # the daily flow's watch-list stage (the report then reads its partition)
        t0 = time.perf_counter()
        write_watchlist(lake, day)
        stage.append(time.perf_counter() - t0)
    print(f"watchlist stage {day}: wall {statistics.median(stage):.2f} s median of 3 "
          f"({', '.join(f'{b:.2f}' for b in stage)})")
    builds, cpu = [], []
    for _ in range(3):
        t0, c0 = time.perf_counter(), time.process_time()
        path = build_report(lake, day, cfg)
        builds.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    reports = path.parent.parent
    n_pages = len(list((path.parent / "countries").glob("*.html")))
    weight = folder_bytes(path.parent, reports / "assets")
    first = folder_bytes(path, reports / "assets")
    load = os.getloadavg()[0]
    print(f"build_report {day}: wall {statistics.median(builds):.2f} s median of {len(builds)} "
          f"({', '.join(f'{b:.2f}' for b in builds)}), CPU {statistics.median(cpu):.2f} s "
          f"({', '.join(f'{c:.2f}' for c in cpu)}); {os.cpu_count()} cores, load average {load:.1f}; "
          f"{n_pages} country pages")
    print(f"weight: day page {path.stat().st_size / 1e6:.2f} MB; page + shared assets {first / 1e6:.2f} MB; "
          f"whole day folder + assets {weight / 1e6:.2f} MB")
    if a.no_browser:
        return
    # peer 1: no pre-rendered map and every chart drawn at load, as the page did before
    eager_dir = peer_copy(reports, root, "peer-eager")
    eager_page = eager_dir / path.parent.name / "index.html"
    html = eager_page.read_text(encoding="utf-8")
    html = re.sub(r"<svg id=map-static.*?</svg>", "", html, count=1, flags=re.S)
    eager_page.write_text(html.replace("type='application/json' data-plot=",
                                       "type='application/json' data-eager=1 data-plot="), encoding="utf-8")
    runs = {"ours (pre-rendered map, Plotly map after, charts when scrolled to)": path,
            "peer: no pre-rendered map, every chart drawn at load": eager_page}
    # peer 2: the plotly Python package's full plotly.min.js (what include_plotlyjs embeds) for the geo bundle
    try:
        from plotly.offline import get_plotlyjs
    except ImportError:
        print("full-plotly peer skipped: the plotly Python package is not installed (pip install plotly)")
    else:
        full_dir = peer_copy(reports, root, "peer-full")
        (full_dir / "assets" / "plotly-geo.min.js").write_text(get_plotlyjs(), encoding="utf-8")
        full_page = full_dir / path.parent.name / "index.html"
        weight_full = folder_bytes(full_page, full_dir / "assets")
        print(f"peer full plotly.min.js: page + shared assets {weight_full / 1e6:.2f} MB")
        runs["peer: full plotly.min.js"] = full_page
    results: dict[str, tuple[list[float], ...]] = {name: ([], [], []) for name in runs}
    for _ in range(a.repeat):  # interleaved, so a change in the machine's load hits every variant alike
        for name, page_path in runs.items():
            for acc, got in zip(results[name], open_times(page_path, 1)):
                acc.extend(got)
    print(f"load average during the opens: {os.getloadavg()[0]:.1f} (1 min), {os.getloadavg()[1]:.1f} (5 min)")
    for name, (f, i, g) in results.items():
        print(f"{name}:\n  first screen {_fmt(f)}\n  interactive map {_fmt(i)}\n  every chart (scrolled) {_fmt(g)}")
    if not a.keep:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
