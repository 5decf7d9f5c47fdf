"""End to end on the real sample: tiny model + baselines → evaluate → scores → the morning page (and the CLI).

The page in a real browser: tests/test_report_browser.py."""

from __future__ import annotations

from html import escape as html_escape

import numpy as np
import pandas as pd
import yaml
from typer.testing import CliRunner

from gdelt_forecast.cli import app
from pipeline.core.config import EvaluateConfig
from pipeline.scoring.evaluate import evaluate
from pipeline.scoring.watchlist import WatchlistConfig, watchlist


def test_evaluate_model_against_baselines(sample_forecasts, tmp_path):
    lake, mr = sample_forecasts.lake, sample_forecasts.mr
    FORECAST_DAYS, SAMPLE_COUNTRIES = sample_forecasts.days, sample_forecasts.countries
    day = FORECAST_DAYS[-1]
    ev = evaluate(lake, day, day, cfg=EvaluateConfig(val_days=1, reports_dir=tmp_path))
    assert mr.run in ev.runs and "baseline-climatology" in ev.runs
    assert not any("validation" in n for n in ev.notes)  # the model has a validation day too
    root = ev.table("all", "root")
    assert (root.n_country_days == len(SAMPLE_COUNTRIES)).all()  # the common country-days
    assert np.isfinite(root.loc[mr.run, ["brier", "bss_climatology", "bss_best_baseline", "ece"]]).all()
    assert 0 <= root.loc[mr.run, "rougeL"] <= 1 and 0 <= root.loc["baseline-persistence", "rougeL"] <= 1
    s = lake.read("scores", day, day, model=mr.run).to_pandas()
    assert len(s) == 4 * len(SAMPLE_COUNTRIES) and s.brier.between(0, 1).all()
    assert s.quad_kl.notna().sum() == len(SAMPLE_COUNTRIES) and s.rouge1.notna().any()
    # the model's actor pairs against the recent events' (baselines have none), in actors.csv
    a = pd.read_csv(tmp_path / f"eval-{day}_{day}" / "actors.csv")
    assert set(a.run) == {mr.run} and set(a.level) <= {"event", "base", "root"} and (a.rows > 0).all()
    assert np.allclose(a[["coverage", "history_coverage"]].to_numpy(), ev.actors[["coverage", "history_coverage"]])


def test_report_and_cli(sample_forecasts, tmp_path):
    lake, mr = sample_forecasts.lake, sample_forecasts.mr
    FORECAST_DAYS = sample_forecasts.days
    cfg_file = tmp_path / "cfg.yaml"
    cfg_file.write_text(yaml.safe_dump({"evaluate": {"reports_dir": str(tmp_path / "reports"), "val_days": 1}}))
    runner = CliRunner()
    base = ["--config", str(cfg_file), "--lake", str(lake.root)]
    r = runner.invoke(app, [*base, "evaluate", "--start", FORECAST_DAYS[-1], "--levels", "root"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "reports" / f"eval-{FORECAST_DAYS[-1]}_{FORECAST_DAYS[-1]}" / "summary.csv").exists()
    r = runner.invoke(app, [*base, "report", "--date", FORECAST_DAYS[-1], "--top", "5"])
    assert r.exit_code == 0, r.output
    reports = tmp_path / "reports"
    page = reports / FORECAST_DAYS[-1] / "index.html"
    html = page.read_text()
    assert mr.run in html and "Israel" in html and "baseline-climatology" in html
    assert "<details id=diagnostics>" in html and html.index("id=unusual") < html.index("id=track")
    # one page per forecast country, the watch list the lake gives, shared assets, the index of days
    fc = lake.read("forecasts", FORECAST_DAYS[-1], FORECAST_DAYS[-1], model=mr.run).to_pandas()
    assert sorted(p.stem for p in (page.parent / "countries").glob("*.html")) == sorted(set(fc.country))
    w = pd.read_csv(page.parent / "watchlist.csv")
    expect = watchlist(lake, FORECAST_DAYS[-1], cfg=WatchlistConfig(top=5))
    assert len(w) == len(expect) > 0 and (w.groupby("list").size() <= 5).all()
    assert list(w.country) == list(expect.country) and np.allclose(w.difference, expect.difference)
    assert list(w.actors.fillna("")) == list(expect.actors)
    # the country pages show each root's recent actor pairs (the history's, as the watch list does)
    from pipeline.scoring.actors import pair_text as _pairs
    from pipeline.scoring.watchlist import departures, shown_actor_pairs

    f = departures(lake, FORECAST_DAYS[-1])
    roots = f[(f.level == "root")]
    shown = shown_actor_pairs(lake, FORECAST_DAYS[-1], roots, WatchlistConfig())
    own = [_pairs(p) for p in roots.actor_pairs]
    differ = [(c, _pairs(p)) for c, p, o in zip(roots.country, shown, own) if _pairs(p) and _pairs(p) != o]
    assert differ, "the history's pairs differ from the futures' somewhere"
    for c, text in differ[:5]:
        assert html_escape(text) in (page.parent / "countries" / f"{c}.html").read_text()
    # the track record scores the window's stored watch lists against what happened (here the page's own day)
    import datetime as dt

    from pipeline.cameo.labels import load_outcomes
    from pipeline.scoring.watchlist import record

    day = dt.date.fromisoformat(FORECAST_DAYS[-1])
    rec = record(lake, [day], mr.run, load_outcomes(lake, day, day))
    assert len(rec) and "Watch-list record" in html
    for x in rec.itertuples():
        assert f"<td class=l>{x.list}</td><td>{x.rows}</td><td>1</td>" in html and f"<b>{x.happened:.2f}</b>" in html
    assert (reports / "assets" / "plotly-geo.min.js").stat().st_size > 1_000_000
    assert "window.WORLD=" in (reports / "assets" / "world.js").read_text()
    assert "assets/report.js" in html and "cdn" not in html.lower() and "https://" not in html
    assert "loadAsset('plotly-geo.min.js')" in (reports / "assets" / "report.js").read_text()  # after the first frame
    assert html.count("<svg id=map-static") == 1  # the first screen's map, before Plotly
    assert FORECAST_DAYS[-1] in (reports / "index.html").read_text()
    r = runner.invoke(app, [*base, "report", "--date", "2025-01-01"])
    assert r.exit_code == 2 and "no forecasts" in r.output


def test_reliability_arrays_match_collect(sample_forecasts):
    """The page's one-pass (P, Y) equal the evaluation's ``collect`` stacks, so its reliability matches evaluate's."""
    import datetime as dt

    from pipeline.cameo.labels import load_outcomes
    from pipeline.forecast.table import collect
    from pipeline.scoring.report import level_arrays

    lake, run = sample_forecasts.lake, sample_forecasts.mr.run
    days = [dt.date.fromisoformat(d) for d in sample_forecasts.days]
    outcomes = load_outcomes(lake, days[0], days[-1])
    for r in (run, "baseline-climatology"):
        st = collect(lake, r, days, outcomes)
        for lv in ("root", "event"):
            P, Y = level_arrays(lake, r, days, outcomes, lv)
            assert P.shape == st.P[lv].shape and Y.sum() == st.Y[lv].sum() > 0
            rows = lambda A, B: sorted(map(tuple, np.concatenate([A, B], axis=1).round(12)))  # noqa: E731
            assert rows(P, Y) == rows(st.P[lv], st.Y[lv])  # the same country-day rows, in any order
