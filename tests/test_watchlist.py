"""The watch list on a hand-made lake where the answer is known, and the map's FIPS keying."""

from __future__ import annotations

import datetime as dt
import time

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from gdelt_forecast.cli import app
from pipeline.cameo import regions
from pipeline.cameo.labels import LEVELS, label_space
from pipeline.core.lake import Lake
from pipeline.core.schemas import FORECASTS_SCHEMA, FUTURES_SCHEMA, SCORES_SCHEMA
from pipeline.core.status import LakeStatus
from pipeline.forecast.futures import futures_by_country, futures_rows, phrase_codes, read_futures
from pipeline.forecast.table import forecast_rows
from pipeline.scoring import geo
from pipeline.core.errors import UserError
from tests.conftest import write_country_days
from pipeline.scoring.watchlist import (WatchlistConfig, departures, ensure_watchlist, is_conflict, read_watchlist,
                                        reference_baseline, watchlist, write_watchlist)

DAY = dt.date(2025, 6, 7)
COUNTRIES = ["AA", "BB", "CC"]
ISSUED = dt.datetime(2025, 6, 6, 12, tzinfo=dt.timezone.utc)


def _write(lake: Lake, run: str, roots: dict[tuple[str, str], float], quad4: dict[str, float] | None = None,
           pairs: dict | None = None) -> None:
    """A forecasts partition for DAY with the given root probabilities (everything else 0, quads 0.5)."""
    labels = label_space()
    probs = {lv: np.zeros((len(COUNTRIES), len(labels[lv]))) for lv in LEVELS}
    probs["quad"][:] = 0.5
    for (c, code), p in roots.items():
        probs["root"][COUNTRIES.index(c), labels["root"].index[code]] = p
    for c, p in (quad4 or {}).items():
        probs["quad"][COUNTRIES.index(c), labels["quad"].index["4"]] = p
    ap = {(COUNTRIES.index(c), "root", labels["root"].index[code]): v for (c, code), v in (pairs or {}).items()}
    t = forecast_rows(COUNTRIES, probs, np.ones(len(COUNTRIES), bool), run, 10, ISSUED, labels, ap)
    lake.write_partition("forecasts", t, DAY, schema=FORECASTS_SCHEMA, model=run)


@pytest.fixture()
def known_lake(tmp_path) -> Lake:
    lake = Lake(tmp_path / "lake")
    clim = {("AA", "18"): 0.10, ("AA", "14"): 0.30, ("AA", "04"): 0.90, ("BB", "04"): 0.90, ("BB", "19"): 0.05,
            ("CC", "01"): 0.50}
    learned = {("AA", "18"): 0.20, ("AA", "14"): 0.30, ("AA", "04"): 0.80, ("BB", "04"): 0.85, ("BB", "19"): 0.05,
               ("CC", "01"): 0.70}
    model = {("AA", "18"): 0.60,  # rise: 0.60 − max(0.10, 0.20) = +0.40, conflict (root 18)
             ("AA", "14"): 0.45,  # rise +0.15, conflict (protest)
             ("AA", "04"): 0.85,  # between 0.80 and 0.90: within the usual range, not listed
             ("BB", "04"): 0.30,  # fall: 0.30 − min(0.90, 0.85) = −0.55
             ("BB", "19"): 0.30,  # rise +0.25, conflict
             ("CC", "01"): 0.60}  # between 0.50 and 0.70: not listed
    _write(lake, "baseline-climatology", clim)
    _write(lake, "baseline-learned", learned)
    _write(lake, "baseline-persistence", {k: 1.0 for k in clim})
    _write(lake, "m1", model, pairs={("AA", "18"): [{"actor1": "AA", "actor2": "BB", "share": 0.5}]})
    fut = pa.table({"country": ["AA", "AA", "AA"], "future": [0, 1, 2],
                    "phrases": [["police fire on crowd", "talks"], ["police fire on crowd"], ["riot in capital"]],
                    "codes": [["183", "040"], ["183"], ["145"]], "sampling_key": ["k"] * 3})
    lake.write_partition("futures", fut, DAY, schema=FUTURES_SCHEMA, model="m1")
    return lake


def test_watchlist_ranks_departures_from_the_countrys_climatology(known_lake):
    """The default: departures from climatology alone, the learned baseline carried beside each row."""
    w = watchlist(known_lake, DAY)
    root = w[w.level == "root"]
    rises, falls = root[root.list == "rises"], root[root.list == "falls"]
    assert list(zip(rises.country, rises.code)) == [("AA", "18"), ("BB", "19"), ("AA", "14"), ("CC", "01")]
    np.testing.assert_allclose(rises.difference, [0.50, 0.25, 0.15, 0.10])
    np.testing.assert_allclose(rises.usual, rises.climatology)
    np.testing.assert_allclose(rises.baseline, [0.20, 0.05, 0.30, 0.70])  # CC 01: above climatology, below the bar
    assert list(zip(falls.country, falls.code)) == [("BB", "04"), ("AA", "04")]
    np.testing.assert_allclose(falls.difference, [-0.60, -0.05])
    assert list(root[root.list == "conflict rises"].code) == ["18", "19", "14"]
    assert not (w.level == "quad").any()  # every run says 0.5 for every QuadClass
    with pytest.raises(UserError, match="usual must be one of climatology, both"):
        WatchlistConfig(usual="learned")


def test_watchlist_ranks_departures_from_both_references(known_lake):
    lake = known_lake
    assert reference_baseline(lake, DAY) == "baseline-learned"
    w = watchlist(lake, DAY, cfg=WatchlistConfig(usual="both"))
    assert set(w.model_run) == {"m1"} and set(w.baseline_run) == {"baseline-learned"}
    root = w[w.level == "root"]
    rises = root[root.list == "rises"]
    assert list(zip(rises.country, rises.code)) == [("AA", "18"), ("BB", "19"), ("AA", "14")]
    np.testing.assert_allclose(rises.difference, [0.40, 0.25, 0.15])
    np.testing.assert_allclose(rises.usual, [0.20, 0.05, 0.30])
    np.testing.assert_allclose(rises.ratio.iloc[0], 0.61 / 0.21)
    assert list(rises["rank"]) == [1, 2, 3]
    falls = root[root.list == "falls"]
    assert list(zip(falls.country, falls.code)) == [("BB", "04")]
    np.testing.assert_allclose(falls.difference, [-0.55])
    np.testing.assert_allclose(falls.usual, [0.85])
    c_rises = root[root.list == "conflict rises"]
    assert list(zip(c_rises.country, c_rises.code)) == [("AA", "18"), ("BB", "19"), ("AA", "14")]
    assert root[root.list == "conflict falls"].empty  # root 04 (consult) is not conflict
    assert not ((root.code == "04") & (root.country == "AA")).any()  # within the usual range
    assert not (root.country == "CC").any()
    top = rises.iloc[0]
    assert top.actors == "Aruba → Barbados (50%)"  # FIPS AA, BB
    assert top.phrases == ["police fire on crowd"]  # 2 futures → root 18; the 145 riot counts for root 14
    assert top.phrase_shares == pytest.approx([2 / 3])  # in 2 of AA's 3 futures
    assert rises.iloc[2].phrases == ["riot in capital"]
    # the event rows of the model are 0 and so are climatology's: nothing listed at the event level
    assert not (w.level == "event").any()


def test_the_watch_list_shows_the_labels_recent_actor_pairs(known_lake):
    """With a ``country`` history the shown pairs are the label's recent ones (docs/report.md "Actor pairs"), not the
    run's; ``actor_run_weight=1`` shows the run's; a label with no history keeps the run's; old days are not read."""
    write_country_days(known_lake, {
        # AA's assaults (root 18): mostly AA → US, once US → AA; five before the 30-day window (AA → DA)
        "2025-05-01": [("AA", "180", "DA", "AA")] * 5,
        "2025-06-04": [("AA", "180", "US", "AA"), ("AA", "181", "US", "AA"), ("AA", "180", "AA", "US")],
        "2025-06-05": [("AA", "186", "US", "AA"), ("BB", "190", "BB", "BB")],
        "2025-06-07": [("AA", "180", "EZ", "AA")],  # the target day itself: never read
    })
    w = watchlist(known_lake, DAY)
    top = w[(w.level == "root") & (w.list == "rises")].iloc[0]
    assert (top.country, top.code) == ("AA", "18")
    assert top.actors == "Aruba → United States (75%); United States → Aruba (25%)"  # 3 of 4 events, 1 of 4
    assert "Denmark" not in top.actors and "Czech" not in top.actors  # outside 30 days; the target day
    bb = w[(w.level == "root") & (w.country == "BB") & (w.code == "19")].iloc[0]
    assert bb.actors.startswith("Barbados → Barbados")
    aa14 = w[(w.level == "root") & (w.country == "AA") & (w.code == "14")].iloc[0]
    assert aa14.actors.startswith("Aruba → United States")  # no protest in AA's history: the country's pairs
    run = watchlist(known_lake, DAY, cfg=WatchlistConfig(actor_run_weight=1.0))
    assert run[(run.level == "root") & (run.list == "rises")].iloc[0].actors == "Aruba → Barbados (50%)"
    plain = watchlist(known_lake, DAY, cfg=WatchlistConfig(actor_backoff=0.0))
    assert plain[(plain.country == "AA") & (plain.code == "14")].iloc[0].actors == ""  # no history, the run has none


def test_watchlist_config_of_the_evaluate_section():
    from pipeline.core.config import EvaluateConfig
    from pipeline.core.errors import ConfigError

    ev = EvaluateConfig(watchlist_usual="both", actor_run_weight=0.5, actor_days=7, actor_backoff=0.3)
    c = WatchlistConfig.of(ev, top=4)
    assert (c.top, c.usual, c.actor_run_weight, c.actor_days, c.actor_backoff) == (4, "both", 0.5, 7, 0.3)
    with pytest.raises(ConfigError, match="actor_run_weight"):
        EvaluateConfig(actor_run_weight=1.5)


def test_best_baseline_without_learned_comes_from_scores(known_lake):
    lake = known_lake
    import shutil

    shutil.rmtree(lake.partition_dir("forecasts", None, model="baseline-learned"))
    assert reference_baseline(lake, DAY) is None  # no scores yet: climatology alone
    f = departures(lake, DAY)
    assert set(f.baseline_run) == {"baseline-climatology"}
    row = f[(f.country == "AA") & (f.level == "root") & (f.code == "04")].iloc[0]
    assert row.direction == "fall" and row.difference == pytest.approx(0.85 - 0.90)
    for run, brier in (("baseline-persistence", 0.1), ("baseline-ewm", 0.3)):
        s = {f.name: [] for f in SCORES_SCHEMA}
        for c in COUNTRIES:
            for k, v in dict(country=c, level="root", n_events=1, busy=True, n_true=1, n_pred=1, threshold=0.5,
                             brier=brier, log_loss=0.1, precision=1.0, recall=1.0, f1=1.0, quad_kl=None,
                             rouge1=None, rouge2=None, rougeL=None, model_run=run).items():
                s[k].append(v)
        lake.write_partition("scores", pa.table(s), DAY - dt.timedelta(days=1), schema=SCORES_SCHEMA, model=run)
    # ewm has scores but no forecast for DAY: it cannot be the reference; persistence can
    assert reference_baseline(lake, DAY) == "baseline-persistence"


def test_watchlist_table_is_written_once_per_day_and_read_back(known_lake):
    lake = known_lake
    status = lambda: LakeStatus(lake).done("watchlist", DAY, model_run="m1")  # noqa: E731
    assert not status()  # forecasts of DAY, no watch list yet
    with pytest.raises(FileNotFoundError, match="gdelt-forecast watchlist --date 2025-06-07"):
        read_watchlist(lake, DAY)
    computed = watchlist(lake, DAY)
    written = write_watchlist(lake, DAY)
    pd.testing.assert_frame_equal(written, computed)
    assert lake.has_partition("watchlist", DAY, model="m1") and status()
    stored = read_watchlist(lake, DAY)
    pd.testing.assert_frame_equal(stored, computed, check_dtype=False)
    assert stored.region.tolist() == [regions.region(c) for c in stored.country]
    assert set(stored.region) == {"Caribbean", regions.region("CC")}  # Aruba AA, Barbados BB; CC
    first = lake.read("watchlist", DAY, DAY, model="m1")
    write_watchlist(lake, DAY)  # idempotent: the same rows again
    assert lake.read("watchlist", DAY, DAY, model="m1").equals(first)
    assert read_watchlist(lake, DAY, top=1).groupby("list").size().max() == 1
    # a rewritten input makes it stale; ensure_watchlist (what the report calls) rewrites it then
    time.sleep(0.01)
    _write(lake, "m1", {("CC", "18"): 0.9})
    assert not status()
    again = ensure_watchlist(lake, DAY)
    assert status() and ("CC", "18") in set(zip(again.country, again.code))
    assert not (again.country == "AA").any()  # AA's rise is gone from the new forecast


def test_futures_reader(known_lake):
    lake = known_lake
    t = read_futures(lake, "m1", DAY)
    assert t.schema == FUTURES_SCHEMA and t.num_rows == 3 and t.column("future").to_pylist() == [0, 1, 2]
    assert futures_by_country(lake, "m1", DAY) == {"AA": [["police fire on crowd", "talks"],
                                                          ["police fire on crowd"], ["riot in capital"]]}
    assert futures_by_country(lake, "m1", DAY, sampling_key="other") == {}
    assert read_futures(lake, "m1", DAY, ["country"], countries=["BB"]).num_rows == 0
    assert read_futures(lake, "baseline-climatology", DAY).num_rows == 0  # baselines have no futures
    assert phrase_codes(lake, "m1", DAY, ["AA"])[2] == ("AA", ["riot in capital"], ["145"])
    # a partition written before sampling_key existed reads with nulls there
    old = pa.table({"country": ["BB"], "future": pa.array([0], pa.int32()), "phrases": [["a"]], "codes": [["010"]]})
    lake.write_partition("futures", old, DAY, schema=old.schema, model="m0")
    assert read_futures(lake, "m0", DAY).column("sampling_key").to_pylist() == [None]
    with pytest.raises(ValueError, match="unknown columns"):
        read_futures(lake, "m1", DAY, ["nope"])
    rows = futures_rows(["BB", "AA"], [[["x"]], [["y", "z"]]], [[["010"]], [["020", "030"]]], "k")
    assert rows.column("country").to_pylist() == ["AA", "BB"] and rows.schema == FUTURES_SCHEMA
    with pytest.raises(ValueError, match="2 phrases but 1 codes"):
        futures_rows(["AA"], [[["y", "z"]]], [[["020"]]])


def test_inspect_watchlist_cli(known_lake, tmp_path):
    root = str(known_lake.root)
    r = CliRunner().invoke(app, ["--lake", root, "inspect", "watchlist", "--date", str(DAY)])
    assert r.exit_code == 2 and "gdelt-forecast watchlist --date" in r.output  # the table is not written yet
    both = tmp_path / "both.yaml"
    both.write_text("evaluate:\n  watchlist_usual: both\n")
    r = CliRunner().invoke(app, ["-c", str(both), "--lake", root, "watchlist", "--date", str(DAY)],
                           env={"COLUMNS": "250"})
    assert r.exit_code == 0 and "3 rises, 1 falls" in r.output, r.output  # outside climatology and the bar
    r = CliRunner().invoke(app, ["--lake", root, "watchlist", "--date", str(DAY)], env={"COLUMNS": "250"})
    assert r.exit_code == 0 and "4 rises, 2 falls" in r.output, r.output  # the default: against climatology
    r = CliRunner().invoke(app, ["--lake", root, "inspect", "watchlist", "--date", str(DAY)],
                           env={"COLUMNS": "250"})
    assert r.exit_code == 0, r.output
    assert "rises" in r.output and "police fire on crowd (67%)" in r.output and "0.4" in r.output
    assert "Caribbean" in r.output
    r = CliRunner().invoke(app, ["--lake", root, "inspect", "watchlist"])
    assert r.exit_code == 2 and "--date" in r.output


def test_conflict_labels():
    assert is_conflict("root", "14", "14") and is_conflict("event", "190", "19") and is_conflict("quad", "4", None)
    assert not is_conflict("root", "04", "04") and not is_conflict("quad", "2", None)
    assert not is_conflict("root", "12", "12")


def test_map_shapes_are_keyed_to_fips():
    world = geo.world_geojson()
    assert len(world["features"]) == len(geo.shapes()) == 177
    by_name = {s.name: s.fips for s in geo.shapes()}
    # GDELT's FIPS codes differ from ISO: Germany GM (ISO DE), Israel IS (ISO IL), Algeria AG (ISO DZ)
    assert by_name["Germany"] == ("GM",) and by_name["Israel"] == ("IS",) and by_name["Algeria"] == ("AG",)
    assert by_name["Palestine"] == ("WE", "GZ") and by_name["Kosovo"] == ("KV",)
    assert by_name["Australia"] == ("AS",) and by_name["United Kingdom"] == ("UK",)
    fips = [c for s in geo.shapes() for c in s.fips]
    assert {c for c in fips if fips.count(c) > 1} == {"CY", "SO"}  # + N. Cyprus, Somaliland: same colour
    mv = geo.map_values({"WE": 0.2, "GZ": 0.7, "GM": 0.1, "SN": 0.4, "CY": 0.3})
    assert dict(zip(mv.keys, mv.values)) == {"Palestine": 0.7, "Germany": 0.1, "Cyprus": 0.3, "N. Cyprus": 0.3}
    assert mv.off_map == {"SN": 0.4}  # Singapore is too small for 1:110m: listed, not dropped
    ring = world["features"][[s.name for s in geo.shapes()].index("Germany")]["geometry"]["coordinates"][0]
    lon, lat = np.array(ring).T
    assert 5 < lon.min() < lon.max() < 16 and 47 < lat.min() < lat.max() < 56 and ring[0] == ring[-1]


def test_flow_cache_key_follows_every_runs_partition_of_the_day(known_lake):
    """The watchlist task's cache key (``STAGE_INPUTS['watchlist']``) changes when any run's forecast is rewritten."""
    from flows.tasks import day_state
    from pipeline.core.status import STAGE_INPUTS

    assert STAGE_INPUTS["watchlist"] == ("forecasts", "futures", "scores")
    before = day_state(known_lake, "forecasts", DAY)
    assert before.count(":") == 4 and "absent" not in before  # 3 baselines + m1, each fingerprinted
    assert day_state(known_lake, "forecasts", DAY + dt.timedelta(days=1)).count("absent") == 4
    time.sleep(0.01)
    _write(known_lake, "baseline-persistence", {("AA", "18"): 1.0})
    assert day_state(known_lake, "forecasts", DAY) != before
    assert day_state(known_lake, "country", DAY) == "absent"  # a table without model= keys: the day's partition


def test_pre_rendered_map_projects_every_shape():
    """geo.svg_world: Natural Earth projection (x = 0.8707 λ on the equator), every shape, clipped box."""
    import re

    w = geo.svg_world()
    assert set(w.paths) == {s.key for s in geo.shapes()} and w.width == 1000
    x, y = geo.natural_earth(np.array([0.0, 180.0, 10.0]), np.array([0.0, 0.0, 51.0]))
    np.testing.assert_allclose(x[:2], [0.0, 0.8707 * np.pi])
    assert y[0] == 0 and np.radians(51) < y[2] < 1.02 * np.radians(51)  # 51° N: y ≈ 1.007 φ near the equator

    def bbox(path: str) -> tuple[float, float, float, float]:
        xs, ys = [], []
        for ring in re.findall(r"M([^z]+)z", path):
            head, _, rel = ring.partition("l")
            px, py = map(float, head.split())
            xs.append(px), ys.append(py)
            steps = np.array(rel.split(), float).reshape(-1, 2) if rel else np.zeros((0, 2))
            for dx, dy in steps:
                px, py = px + dx, py + dy
                xs.append(px), ys.append(py)
        return min(xs), max(xs), min(ys), max(ys)

    k = w.width / (2 * 0.8707 * np.pi)  # map units per unit of x
    x0, x1, y0, y1 = bbox(w.paths["Germany"])  # 5.9–15.0° E, 47.3–55.1° N
    assert 500 + k * 0.8 * np.radians(5) < x0 < x1 < 500 + k * 0.87 * np.radians(16)
    assert 0 < y0 < y1 < w.height / 2  # north of the equator, y down
    fx0, fx1, _, _ = bbox(w.paths["Fiji"])
    assert fx1 - fx0 < 50  # across the antimeridian: one side, not a band


def test_headline_keeps_slots_for_falls_and_leads_with_the_largest_departure():
    from pipeline.scoring.watchlist import headline

    rows = [("rises", "rise", "US", "event", "0411", 0.04), ("rises", "rise", "US", "root", "04", 0.03),
            ("rises", "rise", "FR", "root", "01", 0.05), ("rises", "rise", "GM", "root", "05", 0.02),
            ("conflict rises", "rise", "SY", "root", "19", 0.10), ("falls", "fall", "IN", "root", "14", -0.23),
            ("falls", "fall", "UK", "root", "03", -0.01), ("falls", "fall", "CH", "root", "02", -0.005)]
    w = pd.DataFrame(rows, columns=["list", "direction", "country", "level", "code", "difference"])
    g = headline(w, n=5, falls=2)
    # 3 rise slots (US once: its event row and its root say the same), 2 fall slots, largest |difference| first
    assert list(zip(g.country, g.difference)) == [("IN", -0.23), ("SY", 0.10), ("FR", 0.05), ("US", 0.04),
                                                   ("UK", -0.01)]


def test_record_scores_the_stored_lists_against_what_happened(known_lake):
    from pipeline.cameo.labels import load_outcomes
    from pipeline.scoring.watchlist import record
    from tests.conftest import write_country_days

    lake = known_lake
    assert record(lake, [DAY], "m1", None).empty  # nothing is over yet
    write_watchlist(lake, DAY)  # rises AA 18, BB 19, AA 14, CC 01; falls BB 04, AA 04 (against climatology)
    write_country_days(lake, {str(DAY): [("AA", "180"), ("AA", "040"), ("BB", "190"), ("BB", "010")]})
    outcomes = load_outcomes(lake, DAY, DAY)
    r = record(lake, [DAY, DAY + dt.timedelta(days=1)], "m1", outcomes).set_index("list")
    # root rises AA 18 ✓, BB 19 ✓, AA 14 ✗, CC 01 ✗ (CC has no events that day: no outcome row, left out)
    rises = read_watchlist(lake, DAY).query("list == 'rises'")
    assert r.loc["rises", "rows"] == len(rises) - (rises.country == "CC").sum() and r.loc["rises", "days"] == 1
    assert r.loc["rises", "happened"] == pytest.approx(2 / 3)  # the root rows AA 18, BB 19, AA 14
    assert r.loc["falls", "happened"] == pytest.approx(1 / 2)  # BB 04 ✗, AA 04 ✓
    assert r.loc["rises", "usual"] == pytest.approx(np.mean([0.10, 0.05, 0.30]))


def test_a_stored_list_of_the_other_usual_is_rewritten(known_lake):
    """After ``evaluate.watchlist_usual`` changes, the report's ``ensure_watchlist`` rewrites a day's stored list
    written against the other usual (same length), and leaves one of the right usual alone."""
    from pipeline.scoring.watchlist import written_against

    lake = known_lake
    write_watchlist(lake, DAY, cfg=WatchlistConfig(top=3, usual="both"))
    assert written_against(read_watchlist(lake, DAY)) == "both"
    w = ensure_watchlist(lake, DAY, usual="climatology")
    assert written_against(w) == "climatology" and ("AA", "04") in set(zip(w.country, w.code))  # a fall now
    assert w.groupby("list").size().max() == 3  # its length kept
    files = {f: f.stat().st_mtime_ns for f in lake.files("watchlist", model="m1")}
    assert ensure_watchlist(lake, DAY, usual="climatology").equals(w)
    assert {f: f.stat().st_mtime_ns for f in lake.files("watchlist", model="m1")} == files  # not rewritten
    assert written_against(ensure_watchlist(lake, DAY, usual="both")) == "both"


def test_the_usual_is_stored_and_older_partitions_are_read_with_it_inferred(known_lake):
    """A stored watch list says which usual it was written against (``against``); a partition written before that
    column existed is still read, its ``against`` told from its rows."""
    from pipeline.core.schemas import WATCHLIST_SCHEMA
    from pipeline.scoring.watchlist import TABLE, written_against

    lake = known_lake
    for usual in ("both", "climatology"):
        w = write_watchlist(lake, DAY, cfg=WatchlistConfig(top=3, usual=usual))
        new = read_watchlist(lake, DAY)
        assert set(new.against) == {usual} and written_against(new) == usual
    # the same rows as an older release wrote them: no `against` and no `phrase_shares` column
    old = WATCHLIST_SCHEMA.remove(WATCHLIST_SCHEMA.get_field_index("against"))
    old = old.remove(old.get_field_index("phrase_shares"))
    cols = {f.name: w[f.name].tolist() for f in old}
    cols["phrases"] = [list(p) for p in w.phrases]
    lake.write_partition(TABLE, pa.Table.from_pydict(cols, schema=old), DAY, schema=old, model="m1")
    stored = read_watchlist(lake, DAY)
    assert set(stored.against) == {"climatology"}  # a fall between climatology and the baseline: not `both`
    assert all(p == [] for p in stored.phrase_shares) and any(len(p) for p in new.phrase_shares)
    pd.testing.assert_frame_equal(stored.drop(columns="phrase_shares"), new.drop(columns="phrase_shares"))
    assert ensure_watchlist(lake, DAY, usual="climatology").equals(stored)  # not rewritten: it fits
    assert written_against(ensure_watchlist(lake, DAY, usual="both")) == "both"  # rewritten, with the column


def test_without_a_model_the_page_is_the_learned_baselines(known_lake):
    """No model run for the day: the page and its watch list are ``baseline-learned``'s departures from climatology
    (climatology against itself departs nowhere), its reference beside it is another baseline, never itself, and
    the stage's status follows that run's partition."""
    import shutil

    from pipeline.core.status import page_baseline
    from pipeline.scoring.watchlist import primary_run

    lake = known_lake
    shutil.rmtree(lake.partition_dir("forecasts", None, model="m1"))
    assert primary_run(lake, DAY) == page_baseline(lake, DAY) == "baseline-learned"
    assert reference_baseline(lake, DAY) == "baseline-learned"
    assert reference_baseline(lake, DAY, exclude="baseline-learned") is None  # no scores: climatology alone
    w = watchlist(lake, DAY)
    assert set(w.model_run) == {"baseline-learned"} and set(w.baseline_run) == {"baseline-climatology"}
    root = w[w.level == "root"]
    rises = root[root.list == "rises"]
    assert list(zip(rises.country, rises.code)) == [("CC", "01"), ("AA", "18")]  # 0.70 vs 0.50, 0.20 vs 0.10
    np.testing.assert_allclose(rises.difference, [0.20, 0.10])
    np.testing.assert_allclose(rises.baseline, rises.climatology)  # beside it: climatology, not the run itself
    falls = root[root.list == "falls"]
    assert list(zip(falls.country, falls.code)) == [("AA", "04"), ("BB", "04")]
    # "both": outside climatology and a reference that is not the run (none here: climatology), the same rows
    both = watchlist(lake, DAY, cfg=WatchlistConfig(usual="both"))
    assert list(zip(both[both.list == "rises"].country, both[both.list == "rises"].code)) == [("CC", "01"),
                                                                                              ("AA", "18")]
    status = lambda: LakeStatus(lake).done("watchlist", DAY)  # noqa: E731
    assert not status()
    write_watchlist(lake, DAY)
    assert lake.has_partition("watchlist", DAY, model="baseline-learned") and status()
    assert read_watchlist(lake, DAY).model_run.unique().tolist() == ["baseline-learned"]
    # without the bar either: climatology's page, which departs from nothing
    shutil.rmtree(lake.partition_dir("forecasts", None, model="baseline-learned"))
    assert primary_run(lake, DAY) == "baseline-climatology"
    assert watchlist(lake, DAY).empty


def test_the_page_without_a_model_says_so_and_leads_with_the_bars_departures(known_lake, tmp_path):
    import shutil

    shutil.rmtree(known_lake.partition_dir("forecasts", None, model="m1"))
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"evaluate:\n  reports_dir: {tmp_path / 'reports'}\n")
    r = CliRunner().invoke(app, ["-c", str(cfg), "--lake", str(known_lake.root), "report", "--date", str(DAY)])
    assert r.exit_code == 0, r.output
    html = (tmp_path / "reports" / str(DAY) / "index.html").read_text()
    header = html[html.index("<h1>"):html.index("id=unusual")]
    assert "forecast <b>baseline-learned</b> (no model forecast: the learned frequency model" in header
    assert "gdelt-forecast train" in header and "beside it says" not in header  # no other baseline to show
    top = html[html.index("id=unusual"):html.index("full watch list")]
    assert "Nothing departs" not in top and "0.70 <span class=meta>vs 0.50</span>" in top  # CC 01, the bar's top
