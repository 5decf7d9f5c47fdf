"""The morning page in a real browser: headless Chromium (Debian's ``chromium``, driven by Playwright),
every network request blocked, on the real sample's forecasts.

Runs in CI (``CI`` set: a missing Chromium fails the test); on a developer machine
without Chromium it is skipped. ``.ci/run`` installs Chromium.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from pipeline.core.config import Config, EvaluateConfig
from pipeline.scoring import geo
from pipeline.scoring.evaluate import evaluate
from pipeline.scoring.report import build_report
from pipeline.cameo import regions
from pipeline.scoring.watchlist import WatchlistConfig, departures, read_watchlist, stored_top, watchlist


def chromium_path() -> str | None:
    """The system Chromium: ``$CHROMIUM`` or the first of chromium / chromium-browser / google-chrome on PATH."""
    for cand in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if cand and (p := shutil.which(cand)):
            return p
    return None


@pytest.fixture(scope="module")
def browser():
    exe = chromium_path()
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium not found in CI: .ci/run must `apt-get install chromium`")
        pytest.skip("no system Chromium here (apt-get install chromium); CI runs this test")
    sync_api = pytest.importorskip("playwright.sync_api") if not os.environ.get("CI") else __import__(
        "playwright.sync_api", fromlist=["sync_playwright"])
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


class Opened:
    """A page opened from disk with the network blocked; what it asked for and what it logged."""

    def __init__(self, browser, path: Path):
        self.blocked: list[str] = []
        self.errors: list[str] = []
        self.page = browser.new_page(viewport={"width": 1400, "height": 900})
        self.page.route("**/*", self._route)
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type in ("error", "warning") else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(path.as_uri())
        self.page.wait_for_load_state("load")

    def _route(self, route):
        if route.request.url.startswith("file://"):
            return route.continue_()
        self.blocked.append(route.request.url)
        return route.abort()

    def count(self, selector: str) -> int:
        return self.page.locator(selector).count()

    def texts(self, selector: str) -> list[str]:
        return self.page.locator(selector).all_inner_texts()


@pytest.fixture(scope="module")
def pages(sample_forecasts, tmp_path_factory):
    lake, day = sample_forecasts.lake, sample_forecasts.days[-1]
    cfg = Config()
    cfg.evaluate = EvaluateConfig(val_days=1, reports_dir=tmp_path_factory.mktemp("reports"))
    evaluate(lake, day, day, cfg=cfg.evaluate)  # the daily flow's evaluate: writes the day's scores
    path = build_report(lake, day, cfg)
    return sample_forecasts, path


def test_day_page_renders_offline_with_the_lake_numbers(browser, pages):
    sf, path = pages
    lake, day = sf.lake, sf.days[-1]
    o = Opened(browser, path)
    page = o.page
    page.wait_for_selector("#map .choroplethlocation", state="attached", timeout=20_000)
    assert o.count("#map-static") == 0  # the pre-rendered map gives way to the interactive one
    assert o.count("#rel-root .main-svg") == 0  # charts below the first screen wait until scrolled to
    for div in ("#skill-root", "#skill-event", "#rel-root", "#rel-event"):
        page.locator(div).scroll_into_view_if_needed()
        page.wait_for_selector(f"{div} .scatterlayer .trace", state="attached", timeout=20_000)
    page.evaluate("() => window.scrollTo(0, 0)")
    assert o.blocked == [] and o.errors == []

    # ---- the map: the land in grey (one base layer) + one coloured shape per forecast country that has one
    f = departures(lake, day)
    q4 = f[(f.level == "quad") & (f.code == "4")].set_index("country").probability.to_dict()
    mv = geo.map_values(q4)
    assert len(mv.keys) >= 3  # the sample's countries are on the map (Israel, Iran, …)
    assert o.count("#map .choroplethlocation") == len(mv.keys)
    assert o.count("#map .layer.land path") == 1
    assert o.count("#map .updatemenu-button") == 2  # P(material conflict) | largest rise

    # ---- the watch list: the rows of the watchlist table, the numbers of the forecasts partition
    w = read_watchlist(lake, day)  # as stored (another test may have written it with `report --top 5`)
    pd.testing.assert_frame_equal(w, watchlist(lake, day, cfg=WatchlistConfig(top=stored_top(w))),
                                  check_dtype=False)  # the table holds the query's rows
    raw = lake.read("forecasts", day, day, model=sf.mr.run).to_pandas().set_index(["country", "level", "code"])
    clim = lake.read("forecasts", day, day, model="baseline-climatology").to_pandas()
    clim = clim.set_index(["country", "level", "code"]).probability
    assert len(w) > 0
    for name, g in w.groupby("list"):
        rows = page.locator(f"table.watch[data-list='{name}'] tr[data-country]")
        assert rows.count() == len(g), name
        for i, r in enumerate(g.itertuples()):
            row = rows.nth(i)
            assert row.get_attribute("data-country") == r.country and row.get_attribute("data-code") == r.code
            p = raw.loc[(r.country, r.level, r.code), "probability"]
            assert row.locator("td.p").inner_text() == f"{p:.2f}"
            u = clim.get((r.country, r.level, r.code), 0.0)
            assert row.locator("td.meta").inner_text().startswith(f"{u:.2f} /")
            assert row.locator("td.d").inner_text() == f"{r.difference:+.2f}"
    assert o.count("#unusual .item") > 0

    # ---- track record: daily skill, reliability (root and event), the skill table
    for div in ("#skill-root", "#skill-event", "#rel-root", "#rel-event"):
        assert o.count(f"{div} .scatterlayer .trace") >= 2, div
    assert o.count("table.skill[data-level='root'] tr[data-run]") >= 3
    assert o.count(f"table.skill tr[data-run='{sf.mr.run}']") >= 1

    # ---- countries, filters, collapsed diagnostics
    assert o.count("table.countries tr[data-country]") == len(set(f.country))
    assert not page.locator("#diagnostics").evaluate("e => e.open")
    page.fill("#q", "Israel")
    page.dispatch_event("#q", "input")
    assert visible_countries(page, "table.countries tr[data-country]") == ["IS"]
    page.fill("#q", "")
    page.dispatch_event("#q", "input")

    # ---- region filter (UN regions of pipeline.cameo.regions): the watch list, the countries and the map
    stored = read_watchlist(lake, day)  # the page's rows are the watchlist table's
    assert sorted(stored.region.unique()) == sorted({regions.region(c) for c in stored.country})
    for value, keep in (("r:Eastern Europe", {"RS", "UP"}), ("c:Asia", {"IS"})):
        page.select_option("#region", value)
        page.dispatch_event("#region", "input")
        assert set(visible_countries(page, "table.countries tr[data-country]")) == keep, value
        want = stored[stored.country.isin(keep)]
        shown = visible_countries(page, "table.watch tr[data-country]")
        assert len(shown) == len(want) and set(shown) <= keep, value
        coloured = page.evaluate("() => document.getElementById('map').data.find(t => t.visible !== false)"
                                 ".customdata.map(c => c[0])")
        assert set(coloured) == keep & set(mv.source)  # the rise trace keeps only the region's countries
        assert o.count("#map .choroplethlocation") == len(set(coloured))
    page.select_option("#region", "")
    page.dispatch_event("#region", "input")
    assert o.count("#map .choroplethlocation") == len(mv.keys)
    assert o.errors == []
    page.close()


def visible_countries(page, selector: str) -> list[str]:
    return [t.get_attribute("data-country") for t in page.locator(selector).all() if t.is_visible()]


def test_first_screen_is_there_before_plotly(browser, pages):
    """With no JavaScript at all, the first screen has its map: the visible trace pre-rendered as SVG links."""
    sf, path = pages
    ctx = browser.new_context(java_script_enabled=False, viewport={"width": 1400, "height": 900})
    page = ctx.new_page()
    page.route("**/*", lambda r: r.continue_() if r.request.url.startswith("file://") else r.abort())
    page.goto(path.as_uri())
    fig = json.loads(page.locator("script[data-plot='map']").text_content())
    shown = next(t for t in fig["data"] if t.get("visible", True))
    links = page.locator("#map-static a[data-country]")
    assert links.count() == len(shown["locations"]) >= 3 and page.locator("#map-static path.land").count() == 1
    for i, (c, z) in enumerate(zip((cd[0] for cd in shown["customdata"]), shown["z"])):
        a = links.nth(i)
        assert a.get_attribute("data-country") == c and a.get_attribute("href") == f"countries/{c}.html"
        assert f"{z:.2f}" in a.locator("title").text_content()
    box = page.locator("#map-static").bounding_box()
    assert box["height"] == 430 and box["width"] > 400
    assert page.locator("#unusual .item").count() > 0  # the watch list's top is plain HTML
    ctx.close()


def test_country_page_and_index(browser, pages):
    sf, path = pages
    lake, day = sf.lake, sf.days[-1]
    o = Opened(browser, path.parent / "countries" / "IS.html")
    o.page.wait_for_selector("#series .scatterlayer .trace", state="attached", timeout=20_000)
    assert o.blocked == [] and o.errors == []
    assert o.count("#series .scatterlayer .trace") >= 2  # forecast + climatology of the top labels
    raw = lake.read("forecasts", day, day, model=sf.mr.run).to_pandas()
    raw = raw[(raw.country == "IS") & (raw.level == "root")].set_index("code").probability
    rows = o.page.locator("table.roots tr[data-code]")
    assert rows.count() == 20
    for code, p in raw.items():
        assert o.page.locator(f"table.roots tr[data-code='{code}'] td.p").inner_text() == f"{p:.2f}"
    o.page.close()
    o = Opened(browser, path.parent.parent / "index.html")
    assert o.blocked == [] and o.errors == []
    assert o.texts("table.days a") == [str(day)]
    o.page.close()
