"""Baselines: known values on a hand-made history, level consistency, the forecasts table."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from pipeline.forecast.baselines import baseline_probabilities, run_baselines, volume_ratio
from pipeline.core.config import ForecastConfig
from pipeline.cameo.labels import LEVELS, Outcomes, label_space, load_outcomes

D = dt.date.fromisoformat


def _p(lake, run: str, day: str, country: str, level: str, code: str) -> float:
    t = lake.read("forecasts", day, day, model=run).to_pandas()
    row = t[(t.country == country) & (t.level == level) & (t.code == code)]
    return float(row.probability.iloc[0]) if len(row) else 0.0


def test_outcomes_count_what_they_drop(country_history):
    o = load_outcomes(country_history)
    assert o.countries == ["FR", "US"] and len(o.days) == 5
    assert o.dropped["no_location"] == 1 and o.dropped["unknown_event_code"] == 1
    us = o.countries.index("US")
    assert o.n_events[3, us] == 3  # the unknown code still counts as an event
    assert o.quad_counts[0, us].tolist() == [2, 0, 0, 0]


def test_baselines_known_values(country_history):
    lake = country_history
    run_baselines(lake, "2025-01-06", cfg=ForecastConfig(ewm_halflife_days=2.0))
    # US root 01 occurred on days 1, 2, 4 of 5; not on day 5 (yesterday)
    assert _p(lake, "baseline-climatology", "2025-01-06", "US", "root", "01") == pytest.approx(3 / 5)
    assert _p(lake, "baseline-freq7", "2025-01-06", "US", "root", "01") == pytest.approx(3 / 5)
    assert _p(lake, "baseline-freq30", "2025-01-06", "US", "root", "01") == pytest.approx(3 / 5)
    assert _p(lake, "baseline-persistence", "2025-01-06", "US", "root", "01") == 0.0
    assert _p(lake, "baseline-persistence", "2025-01-06", "US", "event", "0211") == 1.0
    lam = 0.5 ** (1 / 2.0)  # weights λ^(t-1), t = 1 for day 5
    expected = (lam + lam**3 + lam**4) / sum(lam**k for k in range(5))
    assert _p(lake, "baseline-ewm", "2025-01-06", "US", "root", "01") == pytest.approx(expected)
    # FR had no events on days 2 and 4: those days still count as "did not occur"
    assert _p(lake, "baseline-climatology", "2025-01-06", "FR", "root", "19") == pytest.approx(2 / 5)
    assert _p(lake, "baseline-climatology", "2025-01-06", "US", "quad", "1") == pytest.approx(4 / 5)
    assert _p(lake, "baseline-climatology", "2025-01-06", "US", "quad", "2") == 0.0  # quad rows always written
    assert _p(lake, "baseline-climatology", "2025-01-06", "US", "base", "021") == pytest.approx(2 / 5)


def test_baselines_use_only_the_past(country_history):
    lake = country_history
    run_baselines(lake, "2025-01-03", cfg=ForecastConfig(baselines=["climatology"]))
    assert _p(lake, "baseline-climatology", "2025-01-03", "US", "root", "01") == 1.0  # days 1-2 only
    assert _p(lake, "baseline-climatology", "2025-01-03", "US", "root", "19") == 0.0  # day 3 is the target
    with pytest.raises(FileNotFoundError, match="2024-12-31"):
        run_baselines(lake, "2025-01-01")


def test_smoothing_and_country_filter(country_history):
    lake = country_history
    run_baselines(lake, "2025-01-06", cfg=ForecastConfig(baselines=["climatology"], baseline_smoothing=1.0,
                                                         countries=["US"]))
    t = lake.read("forecasts", "2025-01-06", "2025-01-06", model="baseline-climatology").to_pandas()
    assert set(t.country) == {"US"}
    assert _p(lake, "baseline-climatology", "2025-01-06", "US", "root", "01") == pytest.approx(4 / 7)
    # smoothing gives every label a probability, so every row is written
    n_labels = sum(len(label_space()[lv]) for lv in LEVELS)
    assert len(t) == n_labels
    with pytest.raises(ValueError, match="ZZ"):
        run_baselines(lake, "2025-01-06", cfg=ForecastConfig(countries=["ZZ"]))


def test_window_frequencies_on_a_long_history():
    labels = label_space()
    y_root = np.zeros((40, 1, 20), dtype=bool)
    pattern = (np.arange(40) % 3 == 0)  # occurs every third day
    y_root[:, 0, 0] = pattern
    y = {lv: np.zeros((40, 1, len(labels[lv])), dtype=bool) for lv in LEVELS}
    y["root"] = y_root
    days = [D("2025-01-01") + dt.timedelta(days=i) for i in range(40)]
    o = Outcomes(days, ["US"], y, np.ones((40, 1), np.int64), np.zeros((40, 1, 4), np.int64), {})
    target = D("2025-02-10")
    out = baseline_probabilities(o, [target], halflife=5.0)[target]
    p = {name: out[name]["root"][0][0, 0] for name in out}
    assert p["climatology"] == pytest.approx(pattern.mean())
    assert p["freq7"] == pytest.approx(pattern[-7:].mean())
    assert p["freq30"] == pytest.approx(pattern[-30:].mean())
    assert p["persistence"] == float(pattern[-1])
    w = 0.5 ** (np.arange(40)[::-1] / 5.0)
    assert p["ewm"] == pytest.approx((w * pattern).sum() / w.sum())
    assert out["freq7"]["root"][2] == 7 and out["climatology"]["root"][2] == 40


def _weekly_history(n_days: int = 28):
    """Two countries over n_days from Monday 2025-01-06: A's volume halves at weekends, B's is flat;
    root 01 occurs in A on every other day, so its climatology is 1/2."""
    labels = label_space()
    days = [D("2025-01-06") + dt.timedelta(days=i) for i in range(n_days)]
    y = {lv: np.zeros((n_days, 2, len(labels[lv])), dtype=bool) for lv in LEVELS}
    y["root"][::2, 0, 0] = True
    y["event"][::2, 0, 0] = True  # 010, a child of root 01
    weekend = np.array([d.weekday() >= 5 for d in days])
    n_events = np.stack([np.where(weekend, 50, 100), np.full(n_days, 80)], 1).astype(np.int64)
    return Outcomes(days, ["A", "B"], y, n_events, np.zeros((n_days, 2, 4), np.int64), {}), weekend


def test_weekday_is_climatology_at_the_days_volume():
    o, weekend = _weekly_history()
    saturday, monday = D("2025-02-08"), D("2025-02-10")  # 2025-02-03 is the day after the history
    out = baseline_probabilities(o, [saturday, monday], ["climatology", "weekday"], weekday_prior=0.0)
    mean_a = (100 * (~weekend).sum() + 50 * weekend.sum()) / len(weekend)
    for day, volume in ((saturday, 50), (monday, 100)):
        clim = out[day]["climatology"]["root"][0][0, 0]
        assert clim == pytest.approx(0.5)
        p = out[day]["weekday"]["root"][0]
        assert p[0, 0] == pytest.approx(1 - 0.5 ** (volume / mean_a))  # A: its own ratio (prior 0)
        assert out[day]["weekday"]["event"][0][0, 0] == pytest.approx(p[0, 0])
    assert out[saturday]["weekday"]["root"][0][0, 0] < 0.5 < out[monday]["weekday"]["root"][0][0, 0]
    # B's volume is flat: its weekday forecast is its climatology (0 here) whatever the day
    assert out[saturday]["weekday"]["root"][0][1].tolist() == out[saturday]["climatology"]["root"][0][1].tolist()
    assert out[monday]["weekday"]["root"][2] == len(o.days)


def test_weekday_shrinks_toward_the_world_and_needs_a_day_of_the_kind():
    o, weekend = _weekly_history()
    saturday = D("2025-02-08")
    world = (50 + 80) / ((100 * (~weekend).sum() + 50 * weekend.sum()) / len(weekend) + 80)
    own = 50 / ((100 * (~weekend).sum() + 50 * weekend.sum()) / len(weekend))
    p = {m: baseline_probabilities(o, [saturday], ["weekday"], weekday_prior=m)[saturday]["weekday"]["root"][0][0, 0]
         for m in (0.0, 8.0, 1e9)}
    assert p[0.0] == pytest.approx(1 - 0.5 ** own)
    assert p[1e9] == pytest.approx(1 - 0.5 ** world, rel=1e-6)
    assert p[0.0] < p[8.0] < p[1e9]  # A's weekend dip is deeper than the world's
    assert volume_ratio(o, saturday, 0.0) == pytest.approx([own, 1.0])
    assert volume_ratio(o, saturday, 0.0, ["B", "ZZ", "A"]) == pytest.approx([1.0, world, own])
    # five weekdays of history and a Saturday target: no day of its kind, so climatology
    short = Outcomes(o.days[:5], o.countries, {lv: v[:5] for lv, v in o.y.items()}, o.n_events[:5],
                     o.quad_counts[:5], {})
    first_saturday = D("2025-01-11")
    out = baseline_probabilities(short, [first_saturday], ["climatology", "weekday"])[first_saturday]
    assert out["weekday"]["root"][0].tolist() == out["climatology"]["root"][0].tolist()
    with pytest.raises(ValueError, match="weekday_prior_days"):
        baseline_probabilities(o, [saturday], ["weekday"], weekday_prior=-1.0)


def test_levels_consistent_and_idempotent(country_history):
    lake = country_history
    labels = label_space()
    run_baselines(lake, "2025-01-04", "2025-01-06")
    first = lake.read("forecasts", "2025-01-06", "2025-01-06", model="baseline-freq7").drop_columns(["issued_at"])
    run_baselines(lake, "2025-01-06")
    again = lake.read("forecasts", "2025-01-06", "2025-01-06", model="baseline-freq7").drop_columns(["issued_at"])
    assert first.equals(again)
    for name in ("climatology", "persistence", "freq7", "freq30", "ewm", "weekday"):
        t = lake.read("forecasts", "2025-01-04", "2025-01-06", model=f"baseline-{name}").to_pandas()
        assert t.probability.between(0, 1).all()
        assert (t[t.level != "quad"].probability > 0).all()
        for (day, country), g in t.groupby(["date", "country"]):
            p = {(r.level, r.code): r.probability for r in g.itertuples()}
            for (lv, code), prob in p.items():
                if lv in ("event", "base", "root"):
                    parent_lv = {"event": "base", "base": "root", "root": "quad"}[lv]
                    parent = labels.parent_code(code, parent_lv)
                    assert p.get((parent_lv, parent), 0.0) >= prob - 1e-12, (name, day, country, code)


def test_a_daily_run_reads_the_history_once(country_history):
    """Inside ``remembered_outcomes`` the second read of the same days is the first's (read-only, so no reader can
    change what the next one sees); a day re-reduced in between is read afresh; outside the block every call
    reads the lake."""
    from conftest import write_country_days
    from pipeline.cameo.labels import remembered_outcomes

    assert load_outcomes(country_history) is not load_outcomes(country_history)  # no block: no memory
    with remembered_outcomes():
        one = load_outcomes(country_history, None, "2025-01-05")
        with remembered_outcomes():  # nested blocks share it
            assert load_outcomes(country_history, None, "2025-01-05") is one
        assert load_outcomes(country_history, None, "2025-01-05") is one
        with pytest.raises(ValueError, match="read-only"):
            one.y["root"][0, 0, 0] = True
        write_country_days(country_history, {"2025-01-05": [("US", "0211"), ("FR", "051"), ("FR", "190")]})
        again = load_outcomes(country_history, None, "2025-01-05")  # a partition changed: read afresh
        assert again is not one and again.n_events.sum() == one.n_events.sum() + 1
        assert load_outcomes(country_history, None, "2025-01-05") is again
        assert load_outcomes(country_history, None, "2025-01-04") is not again  # other days: another read
    after = load_outcomes(country_history, None, "2025-01-05")
    assert after is not again and after.y["root"].flags.writeable
    np.testing.assert_array_equal(after.counts["event"], again.counts["event"])


def test_climatology_is_written_last_and_tells_the_stage_done(country_history, monkeypatch):
    """The ``baselines`` stage is done for d when climatology's partition of d+1 is fresh (pipeline.core.status), so
    it is written after every other baseline of the day: a run stopped in between is not taken for a finished one.
    A gap with no ``country`` day on or before it has nothing to forecast from: done."""
    from pipeline.core.lake import Lake
    from pipeline.core.status import LakeStatus, record_gaps

    lake = country_history
    order: list[str] = []
    real = Lake.write_partition

    def recorded(self, table, data, date=None, **kw):
        order.append(kw.get("model"))
        if kw.get("model") == "baseline-climatology":
            raise OSError("killed before climatology")
        return real(self, table, data, date, **kw)

    monkeypatch.setattr(Lake, "write_partition", recorded)
    with pytest.raises(OSError):
        run_baselines(lake, "2025-01-06", cfg=ForecastConfig(baselines=["climatology", "persistence", "ewm"]))
    assert order == ["baseline-persistence", "baseline-ewm", "baseline-climatology"]
    assert not LakeStatus(lake).done("baselines", D("2025-01-05"))  # persistence and ewm written, not the day
    monkeypatch.setattr(Lake, "write_partition", real)
    run_baselines(lake, "2025-01-06", cfg=ForecastConfig(baselines=["climatology", "persistence", "ewm"]))
    assert LakeStatus(lake).done("baselines", D("2025-01-05"))
    before = lake.partitions("country")[0] - dt.timedelta(days=1)
    assert record_gaps(lake, [before], "local") == [before]
    assert LakeStatus(lake).done("baselines", before)  # a gap before the first day: nothing to forecast from
