"""History features: hand-computed values on a tiny outcome series, and leak-freeness."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from pipeline.cameo.labels import LEVELS, Outcomes, label_space
from pipeline.features.history import FEATURES, history_features

D0 = dt.date(2025, 1, 1)


def _outcomes(n_days: int = 10) -> Outcomes:
    """Two countries; US root 01 (and its quad 1) occurs on days 0, 2, 3, 9 with 2 events each."""
    labels = label_space()
    days = [D0 + dt.timedelta(days=i) for i in range(n_days)]
    y = {lv: np.zeros((n_days, 2, len(labels[lv])), bool) for lv in LEVELS}
    counts = {lv: np.zeros((n_days, 2, len(labels[lv])), np.int32) for lv in LEVELS}
    on = [0, 2, 3, 9]
    r01, q1 = labels["root"].index["01"], labels["quad"].index["1"]
    y["root"][on, 1, r01] = True
    y["quad"][on, 1, q1] = True
    counts["root"][on, 1, r01] = 2
    counts["quad"][on, 1, q1] = 2
    n_events = np.zeros((n_days, 2), np.int64)
    n_events[:, 1] = np.arange(n_days) + 1  # US: 1, 2, … events; FR: none
    return Outcomes(days, ["FR", "US"], y, n_events, np.zeros((n_days, 2, 4), np.int64), {}, counts)


def _f(h, name, t=0, c=1, code="01", level="root"):
    return float(h.X[t, c, label_space()[level].index[code], FEATURES.index(name)])


def test_values_on_a_hand_made_series():
    o = _outcomes()
    target = D0 + dt.timedelta(days=10)  # history = days 0 … 9 (a Saturday, 2025-01-11)
    h = history_features(o, [target], "root")
    assert h.X.shape == (1, 2, 20, len(FEATURES))
    assert _f(h, "yesterday") == 1.0
    assert _f(h, "share3") == pytest.approx(1 / 3)  # days 7, 8, 9
    assert _f(h, "share7") == pytest.approx(2 / 7)  # days 3 … 9
    assert _f(h, "share30") == pytest.approx(4 / 10) == _f(h, "share_all")
    assert _f(h, "logit_all") == pytest.approx(np.log(4.5 / 6.5))
    assert _f(h, "logit7") == pytest.approx(np.log(2.5 / 5.5))
    assert _f(h, "log_count1") == pytest.approx(np.log1p(2))
    assert _f(h, "log_count7") == pytest.approx(np.log1p(4))
    assert _f(h, "log_volume1") == pytest.approx(np.log1p(10), rel=1e-6)
    assert _f(h, "log_volume7") == pytest.approx(np.log1p(np.mean(np.arange(4, 11))), rel=1e-6)
    assert _f(h, "parent_yesterday") == 1.0 and _f(h, "parent_share7") == pytest.approx(2 / 7)
    assert _f(h, "weekday_sin") == pytest.approx(np.sin(2 * np.pi * 5 / 7), abs=1e-6)
    assert _f(h, "log_days") == pytest.approx(np.log1p(10))
    assert _f(h, "share_all", code="02") == 0.0
    assert h.seen.tolist() == [[False, True]] and h.n_days.tolist() == [10]
    # FR never had an event: no label history, no volume
    assert h.X[0, 0, :, :FEATURES.index("log_volume7") + 1][..., [0, 1, 2, 3, 4, 7, 8, 9, 10]].max() == 0.0


def test_shorter_history_and_parent_of_events():
    o = _outcomes()
    h = history_features(o, [D0 + dt.timedelta(days=3)], "event")  # days 0, 1, 2
    # an event code under root 01's base 010: its parent (base 010) never occurred
    assert _f(h, "parent_share7", code="010", level="event") == 0.0
    h = history_features(o, [D0 + dt.timedelta(days=3)], "root")
    assert _f(h, "share7") == pytest.approx(2 / 3) and _f(h, "share30") == pytest.approx(2 / 3)
    assert _f(h, "yesterday") == 1.0 and _f(h, "share3") == pytest.approx(2 / 3)
    empty = history_features(o, [D0], "root")  # nothing before the first day
    assert empty.n_days.tolist() == [0] and not empty.seen.any() and _f(empty, "share_all") == 0.0


def test_target_day_outcome_never_changes_its_features():
    o = _outcomes()
    target = D0 + dt.timedelta(days=6)
    before = {lv: history_features(o, [target], lv).X for lv in LEVELS}
    rng = np.random.default_rng(0)
    for t in range(6, 10):  # rewrite the target day and everything after it
        for lv in LEVELS:
            o.y[lv][t] = rng.random(o.y[lv][t].shape) < 0.5
            o.counts[lv][t] = rng.integers(0, 5, o.counts[lv][t].shape)
        o.n_events[t] = rng.integers(0, 100, 2)
    for lv in LEVELS:
        np.testing.assert_array_equal(history_features(o, [target], lv).X, before[lv])
    # … while changing the day before the target does change them
    o.y["root"][5] = ~o.y["root"][5]
    assert not np.array_equal(history_features(o, [target], "root").X, before["root"])


def test_targets_need_not_be_outcome_days():
    o = _outcomes()
    far = D0 + dt.timedelta(days=40)  # tomorrow-style target after a gap: uses the days that exist
    h = history_features(o, [far, D0 + dt.timedelta(days=10)], "root")
    assert h.targets[0] < h.targets[1] and h.n_days.tolist() == [10, 10]
    np.testing.assert_array_equal(h.X[0, :, :, :FEATURES.index("weekday_sin")],
                                  h.X[1, :, :, :FEATURES.index("weekday_sin")])


def test_world_features_weigh_every_country_by_its_log_volume():
    o = _outcomes()
    o.n_events[:, 0] = 3  # FR now has 3 events a day, and root 01 on days 8 and 9
    r01 = label_space()["root"].index["01"]
    o.y["root"][[8, 9], 0, r01] = True
    h = history_features(o, [D0 + dt.timedelta(days=10)], "root")
    w_fr, w_us = np.log1p(3.0), np.log1p(np.arange(1, 11, dtype=float))  # per day 0 … 9
    y_fr, y_us = np.isin(np.arange(10), [8, 9]), np.isin(np.arange(10), [0, 2, 3, 9])
    share = lambda days: (w_fr * y_fr[days] + w_us[days] * y_us[days]).sum() / (w_fr + w_us[days]).sum()  # noqa: E731
    for c in (0, 1):  # the same value for every country: a world feature
        assert _f(h, "world_yesterday", c=c) == pytest.approx(1.0)
        assert _f(h, "world_share7", c=c) == pytest.approx(share(np.arange(3, 10)), rel=1e-6)
        assert _f(h, "world_share_all", c=c) == pytest.approx(share(np.arange(10)), rel=1e-6)
    assert _f(h, "world_share_all", code="02") == 0.0
    # FR's day-9 outcome moves US's world features (and not its own-label features)
    o.y["root"][9, 0, r01] = False
    h2 = history_features(o, [D0 + dt.timedelta(days=10)], "root")
    assert _f(h2, "world_yesterday") == pytest.approx(w_us[9] / (w_fr + w_us[9]), rel=1e-6)
    own = slice(0, FEATURES.index("world_yesterday"))
    np.testing.assert_array_equal(h.X[0, 1, :, own], h2.X[0, 1, :, own])


def test_a_country_never_seen_gets_the_world_features():
    from pipeline.features.history import country_rows

    o = _outcomes()
    h = history_features(o, [D0 + dt.timedelta(days=10)], "root")
    rows = country_rows(h, ["US", "XX"])  # XX: no row in the outcomes
    world = [FEATURES.index(n) for n in ("world_yesterday", "world_share7", "world_share_all")]
    np.testing.assert_array_equal(rows[0, 1][:, world], rows[0, 0][:, world])
    assert rows[0, 1, label_space()["root"].index["01"], world[0]] == 1.0


def test_a_subset_of_countries_gets_the_same_rows():
    o = _outcomes()
    o.n_events[:, 0] = 3
    o.y["root"][[4, 8], 0, 1] = True
    targets = [D0 + dt.timedelta(days=i) for i in (1, 5, 10)]
    for lv in LEVELS:
        full = history_features(o, targets, lv)
        only = history_features(o, targets, lv, countries=["US", "ZZ"])  # ZZ: not in the outcomes
        assert only.countries == ["US"] and only.X.shape[1] == 1
        np.testing.assert_array_equal(only.X[:, 0], full.X[:, 1])  # world features still count FR
        np.testing.assert_array_equal(only.seen[:, 0], full.seen[:, 1])


def test_unseen_rows_need_no_seen_country_in_the_request():
    """Asking only for countries the outcomes lack still gives them the world, weekday and length features."""
    from pipeline.features.history import country_rows

    o = _outcomes()
    target = D0 + dt.timedelta(days=10)
    full = country_rows(history_features(o, [target], "root"), ["XX"])
    alone = history_features(o, [target], "root", countries=["XX"])
    assert alone.X.shape[1] == 0
    np.testing.assert_array_equal(country_rows(alone, ["XX"]), full)
    assert full[0, 0, label_space()["root"].index["01"], FEATURES.index("world_yesterday")] == 1.0
    assert full[0, 0, 0, FEATURES.index("weekday_sin")] == pytest.approx(np.sin(2 * np.pi * 5 / 7), abs=1e-6)


def test_mention_features_and_their_fallback_to_counts():
    o = _outcomes()
    target = D0 + dt.timedelta(days=10)
    h = history_features(o, [target], "root")  # no mentions kept: each event counts as one mention
    assert _f(h, "log_mentions1") == pytest.approx(np.log1p(2)) == _f(h, "log_count1")
    assert _f(h, "log_mentions7") == pytest.approx(np.log1p(4 / 7))
    labels = label_space()
    o.mentions = {lv: np.zeros(o.y[lv].shape, np.float32) for lv in LEVELS}
    r01 = labels["root"].index["01"]
    o.mentions["root"][[3, 9], 1, r01] = [30.0, 500.0]  # day 9 is yesterday, day 3 within the last 7 days
    h = history_features(o, [target], "root")
    assert _f(h, "log_mentions1") == pytest.approx(np.log1p(500.0))
    assert _f(h, "log_mentions7") == pytest.approx(np.log1p(530.0 / 7))
    assert _f(h, "log_count1") == pytest.approx(np.log1p(2))  # counts are unchanged
    assert _f(h, "log_mentions1", c=0) == 0.0  # FR: no events, no mentions


def test_outcomes_sum_the_mentions_of_real_rows(sample_lake):
    """Σ NumMentions per (day, country, root) of ``load_outcomes`` against an independent pyarrow/pandas read."""
    import pyarrow.dataset as ds

    from pipeline.cameo.labels import load_outcomes

    o = load_outcomes(sample_lake)
    t = ds.dataset(sample_lake.root / "country", format="parquet", partitioning="hive").to_table(
        columns=["date", "ActionGeo_CountryCode", "EventRootCode", "NumMentions"]).to_pandas()
    t = t[t.ActionGeo_CountryCode.notna() & (t.ActionGeo_CountryCode != "")]
    want = t.groupby([t.date.astype(str), "ActionGeo_CountryCode", "EventRootCode"]).NumMentions.sum()
    labels, ci = label_space(), o.country_index()
    got = {(str(o.days[d]), o.countries[c], labels["root"].codes[r]): float(o.mentions["root"][d, c, r])
           for d, c, r in zip(*np.nonzero(o.mentions["root"]))}
    want = {k: float(v) for k, v in want.items() if v > 0 and k[2] in labels["root"].index}
    assert len(want) > 1000 and got == want
    us = ci["US"]
    assert o.mentions["event"][:, us].sum() == o.mentions["root"][:, us].sum() > o.counts["root"][:, us].sum()


def test_actor_feature_and_its_fallback_to_zero():
    o = _outcomes()
    target = D0 + dt.timedelta(days=10)
    assert _f(history_features(o, [target], "root"), "log_actor1") == 0.0  # hand-built: no events abroad
    labels = label_space()
    o.actor = {lv: np.zeros(o.y[lv].shape, np.int32) for lv in LEVELS}
    r01 = labels["root"].index["01"]
    o.actor["root"][[8, 9], 0, r01] = [7, 3]  # FR's part in root-01 events abroad, day 9 is yesterday
    h = history_features(o, [target], "root")
    assert _f(h, "log_actor1", c=0) == pytest.approx(np.log1p(3.0))
    assert _f(h, "log_actor1", c=1) == 0.0 and _f(h, "log_actor1", c=0, code="02") == 0.0
    assert _f(history_features(o, [D0 + dt.timedelta(days=9)], "root"), "log_actor1", c=0) == pytest.approx(
        np.log1p(7.0))  # the target day's own events abroad are never read
    own = slice(0, FEATURES.index("log_actor1"))
    np.testing.assert_array_equal(h.X[..., own], history_features(_outcomes(), [target], "root").X[..., own])


def test_outcomes_count_each_countrys_events_abroad(sample_lake):
    """``Outcomes.actor`` per (day, country, root) against an independent pandas read of the real sample: each
    event once per country of its actors' geographies other than where it happened."""
    import pandas as pd
    import pyarrow.dataset as ds

    from pipeline.cameo.labels import load_outcomes

    o = load_outcomes(sample_lake)
    t = ds.dataset(sample_lake.root / "country", format="parquet", partitioning="hive").to_table(
        columns=["date", "GLOBALEVENTID", "ActionGeo_CountryCode", "Actor1Geo_CountryCode", "Actor2Geo_CountryCode",
                 "EventRootCode"]).to_pandas()
    t = t[t.ActionGeo_CountryCode.notna() & (t.ActionGeo_CountryCode != "")]
    long = pd.concat([t.rename(columns={"Actor1Geo_CountryCode": "a"}), t.rename(columns={"Actor2Geo_CountryCode": "a"})])
    long = long[long.a.notna() & (long.a != "") & (long.a != long.ActionGeo_CountryCode)]
    long = long.drop_duplicates(["date", "GLOBALEVENTID", "a"])  # both actors from one third country: once
    labels = label_space()
    long = long[long.a.isin(o.countries) & long.EventRootCode.isin(labels["root"].index)]
    want = long.groupby([long.date.astype(str), "a", "EventRootCode"]).size()
    want = {k: int(v) for k, v in want.items()}
    got = {(str(o.days[d]), o.countries[c], labels["root"].codes[r]): int(o.actor["root"][d, c, r])
           for d, c, r in zip(*np.nonzero(o.actor["root"]))}
    assert len(want) > 500 and got == want
    us = o.country_index()["US"]
    assert o.actor["event"][:, us].sum() <= o.actor["root"][:, us].sum() == o.actor["quad"][:, us].sum() > 0


def test_outcomes_every_array_against_an_independent_read(sample_lake):
    """Indicators, event counts, per-country volumes and QuadClass counts of ``load_outcomes`` at every level, and
    what it drops, against a pandas read of the real sample's ``country`` table."""
    import pyarrow.dataset as ds

    from pipeline.cameo.labels import load_outcomes

    o = load_outcomes(sample_lake)
    t = ds.dataset(sample_lake.root / "country", format="parquet", partitioning="hive").to_table(
        columns=["date", "ActionGeo_CountryCode", "EventCode", "EventBaseCode", "EventRootCode", "QuadClass"]
    ).to_pandas()
    placed = t.ActionGeo_CountryCode.notna() & (t.ActionGeo_CountryCode != "")
    assert o.dropped["no_location"] == int((~placed).sum())
    t = t[placed].assign(day=t.date.astype(str), QuadClass=t.QuadClass.astype(str))
    assert o.countries == sorted(t.ActionGeo_CountryCode.unique()) and [str(d) for d in o.days] == sorted(t.day.unique())
    labels, di = label_space(), {str(d): i for i, d in enumerate(o.days)}
    ci = o.country_index()
    volume = np.zeros_like(o.n_events)
    for (day, c), n in t.groupby(["day", "ActionGeo_CountryCode"]).size().items():
        volume[di[day], ci[c]] = n
    np.testing.assert_array_equal(o.n_events, volume)
    for level, column in zip(LEVELS, ("EventCode", "EventBaseCode", "EventRootCode", "QuadClass")):
        known = t[column].isin(labels[level].index)
        assert o.dropped.get(f"unknown_{level}_code", 0) == int((~known).sum())
        want = np.zeros(o.counts[level].shape, np.int64)
        for (day, c, code), n in t[known].groupby(["day", "ActionGeo_CountryCode", column]).size().items():
            want[di[day], ci[c], labels[level].index[code]] = n
        np.testing.assert_array_equal(o.counts[level], want)
        np.testing.assert_array_equal(o.y[level], want > 0)
        assert o.counts[level].dtype == np.int32 and o.y[level].dtype == bool
    np.testing.assert_array_equal(o.quad_counts, o.counts["quad"])
    assert o.mentions["root"].dtype == np.float32 and o.actor["root"].dtype == np.int32


def test_prefix_rows_equal_the_full_prefix_sums():
    from pipeline.features.history import PrefixAt, prefix_sums, window_rows

    rng = np.random.default_rng(0)
    for a in (rng.random((40, 3, 5)) < 0.3, rng.integers(0, 1000, (40, 3, 5)).astype(np.int32),
              rng.integers(0, 10**6, (40, 3)).astype(np.float32)):
        k = np.array([0, 1, 7, 39, 40, 25])
        p = PrefixAt(a, window_rows(k, (1, 3, 7, 30)))
        for rows in (k, np.maximum(k - 7, 0), np.maximum(k - 30, 0)):
            np.testing.assert_array_equal(p[rows], prefix_sums(a)[rows])  # to the last bit
    with pytest.raises(KeyError, match="not asked for"):
        PrefixAt(a, [3])[np.array([4])]
    assert PrefixAt(np.zeros((0, 2)), [0])[np.array([0])].tolist() == [[0.0, 0.0]]


def test_one_targets_features_do_not_hold_every_days_cells():
    """Forecasting one day from a long history must not allocate float64 copies of every day's (C, L) cells:
    with two years of the 246 countries that was ~1.5 GB above the outcomes themselves (docs/forecast.md, "Session
    24"). Random outcomes of 400 days; the features of one target stay within a few days' worth of cells."""
    import tracemalloc

    labels = label_space()
    D, C = 400, 20
    rng = np.random.default_rng(1)
    days = [D0 + dt.timedelta(days=i) for i in range(D)]
    y = {lv: rng.random((D, C, len(labels[lv]))) < 0.2 for lv in LEVELS}
    counts = {lv: (y[lv] * rng.integers(1, 5, y[lv].shape)).astype(np.int32) for lv in LEVELS}
    o = Outcomes(days, [f"C{i:02d}" for i in range(C)], y, counts["quad"].sum(axis=2).astype(np.int64),
                 counts["quad"].astype(np.int64), {}, counts, {lv: counts[lv].astype(np.float32) for lv in LEVELS},
                 {lv: counts[lv] for lv in LEVELS})
    cells = D * C * len(labels["event"])  # one float64 copy of the event level: 8 × cells bytes
    tracemalloc.start()
    h = history_features(o, [days[-1] + dt.timedelta(days=1)], "event")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert h.X.shape == (1, C, len(labels["event"]), len(FEATURES))
    assert peak < 2 * cells, f"peak {peak / 1e6:.1f} MB against {8 * cells / 1e6:.1f} MB a float64 copy"


def test_rows_asked_for_equal_those_of_every_row():
    from pipeline.features.history import history_rows

    o = _outcomes()
    targets = [D0 + dt.timedelta(days=i) for i in (10, 3, 7)]
    for level in ("root", "quad", "event"):
        h = history_features(o, targets, level)
        rng = np.random.default_rng(0)
        at = tuple(rng.integers(0, n, 50) for n in h.X.shape[:3])
        np.testing.assert_array_equal(history_rows(o, targets, level, at), h.X[at])
