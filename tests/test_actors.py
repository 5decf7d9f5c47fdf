"""Actor pairs: observed, from history (with back-off), mixed with a run's, and scored — on hand-made days."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from pipeline.core.lake import Lake
from pipeline.scoring import actors as A
from tests.conftest import write_country_days

# (location, EventCode, Actor2Geo, Actor1Geo); "" = unknown actor country
DAYS = {
    "2025-01-01": [("AA", "0211", "BB", "AA"), ("AA", "0211", "BB", "AA"), ("AA", "0211", "CC", "AA"),
                   ("AA", "190", "AA", "AA"), ("AA", "190", "", ""), ("BB", "010", "AA", "BB")],
    "2025-01-02": [("AA", "0211", "CC", "AA"), ("AA", "0214", "DD", "AA"), ("AA", "190", "EE", "AA")],
    "2025-01-03": [("AA", "0211", "BB", "AA"), ("AA", "0211", "BB", "AA"), ("AA", "0211", "DD", "AA"),
                   ("AA", "0212", "BB", "AA")],
}


@pytest.fixture()
def lake(tmp_path) -> Lake:
    lake = Lake(tmp_path / "lake")
    write_country_days(lake, DAYS)
    return lake


def _pairs(df: pd.DataFrame, country: str, level: str, code: str) -> list[tuple[str, str, float]]:
    g = df[(df.country == country) & (df.level == level) & (df.code == code)].sort_values("rank")
    return [(a1, a2, round(s, 6)) for a1, a2, s in zip(g.actor1, g.actor2, g.share)]


def test_observed_pairs_count_each_event_once_per_level_and_leave_out_pairs_with_no_country(lake):
    obs = A.observed_pairs(lake)
    d1 = obs[obs.day == dt.date(2025, 1, 1)]
    ev = d1[(d1.country == "AA") & (d1.level == "event") & (d1.code == "0211")].set_index(A.PAIR).n.to_dict()
    assert ev == {("AA", "BB"): 2, ("AA", "CC"): 1}
    root02 = d1[(d1.country == "AA") & (d1.level == "root") & (d1.code == "02")].n.sum()
    assert root02 == 3
    # the 190 event with neither actor country known is not counted; the one with both is
    assert d1[(d1.country == "AA") & (d1.level == "event") & (d1.code == "190")].n.sum() == 1
    assert set(obs.level) == set(A.LEVELS)


def test_history_pairs_read_only_the_window_before_the_target(lake):
    obs = A.observed_pairs(lake)
    h = A.history_pairs(obs, "2025-01-03")  # days 01-01 and 01-02
    assert _pairs(h, "AA", "event", "0211") == [("AA", "BB", round(2 / 4, 6)), ("AA", "CC", round(2 / 4, 6))]
    h1 = A.history_pairs(obs, "2025-01-03", days=1)  # 01-02 only
    assert _pairs(h1, "AA", "event", "0211") == [("AA", "CC", 1.0)]
    assert A.history_pairs(obs, "2025-01-01").empty


def test_backoff_gives_a_label_seen_rarely_its_familys_pairs(lake):
    obs = A.observed_pairs(lake)
    keys = pd.DataFrame([("AA", "event", "0212"), ("AA", "event", "0214")], columns=A.KEY)
    plain = A.history_pairs(obs, "2025-01-03", keys=keys)
    assert _pairs(plain, "AA", "event", "0212") == []  # never seen before 01-03
    b = A.history_pairs(obs, "2025-01-03", backoff=0.1, keys=keys)
    # 0212 has no own pairs: its base 021 (AA→BB 2, AA→CC 2, AA→DD 1) leads, then root 02, then the country
    got = _pairs(b, "AA", "event", "0212")
    assert [p[:2] for p in got[:3]] == [("AA", "BB"), ("AA", "CC"), ("AA", "DD")]
    assert abs(sum(p[2] for p in got) - 1.0) < 1e-6 or len(got) == 5
    # 0214 was seen once (AA→DD): its own pair comes first, the family's after it
    assert _pairs(b, "AA", "event", "0214")[0][:2] == ("AA", "DD")


def test_pair_scores_coverage_and_top1_by_hand(lake):
    obs = A.observed_pairs(lake)
    day = dt.date(2025, 1, 3)
    pred = pd.DataFrame([("AA", "event", "0211", 0, "AA", "DD", 0.6), ("AA", "event", "0211", 1, "AA", "BB", 0.4),
                         ("AA", "event", "0212", 0, "AA", "CC", 1.0)], columns=A.KEY + ["rank"] + A.PAIR + ["share"])
    s = A.pair_scores(pred, obs[obs.day == day], k=3).set_index("code")
    assert s.loc["0211", "n"] == 3 and s.loc["0211", "coverage"] == pytest.approx(1.0)
    assert s.loc["0211", "top1"] == 0.0  # AA→BB happened twice, the forecast led with AA→DD
    assert s.loc["0212", "coverage"] == 0.0 and s.loc["0212", "top1"] == 0.0
    s1 = A.pair_scores(pred, obs[obs.day == day], k=1).set_index("code")
    assert s1.loc["0211", "coverage"] == pytest.approx(1 / 3)
    # a label scored but without any predicted pair counts 0; labels that did not occur are not scored
    rows = [("AA", "event", "0214"), ("AA", "root", "02")]
    s2 = A.pair_scores(pred, obs[obs.day == day], rows=rows)
    assert list(s2.code) == ["02"] and s2.coverage.iloc[0] == 0.0


def test_mix_pairs_fill_in_the_pairs_one_side_lacks():
    cols = A.KEY + ["rank"] + A.PAIR + ["share"]
    run = pd.DataFrame([("AA", "event", "010", 0, "AA", "XX", 1.0), ("BB", "event", "010", 0, "BB", "YY", 1.0)],
                       columns=cols)
    hist = pd.DataFrame([("AA", "event", "010", 0, "AA", "BB", 0.7), ("AA", "event", "010", 1, "AA", "XX", 0.3)],
                        columns=cols)
    m = A.mix_pairs(run, hist, 0.1)
    assert _pairs(m, "AA", "event", "010") == [("AA", "BB", 0.63), ("AA", "XX", round(0.1 + 0.27, 6))]
    assert _pairs(m, "BB", "event", "010")[0][:2] == ("BB", "YY")  # history has none: the run's stands


def test_paired_difference_interval_covers_the_mean_and_is_zero_for_equal_scores():
    rng = np.random.default_rng(0)
    a, b = rng.random(200), rng.random(200)
    clusters = np.repeat(np.arange(20), 10)
    d, lo, hi = A.paired_difference(a + 0.2, b, clusters)
    assert lo < d < hi and d == pytest.approx((a + 0.2 - b).mean())
    assert A.paired_difference(a, a, clusters) == (0.0, 0.0, 0.0)


def test_evaluate_pairs_scores_a_runs_pairs_beside_the_historys(lake):
    """A run's stored pairs for 01-03 scored by hand; the history's on the same rows; baselines-like runs skipped."""
    from pipeline.cameo.labels import LEVELS as ALL_LEVELS, label_space
    from pipeline.core.schemas import FORECASTS_SCHEMA
    from pipeline.forecast.table import forecast_rows

    labels = label_space()
    probs = {lv: np.zeros((1, len(labels[lv]))) for lv in ALL_LEVELS}
    probs["event"][0, labels["event"].index["0211"]] = 0.9
    pairs = {(0, "event", labels["event"].index["0211"]): [{"actor1": "AA", "actor2": "DD", "share": 0.6},
                                                            {"actor1": "AA", "actor2": "BB", "share": 0.4}]}
    issued = dt.datetime(2025, 1, 2, tzinfo=dt.timezone.utc)
    t = forecast_rows(["AA"], probs, np.ones(1, bool), "m", 4, issued, labels, pairs)
    lake.write_partition("forecasts", t, "2025-01-03", schema=FORECASTS_SCHEMA, model="m")
    empty = forecast_rows(["AA"], probs, np.ones(1, bool), "b", 4, issued, labels)
    lake.write_partition("forecasts", empty, "2025-01-03", schema=FORECASTS_SCHEMA, model="b")
    days = [dt.date(2025, 1, 3)]
    got = A.evaluate_pairs(lake, ["m", "b"], days, n_boot=200)
    assert list(got.run) == ["m"] and list(got.level) == ["event"]  # "b" has no pairs; only 0211 has pairs
    r = got.iloc[0]
    # 0211 on 01-03: AA→BB twice, AA→DD once; the run shows DD, BB: all 3 events covered, but it leads with DD
    assert (r.rows, r.coverage, r.top1) == (1, 1.0, 0.0)
    # the history (01-01, 01-02; back-off 0.1): BB and CC tie at 2 of 4, BB first by code, then DD from the base
    assert (r.history_coverage, r.history_top1) == (1.0, 1.0) and r["diff"] == 0.0
    # the same pairs on the first day: no history before it (scored 0), the run's DD, BB cover AA→BB ×2 of 3
    lake.write_partition("forecasts", t, "2025-01-01", schema=FORECASTS_SCHEMA, model="m")
    first = A.evaluate_pairs(lake, ["m"], [dt.date(2025, 1, 1)], n_boot=200).iloc[0]
    assert (first.coverage, first.top1, first.history_coverage, first.history_top1) == pytest.approx(
        (2 / 3, 0.0, 0.0, 0.0))


def test_shown_pairs_leave_out_the_back_offs_slivers_and_keep_the_runs_where_history_has_none(lake):
    rows = pd.DataFrame({"country": ["AA", "ZZ", "AA"], "level": ["event", "event", "quad"], "code": ["0211", "010", "1"],
                         "actor_pairs": [[], [{"actor1": "ZZ", "actor2": None, "share": 1.0}], []]})
    shown = A.shown_pairs(lake, "2025-01-03", rows)
    # 0211: its own pairs BB, CC (2 of 4 each), then DD from its base 021 (β = 0.1); the country's AA→AA and
    # AA→EE come in at β³ (< 1 %) and are not shown
    assert [(p["actor1"], p["actor2"]) for p in shown[0]] == [("AA", "BB"), ("AA", "CC"), ("AA", "DD")]
    assert shown[1] == rows.actor_pairs[1] and shown[2] == []  # no history for ZZ; a QuadClass row as it was
    assert A.shown_pairs(lake, "2025-01-03", rows, run_weight=1.0) == list(rows.actor_pairs)


def test_paired_difference_without_resamples_has_no_interval():
    d, lo, hi = A.paired_difference(np.array([0.5, 1.0]), np.array([0.0, 0.5]), ["a", "b"], n_boot=0)
    assert d == 0.5 and np.isnan(lo) and np.isnan(hi)


def test_pair_text_names_unplaced_actors_and_leaves_out_empty_pairs() -> None:
    """One rendering for the page and the watch list: an actor without a country reads "(unplaced)", a pair with
    neither placed is left out (and does not count against ``n``), an unknown FIPS code is shown as it is."""
    pairs = [{"actor1": None, "actor2": None, "share": 0.5}, {"actor1": "NI", "actor2": None, "share": 0.3},
             {"actor1": "", "actor2": "US", "share": 0.1}, {"actor1": "ZZ", "actor2": "NI", "share": 0.1}]
    assert A.pair_text(pairs, 2) == "Nigeria → (unplaced) (30%); (unplaced) → United States (10%)"
    assert A.pair_text(pairs, 3).endswith("; ZZ → Nigeria (10%)")
    assert A.pair_text([], 3) == A.pair_text(None, 3) == ""
