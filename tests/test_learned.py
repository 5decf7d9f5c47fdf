"""baseline-learned: fitted only on the past, beats climatology where history predicts, round-trips, hierarchy."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from pipeline.cameo.labels import LEVELS, Outcomes, label_space
from pipeline.core.config import ForecastConfig
from pipeline.core.errors import UserError
from pipeline.forecast.baselines import run_baselines
from pipeline.model.learned import LearnedBaseline, fit_learned, learned_probabilities, training_days

D0 = dt.date(2025, 3, 1)


def _persistent_outcomes(n_days: int = 40, C: int = 12, seed: int = 0) -> Outcomes:
    """Root 01 switches state rarely (so yesterday predicts it); root 02 is a coin with a per-country rate."""
    labels = label_space()
    rng = np.random.default_rng(seed)
    y = {lv: np.zeros((n_days, C, len(labels[lv])), bool) for lv in LEVELS}
    state = rng.random(C) < 0.5
    rate = rng.uniform(0.1, 0.9, C)
    for t in range(n_days):
        state = np.where(rng.random(C) < 0.1, ~state, state)
        y["root"][t, :, 0] = state
        y["root"][t, :, 1] = rng.random(C) < rate
    days = [D0 + dt.timedelta(days=i) for i in range(n_days)]
    return Outcomes(days, [f"C{i}" for i in range(C)], y, np.full((n_days, C), 10, np.int64),
                    np.zeros((n_days, C, 4), np.int64), {})


def _brier(P, Y):
    return float(((P - Y) ** 2).mean())


@pytest.mark.parametrize("kind", ["logistic", "hgb"])
def test_beats_climatology_on_held_out_days(kind):
    o = _persistent_outcomes()
    split = o.days[30]
    model = fit_learned(o, training_days(o, split), kind, max_rows=50_000)
    assert model.last_day < split and len(model.fitted_on) == 29
    test = o.days[30:]
    probs = learned_probabilities(model, o, test)
    P = np.stack([probs[d]["root"][0][:, 0] for d in test])
    Y = o.y["root"][30:, :, 0]
    clim = np.stack([o.y["root"][:30 + i, :, 0].mean(0) for i in range(len(test))])
    assert _brier(P, Y) < 0.8 * _brier(clim, Y)
    assert all(0 < p.min() and p.max() < 1 for d in test for p in (probs[d][lv][0] for lv in LEVELS))


def test_fit_uses_only_days_before_the_split():
    o = _persistent_outcomes()
    split = o.days[25]
    before = learned_probabilities(fit_learned(o, training_days(o, split)), o, [split])[split]
    for lv in LEVELS:  # rewrite the split day and after: the fit and the forecast of the split day stay
        o.y[lv][25:] = ~o.y[lv][25:]
    after = learned_probabilities(fit_learned(o, training_days(o, split)), o, [split])[split]
    for lv in LEVELS:
        np.testing.assert_array_equal(before[lv][0], after[lv][0])


def test_save_load_round_trip(tmp_path):
    o = _persistent_outcomes()
    model = fit_learned(o, training_days(o, o.days[20]), "logistic")
    model.save(tmp_path / "learned")
    again = LearnedBaseline.load(tmp_path / "learned")
    assert again.fitted_on == model.fitted_on and again.estimator == "logistic"
    a = learned_probabilities(model, o, o.days[20:22])
    b = learned_probabilities(again, o, o.days[20:22])
    for d in a:
        for lv in LEVELS:
            np.testing.assert_array_equal(a[d][lv][0], b[d][lv][0])
    assert LearnedBaseline.load(tmp_path / "none") is None
    settings = tmp_path / "learned" / "learned.json"
    settings.write_text(settings.read_text().replace('"yesterday"', '"old_feature"'))
    with pytest.raises(UserError, match="refit"):
        LearnedBaseline.load(tmp_path / "learned")
    with pytest.raises(UserError, match="history"):
        fit_learned(o, o.days[:1])


def test_an_artefact_fitted_on_fewer_features_still_loads_and_reads_the_first_ones(tmp_path):
    """An artefact of an older version (before the ``world_*`` features) forecasts from the first F columns."""
    from pipeline.features.history import FEATURES
    from pipeline.model.hierarchy import PROB_FLOOR
    from pipeline.model.learned import make_estimator, training_rows

    o = _persistent_outcomes()
    days = training_days(o, o.days[20])
    old = list(FEATURES[:FEATURES.index("world_yesterday")])
    estimators = {}
    for lv in LEVELS:
        X, y = training_rows(o, days, lv)
        estimators[lv] = make_estimator("logistic").fit(X[:, :len(old)], y) if y.any() and not y.all() else None
    fitted = {lv: e for lv, e in estimators.items() if e is not None}
    full = fit_learned(o, days, "logistic")  # constant levels as fit_learned makes them
    model = LearnedBaseline({**full.estimators, **fitted}, "logistic", full.fitted_on, {}, old)
    model.save(tmp_path / "old")
    again = LearnedBaseline.load(tmp_path / "old")
    assert again.features == old
    P = learned_probabilities(again, o, [o.days[20]])[o.days[20]]["root"][0]
    X, _ = training_rows(o, [o.days[20]], "root")
    expected = fitted["root"].predict_proba(X[:, :len(old)])[:, 1].reshape(P.shape)
    np.testing.assert_allclose(P[:, :2], np.clip(expected, PROB_FLOOR, 1 - PROB_FLOOR)[:, :2], rtol=1e-6)


@pytest.mark.parametrize("max_rows", [None, 700])
def test_training_rows_do_not_depend_on_the_chunking(max_rows):
    """Rows are drawn over the whole index, features computed a chunk of days at a time: the same rows as
    computing every row's features at once and drawing from them."""
    from pipeline.features.history import history_features
    from pipeline.model.learned import training_rows

    o = _persistent_outcomes()
    o.n_events[:3, 5] = 0  # a country first seen on day 3: its earlier rows are not training rows
    days = o.days[:30]
    h = history_features(o, days, "root")
    keep = h.seen & (h.n_days > 0)[:, None]
    X, y = h.X[keep].reshape(-1, h.X.shape[-1]), o.y["root"][:30][keep].reshape(-1)
    if max_rows:
        pick = np.sort(np.random.default_rng(3).choice(len(y), max_rows, replace=False))
        X, y = X[pick], y[pick]
    for chunk_bytes in (1, 10_000, 1 << 30):  # one day per chunk … all days at once
        Xc, yc = training_rows(o, days, "root", max_rows, seed=3, chunk_bytes=chunk_bytes)
        np.testing.assert_array_equal(Xc, X)
        np.testing.assert_array_equal(yc, y)


def test_written_as_a_baseline_with_parent_at_least_child(country_history, tmp_path):
    lake = country_history
    cfg = ForecastConfig(baselines=["learned"], learned_dir=tmp_path / "none")
    written = run_baselines(lake, "2025-01-05", "2025-01-06", cfg)
    assert set(written) == {"baseline-learned"}
    labels = label_space()
    t = lake.read("forecasts", "2025-01-05", "2025-01-06", model="baseline-learned").to_pandas()
    assert set(t.country) == {"US", "FR"} and t.probability.between(0, 1).all()
    assert (t.n_futures == t.date.map(lambda d: 4 if str(d) == "2025-01-05" else 5)).all()  # history days used
    for _, g in t.groupby(["date", "country"]):
        p = {(r.level, r.code): r.probability for r in g.itertuples()}
        for (lv, code), prob in p.items():
            if lv != "quad":
                up = {"event": "base", "base": "root", "root": "quad"}[lv]
                assert p[(up, labels.parent_code(code, up))] >= prob - 1e-12


def test_a_stored_fit_that_saw_the_target_is_not_used(country_history, tmp_path, capsys):
    from pipeline.cameo.labels import load_outcomes

    lake = country_history
    o = load_outcomes(lake)
    fit_learned(o, o.days).save(tmp_path / "learned")  # fitted up to 2025-01-05
    cfg = ForecastConfig(baselines=["learned"], learned_dir=tmp_path / "learned")
    run_baselines(lake, "2025-01-04", cfg=cfg)
    assert "refitted" in capsys.readouterr().err.replace("\n", " ")
    fresh = ForecastConfig(baselines=["learned"], learned_dir=tmp_path / "none")
    a = lake.read("forecasts", "2025-01-04", "2025-01-04", model="baseline-learned").drop_columns(["issued_at"])
    run_baselines(lake, "2025-01-04", cfg=fresh)
    b = lake.read("forecasts", "2025-01-04", "2025-01-04", model="baseline-learned").drop_columns(["issued_at"])
    assert a.equals(b)


def test_evaluate_scores_it_as_a_baseline(country_history, tmp_path):
    from pipeline.core.config import EvaluateConfig
    from pipeline.scoring.evaluate import evaluate

    lake = country_history
    run_baselines(lake, "2025-01-03", "2025-01-05", ForecastConfig(learned_dir=tmp_path / "none"))
    ev = evaluate(lake, "2025-01-04", "2025-01-05", cfg=EvaluateConfig(val_days=1, bootstrap=200, reports_dir=tmp_path / "r"))
    assert "baseline-learned" in ev.runs
    s = ev.table("all", "root")
    assert s.loc["baseline-learned", "bss_learned"] == pytest.approx(0.0)
    assert np.isnan(s.loc["baseline-learned", "bss_learned_lo"])  # no interval against itself
    clim = s.loc["baseline-climatology"]
    assert clim.bss_learned == pytest.approx(1 - clim.brier / s.loc["baseline-learned", "brier"])
    assert clim.bss_learned_lo <= clim.bss_learned <= clim.bss_learned_hi
    assert s.best_baseline.iloc[0] == s.brier.idxmin()  # the best baseline is chosen among all, learned included


def test_baselines_read_the_artefact_the_config_s_training_saved(country_history, tmp_path, monkeypatch):
    """``forecast.learned_dir`` unset in a config file is ``<train.models_dir>/baseline-learned``, where the training
    flow of that config saves the fit: the daily baselines read it instead of refitting every morning (before, the
    default ``models/baseline-learned`` was relative to the working directory, so a config with its own models_dir
    never found it). Set, or null (always refit in memory), it is kept."""
    import yaml

    from pipeline.cameo.labels import load_outcomes
    from pipeline.core.config import load_config
    from pipeline.forecast import baselines

    lake = country_history
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"train": {"models_dir": str(tmp_path / "m")}}))
    cfg = load_config(path)
    assert cfg.forecast.learned_dir == tmp_path / "m" / "baseline-learned"
    assert load_config(path, {"train.models_dir": str(tmp_path / "n")}).forecast.learned_dir == tmp_path / "n" / "baseline-learned"
    path.write_text(yaml.safe_dump({"train": {"models_dir": str(tmp_path / "m")}, "forecast": {"learned_dir": None}}))
    assert load_config(path).forecast.learned_dir is None
    assert load_config(None, {"forecast.learned_dir": str(tmp_path / "x")}).forecast.learned_dir == tmp_path / "x"
    assert cfg.forecast.learned_cache_dir == tmp_path / "m" / "cache" / "baseline-learned"  # the weekly fits
    assert load_config(path).forecast.learned_cache_dir == tmp_path / "m" / "cache" / "baseline-learned"
    path.write_text(yaml.safe_dump({"forecast": {"learned_cache_dir": None}}))
    assert load_config(path).forecast.learned_cache_dir is None

    o = load_outcomes(lake, None, dt.date(2025, 1, 3))
    fit_learned(o, training_days(o, dt.date(2025, 1, 4))).save(cfg.forecast.learned_dir)
    monkeypatch.setattr("pipeline.model.learned.fit_learned", lambda *a, **k: pytest.fail("refitted"))
    cfg.forecast.baselines = ["learned"]
    assert baselines.run_baselines(lake, "2025-01-04", cfg=cfg.forecast)["baseline-learned"] > 0


def _late_country(o: Outcomes, first: int = 30) -> Outcomes:
    """``o`` with its country C5 first seen on day ``first`` (no event, no label before)."""
    o.n_events[:first, 5] = 0
    for lv in LEVELS:
        o.y[lv][:first, 5] = False
    return o


def test_fit_cached_reads_back_the_same_fit_and_refits_when_an_input_changes(tmp_path, monkeypatch):
    import pipeline.model.learned as learned

    o = _late_country(_persistent_outcomes())
    days = training_days(o, o.days[25])
    fresh = fit_learned(o, days, "hgb", max_rows=3_000)  # subsampled: the rows drawn must not move either
    first = learned.fit_cached(o, days, "hgb", 3_000, 0, cache=tmp_path)
    saved = [p for p in tmp_path.iterdir()]
    assert len(saved) == 1 and not saved[0].name.startswith(".")
    target = o.days[25:27]

    def same(a, b):
        pa, pb = learned_probabilities(a, o, target), learned_probabilities(b, o, target)
        for d in target:
            for lv in LEVELS:
                np.testing.assert_array_equal(pa[d][lv][0], pb[d][lv][0])

    same(first, fresh)  # fitted on the outcomes up to its last day (C5 not yet seen): as on the whole read
    monkeypatch.setattr(learned, "fit_learned", lambda *a, **k: pytest.fail("refitted a cached fit"))
    same(learned.fit_cached(o, days, "hgb", 3_000, 0, cache=tmp_path), first)
    key = learned.fit_key(o, days, "hgb", 3_000, 0)
    assert learned.fit_key(o.until(o.days[-1]), days, "hgb", 3_000, 0) == key
    o.y["root"][30, 0, 0] ^= True  # a day after the last training day: the same fit
    assert learned.fit_key(o, days, "hgb", 3_000, 0) == key
    o.y["root"][10, 0, 0] ^= True  # a training day's outcome: another fit
    assert learned.fit_key(o, days, "hgb", 3_000, 0) != key
    assert learned.fit_key(_late_country(_persistent_outcomes()), days, "hgb", 3_001, 0) != key
    assert learned.fit_key(_late_country(_persistent_outcomes()), days[:-1], "hgb", 3_000, 0) != key


def test_a_damaged_cached_fit_is_refitted_and_replaced(tmp_path, capsys):
    import pipeline.model.learned as learned

    o = _persistent_outcomes()
    days = training_days(o, o.days[20])
    first = learned.fit_cached(o, days, "logistic", 3_000, 0, cache=tmp_path)
    (folder,) = list(tmp_path.iterdir())
    (folder / learned.MODEL_FILE).write_bytes(b"not a joblib file")
    again = learned.fit_cached(o, days, "logistic", 3_000, 0, cache=tmp_path)
    assert "unreadable" in capsys.readouterr().err and again.fitted_on == first.fitted_on
    assert learned.LearnedBaseline.load(folder) is not None  # replaced by the refit, readable again
    blocked = tmp_path / "file"
    blocked.write_text("a file where the cache folder should be")
    fit = learned.fit_cached(o, days, "logistic", 3_000, 0, cache=blocked)  # cannot save: still a fit
    assert fit.fitted_on == first.fitted_on and "not cached" in capsys.readouterr().err


def _two_weeks_lake(root):
    """A lake of 16 hand-made days (2025-01-01 … 01-16; Mondays 01-06 and 01-13), five countries, a few codes."""
    from pipeline.core.lake import Lake
    from tests.conftest import write_country_days

    rng = np.random.default_rng(3)
    codes = ["010", "0211", "190", "141", "051", "173", "042"]
    days = {}
    for i in range(16):
        events = [(c, codes[j]) for c in ("US", "FR", "DE", "NI", "IZ") for j in range(len(codes))
                  if rng.random() < 0.3 + 0.1 * j]
        days[str(dt.date(2025, 1, 1) + dt.timedelta(days=i))] = events
    lake = Lake(root)
    write_country_days(lake, days)
    return lake


def test_refit_origin_is_a_fixed_calendar():
    from pipeline.forecast.baselines import REFIT_ANCHOR, refit_origin

    o = _persistent_outcomes(40)  # D0 = 2025-03-01 (a Saturday) … 04-09
    monday = dt.date(2025, 3, 10)
    for k in range(7):
        assert refit_origin(o, monday + dt.timedelta(days=k), 7) == monday  # the week's Monday
    assert refit_origin(o, monday + dt.timedelta(days=7), 7) == monday + dt.timedelta(days=7)
    assert refit_origin(o, dt.date(2025, 3, 13), 1) == dt.date(2025, 3, 13)
    for day in (dt.date(2025, 3, 13) + dt.timedelta(days=i) for i in range(6)):  # every 3rd day from the anchor
        origin = refit_origin(o, day, 3)
        assert 0 <= (day - origin).days < 3 and (origin - REFIT_ANCHOR).days % 3 == 0
    # the lake's first week: no training day before its Monday (02-24) -> the target itself
    assert refit_origin(o, dt.date(2025, 3, 2), 7) == dt.date(2025, 3, 2)
    # a short history: every day while fewer than from_days training days precede the origin (03-10: 8 of them)
    assert refit_origin(o, dt.date(2025, 3, 12), 7, from_days=8) == monday
    assert refit_origin(o, dt.date(2025, 3, 12), 7, from_days=9) == dt.date(2025, 3, 12)
    assert refit_origin(o, dt.date(2025, 3, 19), 7, from_days=9) == dt.date(2025, 3, 17)
    with pytest.raises(ValueError, match="learned_refit_days"):
        refit_origin(o, monday, 0)


@pytest.mark.parametrize("every, from_days, fits", [(7, 3, 2), (1, 1, 9), (7, 9, 6)])
def test_a_range_fits_once_per_refit_origin_and_writes_what_each_day_alone_writes(tmp_path, monkeypatch, every,
                                                                                 from_days, fits):
    """A backfill's baselines run as one range (a week of targets): ``baseline-learned`` is fitted once per refit
    origin on the days before it, and every day's forecast is the one a daily run of that day alone writes (up to
    the last bits of the classifier's batched arithmetic). While few days precede the origin, every day is
    refitted (``from_days`` 9: 01-08 … 01-12 refitted each, 01-13 … 01-16 from the 11 days before 01-13)."""
    import pipeline.model.learned as learned

    lake = _two_weeks_lake(tmp_path / "lake")
    real, fitted = learned.fit_learned, []

    def counting(outcomes, days, *args, **kwargs):
        fitted.append(max(days))
        return real(outcomes, days, *args, **kwargs)

    monkeypatch.setattr(learned, "fit_learned", counting)
    cfg = ForecastConfig(baselines=["learned"], learned_dir=None, learned_refit_days=every,
                         learned_refit_from_days=from_days, learned_estimator="logistic", learned_max_rows=20_000)
    run_baselines(lake, "2025-01-08", "2025-01-16", cfg)
    assert len(fitted) == fits
    if every == 7:  # the last training day of each fit: 01-08 … 01-12 from the days before Monday 01-06 (or
        # each from the days before itself), 01-13 … 01-16 from those before 01-13
        first = [dt.date(2025, 1, 5)] if from_days <= 4 else [dt.date(2025, 1, 7 + i) for i in range(5)]
        assert fitted == first + [dt.date(2025, 1, 12)]
    ranged = lake.read("forecasts", "2025-01-08", "2025-01-16", model="baseline-learned").drop_columns(["issued_at"])
    for i in range(9):
        day = dt.date(2025, 1, 8) + dt.timedelta(days=i)
        run_baselines(lake, day, day, cfg)
    alone = lake.read("forecasts", "2025-01-08", "2025-01-16", model="baseline-learned").drop_columns(["issued_at"])
    assert ranged.num_rows > 0 and ranged.drop_columns(["probability"]).equals(alone.drop_columns(["probability"]))
    np.testing.assert_allclose(ranged["probability"].to_numpy(), alone["probability"].to_numpy(), rtol=1e-5)
    assert set(ranged["date"].to_pylist()) == {dt.date(2025, 1, 8) + dt.timedelta(days=i) for i in range(9)}


def test_the_mornings_of_a_week_read_the_fit_its_monday_made(tmp_path, monkeypatch):
    """The daily flow forecasts one day at a time: with the fits cached (the config default), Tuesday … Sunday
    read the fit of the week's refit origin instead of fitting it again each morning."""
    import pipeline.model.learned as learned

    lake = _two_weeks_lake(tmp_path / "lake")
    cfg = ForecastConfig(baselines=["learned"], learned_dir=None, learned_cache_dir=tmp_path / "cache",
                         learned_refit_from_days=3, learned_estimator="logistic", learned_max_rows=20_000)
    run_baselines(lake, "2025-01-13", "2025-01-13", cfg)  # Monday: fitted on the days before it, and saved
    monkeypatch.setattr(learned, "fit_learned", lambda *a, **k: pytest.fail("refitted"))
    for day in ("2025-01-14", "2025-01-15", "2025-01-16"):
        assert run_baselines(lake, day, day, cfg)["baseline-learned"] > 0


def test_the_cache_keeps_the_fits_used_lately_and_drops_the_rest(tmp_path):
    """A saved fit prunes the cache: fits neither written nor read for CACHE_KEEP_DAYS days go (and dead saves'
    leftovers), a fit read meanwhile stays."""
    import os
    import time

    import pipeline.model.learned as learned

    o = _persistent_outcomes()
    old = time.time() - (learned.CACHE_KEEP_DAYS + 1) * 86_400
    used = learned.fit_cached(o, training_days(o, o.days[20]), "logistic", 3_000, 0, cache=tmp_path)
    (used_dir,) = list(tmp_path.iterdir())
    stale, dead = tmp_path / ("0" * 32), tmp_path / f".{'1' * 32}.123.tmp"
    for d in (stale, dead):
        d.mkdir()
        (d / "learned.json").write_text("{}")
    for d in (used_dir, stale, dead):
        os.utime(d, (old, old))
    learned.fit_cached(o, training_days(o, o.days[20]), "logistic", 3_000, 0, cache=tmp_path)  # read: kept
    assert used_dir.stat().st_mtime > old + 86_400 and stale.exists()  # a read prunes nothing
    learned.fit_cached(o, training_days(o, o.days[25]), "logistic", 3_000, 0, cache=tmp_path)  # a new fit, saved
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([used_dir.name, learned.fit_key(
        o, training_days(o, o.days[25]), "logistic", 3_000, 0)[:32]])
    assert used is not None and learned.prune_cache(tmp_path / "absent") == []
