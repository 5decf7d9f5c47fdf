"""The morning page: ``reports/<date>/index.html``, one self-contained HTML file.

Sections: (1) per country, the day's most likely events with probabilities and
actor-country pairs, marked against what happened when the day is over;
(2) a root-code heat map (forecast probability per country × root code, dots
where the root code occurred); (3) the skill table, model vs baselines, over
the ``report_window_days`` days before the date that have outcomes; (4) the
reliability diagram. Figures are matplotlib (Agg) PNGs, written beside the
page and embedded in it as base64, so the page can be mailed as one file.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.cameo import codes as cameo
from pipeline.core.config import Config
from pipeline.scoring.evaluate import CLIMATOLOGY, Evaluation, evaluate, forecast_runs
from pipeline.cameo.labels import label_space, load_outcomes
from pipeline.core.lake import DateLike, Lake, as_date

CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px auto;max-width:1150px;color:#222}
h1{font-size:24px;margin-bottom:4px} h2{font-size:19px;border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:32px}
.meta{color:#666;font-size:13px} table{border-collapse:collapse;font-size:13px;margin:8px 0}
th,td{padding:3px 8px;border-bottom:1px solid #eee;text-align:right} th{background:#f5f5f5}
td.l,th.l{text-align:left} .hit{color:#0a7d28;font-weight:600} .miss{color:#999}
.bar{display:inline-block;height:10px;background:#3b75af;vertical-align:middle}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(360px,1fr));gap:14px}
.card{border:1px solid #ddd;border-radius:6px;padding:8px 10px} .card h3{margin:0 0 4px;font-size:15px}
.note{background:#fff8e1;border-left:3px solid #f0b400;padding:6px 10px;font-size:13px}
img{max-width:100%}
"""


def _png(fig: Any, path: Path) -> str:
    """Save ``fig`` to ``path`` and return it as a base64 data URI."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    path.write_bytes(buf.getvalue())
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _name(fips: str | None) -> str:
    return cameo.country_name(fips) or "—" if fips else "—"


def _pairs(pairs: Any) -> str:
    if pairs is None or len(pairs) == 0:
        return ""
    return ", ".join(("(no actor countries)" if not p["actor1"] and not p["actor2"] else
                      f"{html.escape(_name(p['actor1']))} → {html.escape(_name(p['actor2']))}")
                     + f" ({p['share']:.0%})" for p in list(pairs)[:3])


def _primary_run(lake: Lake, day: dt.date, run: str | None) -> str:
    if run:
        if not lake.has_partition("forecasts", day, model=run):
            raise FileNotFoundError(f"report: no forecasts/model={run}/date={day} in {lake.root}; "
                                    f"run `gdelt-forecast forecast --date {day}` first")
        return run
    runs = [r for r in forecast_runs(lake) if lake.has_partition("forecasts", day, model=r)]
    if not runs:
        raise FileNotFoundError(f"report: no forecasts for {day} in {lake.root}; run `gdelt-forecast forecast "
                                f"--date {day}` or `gdelt-forecast baselines --date {day}` first")
    return runs[0] if not runs[0].startswith("baseline-") else (CLIMATOLOGY if CLIMATOLOGY in runs else runs[0])


def _country_cards(fc: pd.DataFrame, happened: dict[str, set[str]] | None, top: int, countries: list[str]) -> str:
    cards = []
    for c in countries:
        g = fc[(fc.country == c) & (fc.level == "event")].sort_values(["probability", "code"], ascending=[False, True])
        roots = fc[(fc.country == c) & (fc.level == "root")].sort_values("probability", ascending=False)
        rows = []
        for r in g.head(top).itertuples():
            mark = ""
            if happened is not None:
                hit = r.code in happened.get(c, set())
                mark = '<span class="hit">✓</span>' if hit else '<span class="miss">·</span>'
            rows.append(f"<tr><td class=l>{html.escape(r.code)}</td><td class=l>{html.escape(str(r.description))}</td>"
                        f"<td><span class=bar style='width:{int(60 * r.probability)}px'></span> {r.probability:.2f}</td>"
                        f"<td class=l>{_pairs(r.actor_pairs)}</td><td>{mark}</td></tr>")
        root_txt = ", ".join(f"{r.code} {r.probability:.2f}" for r in roots.head(5).itertuples())
        outcome = ""
        if happened is not None:
            occ = happened.get(c, set())
            missed = sorted(occ - set(g.head(top).code))
            outcome = (f"<div class=meta>happened: {len(occ)} event codes; "
                       f"not in this list: {html.escape(', '.join(missed[:12]))}{' …' if len(missed) > 12 else ''}</div>")
        cards.append(f"<div class=card><h3>{html.escape(_name(c))} ({c})</h3>"
                     f"<div class=meta>roots: {root_txt}</div>"
                     f"<table><tr><th class=l>code</th><th class=l>event</th><th>P</th><th class=l>actors</th><th></th></tr>"
                     f"{''.join(rows)}</table>{outcome}</div>")
    return "<div class=grid>" + "".join(cards) + "</div>"


def _heatmap(fc: pd.DataFrame, countries: list[str], happened_roots: dict[str, set[str]] | None, path: Path,
             run: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    roots = label_space()["root"].codes
    M = np.zeros((len(countries), len(roots)))
    g = fc[fc.level == "root"]
    ci = {c: i for i, c in enumerate(countries)}
    for r in g.itertuples():
        if r.country in ci:
            M[ci[r.country], roots.index(r.code)] = r.probability
    fig, ax = plt.subplots(figsize=(9, 0.28 * len(countries) + 1.5))
    im = ax.imshow(M, vmin=0, vmax=1, cmap="Blues", aspect="auto")
    if happened_roots is not None:
        ys, xs = zip(*[(ci[c], roots.index(r)) for c in countries for r in happened_roots.get(c, set())
                       if r in roots]) or ((), ())
        ax.scatter(xs, ys, s=10, c="#d62728", label="occurred")
        ax.legend(loc="upper right", bbox_to_anchor=(1.0, 1.12), fontsize=8)
    ax.set_xticks(range(len(roots)), [f"{r} {label_space().description[r][:14].lower()}" for r in roots],
                  fontsize=7, rotation=60, ha="right")
    ax.set_yticks(range(len(countries)), [_name(c) for c in countries], fontsize=7)
    ax.set_title(f"P(root code occurs) · {run}", fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.03)
    return _png(fig, path)


def _reliability_plot(ev: Evaluation, path: Path, level: str = "root") -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rel = ev.reliability[ev.reliability.level == level]
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.plot([0, 1], [0, 1], color="#999", lw=1, ls="--", label="perfect")
    for run, g in rel.groupby("run", sort=False):
        g = g[g["count"] > 0]
        ax.plot(g.mean_p, g.freq, marker="o", ms=3, lw=1.3, label=run)
    ax.set_xlabel("forecast probability")
    ax.set_ylabel("observed frequency")
    ax.set_title(f"Reliability · {level} level · {ev.start}…{ev.end}", fontsize=10)
    ax.legend(fontsize=7)
    return _png(fig, path)


def _skill_html(ev: Evaluation) -> str:
    out = []
    cols = [("brier", "Brier", "{:.4f}"), ("bss_climatology", "BSS clim", "{:+.3f}"),
            ("bss_best_baseline", "BSS best", "{:+.3f}"), ("bss_best_lo", "95% low", "{:+.3f}"),
            ("bss_best_hi", "95% high", "{:+.3f}"), ("log_loss", "log loss", "{:.3f}"),
            ("ece", "ECE", "{:.4f}"), ("glean_f1_w", "F1w", "{:.3f}"), ("glean_f2_w", "F2w", "{:.3f}"),
            ("glean_hamming", "Hamming", "{:.4f}"), ("mirai_f1", "MIRAI F1", "{:.3f}"), ("rougeL", "ROUGE-L", "{:.3f}")]
    for group in ("all", "busy", "small"):
        for lv in ("root", "base", "rare", "quad"):
            s = ev.summary[(ev.summary.group == group) & (ev.summary.level == lv)]
            if s.empty:
                continue
            head = "".join(f"<th>{h}</th>" for _, h, _ in cols)
            body = []
            for r in s.sort_values("brier").itertuples():
                cells = "".join(f"<td>{'' if pd.isna(getattr(r, k)) else f.format(getattr(r, k))}</td>"
                                for k, _, f in cols)
                body.append(f"<tr><td class=l>{html.escape(r.run)}</td>{cells}</tr>")
            out.append(f"<h3>{group} countries · {lv} level · {int(s.n_country_days.iloc[0])} country-days</h3>"
                       f"<table><tr><th class=l>run</th>{head}</tr>{''.join(body)}</table>")
    return "".join(out)


def build_report(lake: Lake, date: DateLike, cfg: Config | None = None, run: str | None = None,
                 top_events: int = 8, max_countries: int = 30) -> Path:
    """Write ``<reports_dir>/<date>/index.html`` (and its PNGs) for the forecasts of ``date``; returns the page."""
    cfg = cfg or Config()
    day = as_date(date)
    run = _primary_run(lake, day, run)
    out = Path(cfg.evaluate.reports_dir) / str(day)
    out.mkdir(parents=True, exist_ok=True)
    fc = lake.read("forecasts", day, day, model=run).to_pandas()
    issued = fc.issued_at.max()

    # ---- what happened (only once the day's partition exists)
    happened = happened_roots = None
    notes = []
    if lake.has_partition("country", day):
        o = load_outcomes(lake, day, day)
        ev_codes, root_codes = label_space()["event"].codes, label_space()["root"].codes
        happened = {c: {ev_codes[j] for j in np.nonzero(o.y["event"][0, i])[0]} for i, c in enumerate(o.countries)}
        happened_roots = {c: {root_codes[j] for j in np.nonzero(o.y["root"][0, i])[0]}
                          for i, c in enumerate(o.countries)}
    else:
        notes.append(f"{day} is not over (no 'country' partition yet): forecast only, no outcomes.")

    # ---- countries: the busiest first (by forecast total of root probabilities, then code)
    weight = fc[fc.level == "root"].groupby("country").probability.sum().sort_values(ascending=False)
    countries = list(weight.index[:max_countries])
    cards = _country_cards(fc, happened, top_events, countries)
    heat = _heatmap(fc, countries, happened_roots, out / "roots.png", run)

    # ---- skill over the window before the day (and the day itself when it has outcomes)
    last = day if happened is not None else day - dt.timedelta(days=1)
    first = last - dt.timedelta(days=cfg.evaluate.report_window_days - 1)
    skill_html, rel_img = "<p class=meta>no earlier forecasts with outcomes: nothing to score yet.</p>", ""
    try:
        ev = evaluate(lake, first, last, cfg=cfg.evaluate, write=False)
        if not ev.summary.empty:
            skill_html = _skill_html(ev)
            rel_img = f"<img src='{_reliability_plot(ev, out / 'reliability.png')}' alt='reliability diagram'>"
            notes += ev.notes
    except FileNotFoundError as exc:
        notes.append(str(exc))

    note_html = "".join(f"<div class=note>{html.escape(n)}</div>" for n in notes)
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>GDELT forecast {day}</title>
<style>{CSS}</style></head><body>
<h1>GDELT event forecast for {day}</h1>
<div class=meta>model run <b>{html.escape(run)}</b> · issued {issued} · {fc.country.nunique()} countries ·
{int(fc.n_futures.max())} futures per country · P = probability that at least one event with that code is
reported in the country that day (events added to GDELT on {day}, located by ActionGeo).</div>
{note_html}
<h2>Most likely events per country</h2>
{cards}
<h2>Root codes: forecast vs what happened</h2>
<img src="{heat}" alt="root-code heat map">
<h2>Skill: model vs baselines ({first} … {last})</h2>
<p class=meta>Brier skill score BSS = 1 − Brier / Brier(reference); thresholds for F1/F2/Hamming/MIRAI tuned on
the {cfg.evaluate.val_days} days before the window, for every forecaster alike. "rare" = root codes 14 protest,
18 assault, 19 fight; "busy" = the {cfg.evaluate.top_countries} countries with the most events.</p>
{skill_html}
<h2>Reliability</h2>
{rel_img}
</body></html>"""
    path = out / "index.html"
    path.write_text(page, encoding="utf-8")
    return path
