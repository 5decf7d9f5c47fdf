"""The morning page: what is unusual tomorrow, where, and how well we did.

``build_report(lake, D)`` writes, under ``cfg.evaluate.reports_dir``::

    index.html                  the index of days (every day page found there)
    assets/plotly-geo.min.js    Plotly.js (geo bundle: choropleth + scatter), once for all pages
    assets/world.js             the country shapes (see pipeline/scoring/geo.py), once for all pages
    assets/report.css, report.js
    D/index.html                the day page
    D/watchlist.csv             the watch list rows the page shows (pipeline/scoring/watchlist.py)
    D/countries/<FIPS>.html     a page per forecast country

The day page, top to bottom: the watch list (rises and falls against the
usual, overall and in conflict) beside a world map of tomorrow (P(material
conflict, QuadClass 4) or the largest rise per country, switchable); the track
record (daily Brier skill score against climatology of the model and the
baselines over the last ``report_window_days`` days from the ``scores`` table,
with a 95 % country-bootstrap interval for the page's run, the window's skill
table and reliability diagrams with counts per bin, from
:func:`pipeline.scoring.evaluate.evaluate`); every country with a link to its
page; the diagnostics, collapsed. Every number comes from a lake table
(``forecasts``, ``futures``, ``scores``, ``country``). Charts are Plotly.js
figures written as JSON; the page opens from disk with no network.
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
from pipeline.cameo.labels import label_space, load_outcomes
from pipeline.core.config import Config
from pipeline.core.lake import DateLike, Lake, as_date
from pipeline.scoring import geo
from pipeline.scoring.evaluate import CLIMATOLOGY, Evaluation, bootstrap_bss, evaluate
from pipeline.scoring.watchlist import WatchlistConfig, departures, watchlist

RESOURCES = Path(__file__).resolve().parent / "resources"
ASSETS = ("plotly-geo.min.js", "plotly.LICENSE", "world-atlas.LICENSE")
RISE, FALL = "#c2401f", "#2b6cb0"
HISTORY_DAYS = 14

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
td.l,th.l{text-align:left} td.ph{color:#4b5563;font-size:11.5px;text-align:left;max-width:260px}
.rise{color:#c2401f;font-weight:600} .fall{color:#2b6cb0;font-weight:600}
.pbar{display:inline-block;position:relative;width:70px;height:9px;background:#eef0f3;border-radius:2px;vertical-align:middle}
.pbar i{position:absolute;top:0;bottom:0;left:0;background:#9ca3af;border-radius:2px}
.pbar b{position:absolute;top:-2px;bottom:-2px;width:3px;background:#111827}
.item{display:grid;grid-template-columns:1fr auto;gap:2px 8px;padding:6px 0;border-bottom:1px solid #eef0f3;font-size:13px}
.item .what{font-weight:600} .item .num{text-align:right;white-space:nowrap} .item .sub{grid-column:1/3;color:#6b7280;font-size:11.5px}
.tag{display:inline-block;font-size:10.5px;padding:0 5px;border-radius:8px;background:#fde8e4;color:#9b2c14;margin-left:4px}
.filters{font-size:12.5px;margin:6px 0} .filters input,.filters select{font-size:12.5px;padding:2px 4px}
details{margin-top:22px} summary{cursor:pointer;font-weight:600} .note{font-size:12.5px;margin:4px 0;color:#4b5563}
.scroll{max-height:520px;overflow:auto} a{color:#1d4ed8;text-decoration:none} a:hover{text-decoration:underline}
.chart{width:100%;height:300px} #map{height:430px}
"""

JS = """
// Filters for the watch list and country tables: text (country name/code) and list/root selectors.
function applyFilters(){
  const q=(document.getElementById('q')||{value:''}).value.trim().toLowerCase();
  const root=(document.getElementById('root')||{value:''}).value;
  document.querySelectorAll('tr[data-country]').forEach(tr=>{
    const okq=!q||tr.dataset.country.toLowerCase().includes(q)||(tr.dataset.name||'').toLowerCase().includes(q);
    const okr=!root||tr.dataset.root===root||(root==='conflict'&&tr.dataset.conflict==='1');
    tr.style.display=(okq&&okr)?'':'none';
  });
}
function drawFigures(){
  document.querySelectorAll('script[type="application/json"][data-plot]').forEach(s=>{
    const fig=JSON.parse(s.textContent);
    Plotly.newPlot(s.dataset.plot, fig.data, fig.layout, Object.assign({displaylogo:false,responsive:true}, fig.config||{}));
  });
}
document.addEventListener('DOMContentLoaded',()=>{
  drawFigures();
  document.querySelectorAll('#q,#root').forEach(e=>e.addEventListener('input',applyFilters));
});
"""


# ================================================================ small helpers
def _e(x: Any) -> str:
    return html.escape(str(x))


def _name(fips: str | None) -> str:
    return (cameo.country_name(fips) or "—") if fips else "—"


def _f(x: float, fmt: str = "{:.2f}") -> str:
    return "" if x is None or (isinstance(x, float) and not np.isfinite(x)) else fmt.format(x)


def _ratio(r: float) -> str:
    return f"×{r:.1f}" if r >= 1 else f"×{r:.2f}"


def _pbar(p: float, usual: float) -> str:
    """A 0–1 bar: grey up to the usual value, a black tick at the forecast."""
    return (f"<span class=pbar title='usual {usual:.2f}, forecast {p:.2f}'><i style='width:{usual * 100:.0f}%'></i>"
            f"<b style='left:calc({p * 100:.0f}% - 1px)'></b></span>")


def _plot(div: str, fig: dict[str, Any], cls: str = "chart") -> str:
    """A div and its Plotly figure as inline JSON (drawn by assets/report.js)."""
    blob = json.dumps(fig, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    return f"<div id='{div}' class='{cls}'></div><script type='application/json' data-plot='{div}'>{blob}</script>"


def _page(title: str, header: str, body: str, depth: int) -> str:
    up = "../" * depth
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{_e(title)}</title>"
            f"<meta name=viewport content='width=device-width,initial-scale=1'>"
            f"<link rel=stylesheet href='{up}assets/report.css'>"
            f"<script src='{up}assets/plotly-geo.min.js'></script><script src='{up}assets/world.js'></script>"
            f"<script src='{up}assets/report.js'></script></head><body><header>{header}</header>"
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
    notes: list[str] = field(default_factory=list)


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
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["country", "code", "p", "date", "run"])


def _happened(lake: Lake, first: dt.date, last: dt.date) -> dict[tuple[dt.date, str], set[str]]:
    try:
        o = load_outcomes(lake, first, last)
    except FileNotFoundError:
        return {}
    roots = label_space()["root"].codes
    out = {}
    for di, d in enumerate(o.days):
        for ci, c in enumerate(o.countries):
            out[(d, c)] = {roots[j] for j in np.nonzero(o.y["root"][di, ci])[0]}
    return out


def load_day(lake: Lake, day: DateLike, run: str | None = None, wcfg: WatchlistConfig | None = None,
             history_days: int = HISTORY_DAYS) -> DayData:
    day = as_date(day)
    wcfg = wcfg or WatchlistConfig()
    frame = departures(lake, day, run, wcfg)
    run = str(frame.model_run.iloc[0]) if len(frame) else (run or CLIMATOLOGY)
    watch = watchlist(lake, day, run, wcfg, frame=frame)
    issued = lake.read("forecasts", day, day, columns=["issued_at"], model=run).column(0)
    countries = sorted(set(frame.country), key=lambda c: (_name(c), c))
    ref = str(frame.baseline_run.iloc[0]) if len(frame) else CLIMATOLOGY
    hist = _history(lake, day, [run, CLIMATOLOGY, ref], history_days)
    first = day - dt.timedelta(days=history_days - 1)
    happened = _happened(lake, first, day)
    notes = []
    if not lake.has_partition("country", day):
        notes.append(f"{day} is not over (no 'country' partition yet): forecast only, no outcomes.")
    return DayData(day, run, str(max(issued.to_pylist())) if len(issued) else "", frame, watch, countries, hist,
                   happened, notes)


# ================================================================ day page sections
def _top_items(watch: pd.DataFrame, n: int = 8) -> str:
    """The first screen: the few largest departures (rises and conflict rises first), as a compact list."""
    g = watch[watch.list.isin(["rises", "conflict rises", "falls"])].drop_duplicates(["country", "level", "code"])
    g = g.assign(_o=g.list.map({"conflict rises": 0, "rises": 1, "falls": 2}))
    g = pd.concat([g[g.list != "falls"].sort_values("difference", ascending=False).head(n - 2),
                   g[g.list == "falls"].head(2)])
    if g.empty:
        return "<p class=meta>Nothing departs from the usual range tomorrow.</p>"
    rows = []
    for r in g.itertuples():
        cls = "rise" if r.direction == "rise" else "fall"
        tag = "<span class=tag>conflict</span>" if r.conflict else ""
        ph = "; ".join(r.phrases[:2]) if len(r.phrases) else ""
        sub = " · ".join(x for x in (_e(r.actors.split(';')[0]) if r.actors else "", _e(ph)) if x)
        rows.append(f"<div class=item data-row='{_e(r.country)}|{_e(r.level)}|{_e(r.code)}'>"
                    f"<div class=what><a href='countries/{_e(r.country)}.html'>{_e(r.country_name)}</a> · "
                    f"{_e(r.description)}{tag}</div>"
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
            f"<tr data-country='{_e(r.country)}' data-name='{_e(r.country_name)}' data-root='{_e(r.code[:2])}' "
            f"data-conflict='{int(r.conflict)}' data-level='{_e(r.level)}' data-code='{_e(r.code)}'>"
            f"<td>{r.rank}</td><td class=l><a href='countries/{_e(r.country)}.html'>{_e(r.country_name)}</a></td>"
            f"<td class=l>{_e(r.code)} {_e(r.description)} <span class=meta>{_e(r.level)}</span></td>"
            f"<td class='p'>{r.probability:.2f}</td><td class='u'>{r.usual:.2f}</td>"
            f"<td>{_pbar(r.probability, r.usual)}</td><td class='d {cls}'>{r.difference:+.2f}</td>"
            f"<td class='r'>{_ratio(r.ratio)}</td>"
            f"<td class=meta>{r.climatology:.2f} / {r.baseline:.2f}</td>"
            f"<td class=ph>{_e(r.actors)}{'<br>' if r.actors and len(r.phrases) else ''}"
            f"{_e(' · '.join(r.phrases))}</td></tr>")
    return (f"<h3>{_e(name.capitalize())}</h3><table class=watch data-list='{_e(name)}'><tr><th>#</th>"
            "<th class=l>country</th><th class=l>label</th><th>P</th><th>usual</th><th></th><th>diff</th>"
            "<th>ratio</th><th>clim / base</th><th class=l>actors · phrases from the futures</th></tr>"
            + "".join(rows) + "</table>")


def _map_figure(d: DayData) -> tuple[dict[str, Any], dict[str, float], dict[str, float]]:
    """Choropleth traces: every shape (grey), P(QuadClass 4) and the largest rise per country."""
    f = d.frame
    q4 = f[(f.level == "quad") & (f.code == "4")].set_index("country").probability.to_dict()
    rises = f[f.direction == "rise"].sort_values("difference", ascending=False).drop_duplicates("country")
    rise = {c: 0.0 for c in d.countries} | rises.set_index("country").difference.to_dict()
    rise_label = rises.set_index("country").description.to_dict()
    mv_q4, mv_rise = geo.map_values(q4), geo.map_values(rise)
    all_keys = [s.key for s in geo.shapes()]

    def trace(mv: geo.MapValues, title: str, scale: str, zmax: float, visible: bool, label: dict[str, str]):
        return {"type": "choropleth", "geojson": None, "featureidkey": "id", "locations": mv.keys, "z": mv.values,
                "customdata": [[c, _name(c), label.get(c, "")] for c in mv.source], "zmin": 0, "zmax": zmax,
                "colorscale": scale, "marker": {"line": {"color": "#ffffff", "width": 0.4}}, "visible": visible,
                "colorbar": {"title": {"text": title, "side": "right"}, "thickness": 10, "len": 0.8},
                "hovertemplate": "%{customdata[1]} (%{customdata[0]})<br>" + title + " %{z:.2f}"
                                 "<br>%{customdata[2]}<extra></extra>", "name": title}

    data = [
        {"type": "choropleth", "geojson": None, "featureidkey": "id", "locations": all_keys, "z": [0] * len(all_keys),
         "colorscale": [[0, "#e5e7eb"], [1, "#e5e7eb"]], "showscale": False, "hoverinfo": "skip",
         "marker": {"line": {"color": "#ffffff", "width": 0.4}}, "name": "no forecast"},
        trace(mv_q4, "P(material conflict)", "YlOrRd", 1.0, True, {}),
        trace(mv_rise, "largest rise", "Reds", max([0.05] + mv_rise.values), False, rise_label),
    ]
    layout = {
        "margin": {"l": 0, "r": 0, "t": 0, "b": 0}, "paper_bgcolor": "#ffffff", "height": 430,
        "geo": {"projection": {"type": "natural earth"}, "showframe": False, "showcoastlines": False,
                "showland": False, "showcountries": False, "showocean": False, "showlakes": False,
                "lataxis": {"range": [-57, 84]}, "bgcolor": "#ffffff"},
        "updatemenus": [{"type": "buttons", "direction": "right", "x": 0.01, "y": 0.02, "xanchor": "left",
                         "yanchor": "bottom", "showactive": True, "font": {"size": 11}, "buttons": [
                             {"label": "P(material conflict)", "method": "restyle",
                              "args": [{"visible": [True, True, False]}]},
                             {"label": "largest rise vs usual", "method": "restyle",
                              "args": [{"visible": [True, False, True]}]}]}],
    }
    return {"data": data, "layout": layout, "config": {"scrollZoom": False}}, mv_q4.off_map, mv_rise.off_map


def _map_html(d: DayData) -> str:
    fig, off_q4, _ = _map_figure(d)
    blob = json.dumps(fig, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    # the shapes come from assets/world.js (window.WORLD), shared by every day, not copied into each page
    draw = ("<script>document.addEventListener('DOMContentLoaded',()=>{const f=JSON.parse("
            "document.getElementById('map-fig').textContent);f.data.forEach(t=>t.geojson=window.WORLD);"
            "Plotly.newPlot('map',f.data,f.layout,{displaylogo:false,responsive:true,scrollZoom:false}).then(()=>{"
            "document.getElementById('map').on('plotly_click',ev=>{const p=ev.points&&ev.points[0];"
            "if(p&&p.customdata&&p.customdata[0])window.location.href='countries/'+p.customdata[0]+'.html';});});});"
            "</script>")
    off = ", ".join(f"{_e(_name(c))} {v:.2f}" for c, v in sorted(off_q4.items(), key=lambda x: -x[1]))
    off_html = (f"<div class=meta>Too small for the 1:110m map ({len(off_q4)}), P(material conflict): {off}</div>"
                if off_q4 else "")
    return (f"<div id=map></div><script type='application/json' id='map-fig'>{blob}</script>{draw}"
            f"<div class=meta>Click a country for its page. Natural Earth 1:110m shapes, FIPS 10-4 keyed.</div>"
            f"{off_html}")


def _daily_skill(lake: Lake, first: dt.date, last: dt.date, level: str, runs: list[str], main: str,
                 n_boot: int = 500) -> pd.DataFrame:
    """Per day and run: BSS = 1 − Σ_c Brier / Σ_c Brier(climatology) over the countries both scored (``scores``).

    The page's run also gets a 95 % interval by resampling countries (:func:`bootstrap_bss`).
    """
    parts = []
    for r in dict.fromkeys(runs + [CLIMATOLOGY]):
        try:
            s = lake.read("scores", first, last, columns=["country", "level", "brier", "date"], model=r).to_pandas()
        except FileNotFoundError:
            continue
        s = s[s.level == level]
        s["run"] = r
        parts.append(s)
    if not parts:
        return pd.DataFrame(columns=["date", "run", "bss", "lo", "hi", "n"])
    s = pd.concat(parts, ignore_index=True)
    ref = s[s.run == CLIMATOLOGY][["date", "country", "brier"]].rename(columns={"brier": "ref"})
    rows = []
    for (d, r), g in s[s.run != CLIMATOLOGY].merge(ref, on=["date", "country"]).groupby(["date", "run"]):
        if g.ref.sum() <= 0:
            continue
        bss = 1 - g.brier.sum() / g.ref.sum()
        lo = hi = np.nan
        if r == main and len(g) > 2:
            lo, hi, _ = bootstrap_bss(g.brier.to_numpy(), g.ref.to_numpy(), g.country.to_numpy(), n_boot=n_boot)
        rows.append({"date": str(d), "run": r, "bss": float(bss), "lo": lo, "hi": hi, "n": len(g)})
    return pd.DataFrame(rows)


def _skill_figure(sk: pd.DataFrame, main: str, level: str) -> dict[str, Any]:
    data = []
    m = sk[sk.run == main].sort_values("date")
    if m.lo.notna().any():
        data.append({"type": "scatter", "x": list(m.date) + list(m.date[::-1]),
                     "y": [float(v) for v in m.hi] + [float(v) for v in m.lo[::-1]], "fill": "toself",
                     "fillcolor": "rgba(194,64,31,0.15)", "line": {"width": 0}, "hoverinfo": "skip",
                     "name": f"{main} 95% interval"})
    for r, g in sk.sort_values("date").groupby("run", sort=False):
        data.append({"type": "scatter", "mode": "lines+markers", "x": list(g.date), "y": [float(v) for v in g.bss],
                     "name": r, "line": {"width": 3 if r == main else 1.3, "color": RISE if r == main else None},
                     "customdata": [int(n) for n in g.n],
                     "hovertemplate": r + "<br>%{x}: BSS %{y:.3f} (%{customdata} countries)<extra></extra>"})
    data = [{k: v for k, v in t.items() if v is not None} for t in data]
    for t in data:
        if "line" in t:
            t["line"] = {k: v for k, v in t["line"].items() if v is not None}
    return {"data": data, "layout": {
        "title": {"text": f"Daily BSS vs climatology · {level} level", "font": {"size": 13}},
        "margin": {"l": 45, "r": 10, "t": 30, "b": 35}, "height": 300, "legend": {"font": {"size": 10}},
        "yaxis": {"zeroline": True, "zerolinecolor": "#9ca3af", "title": {"text": "BSS"}},
        "xaxis": {"type": "category"}, "plot_bgcolor": "#ffffff"}}


def _reliability_figure(ev: Evaluation, level: str, runs: list[str]) -> dict[str, Any]:
    rel = ev.reliability[(ev.reliability.level == level) & (ev.reliability.run.isin(runs))]
    data: list[dict[str, Any]] = [{"type": "scatter", "mode": "lines", "x": [0, 1], "y": [0, 1], "name": "perfect",
                                   "line": {"dash": "dash", "color": "#9ca3af", "width": 1}, "hoverinfo": "skip"}]
    for r, g in rel.groupby("run", sort=False):
        g = g[g["count"] > 0]
        size = (6 + 14 * np.sqrt(g["count"] / max(1, rel["count"].max()))).round(1)
        data.append({"type": "scatter", "mode": "lines+markers+text" if r == runs[0] else "lines+markers",
                     "x": [float(v) for v in g.mean_p], "y": [float(v) for v in g.freq], "name": r,
                     "marker": {"size": [float(v) for v in size]}, "customdata": [int(v) for v in g["count"]],
                     "text": [f"{int(v)}" for v in g["count"]], "textposition": "top left",
                     "textfont": {"size": 9, "color": "#6b7280"},
                     "hovertemplate": r + "<br>mean p %{x:.2f} → observed %{y:.2f}<br>%{customdata} forecasts"
                                          "<extra></extra>"})
    return {"data": data, "layout": {
        "title": {"text": f"Reliability · {level} level · {ev.start}…{ev.end} (labels = forecasts per bin)",
                  "font": {"size": 13}},
        "margin": {"l": 45, "r": 10, "t": 30, "b": 40}, "height": 320, "legend": {"font": {"size": 10}},
        "xaxis": {"range": [0, 1], "title": {"text": "forecast probability"}},
        "yaxis": {"range": [0, 1.05], "title": {"text": "observed frequency"}}, "plot_bgcolor": "#ffffff"}}


def _skill_table(ev: Evaluation, levels: tuple[str, ...] = ("root", "event", "rare")) -> str:
    cols = [("brier", "Brier", "{:.4f}"), ("bss_climatology", "BSS clim", "{:+.3f}"),
            ("bss_best_baseline", "BSS best", "{:+.3f}"), ("bss_best_lo", "95% low", "{:+.3f}"),
            ("bss_best_hi", "95% high", "{:+.3f}"), ("ece", "ECE", "{:.4f}"), ("glean_f1_w", "F1w", "{:.3f}"),
            ("rougeL", "ROUGE-L", "{:.3f}")]
    out = []
    for lv in levels:
        s = ev.summary[(ev.summary.group == "all") & (ev.summary.level == lv)]
        if s.empty:
            continue
        body = "".join(
            f"<tr data-run='{_e(r.run)}'><td class=l>{_e(r.run)}</td>"
            + "".join(f"<td>{'' if pd.isna(getattr(r, k)) else f.format(getattr(r, k))}</td>" for k, _, f in cols)
            + "</tr>" for r in s.sort_values("brier").itertuples())
        out.append(f"<h3>{lv} level · {int(s.n_country_days.iloc[0])} country-days · best baseline "
                   f"{_e(s.best_baseline.iloc[0])}</h3><table class=skill data-level='{lv}'><tr><th class=l>run</th>"
                   + "".join(f"<th>{h}</th>" for _, h, _ in cols) + f"</tr>{body}</table>")
    return "".join(out)


def _track_record(lake: Lake, d: DayData, cfg: Config) -> tuple[str, list[str]]:
    last = d.day if lake.has_partition("country", d.day) else d.day - dt.timedelta(days=1)
    first = last - dt.timedelta(days=cfg.evaluate.report_window_days - 1)
    notes: list[str] = []
    runs = sorted({p.name.split("=", 1)[1] for p in lake.table_dir("scores").glob("model=*")}
                  if lake.table_dir("scores").exists() else set())
    parts = []
    for lv in ("root", "event"):
        sk = _daily_skill(lake, first, last, lv, runs, d.run)
        if not sk.empty:
            parts.append(_plot(f"skill-{lv}", _skill_figure(sk, d.run, lv)))
    daily = (f"<div class=two>{''.join(parts)}</div>" if parts else
             "<p class=meta>No scored days in the window yet (the daily flow scores each day once it is over).</p>")
    try:
        ev = evaluate(lake, first, last, cfg=cfg.evaluate, write=False)
    except FileNotFoundError as exc:
        return daily + f"<p class=meta>{_e(exc)}</p>", [str(exc)]
    notes += ev.notes
    if ev.summary.empty:
        return daily + "<p class=meta>No earlier forecasts with outcomes in the window: nothing to score yet.</p>", notes
    ref = str(d.frame.baseline_run.iloc[0]) if len(d.frame) else CLIMATOLOGY
    rel_runs = [r for r in dict.fromkeys([d.run, ref, CLIMATOLOGY]) if r in set(ev.reliability.run)]
    rel = "".join(_plot(f"rel-{lv}", _reliability_figure(ev, lv, rel_runs)) for lv in ("root", "event"))
    return (f"{daily}<p class=meta>Window {ev.start} … {ev.end}. BSS = 1 − Brier / Brier(reference); intervals: "
            f"95 % bootstrap ({ev.bootstrap_unit}s resampled) against the best baseline; the daily band resamples "
            f"countries.</p><div class=two><div>{_skill_table(ev)}</div><div>{rel}</div></div>"), notes


def _countries_table(d: DayData) -> str:
    f = d.frame
    q4 = f[(f.level == "quad") & (f.code == "4")].set_index("country").probability
    rises = f[f.direction == "rise"].sort_values("difference", ascending=False).drop_duplicates("country")
    rises = rises.set_index("country")
    rows = []
    for c in d.countries:
        r = rises.loc[c] if c in rises.index else None
        top = f"{_e(r.description)} {r.probability:.2f} vs {r.usual:.2f}" if r is not None else ""
        rows.append(f"<tr data-country='{_e(c)}' data-name='{_e(_name(c))}'><td class=l>"
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


def day_page(lake: Lake, d: DayData, cfg: Config, reports_dir: Path) -> str:
    track, notes = _track_record(lake, d, cfg)
    ref = str(d.frame.baseline_run.iloc[0]) if len(d.frame) else CLIMATOLOGY
    roots = label_space()["root"].codes
    root_opts = "".join(f"<option value='{c}'>{c} {_e(label_space().description[c])}</option>" for c in roots)
    header = (f"{_nav(reports_dir, d.day, 1)}<h1>Tomorrow, {d.day}: what is unusual, and where</h1>"
              f"<div class=meta>forecast <b>{_e(d.run)}</b> issued {_e(d.issued)} · {len(d.countries)} countries · "
              f"usual = {CLIMATOLOGY} and {_e(ref)} · P = probability that at least one such event is reported "
              f"in the country that day (GDELT, located by ActionGeo)</div>")
    wl = "".join(_watch_table(d.watch, n) for n in ("rises", "falls", "conflict rises", "conflict falls"))
    body = f"""
<div class=top><section class=panel id=unusual><h2 style="margin-top:2px">Most unusual tomorrow</h2>
<div class=meta>forecast vs usual (the outer of climatology and {_e(ref)}); <span class=rise>rises</span>
and <span class=fall>falls</span></div>{_top_items(d.watch)}
<div class=meta style="margin-top:6px"><a href='#watchlist'>full watch list ↓</a> · <a href='watchlist.csv'>watchlist.csv</a>
· <code>gdelt-forecast inspect watchlist --date {d.day}</code></div></section>
<section class=panel id=worldmap>{_map_html(d)}</section></div>
<h2 id=watchlist>Watch list</h2>
<div class=filters>filter: <input id=q placeholder="country"> <select id=root><option value="">all labels</option>
<option value="conflict">conflict (roots 13–20, QuadClass 3–4)</option>{root_opts}</select>
<span class=meta>P = forecast; usual = the reference it departs from; bar: grey = usual, tick = forecast;
ratio = (P + 0.01) / (usual + 0.01); clim / base = climatology / {_e(ref)}</span></div>
<div class=two><div class=panel>{_watch_table(d.watch, 'rises')}</div><div class=panel>{_watch_table(d.watch, 'falls')}</div>
<div class=panel>{_watch_table(d.watch, 'conflict rises')}</div><div class=panel>{_watch_table(d.watch, 'conflict falls')}</div></div>
<h2 id=track>Track record</h2><div class=panel>{track}</div>
<h2 id=countries>Countries</h2><div class=panel>{_countries_table(d)}</div>
<details id=diagnostics><summary>Diagnostics ({len(d.notes) + len(notes)} notes)</summary>
{''.join(f'<div class=note>{_e(n)}</div>' for n in d.notes + notes)}
<div class=note>watch-list lists hold {len(wl) and len(d.watch)} rows; {int((d.frame.direction != '').sum())} of
{len(d.frame)} (country, label) forecasts lie outside their usual range.</div></details>"""
    return _page(f"GDELT forecast {d.day}", header, body, depth=1)


# ================================================================ country pages
def _country_series(d: DayData, c: str, codes: list[str], ref: str) -> dict[str, Any]:
    h = d.history[(d.history.country == c) & (d.history.code.isin(codes))]
    days = [str(d.day - dt.timedelta(days=i)) for i in range(HISTORY_DAYS - 1, -1, -1)]
    palette = ["#c2401f", "#2b6cb0", "#2f855a", "#805ad5", "#b7791f"]
    data = []
    desc = label_space().description
    for k, code in enumerate(codes):
        col = palette[k % len(palette)]
        for run, dash, width in ((d.run, "solid", 2.2), (CLIMATOLOGY, "dot", 1.2)):
            g = h[(h.run == run) & (h.code == code)]
            series = dict(zip(g.date.astype(str), g.p))
            xs = [x for x in days if x in series]
            if not xs:
                continue
            data.append({"type": "scatter", "mode": "lines+markers" if run == d.run else "lines", "x": xs,
                         "y": [float(series[x]) for x in xs], "legendgroup": code,
                         "name": f"{code} {desc[code][:28]}" + ("" if run == d.run else " · climatology"),
                         "line": {"color": col, "dash": dash, "width": width},
                         "hovertemplate": f"{code} {run}<br>%{{x}}: P %{{y:.2f}}<extra></extra>"})
        g = h[(h.run == d.run) & (h.code == code)]
        hit = [(str(x), float(p)) for x, p in zip(g.date, g.p) if code in d.happened.get((x, c), set())]
        if hit:
            data.append({"type": "scatter", "mode": "markers", "x": [x for x, _ in hit], "y": [p for _, p in hit],
                         "legendgroup": code, "showlegend": False, "name": f"{code} happened",
                         "marker": {"symbol": "star", "size": 11, "color": col, "line": {"color": "#111", "width": 1}},
                         "hovertemplate": f"{code} happened on %{{x}}<extra></extra>"})
    return {"data": data, "layout": {
        "title": {"text": f"Last {HISTORY_DAYS} days: forecast ({d.run}, solid) vs climatology (dotted); "
                          f"★ = it happened", "font": {"size": 13}},
        "margin": {"l": 45, "r": 10, "t": 30, "b": 40}, "height": 340, "yaxis": {"range": [0, 1.05], "title":
        {"text": "P"}}, "xaxis": {"type": "category", "categoryorder": "array", "categoryarray": days},
        "legend": {"font": {"size": 10}}, "plot_bgcolor": "#ffffff"}}


def country_page(d: DayData, c: str, reports_dir: Path) -> str:
    f = d.frame[d.frame.country == c]
    ref = str(f.baseline_run.iloc[0]) if len(f) else CLIMATOLOGY
    roots = f[f.level == "root"].set_index("code")
    desc = label_space().description
    top = list(roots.probability.sort_values(ascending=False).index[:4])
    rising = f[(f.level == "root") & (f.direction == "rise")].sort_values("difference", ascending=False)
    top += [x for x in rising.code[:1] if x not in top]
    rows = []
    for code in label_space()["root"].codes:
        if code in roots.index:
            r = roots.loc[code]
            p, u_c, u_b, dif, direction = r.probability, r.climatology, r.baseline, r.difference, r.direction
            pairs = _pairs(r.actor_pairs)
        else:  # sparse: no row = probability 0 for the run (usual unknown here: not in the run's rows)
            p, u_c, u_b, dif, direction, pairs = 0.0, np.nan, np.nan, 0.0, "", ""
        cls = {"rise": "rise", "fall": "fall"}.get(direction, "")
        rows.append(f"<tr data-code='{code}'><td class=l>{code} {_e(desc[code])}</td><td class=p>{p:.2f}</td>"
                    f"<td>{_f(u_c)}</td><td>{_f(u_b)}</td><td class='{cls}'>{dif:+.2f}</td>"
                    f"<td class=ph>{_e(pairs)}</td></tr>")
    wl = d.watch[d.watch.country == c]
    wl_rows = "".join(f"<tr><td class=l>{_e(r.list)} #{r.rank}</td><td class=l>{_e(r.code)} {_e(r.description)}</td>"
                      f"<td>{r.probability:.2f}</td><td>{r.usual:.2f}</td><td>{r.difference:+.2f}</td>"
                      f"<td class=ph>{_e(' · '.join(r.phrases))}</td></tr>" for r in wl.itertuples())
    q4 = f[(f.level == "quad") & (f.code == "4")].probability
    header = (f"<nav><a href='../index.html'>← {d.day}</a><a href='../../index.html'>all days</a></nav>"
              f"<h1>{_e(_name(c))} ({_e(c)}) · {d.day}</h1><div class=meta>forecast {_e(d.run)} · usual = "
              f"{CLIMATOLOGY} / {_e(ref)} · P(material conflict) {_f(float(q4.iloc[0]) if len(q4) else np.nan)}</div>")
    body = (f"<div class=panel>{_plot('series', _country_series(d, c, top, ref))}</div>"
            + (f"<h2>On the watch list</h2><div class=panel><table class=cwatch><tr><th class=l>list</th>"
               f"<th class=l>label</th><th>P</th><th>usual</th><th>diff</th><th class=l>phrases</th></tr>{wl_rows}"
               f"</table></div>" if wl_rows else "")
            + f"<h2>Every root code</h2><div class=panel><table class=roots><tr><th class=l>root</th><th>P</th>"
              f"<th>climatology</th><th>{_e(ref)}</th><th>diff</th><th class=l>most likely actor pairs</th></tr>"
              f"{''.join(rows)}</table></div>")
    return _page(f"{_name(c)} {d.day}", header, body, depth=2)


def _pairs(pairs: Any) -> str:
    if pairs is None or len(pairs) == 0:
        return ""
    return "; ".join(("(no actor countries)" if not p["actor1"] and not p["actor2"] else
                      f"{_name(p['actor1'])} → {_name(p['actor2'])}") + f" ({p['share']:.0%})"
                     for p in list(pairs)[:3])


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
    d = load_day(lake, day, run, wcfg)
    write_assets(reports_dir)
    out = reports_dir / str(day)
    (out / "countries").mkdir(parents=True, exist_ok=True)
    w = d.watch.copy()
    w["phrases"] = [" | ".join(p) for p in w.phrases]
    w.to_csv(out / "watchlist.csv", index=False)
    for c in d.countries:
        (out / "countries" / f"{c}.html").write_text(country_page(d, c, reports_dir), encoding="utf-8")
    path = out / "index.html"
    path.write_text(day_page(lake, d, cfg, reports_dir), encoding="utf-8")
    write_index(reports_dir)
    return path
