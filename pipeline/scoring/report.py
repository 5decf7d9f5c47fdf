"""The morning page: what is unusual tomorrow, where, and how well we did.

``build_report(lake, D)`` writes, under ``cfg.evaluate.reports_dir``::

    index.html                  the index of days (every day page found there)
    assets/plotly-geo.min.js    Plotly.js 4.1.1 geo bundle (choropleth + scatter), once for all pages
    assets/world.js             the country shapes (see pipeline/scoring/geo.py), once for all pages
    assets/report.css, report.js
    D/index.html                the day page
    D/watchlist.csv             the watch-list rows the page shows (pipeline/scoring/watchlist.py)
    D/countries/<FIPS>.html     a page per forecast country

The day page, top to bottom: the most unusual forecasts beside a world map of
tomorrow (largest rise against the usual, or P(material conflict, QuadClass 4),
switchable; click a country for its page); the full watch list (rises and falls,
overall and in conflict, filterable by country, UN region and root); the track record over
the ``report_window_days`` scored days before D — daily Brier skill score
against climatology per run from the ``scores`` table (95 % country-bootstrap
band for the page's run), the window's skill table on the country-days every
run shares (95 % day-bootstrap interval against the best baseline) and
reliability diagrams with counts per bin at root and event level
(``forecasts`` × ``country``); every country; the diagnostics, collapsed.

Every number comes from a lake table (``forecasts``, ``futures``, ``scores``,
``country``); nothing is re-scored here (``evaluate`` wrote ``scores``). Charts
are Plotly.js figures written as JSON into the page and drawn by
``assets/report.js`` — the map at once, every chart below the first screen when it
comes near the viewport, so opening a page costs the first screen only; the
watch list is the ``watchlist`` lake table (:func:`ensure_watchlist`); pages open
from disk with no network (the map's base
topology is pre-loaded through ``window.PlotlyGeoAssets``, so Plotly never
fetches one from its CDN).
"""

from __future__ import annotations

import datetime as dt
import html
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.cameo import codes as cameo
from pipeline.cameo import regions
from pipeline.cameo.labels import Outcomes, label_space, load_outcomes
from pipeline.core.config import Config
from pipeline.core.lake import DateLike, Lake, as_date
from pipeline.core.coverage import day_coverage
from pipeline.scoring import geo
from pipeline.scoring.actors import pair_text
from pipeline.scoring.evaluate import CLIMATOLOGY, LEARNED, bootstrap_bss, reliability
from pipeline.scoring.watchlist import (WatchlistConfig, departures, ensure_watchlist, headline, phrase_text,
                                        primary_run, shown_actor_pairs, written_against)
from pipeline.scoring.watchlist import record as watch_record
from pipeline.forecast.table import is_baseline

RESOURCES = Path(__file__).resolve().parent / "resources"
ASSETS = ("plotly-geo.min.js", "plotly.LICENSE", "world-atlas.LICENSE")
RISE, FALL = "#c2401f", "#2b6cb0"
HISTORY_DAYS = 14
HEAT = [[0, "#fff5eb"], [0.25, "#fdd0a2"], [0.5, "#fd8d3c"], [0.75, "#d94801"], [1, "#7f2704"]]
RISES = [[0, "#fff5f0"], [0.3, "#fcae91"], [0.6, "#fb6a4a"], [1, "#a50f15"]]

CSS = """
*{box-sizing:border-box} body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0;color:#1f2328;
background:#f6f7f9} main{max-width:1320px;margin:0 auto;padding:14px 22px 40px}
header{background:#1f2937;color:#fff;padding:10px 22px} header a{color:#cbd5e1} header h1{font-size:21px;margin:0}
header .meta{color:#cbd5e1} nav{font-size:13px;float:right;margin-top:4px} nav a{margin-left:12px}
h2{font-size:18px;margin:22px 0 8px} h3{font-size:14px;margin:10px 0 4px;color:#374151}
.meta{color:#6b7280;font-size:12.5px} .panel{background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:10px 12px}
.top{display:grid;grid-template-columns:minmax(380px,5fr) 7fr;gap:14px;align-items:start}
.two{display:grid;grid-template-columns:1fr 1fr;gap:14px}
table{border-collapse:collapse;font-size:12.5px;width:100%} th,td{padding:3px 6px;border-bottom:1px solid #eef0f3;
text-align:right;vertical-align:top} th{background:#f3f4f6;font-weight:600;position:sticky;top:0}
td.l,th.l{text-align:left} td.ph{color:#4b5563;font-size:11.5px;text-align:left;width:38%}
.rise{color:#c2401f;font-weight:600} .fall{color:#2b6cb0;font-weight:600}
.pbar{display:inline-block;position:relative;width:70px;height:9px;background:#eef0f3;border-radius:2px;vertical-align:middle}
.pbar i{position:absolute;top:0;bottom:0;left:0;background:#9ca3af;border-radius:2px}
.pbar b{position:absolute;top:-2px;bottom:-2px;width:3px;background:#111827}
.item{display:grid;grid-template-columns:1fr auto;gap:2px 8px;padding:6px 0;border-bottom:1px solid #eef0f3;font-size:13px}
.item .what{font-weight:600} .item .num{text-align:right;white-space:nowrap} .item .sub{grid-column:1/3;color:#6b7280;font-size:11.5px}
.tag{display:inline-block;font-size:10.5px;padding:0 5px;border-radius:8px;background:#fde8e4;color:#9b2c14;margin-left:4px}
.filters{font-size:12.5px;margin:6px 0} .filters input,.filters select{font-size:12.5px;padding:2px 4px}
details{margin-top:22px} summary{cursor:pointer;font-weight:600} .note{font-size:12.5px;margin:4px 0;color:#4b5563}
.warn{font-size:13px;margin:8px 0 0;padding:6px 10px;border-left:4px solid #d97706;background:#fffbeb;color:#78350f}
.scroll{max-height:520px;overflow:auto} a{color:#1d4ed8;text-decoration:none} a:hover{text-decoration:underline}
.chart{width:100%;height:300px} main>.panel{margin-bottom:12px} #map{height:430px}
.mapbox{position:relative} #map-static{position:absolute;left:0;top:0;width:100%;height:430px;background:#fff;z-index:1}
#map-static path{stroke:#fff;stroke-width:0.6} #map-static .land{fill:#e5e7eb} #map-static a:hover path{opacity:.8}
"""

JS = """
// Filters: text (country name/code), region or continent, and label (root / conflict), on every
// [data-country] row and first-screen item; the map keeps only the countries of the region.
function keep(el,q,region,root){
  const d=el.dataset;
  const okq=!q||d.country.toLowerCase().includes(q)||(d.name||'').toLowerCase().includes(q);
  const okg=!region||(region.startsWith('c:')?d.continent===region.slice(2):d.region===region.slice(2));
  const okr=!root||d.root===undefined||d.root===root||(root==='conflict'&&d.conflict==='1');
  return okq&&okg&&okr;
}
function applyFilters(){
  const v=id=>(document.getElementById(id)||{value:''}).value;
  const q=v('q').trim().toLowerCase(), region=v('region'), root=v('root');
  document.querySelectorAll('tr[data-country],.item[data-country],.offmap[data-country],#map-static a').forEach(el=>{
    el.style.display=keep(el,q,region,root)?'':'none';
  });
  filterMap(region);
}
// The map's traces as drawn first (window.MAPFIG); a region keeps only its countries' shapes coloured.
function filterMap(region){
  const m=document.getElementById('map'), f=window.MAPFIG;
  if(!m||!f||!m.data)return;
  const idx=[], upd={locations:[],z:[],customdata:[]};
  f.data.forEach((t,i)=>{
    if(!t.customdata)return;
    const ok=t.customdata.map(c=>!region||(region.startsWith('c:')?c[4]===region.slice(2):c[3]===region.slice(2)));
    idx.push(i);
    for(const k of ['locations','z','customdata'])upd[k].push(t[k].filter((_,j)=>ok[j]));
  });
  Plotly.restyle(m,upd,idx);
}
function plot(s){
  const fig=JSON.parse(s.textContent), div=s.dataset.plot;
  if(s.dataset.geo){window.MAPFIG=JSON.parse(s.textContent);fig.data.forEach(t=>t.geojson=window.WORLD);}
  return Plotly.newPlot(div,fig.data,fig.layout,Object.assign({displaylogo:false,responsive:true},fig.config||{}))
    .then(g=>{if(!s.dataset.geo)return; const st=document.getElementById('map-static'); if(st)st.remove();
      applyFilters();
      g.on('plotly_click',ev=>{const p=ev.points&&ev.points[0];
      if(p&&p.customdata&&p.customdata[0])window.location.href='countries/'+p.customdata[0]+'.html';});});
}
// The first screen (the map) is drawn at once; every other chart when it comes near the viewport.
function drawFigures(){
  const all=[...document.querySelectorAll('script[type="application/json"][data-plot]')];
  const lazy=all.filter(s=>!s.dataset.eager);
  Promise.all(all.filter(s=>s.dataset.eager).map(plot)).then(()=>{
    if(!('IntersectionObserver' in window)){lazy.forEach(plot);return;}
    const io=new IntersectionObserver(es=>es.forEach(e=>{if(!e.isIntersecting)return;io.unobserve(e.target);
      plot(lazy.find(s=>s.dataset.plot===e.target.id));}),{rootMargin:'300px'});
    lazy.forEach(s=>io.observe(document.getElementById(s.dataset.plot)));
  });
}
// Plotly.js (1.4 MB) and the shapes load after the first frame is painted, so the first screen
// (the watch list, the pre-rendered map) never waits for them to be parsed.
const ASSETS=document.currentScript.src.replace(/[^/]*$/,'');
function loadAsset(name){return new Promise((ok,fail)=>{const e=document.createElement('script');
  e.src=ASSETS+name;e.onload=ok;e.onerror=()=>fail(new Error('cannot load '+name));document.head.appendChild(e);});}
document.addEventListener('DOMContentLoaded',()=>{
  document.querySelectorAll('#q,#root,#region').forEach(e=>e.addEventListener('input',applyFilters));
  if(!document.querySelector('script[data-plot]'))return;  // a page without charts (the index of days)
  requestAnimationFrame(()=>setTimeout(()=>loadAsset('plotly-geo.min.js').then(()=>loadAsset('world.js')).then(drawFigures),0));
});
"""


# ================================================================ small helpers
def _e(x: Any) -> str:
    return html.escape(str(x))


def _name(fips: str | None) -> str:
    return (cameo.country_name(fips) or "—") if fips else "—"


def _label(desc: Any) -> str:
    """CAMEO root descriptions are upper case ("ENGAGE IN MATERIAL COOPERATION"): sentence case them."""
    d = str(desc)
    return d.capitalize() if d.isupper() else d


def _f(x: float, fmt: str = "{:.2f}") -> str:
    return "" if x is None or (isinstance(x, float) and not np.isfinite(x)) else fmt.format(x)


def _ratio(r: float) -> str:
    return f"×{r:.1f}" if r >= 1 else f"×{r:.2f}"


def _pbar(p: float, usual: float) -> str:
    """A 0–1 bar: grey up to the usual value, a black tick at the forecast."""
    return (f"<span class=pbar title='usual {usual:.2f}, forecast {p:.2f}'><i style='width:{usual * 100:.0f}%'></i>"
            f"<b style='left:calc({p * 100:.0f}% - 1px)'></b></span>")


def _plot(div: str, fig: dict[str, Any], cls: str = "chart", eager: bool = False, geo_shapes: bool = False) -> str:
    """A div and its Plotly figure as inline JSON, drawn by assets/report.js: ``eager`` ones at once, the others
    when they come near the viewport; ``geo_shapes`` traces get the shared country shapes (``window.WORLD``)."""
    blob = json.dumps(fig, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    height = fig.get("layout", {}).get("height")
    style = f" style='height:{int(height)}px'" if height else ""
    flags = (" data-eager=1" if eager else "") + (" data-geo=1" if geo_shapes else "")
    return (f"<div id='{div}' class='{cls}'{style}></div>"
            f"<script type='application/json' data-plot='{div}'{flags}>{blob}</script>")


def thin_day_warnings(lake: Lake, day: dt.date, min_share: float) -> list[str]:
    """The warning for a page of forecasts for ``day`` when the day before is thin (fewer GDELT exports than
    ``min_share`` of its usual, or than the lake's ``leave_out_share``: ``pipeline/core/coverage.py``): read low,
    or left out; none otherwise."""
    cov = day_coverage(lake, day - dt.timedelta(days=1))
    verdict = "" if cov is None else cov.verdict(min_share, lake.leave_out_share)
    if not verdict:
        return []
    made = "without the day before" if verdict == "left out" else "from a thin day"
    return [f"These forecasts were made {made}: {cov.message(lake.leave_out_share)}."]


def _warnings(d: DayData) -> str:
    return "".join(f"<div class=warn>⚠ {_e(w)}</div>" for w in d.warnings)


def _page(title: str, header: str, body: str, depth: int) -> str:
    up = "../" * depth
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{_e(title)}</title>"
            f"<meta name=viewport content='width=device-width,initial-scale=1'>"
            f"<link rel=stylesheet href='{up}assets/report.css'>"
            f"<script defer src='{up}assets/report.js'></script></head><body><header>{header}</header>"
            f"<main>{body}</main></body></html>")


def write_assets(reports_dir: Path) -> Path:
    """Copy Plotly.js and the map shapes to ``reports_dir/assets`` (once; rewritten when they changed)."""
    out = reports_dir / "assets"
    out.mkdir(parents=True, exist_ok=True)
    for name in ASSETS:
        src, dst = RESOURCES / name, out / name
        if not dst.exists() or dst.stat().st_size != src.stat().st_size:
            shutil.copyfile(src, dst)
    topo = geo.TOPOJSON.read_text(encoding="utf-8")
    world = ("// Country shapes: Natural Earth 1:110m (public domain) via world-atlas 2.0.2, keyed to FIPS 10-4.\n"
             "// PlotlyGeoAssets pre-loads Plotly's base map so it never fetches one from the network.\n"
             f"window.PlotlyGeoAssets={{topojson:{{world_110m:{topo}}}}};\n"
             f"window.WORLD={json.dumps(geo.world_geojson(), separators=(',', ':'))};\n")
    for name, text in (("world.js", world), ("report.css", CSS), ("report.js", JS)):
        dst = out / name
        if not dst.exists() or dst.read_text(encoding="utf-8") != text:
            dst.write_text(text, encoding="utf-8")
    return out


# ================================================================ data for the page
@dataclass
class DayData:
    """What the day page shows, read from the lake once."""

    day: dt.date
    run: str
    issued: str
    frame: pd.DataFrame  # watchlist.departures: every (country, label) with its usual
    watch: pd.DataFrame  # watchlist.watchlist: the ranked lists
    countries: list[str]
    history: pd.DataFrame  # root-level forecasts of run + climatology over the last days (date, run, country, code, p)
    happened: dict[tuple[dt.date, str], set[str]]  # (day, country) → root codes that occurred
    outcomes: Outcomes | None  # label indicators of the days before (and incl.) the day, for reliability
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # shown on top of every page (a thin day before)


def _history(lake: Lake, day: dt.date, runs: list[str], days: int) -> pd.DataFrame:
    """Root-level probabilities of ``runs`` on the ``days`` days up to ``day``: date, run, country, code, p."""
    first = day - dt.timedelta(days=days - 1)
    parts = []
    for run in dict.fromkeys(runs):
        try:
            t = lake.read("forecasts", first, day, columns=["country", "level", "code", "probability", "date"],
                          model=run).to_pandas()
        except FileNotFoundError:
            continue
        t = t[t.level == "root"].drop(columns="level").rename(columns={"probability": "p"})
        t["run"] = run
        parts.append(t)
    if not parts:
        return pd.DataFrame(columns=["country", "code", "p", "date", "run"])
    return pd.concat(parts, ignore_index=True)


def _happened(outcomes: Outcomes | None) -> dict[tuple[dt.date, str], set[str]]:
    """(day, country) → root codes that occurred, from the ``country`` table's outcomes."""
    if outcomes is None:
        return {}
    roots = np.array(label_space()["root"].codes, dtype=object)
    Y = outcomes.y["root"]  # (days, C, 20)
    return {(d, c): set(roots[Y[di, ci]]) for di, d in enumerate(outcomes.days)
            for ci, c in enumerate(outcomes.countries) if Y[di, ci].any()}


def _outcomes(lake: Lake, first: dt.date, last: dt.date) -> Outcomes | None:
    try:
        return load_outcomes(lake, first, last)
    except FileNotFoundError:
        return None


def load_day(lake: Lake, day: DateLike, run: str | None = None, wcfg: WatchlistConfig | None = None,
             history_days: int = HISTORY_DAYS, window_days: int = 7, usual: str = "climatology",
             frame_cfg: WatchlistConfig | None = None) -> DayData:
    """Read what the day page and the country pages show (the lake, once). ``wcfg`` rewrites the watch list with
    it; without, the stored one is read (written, when stale, against ``usual``). ``frame_cfg``: the settings of
    the departures (and the actor pairs) the country pages show when ``wcfg`` is not given."""
    day = as_date(day)
    fcfg = wcfg or frame_cfg or WatchlistConfig(usual=usual)
    frame = departures(lake, day, run, fcfg)
    roots = (frame.level == "root").to_numpy()  # the country pages' table: the pairs a page shows
    frame.loc[roots, "actor_pairs"] = pd.Series(shown_actor_pairs(lake, day, frame[roots], fcfg),
                                                index=frame.index[roots], dtype=object)
    run = str(frame.model_run.iloc[0]) if len(frame) else primary_run(lake, day, run)
    watch = ensure_watchlist(lake, day, run, wcfg, frame=frame,  # the ``watchlist`` table (written when stale)
                             usual=(wcfg.usual if wcfg else usual))
    head = lake.read("forecasts", day, day, columns=["country", "issued_at"], model=run)
    issued = head.column("issued_at")
    countries = sorted(set(frame.country), key=lambda c: (_name(c), c))
    no_usual = sorted(set(head.column("country").to_pylist()) - set(countries))
    ref = str(frame.baseline_run.iloc[0]) if len(frame) else CLIMATOLOGY
    hist = _history(lake, day, [run, CLIMATOLOGY, ref], history_days)
    first = min(day - dt.timedelta(days=history_days - 1), day - dt.timedelta(days=window_days))
    outcomes = _outcomes(lake, first, day)  # one read for the country pages and the reliability diagrams
    happened = _happened(outcomes)
    notes = []
    if no_usual:
        notes.append(f"{len(no_usual)} forecast countries have no {CLIMATOLOGY} forecast for {day} (no usual value) "
                     f"and are not on this page: {', '.join(no_usual[:20])}")
    if not lake.has_partition("country", day):
        notes.append(f"{day} is not over (no 'country' partition yet): forecast only, no outcomes.")
    return DayData(day, run, str(max(issued.to_pylist())) if len(issued) else "", frame, watch, countries, hist,
                   happened, outcomes, notes)


# ================================================================ day page sections
def _against_both(watch: pd.DataFrame) -> bool:
    """Was the watch list written against both references (``usual: both``)?"""
    return written_against(watch) == "both"


def _top_items(watch: pd.DataFrame, n: int = 8) -> str:
    """The first screen: the ``n`` − 2 largest rises and the 2 largest falls, one per (country, root), as a list."""
    g = headline(watch, n, falls=2)
    if g.empty:
        return "<p class=meta>Nothing departs from the usual range tomorrow.</p>"
    rows = []
    for r in g.itertuples():
        cls = "rise" if r.direction == "rise" else "fall"
        tag = "<span class=tag>conflict</span>" if r.conflict else ""
        ph = _phrases(r, 2, "; ")
        sub = " · ".join(x for x in (_e(r.actors.split(';')[0]) if r.actors else "", _e(ph)) if x)
        rows.append(f"<div class=item {_geo_attrs(r.country)} data-root='{_e(r.code[:2])}' "
                    f"data-conflict='{int(r.conflict)}' data-row='{_e(r.country)}|{_e(r.level)}|{_e(r.code)}'>"
                    f"<div class=what><a href='countries/{_e(r.country)}.html'>{_e(r.country_name)}</a> · "
                    f"{_e(_label(r.description))}{tag}</div>"
                    f"<div class='num {cls}'>{r.probability:.2f} <span class=meta>vs {r.usual:.2f}</span> "
                    f"({r.difference:+.2f})</div><div class=sub>{sub}</div></div>")
    return "".join(rows)


def _watch_table(watch: pd.DataFrame, name: str) -> str:
    g = watch[watch.list == name]
    if g.empty:
        return f"<h3>{_e(name.capitalize())}</h3><p class=meta>none</p>"
    rows = []
    for r in g.itertuples():
        cls = "rise" if r.direction == "rise" else "fall"
        rows.append(
            f"<tr {_geo_attrs(r.country)} data-root='{_e(r.code[:2])}' "
            f"data-conflict='{int(r.conflict)}' data-level='{_e(r.level)}' data-code='{_e(r.code)}'>"
            f"<td>{r.rank}</td><td class=l><a href='countries/{_e(r.country)}.html'>{_e(r.country_name)}</a></td>"
            f"<td class=l>{_e(_label(r.description))} <span class=meta>{_e(r.level)} {_e(r.code)}</span></td>"
            f"<td class='p'>{r.probability:.2f}</td><td class='u'>{r.usual:.2f}</td>"
            f"<td>{_pbar(r.probability, r.usual)}</td><td class='d {cls}'>{r.difference:+.2f}</td>"
            f"<td class='r'>{_ratio(r.ratio)}</td>"
            f"<td class=meta>{r.climatology:.2f} / {r.baseline:.2f}</td>"
            f"<td class=ph>{_e(r.actors)}{'<br>' if r.actors and len(r.phrases) else ''}"
            f"{_e(_phrases(r))}</td></tr>")
    return (f"<h3>{_e(name.capitalize())}</h3><table class=watch data-list='{_e(name)}'><tr><th>#</th>"
            "<th class=l>country</th><th class=l>label</th><th>P</th><th>usual</th><th></th><th>diff</th>"
            "<th>ratio</th><th>clim / base</th>"
            "<th class=l>actors (recent events) · phrases (sampled futures)</th></tr>"
            + "".join(rows) + "</table>")


def _map_figure(d: DayData) -> tuple[dict[str, Any], dict[str, float], dict[str, float]]:
    """Choropleth traces: P(QuadClass 4) and the largest rise per country, over the land in grey.

    The grey land and borders are Plotly's base layers drawn from the shipped topology
    (``assets/world.js`` pre-loads it), not a third trace of every shape: one path
    instead of 177 to draw on every open.

    Returns the figure, the P(QuadClass 4) of the countries without a shape, and every country's largest rise.
    """
    f = d.frame
    q4 = f[(f.level == "quad") & (f.code == "4")].set_index("country").probability.to_dict()
    rises = f[f.direction == "rise"].sort_values("difference", ascending=False).drop_duplicates("country")
    rise = {c: 0.0 for c in d.countries} | rises.set_index("country").difference.to_dict()
    rise_label = rises.set_index("country").description.to_dict()
    mv_q4, mv_rise = geo.map_values(q4), geo.map_values(rise)

    def trace(mv: geo.MapValues, title: str, scale: str, zmax: float, visible: bool, label: dict[str, str]):
        return {"type": "choropleth", "geojson": None, "featureidkey": "id", "locations": mv.keys, "z": mv.values,
                "customdata": [[c, _name(c), label.get(c, ""), regions.region(c), regions.continent(c)]
                               for c in mv.source], "zmin": 0, "zmax": zmax,
                "colorscale": scale, "marker": {"line": {"color": "#ffffff", "width": 0.4}}, "visible": visible,
                "colorbar": {"title": {"text": title, "side": "right"}, "thickness": 10, "len": 0.8},
                "hovertemplate": "%{customdata[1]} (%{customdata[0]}, %{customdata[3]})<br>" + title + " %{z:.2f}"
                                 "<br>%{customdata[2]}<extra></extra>", "name": title}

    data = [
        trace(mv_q4, "P(material conflict)", HEAT, 1.0, False, {}),
        trace(mv_rise, "largest rise vs usual", RISES, max([0.05] + mv_rise.values), True, rise_label),
    ]
    layout = {
        "margin": {"l": 0, "r": 0, "t": 0, "b": 0}, "paper_bgcolor": "#ffffff", "height": 430,
        "geo": {"projection": {"type": "natural earth"}, "showframe": False, "showcoastlines": False,
                "showland": True, "landcolor": "#e5e7eb", "showcountries": True, "countrycolor": "#ffffff",
                "countrywidth": 0.4, "showocean": False, "showlakes": False,
                "lataxis": {"range": [-57, 84]}, "bgcolor": "#ffffff"},
        "updatemenus": [{"type": "buttons", "direction": "right", "x": 0.01, "y": 0.02, "xanchor": "left",
                         "yanchor": "bottom", "showactive": True, "font": {"size": 11}, "buttons": [
                             {"label": "largest rise vs usual", "method": "restyle",
                              "args": [{"visible": [False, True]}]},
                             {"label": "P(material conflict)", "method": "restyle",
                              "args": [{"visible": [True, False]}]}]}],
    }
    return {"data": data, "layout": layout, "config": {"scrollZoom": False}}, mv_q4.off_map, rise


def _scale_color(v: float, vmax: float, scale: list[list[Any]]) -> str:
    """The colour of ``v`` on a Plotly colorscale over [0, vmax] (linear in RGB between its stops)."""
    t = min(max(v / vmax, 0.0), 1.0) if vmax > 0 else 0.0
    for (t0, c0), (t1, c1) in zip(scale, scale[1:]):
        if t <= t1:
            w = (t - t0) / (t1 - t0) if t1 > t0 else 0.0
            rgb = [round(int(c0[i:i + 2], 16) * (1 - w) + int(c1[i:i + 2], 16) * w) for i in (1, 3, 5)]
            return "#" + "".join(f"{c:02x}" for c in rgb)
    return scale[-1][1]


def _static_map(fig: dict[str, Any]) -> str:
    """The map's visible trace pre-rendered as inline SVG (:func:`geo.svg_world`), shown until Plotly has drawn.

    So the first screen does not wait for Plotly.js (≈ 1.4 MB to parse): each coloured country is a link to its
    page with its value as a tooltip; the rest of the land is one grey path. assets/report.js removes it once the
    interactive map is drawn in its place.
    """
    w = geo.svg_world()
    tr = next(t for t in fig["data"] if t.get("visible", True))
    coloured, parts = set(tr["locations"]), []
    for key, z, (c, name, label, region, cont) in zip(tr["locations"], tr["z"], tr["customdata"]):
        tip = f"{name} ({c}, {region}): {tr['name']} {z:.2f}" + (f" · {label}" if label else "")
        parts.append(f"<a href='countries/{_e(c)}.html' {_geo_attrs(c)}><path d='{w.paths[key]}' "
                     f"fill='{_scale_color(z, tr['zmax'], tr['colorscale'])}'><title>{_e(tip)}</title></path></a>")
    land = "".join(p for k, p in w.paths.items() if k not in coloured)
    return (f"<svg id=map-static viewBox='0 0 {w.width:g} {w.height:g}' preserveAspectRatio='xMidYMid meet' "
            f"role=img aria-label='{_e(tr['name'])} per country'><clipPath id=map-clip><rect width='{w.width:g}' "
            f"height='{w.height:g}'/></clipPath><g clip-path='url(#map-clip)'><path class=land d='{land}'/>"
            f"{''.join(parts)}</g></svg>")


def _map_html(d: DayData) -> str:
    fig, off_q4, rise = _map_figure(d)
    # the shapes come from assets/world.js (window.WORLD), shared by every day, not copied into each page;
    # the first screen shows them pre-rendered (_static_map) until Plotly has drawn the interactive map
    off = ", ".join(f"<span class=offmap {_geo_attrs(c)}><a href='countries/{_e(c)}.html'>{_e(_name(c))}</a> "
                    f"{v:.2f} ({rise.get(c, 0):+.2f})</span>" for c, v in sorted(off_q4.items(), key=lambda x: -x[1]))
    off_html = (f"<div class=meta>Too small for the 1:110m map ({len(off_q4)}): P(material conflict) "
                f"(largest rise) {off}</div>" if off_q4 else "")
    return ("<div class=mapbox>" + _static_map(fig) + _plot("map", fig, cls="", eager=True, geo_shapes=True)
            + "</div><div class=meta>Click a country for its page. Natural Earth 1:110m shapes, FIPS 10-4 keyed.</div>"
            + off_html)


def _geo_attrs(fips: str) -> str:
    """``data-`` attributes the page's filters read: FIPS code, name, UN region and continent."""
    p = regions.place(fips)
    return (f"data-country='{_e(fips)}' data-name='{_e(_name(fips))}' data-region='{_e(p.region)}' "
            f"data-continent='{_e(p.continent)}'")


def _read_scores(lake: Lake, first: dt.date, last: dt.date, level: str) -> pd.DataFrame:
    """``scores`` rows of every run at ``level`` in [first, last]: date, country, run, brier, log_loss."""
    base = lake.table_dir("scores")
    runs = sorted(p.name.split("=", 1)[1] for p in base.glob("model=*")) if base.exists() else []
    parts = []
    for r in runs:
        try:
            s = lake.read("scores", first, last, columns=["country", "level", "brier", "log_loss", "date"],
                          model=r).to_pandas()
        except FileNotFoundError:
            continue
        s = s[s.level == level].drop(columns="level")
        s["run"] = r
        parts.append(s)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
        columns=["country", "brier", "log_loss", "date", "run"])


def _daily_skill(s: pd.DataFrame, main: str, n_boot: int = 500) -> pd.DataFrame:
    """Per day and run: BSS = 1 − Σ_c Brier / Σ_c Brier(climatology) over the countries both were scored on.

    ``s``: :func:`_read_scores` rows. The page's run also gets a 95 % interval by
    resampling countries (:func:`bootstrap_bss`).
    """
    ref = s[s.run == CLIMATOLOGY][["date", "country", "brier"]].rename(columns={"brier": "ref"})
    rows = []
    for (d, r), g in s[s.run != CLIMATOLOGY].merge(ref, on=["date", "country"]).groupby(["date", "run"]):
        if g.ref.sum() <= 0:
            continue
        lo = hi = np.nan
        if r == main and len(g) > 2:
            lo, hi, _ = bootstrap_bss(g.brier.to_numpy(), g.ref.to_numpy(), g.country.to_numpy(), n_boot=n_boot)
        rows.append({"date": str(d), "run": r, "bss": float(1 - g.brier.sum() / g.ref.sum()), "lo": lo, "hi": hi,
                     "n": len(g)})
    return pd.DataFrame(rows, columns=["date", "run", "bss", "lo", "hi", "n"])


def skill_summary(s: pd.DataFrame, n_boot: int = 1000) -> pd.DataFrame:
    """The window's skill per run on the country-days every run was scored on (``scores`` rows ``s``).

    Brier and log loss are means over those country-days (each row is already a
    mean over the level's labels); BSS against climatology and against the best
    (lowest-Brier) baseline, with a 95 % interval resampling days (:func:`bootstrap_bss`).
    """
    if s.empty:
        return pd.DataFrame()
    key = s.date.astype(str) + "|" + s.country
    s = s.assign(key=key)
    runs = sorted(set(s.run), key=lambda r: (is_baseline(r), r))
    common = set.intersection(*(set(s.key[s.run == r]) for r in runs))
    s = s[s.key.isin(common)].sort_values("key")
    by = {r: g for r, g in s.groupby("run")}
    brier = {r: float(g.brier.mean()) for r, g in by.items()}
    bases = {r: b for r, b in brier.items() if is_baseline(r)}
    best = min(bases, key=lambda r: (bases[r], r)) if bases else None
    rows = []
    for r in runs:
        g = by[r]
        row = {"run": r, "n_country_days": len(g), "brier": brier[r], "log_loss": float(g.log_loss.mean()),
               "bss_climatology": 1 - brier[r] / brier[CLIMATOLOGY] if brier.get(CLIMATOLOGY) else np.nan,
               "best_baseline": best, "bss_best": 1 - brier[r] / brier[best] if best and brier[best] else np.nan,
               "bss_best_lo": np.nan, "bss_best_hi": np.nan}
        if best and r != best:
            row["bss_best_lo"], row["bss_best_hi"], _ = bootstrap_bss(
                g.brier.to_numpy(), by[best].brier.to_numpy(), g.date.astype(str).to_numpy(), n_boot=n_boot)
        rows.append(row)
    return pd.DataFrame(rows).sort_values("brier")


def _skill_figure(sk: pd.DataFrame, main: str, level: str) -> dict[str, Any]:
    data: list[dict[str, Any]] = []
    m = sk[sk.run == main].sort_values("date")
    if m.lo.notna().any():
        data.append({"type": "scatter", "x": list(m.date) + list(m.date[::-1]),
                     "y": [float(v) for v in m.hi] + [float(v) for v in m.lo[::-1]], "fill": "toself",
                     "fillcolor": "rgba(194,64,31,0.15)", "line": {"width": 0}, "hoverinfo": "skip",
                     "name": f"{main} 95% interval"})
    for r, g in sk.sort_values("date").groupby("run", sort=False):
        line: dict[str, Any] = {"width": 3, "color": RISE} if r == main else {"width": 1.3}
        data.append({"type": "scatter", "mode": "lines+markers", "x": list(g.date), "y": [float(v) for v in g.bss],
                     "name": r, "line": line, "customdata": [int(n) for n in g.n],
                     "hovertemplate": r + "<br>%{x}: BSS %{y:.3f} (%{customdata} countries)<extra></extra>"})
    return {"data": data, "layout": {
        "title": {"text": f"Daily BSS vs climatology · {level} level", "font": {"size": 13}},
        "margin": {"l": 45, "r": 10, "t": 30, "b": 35}, "height": 300, "legend": {"font": {"size": 10}},
        "yaxis": {"zeroline": True, "zerolinecolor": "#9ca3af", "title": {"text": "BSS"}},
        "xaxis": {"type": "category"}, "plot_bgcolor": "#ffffff"}}


def level_arrays(lake: Lake, run: str, days: list[dt.date], outcomes: Outcomes, level: str
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(P, Y), each (n, L): ``run``'s forecasts at ``level`` on its country-days of ``days`` that have outcomes.

    The same rows as :func:`pipeline.forecast.table.collect` (a country absent
    from the outcomes has y = 0), read in one pass over the partitions.
    """
    import pyarrow.dataset as ds

    L = label_space()[level]
    empty = np.zeros((0, len(L))), np.zeros((0, len(L)), bool)
    try:
        t = lake.read("forecasts", days[0], days[-1], columns=["country", "code", "probability", "date"],
                      filter=ds.field("level") == level, model=run)
    except FileNotFoundError:
        return empty
    date = t.column("date").to_pandas()
    dmap = {x: outcomes.day_index(x) for x in set(date) if x in days}
    di = date.map(lambda x: dmap.get(x)).to_numpy(dtype=float)
    ok = ~np.isnan(di)
    if not ok.any():
        return empty
    country = t.column("country").to_numpy(zero_copy_only=False)[ok]
    code = t.column("code").to_numpy(zero_copy_only=False)[ok]
    prob = t.column("probability").to_numpy()[ok]
    di = di[ok].astype(np.int64)
    ci, countries = pd.factorize(country)
    rows, keys = pd.factorize(di * len(countries) + ci)  # one row per (day, country)
    li = pd.Categorical(code, categories=L.codes).codes
    if (li < 0).any():
        raise ValueError(f"forecasts/model={run}: unknown {level} codes {sorted(set(code[li < 0]))[:5]}")
    P = np.zeros((len(keys), len(L)))
    P[rows, li] = prob
    oc = outcomes.country_index()
    Y = np.zeros((len(keys), len(L)), dtype=bool)
    for i, k in enumerate(keys):
        if (o := oc.get(countries[k % len(countries)])) is not None:
            Y[i] = outcomes.y[level][k // len(countries), o]
    return P, Y


def reliability_frame(lake: Lake, runs: list[str], days: list[dt.date], outcomes: Outcomes | None,
                      levels: tuple[str, ...] = ("root", "event"), n_bins: int = 10) -> pd.DataFrame:
    """Reliability bins (``lo``, ``hi``, ``count``, ``mean_p``, ``freq``) per run and level over ``days``.

    Each run on its own country-days with outcomes (``forecasts`` × ``country``).
    """
    if outcomes is None:
        return pd.DataFrame()
    parts = []
    for r in runs:
        for lv in levels:
            P, Y = level_arrays(lake, r, days, outcomes, lv)
            if len(P):
                rel, ece = reliability(P, Y, n_bins)
                parts.append(rel.assign(run=r, level=lv, ece=ece, n_country_days=len(P)))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def _reliability_figure(rel: pd.DataFrame, level: str, runs: list[str], first: dt.date, last: dt.date
                        ) -> dict[str, Any]:
    rel = rel[(rel.level == level) & (rel.run.isin(runs))]
    data: list[dict[str, Any]] = [{"type": "scatter", "mode": "lines", "x": [0, 1], "y": [0, 1], "name": "perfect",
                                   "line": {"dash": "dash", "color": "#9ca3af", "width": 1}, "hoverinfo": "skip"}]
    top = max(1, int(rel["count"].max())) if len(rel) else 1
    for r, g in rel.groupby("run", sort=False):
        g = g[g["count"] > 0]
        size = (6 + 14 * np.sqrt(g["count"] / top)).round(1)
        data.append({"type": "scatter", "mode": "lines+markers+text" if r == runs[0] else "lines+markers",
                     "x": [float(v) for v in g.mean_p], "y": [float(v) for v in g.freq], "name": r,
                     "marker": {"size": [float(v) for v in size]}, "customdata": [int(v) for v in g["count"]],
                     "text": [f"{int(v)}" for v in g["count"]], "textposition": "top left",
                     "textfont": {"size": 9, "color": "#6b7280"},
                     "hovertemplate": r + "<br>mean p %{x:.2f} → observed %{y:.2f}<br>%{customdata} forecasts"
                                          "<extra></extra>"})
    return {"data": data, "layout": {
        "title": {"text": f"Reliability · {level} level · {first}…{last} (labels: forecasts per bin)",
                  "font": {"size": 13}},
        "margin": {"l": 45, "r": 10, "t": 30, "b": 40}, "height": 320, "legend": {"font": {"size": 10}},
        "xaxis": {"range": [0, 1], "title": {"text": "forecast probability"}},
        "yaxis": {"range": [0, 1.05], "title": {"text": "observed frequency"}}, "plot_bgcolor": "#ffffff"}}


def _skill_table(summ: pd.DataFrame, level: str, rel: pd.DataFrame) -> str:
    if summ.empty:
        return ""
    ece = rel[rel.level == level].drop_duplicates("run").set_index("run").ece if len(rel) else pd.Series(dtype=float)
    cols = [("brier", "Brier", "{:.4f}"), ("bss_climatology", "BSS clim", "{:+.3f}"), ("bss_best", "BSS best",
            "{:+.3f}"), ("bss_best_lo", "95% low", "{:+.3f}"), ("bss_best_hi", "95% high", "{:+.3f}"),
            ("log_loss", "log loss", "{:.3f}")]
    body = "".join(
        f"<tr data-run='{_e(r.run)}'><td class=l>{_e(r.run)}</td>"
        + "".join(f"<td>{'' if pd.isna(getattr(r, k)) else f.format(getattr(r, k))}</td>" for k, _, f in cols)
        + f"<td>{_f(ece.get(r.run, np.nan), '{:.4f}')}</td></tr>" for r in summ.itertuples())
    return (f"<h3>{level} level · {int(summ.n_country_days.iloc[0])} country-days · best baseline "
            f"{_e(summ.best_baseline.iloc[0])}</h3><table class=skill data-level='{level}'><tr><th class=l>run</th>"
            + "".join(f"<th>{h}</th>" for _, h, _ in cols) + f"<th>ECE</th></tr>{body}</table>")


def _track_record(lake: Lake, d: DayData, cfg: Config) -> tuple[str, list[str]]:
    """Daily skill and the window's skill table (``scores``), reliability (``forecasts`` × ``country``)."""
    last = d.day if lake.has_partition("country", d.day) else d.day - dt.timedelta(days=1)
    first = last - dt.timedelta(days=cfg.evaluate.report_window_days - 1)
    days = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
    ref = str(d.frame.baseline_run.iloc[0]) if len(d.frame) else CLIMATOLOGY
    rel_runs = list(dict.fromkeys([d.run, ref, CLIMATOLOGY]))
    rel = reliability_frame(lake, rel_runs, days, d.outcomes, n_bins=cfg.evaluate.n_bins)
    charts, tables = [], []
    for lv in ("root", "event"):
        s = _read_scores(lake, first, last, lv)
        if s.empty:
            continue
        charts.append(_plot(f"skill-{lv}", _skill_figure(_daily_skill(s, d.run), d.run, lv)))
        tables.append(_skill_table(skill_summary(s), lv, rel))
    if not charts:
        return ("<p class=meta>No scored days in the window yet: the daily flow scores each day once it is over "
                "(`gdelt-forecast evaluate`).</p>", [f"no scores in {first} … {last}"])
    rel_html = "".join(_plot(f"rel-{lv}", _reliability_figure(rel, lv, [r for r in rel_runs if r in set(rel.run)],
                                                               first, last))
                       for lv in ("root", "event")) if len(rel) else "<p class=meta>no outcomes in the window</p>"
    tables.append(_watch_record(lake, d, days))
    return (f"<div class=two>{''.join(charts)}</div><p class=meta>Window {first} … {last} (the `scores` table). "
            f"BSS = 1 − Brier / Brier(reference), on the country-days every run was scored on; the interval "
            f"against the best baseline resamples days, the daily band resamples countries (95 %). Full metrics "
            f"(F1, ROUGE, …): `gdelt-forecast evaluate`.</p>"
            f"<div class=two><div>{''.join(tables)}</div><div>{rel_html}</div></div>"), []


def _watch_record(lake: Lake, d: DayData, days: list[dt.date]) -> str:
    """How the watch lists of the window's days fared (:func:`pipeline.scoring.watchlist.record`)."""
    r = watch_record(lake, days, d.run, d.outcomes)
    if r.empty:
        return "<p class=meta>Watch-list record: no stored watch list of a day that is over in the window.</p>"
    rows = "".join(f"<tr><td class=l>{_e(x.list)}</td><td>{x.rows}</td><td>{x.days}</td><td>{x.usual:.2f}</td>"
                   f"<td>{x.probability:.2f}</td><td><b>{x.happened:.2f}</b></td></tr>" for x in r.itertuples())
    return ("<h3>Watch-list record</h3><table class=record><tr><th class=l>list</th><th>rows</th><th>days</th>"
            "<th>usual</th><th>P</th><th>happened</th></tr>" + rows + "</table><p class=meta>The rows the watch lists "
            "of these days listed, against what happened: rises worth reading happen more often than their usual "
            "value, falls less often (the `watchlist` and `country` tables).</p>")


def _countries_table(d: DayData) -> str:
    f = d.frame
    q4 = f[(f.level == "quad") & (f.code == "4")].set_index("country").probability
    rises = f[f.direction == "rise"].sort_values("difference", ascending=False).drop_duplicates("country")
    rises = rises.set_index("country")
    rows = []
    for c in d.countries:
        r = rises.loc[c] if c in rises.index else None
        top = f"{_e(_label(r.description))} {r.probability:.2f} vs {r.usual:.2f}" if r is not None else ""
        rows.append(f"<tr {_geo_attrs(c)}><td class=l>"
                    f"<a href='countries/{_e(c)}.html'>{_e(_name(c))}</a></td><td class=l>{_e(c)}</td>"
                    f"<td>{_f(q4.get(c, np.nan))}</td><td class=l>{top}</td></tr>")
    return ("<div class=scroll><table class=countries><tr><th class=l>country</th><th class=l>FIPS</th>"
            "<th>P(material conflict)</th><th class=l>largest rise vs usual</th></tr>" + "".join(rows)
            + "</table></div>")


def _nav(reports_dir: Path, day: dt.date, depth: int) -> str:
    days = list_days(reports_dir) + [day]
    days = sorted(set(days))
    i = days.index(day)
    up = "../" * depth
    prev = f"<a href='{up}{days[i - 1]}/index.html'>← {days[i - 1]}</a>" if i > 0 else ""
    nxt = f"<a href='{up}{days[i + 1]}/index.html'>{days[i + 1]} →</a>" if i + 1 < len(days) else ""
    return f"<nav>{prev}<a href='{up}index.html'>all days</a>{nxt}</nav>"


def _region_select(countries: list[str]) -> str:
    """The region menu: per continent of the page's countries, the continent itself then its UN regions."""
    groups = []
    for cont, regs in regions.grouped(countries).items():
        opts = "".join(f"<option value='r:{_e(r)}'>{_e(r)}</option>" for r in regs if r != cont)
        groups.append(f"<optgroup label='{_e(cont)}'><option value='c:{_e(cont)}'>{_e(cont)} (all)</option>{opts}"
                      f"</optgroup>")
    return f"<select id=region><option value=''>all regions</option>{''.join(groups)}</select>"


def _no_model(run: str) -> str:
    """What the header says when the page's run is a baseline: there was no model forecast for the day."""
    if not is_baseline(run):
        return ""
    what = ("the learned frequency model of each label's recent history, the best forecast without a model"
            if run == LEARNED else "a baseline")
    return f" (no model forecast: {what}; train one with <code>gdelt-forecast train</code>)"


def day_page(lake: Lake, d: DayData, cfg: Config, reports_dir: Path) -> str:
    track, notes = _track_record(lake, d, cfg)
    ref = str(d.frame.baseline_run.iloc[0]) if len(d.frame) else CLIMATOLOGY
    roots = label_space()["root"].codes
    root_opts = "".join(f"<option value='{c}'>{c} {_e(_label(label_space().description[c]))}</option>" for c in roots)
    both = _against_both(d.watch)
    header = (f"{_nav(reports_dir, d.day, 1)}<h1>Tomorrow, {d.day}: what is unusual, and where</h1>"
              f"<div class=meta>forecast <b>{_e(d.run)}</b>{_no_model(d.run)} issued {_e(d.issued)} · "
              f"{len(d.countries)} countries · "
              f"usual = {CLIMATOLOGY}{f' and {_e(ref)}' if both else ''} · P = probability that at least one such "
              f"event is reported in the country that day (GDELT, located by ActionGeo)</div>{_warnings(d)}")
    against = (f"the outer of climatology and {_e(ref)}" if both else "the country's climatology"
               + (f"; {_e(ref)} beside it says whether the departure has lasted" if ref != CLIMATOLOGY else ""))
    body = f"""
<div class=top><section class=panel id=unusual><h2 style="margin-top:2px">Most unusual tomorrow</h2>
<div class=meta>forecast vs usual ({against}); <span class=rise>rises</span>
and <span class=fall>falls</span></div>{_top_items(d.watch)}
<div class=meta style="margin-top:6px"><a href='#watchlist'>full watch list ↓</a> · <a href='watchlist.csv'>watchlist.csv</a>
· <code>gdelt-forecast inspect watchlist --date {d.day}</code></div></section>
<section class=panel id=worldmap>{_map_html(d)}</section></div>
<h2 id=watchlist>Watch list</h2>
<div class=filters>filter: <input id=q placeholder="country"> {_region_select(d.countries)}
<select id=root><option value="">all labels</option>
<option value="conflict">conflict (roots 13–20, QuadClass 3–4)</option>{root_opts}</select>
<span class=meta>P = forecast; usual = the reference it departs from; bar: grey = usual, tick = forecast;
ratio = (P + 0.01) / (usual + 0.01); clim / base = climatology / {_e(ref)}</span></div>
<div class=panel>{_watch_table(d.watch, 'conflict rises')}</div><div class=panel>{_watch_table(d.watch, 'rises')}</div>
<div class=panel>{_watch_table(d.watch, 'conflict falls')}</div><div class=panel>{_watch_table(d.watch, 'falls')}</div>
<h2 id=track>Track record</h2><div class=panel>{track}</div>
<h2 id=countries>Countries</h2><div class=panel>{_countries_table(d)}</div>
<details id=diagnostics><summary>Diagnostics ({len(d.notes) + len(notes)} notes)</summary>
{''.join(f'<div class=note>{_e(n)}</div>' for n in d.notes + notes)}
<div class=note>the watch list holds {len(d.watch)} rows; {int((d.frame.direction != '').sum())} of
{len(d.frame)} (country, label) forecasts lie outside their usual range.</div></details>"""
    return _page(f"GDELT forecast {d.day}", header, body, depth=1)


# ================================================================ country pages
@dataclass
class CountryData:
    """One country's rows, grouped once for all country pages (plain Python: 250 pages must build in seconds)."""

    roots: dict[str, dict[str, Any]]  # root code → departures row (probability, climatology, baseline, …)
    q4: float
    watch: list[Any]  # watch-list rows (namedtuples)
    series: dict[tuple[str, str], dict[str, float]]  # (run, root code) → {date: probability}


def group_countries(d: DayData) -> dict[str, CountryData]:
    """Every forecast country's :class:`CountryData`, from the day's frames in one pass each."""
    out = {c: CountryData({}, float("nan"), [], {}) for c in d.countries}
    f = d.frame
    for r in f[f.level == "root"].to_dict("records"):
        if r["country"] in out:
            out[r["country"]].roots[r["code"]] = r
    for c, p in f[(f.level == "quad") & (f.code == "4")][["country", "probability"]].itertuples(index=False):
        if c in out:
            out[c].q4 = float(p)
    for r in d.watch.itertuples():
        if r.country in out:
            out[r.country].watch.append(r)
    need = {f"{c}|{k}" for c, cd in out.items() for k in top_roots(cd)}
    h = d.history
    h = h[(h.country.astype(str) + "|" + h.code.astype(str)).isin(need)]
    for c, run, code, day, p in zip(h.country, h.run, h.code, h.date.astype(str), h.p):
        out[c].series.setdefault((run, code), {})[day] = float(p)
    return out


def top_roots(cd: CountryData, n: int = 5) -> list[str]:
    """The roots that move most against climatology (a label at P = 1 every day says nothing)."""
    r = cd.roots
    return sorted(r, key=lambda k: (-abs(r[k]["probability"] - r[k]["climatology"]), -r[k]["probability"], k))[:n]


def _country_series(d: DayData, c: str, cd: CountryData, codes: list[str]) -> dict[str, Any]:
    days = [str(d.day - dt.timedelta(days=i)) for i in range(HISTORY_DAYS - 1, -1, -1)]
    palette = ["#c2401f", "#2b6cb0", "#2f855a", "#805ad5", "#b7791f"]
    desc = label_space().description
    data: list[dict[str, Any]] = []
    for k, code in enumerate(codes):
        col = palette[k % len(palette)]
        for run, dash, width in ((d.run, "solid", 2.2), (CLIMATOLOGY, "dot", 1.2)):
            series = cd.series.get((run, code), {})
            xs = [x for x in days if x in series]
            if not xs or (run == CLIMATOLOGY and run == d.run):
                continue
            data.append({"type": "scatter", "mode": "lines+markers" if run == d.run else "lines", "x": xs,
                         "y": [series[x] for x in xs], "legendgroup": code,
                         "name": f"{code} {_label(desc[code])[:30]}" + ("" if run == d.run else " · climatology"),
                         "line": {"color": col, "dash": dash, "width": width},
                         "hovertemplate": f"{code} {run}<br>%{{x}}: P %{{y:.2f}}<extra></extra>"})
        series = cd.series.get((d.run, code), {})
        hit = [(x, series[x]) for x in days if x in series
               and code in d.happened.get((dt.date.fromisoformat(x), c), set())]
        if hit:
            data.append({"type": "scatter", "mode": "markers", "x": [x for x, _ in hit], "y": [p for _, p in hit],
                         "legendgroup": code, "showlegend": False, "name": f"{code} happened",
                         "marker": {"symbol": "star", "size": 11, "color": col, "line": {"color": "#111", "width": 1}},
                         "hovertemplate": f"{code} happened on %{{x}}<extra></extra>"})
    # a day left out as too thin (pipeline/core/coverage.py) has no ★: shade it, so it does not read "nothing happened"
    thin = set(d.outcomes.left_out) if d.outcomes is not None else set()
    left = [i for i, x in enumerate(days) if dt.date.fromisoformat(x) in thin]
    shapes = [{"type": "rect", "xref": "x", "yref": "paper", "x0": i - 0.5, "x1": i + 0.5, "y0": 0, "y1": 1,
               "fillcolor": "#e2e8f0", "opacity": 0.6, "line": {"width": 0}, "layer": "below"} for i in left]
    notes = [{"x": days[i], "y": 1.02, "xref": "x", "yref": "paper", "text": "thin: left out", "showarrow": False,
              "font": {"size": 9, "color": "#4a5568"}} for i in left]
    return {"data": data, "layout": {
        "title": {"text": f"Last {HISTORY_DAYS} days: forecast ({d.run}, solid) vs climatology (dotted); "
                          f"★ = it happened", "font": {"size": 13}},
        "margin": {"l": 45, "r": 10, "t": 30, "b": 40}, "height": 340, "yaxis": {"range": [0, 1.05], "title":
        {"text": "P"}}, "xaxis": {"type": "category", "categoryorder": "array", "categoryarray": days},
        "shapes": shapes, "annotations": notes, "legend": {"font": {"size": 10}}, "plot_bgcolor": "#ffffff"}}


def country_page(d: DayData, c: str, cd: CountryData) -> str:
    ref = next(iter(cd.roots.values()))["baseline_run"] if cd.roots else CLIMATOLOGY
    desc = label_space().description
    top = top_roots(cd)
    rows = []
    for code in label_space()["root"].codes:
        r = cd.roots.get(code)
        if r is not None:
            p, u_c, u_b, dif, direction = r["probability"], r["climatology"], r["baseline"], r["difference"], \
                r["direction"]
            pairs = pair_text(r["actor_pairs"])
        else:  # sparse: no row = the run gives probability 0; its usual is not in the run's rows
            p, u_c, u_b, dif, direction, pairs = 0.0, np.nan, np.nan, 0.0, "", ""
        cls = {"rise": "rise", "fall": "fall"}.get(direction, "") if abs(dif) >= 0.005 else ""
        rows.append(f"<tr data-code='{code}'><td class=l>{code} {_e(_label(desc[code]))}</td><td class=p>{p:.2f}</td>"
                    f"<td>{_f(u_c)}</td><td>{_f(u_b)}</td><td class='{cls}'>{(dif if cls else 0.0):+.2f}</td>"
                    f"<td class=ph>{_e(pairs)}</td></tr>")
    wl_rows = "".join(f"<tr><td class=l>{_e(r.list)} #{r.rank}</td>"
                      f"<td class=l>{_e(r.code)} {_e(_label(r.description))}</td>"
                      f"<td>{r.probability:.2f}</td><td>{r.usual:.2f}</td><td>{r.difference:+.2f}</td>"
                      f"<td class=ph>{_e(_phrases(r))}</td></tr>" for r in cd.watch)
    header = (f"<nav><a href='../index.html'>← {d.day}</a><a href='../../index.html'>all days</a></nav>"
              f"<h1>{_e(_name(c))} ({_e(c)}) · {d.day}</h1><div class=meta>forecast {_e(d.run)} · usual = "
              f"{CLIMATOLOGY}{f' / {_e(ref)}' if _against_both(d.watch) else f' (beside it: {_e(ref)})'} · "
              f"P(material conflict) {_f(cd.q4)}</div>{_warnings(d)}")
    body = (f"<div class=panel>{_plot('series', _country_series(d, c, cd, top))}</div>"
            + (f"<h2>On the watch list</h2><div class=panel><table class=cwatch><tr><th class=l>list</th>"
               f"<th class=l>label</th><th>P</th><th>usual</th><th>diff</th><th class=l>phrases</th></tr>{wl_rows}"
               f"</table></div>" if wl_rows else "")
            + f"<h2>Every root code</h2><div class=panel><table class=roots><tr><th class=l>root</th><th>P</th>"
              f"<th>climatology</th><th>{_e(ref)}</th><th>diff</th>"
              f"<th class=l>most likely actor pairs (recent events)</th></tr>"
              f"{''.join(rows)}</table></div>")
    return _page(f"{_name(c)} {d.day}", header, body, depth=2)


def _phrases(r: Any, n: int | None = None, sep: str = " · ") -> str:
    return phrase_text(list(r.phrases)[:n], r.phrase_shares, sep)


# ================================================================ index of days + entry point
def list_days(reports_dir: Path) -> list[dt.date]:
    """Days with a page under ``reports_dir`` (folders named YYYY-MM-DD holding index.html)."""
    out = []
    for p in Path(reports_dir).glob("*/index.html"):
        try:
            out.append(dt.date.fromisoformat(p.parent.name))
        except ValueError:
            continue
    return sorted(out)


def write_index(reports_dir: Path) -> Path:
    """``reports_dir/index.html``: every day page, newest first, with its top rise (from its watchlist.csv)."""
    rows = []
    for day in reversed(list_days(reports_dir)):
        top = ""
        csv = reports_dir / str(day) / "watchlist.csv"
        if csv.exists():
            w = pd.read_csv(csv)
            w = w[w.list == "rises"].head(3)
            top = "; ".join(f"{r.country_name}: {r.description} {r.probability:.2f} vs {r.usual:.2f}"
                            for r in w.itertuples())
        rows.append(f"<tr><td class=l><a href='{day}/index.html'>{day}</a></td><td class=l>{_e(top)}</td></tr>")
    body = ("<div class=panel><table class=days><tr><th class=l>day</th><th class=l>largest rises vs usual</th></tr>"
            + "".join(rows) + "</table></div>")
    path = reports_dir / "index.html"
    path.write_text(_page("GDELT forecasts: all days", "<h1>GDELT event forecasts · all days</h1>", body, 0),
                    encoding="utf-8")
    return path


def build_report(lake: Lake, date: DateLike, cfg: Config | None = None, run: str | None = None,
                 wcfg: WatchlistConfig | None = None) -> Path:
    """Write the day page for the forecasts of ``date`` (and its country pages, the assets, the index); returns it."""
    cfg = cfg or Config()
    day = as_date(date)
    reports_dir = Path(cfg.evaluate.reports_dir)
    d = load_day(lake, day, run, wcfg, window_days=cfg.evaluate.report_window_days, usual=cfg.evaluate.watchlist_usual,
                 frame_cfg=WatchlistConfig.of(cfg.evaluate))
    d.warnings += thin_day_warnings(lake, day, cfg.flow.min_day_share)
    write_assets(reports_dir)
    out = reports_dir / str(day)
    (out / "countries").mkdir(parents=True, exist_ok=True)
    w = d.watch.copy()
    w["phrases"] = [" | ".join(p) for p in w.phrases]
    w["phrase_shares"] = [" | ".join(f"{x:.2f}" for x in p) for p in w.phrase_shares]
    w.to_csv(out / "watchlist.csv", index=False)
    for c, cd in group_countries(d).items():
        (out / "countries" / f"{c}.html").write_text(country_page(d, c, cd), encoding="utf-8")
    path = out / "index.html"
    path.write_text(day_page(lake, d, cfg, reports_dir), encoding="utf-8")
    write_index(reports_dir)
    return path
