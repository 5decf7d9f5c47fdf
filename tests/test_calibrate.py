"""Calibration maps: fitted on validation days, monotone, better Brier, hierarchy kept."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.forecast.calibrate import Calibration, fit
from pipeline.cameo.labels import load_outcomes, LEVELS, label_space


def _underestimating(rng: np.random.Generator, n: int, L: int) -> tuple[np.ndarray, np.ndarray]:
    """Scores that are a third of the true occurrence probability (like shares of salient futures)."""
    p_true = rng.uniform(0, 1, size=(n, L))
    return p_true / 3, rng.uniform(size=(n, L)) < p_true


def test_fit_learns_a_monotone_map_that_improves_brier_on_new_days() -> None:
    rng = np.random.default_rng(0)
    labels = label_space()
    P, Y = {}, {}
    for lv in LEVELS:
        P[lv], Y[lv] = _underestimating(rng, 40, len(labels[lv]))
    cal = fit(P, Y, ["2025-06-03", "2025-06-04"])
    for lv in LEVELS:
        xs, ys = cal.knots[lv]
        assert xs[0] == 0.0 and xs[-1] == 1.0 and np.all(np.diff(ys) >= 0) and 1e-3 <= min(ys) <= max(ys) <= 1 - 1e-3
    # on fresh ("test") days from the same process, calibrated Brier beats raw Brier
    Pt, Yt = _underestimating(rng, 40, len(labels["root"]))
    raw = np.mean((Pt - Yt) ** 2)
    calibrated = np.mean((np.interp(Pt, *cal.knots["root"]) - Yt) ** 2)
    assert calibrated < 0.8 * raw
    assert cal.fitted_on == ["2025-06-03", "2025-06-04"] and cal.n["root"] == 40 * len(labels["root"])


def test_apply_keeps_parents_at_least_as_likely_as_their_children(tmp_path) -> None:
    labels = label_space()
    # a map that lifts events a lot and roots not at all: the hierarchy must be restored
    knots = {"event": ([0.0, 1.0], [0.5, 1.0]), "base": ([0.0, 1.0], [0.0, 0.2]),
             "root": ([0.0, 1.0], [0.0, 0.1]), "quad": ([0.0, 1.0], [0.0, 0.1])}
    cal = Calibration(knots, [], {})
    rng = np.random.default_rng(1)
    probs = {lv: rng.uniform(0, 0.3, size=(3, len(labels[lv]))) for lv in LEVELS}
    out = cal.apply(probs, labels)
    for child, parent in (("event", "base"), ("base", "root"), ("root", "quad"), ("event", "root")):
        M = labels.parent_matrix(child, parent).astype(bool)
        for j in range(M.shape[1]):
            kids = out[child][:, M[:, j]]
            if kids.size:
                assert np.all(out[parent][:, j] >= kids.max(axis=1) - 1e-12)
    assert np.allclose(out["event"], 0.5 + 0.5 * probs["event"])  # the mapped level itself is the map
    cal.save(tmp_path)
    again = Calibration.load(tmp_path)
    assert again is not None and again.knots == {k: (list(v[0]), list(v[1])) for k, v in knots.items()}
    assert Calibration.load(tmp_path / "none") is None


def _with_base_rates(rng: np.random.Generator, n: int, L: int):
    """Outcomes driven by a per-row base rate (the country's climatology) and a day signal the model sees."""
    base = rng.uniform(0.02, 0.6, size=(n, 1)) * rng.uniform(0.3, 1.0, size=(1, L))
    signal = rng.normal(0, 1.2, size=(n, L))
    logit = lambda p: np.log(p / (1 - p))  # noqa: E731
    p_true = 1 / (1 + np.exp(-(logit(base) + signal)))
    model = 1 / (1 + np.exp(-(signal - 1.0)))  # knows the day, not the country: one map cannot fix that
    return model, base, rng.uniform(size=(n, L)) < p_true


def test_climatology_blend_beats_the_maps_alone_on_new_days() -> None:
    from pipeline.forecast.calibrate import fit_blend

    rng = np.random.default_rng(3)
    lv = "root"
    P, C, Y = _with_base_rates(rng, 600, 20)
    cal = fit_blend(fit({lv: P}, {lv: Y}), {lv: P}, {lv: Y}, {lv: C})
    a, b, _ = cal.blend[lv]
    assert a > 0.3 and b > 0.3  # both sources carry information
    Pt, Ct, Yt = _with_base_rates(rng, 600, 20)
    maps_only = cal.apply({lv: Pt})[lv]  # no climatology given: the maps alone
    blended = cal.apply({lv: Pt}, climatology={lv: Ct})[lv]
    brier = lambda p: np.mean((p - Yt) ** 2)  # noqa: E731
    assert brier(blended) < 0.9 * brier(maps_only) and brier(blended) < brier(Ct)
    assert 1e-3 <= blended.min() and blended.max() <= 1 - 1e-3


def test_blend_round_trips_and_old_files_load_without_it(tmp_path) -> None:
    import json

    cal = Calibration({"root": ([0.0, 1.0], [0.1, 0.9])}, ["2025-06-01"], {"root": 10}, {"root": [0.8, 0.2, -0.1]})
    cal.save(tmp_path)
    assert Calibration.load(tmp_path).blend == {"root": [0.8, 0.2, -0.1]}
    data = json.loads((tmp_path / "calibration.json").read_text())
    del data["blend"]
    (tmp_path / "calibration.json").write_text(json.dumps(data))
    assert Calibration.load(tmp_path).blend is None
    # the blend's climatology round-trips; a file from before session 12 reads the plain all-day share
    cal.weekday_prior = 8.0
    cal.save(tmp_path)
    assert Calibration.load(tmp_path).weekday_prior == 8.0
    data = json.loads((tmp_path / "calibration.json").read_text())
    del data["blend_weekday_prior_days"]
    (tmp_path / "calibration.json").write_text(json.dumps(data))
    assert Calibration.load(tmp_path).weekday_prior is None
    # the blend's form round-trips; a file from before session 13 is the logistic form
    cal.form = "residual"
    cal.save(tmp_path)
    assert Calibration.load(tmp_path).form == "residual"
    data = json.loads((tmp_path / "calibration.json").read_text())
    del data["blend_form"]
    (tmp_path / "calibration.json").write_text(json.dumps(data))
    assert Calibration.load(tmp_path).form == "logistic"


def test_weekday_climatology_is_the_plain_one_at_the_days_volume(country_history) -> None:
    """``blend_inputs`` with a weekday prior: climatology moved as ``baseline-weekday`` moves it; a country
    without events in the lake gets the world's ratio."""
    import datetime as dt

    from pipeline.forecast.baselines import at_volume, volume_ratio
    from pipeline.forecast.calibrate import blend_inputs

    labels = label_space()
    target = dt.date(2025, 1, 4)  # a Saturday; the history (01-01 … 01-03) is Wednesday to Friday only
    countries = ["US", "FR", "XX"]
    plain, _ = blend_inputs(country_history, target, countries, labels)
    same, _ = blend_inputs(country_history, target, countries, labels, weekday_prior=8.0)
    for lv in plain:  # no weekend day in the history yet: r = 1, the plain climatology
        assert np.array_equal(plain[lv], same[lv])
    sunday = dt.date(2025, 1, 5)  # 01-04, a Saturday, is history now
    plain, _ = blend_inputs(country_history, sunday, countries, labels)
    moved, _ = blend_inputs(country_history, sunday, countries, labels, weekday_prior=0.0)
    o = load_outcomes(country_history, None, dt.date(2025, 1, 4))
    r = volume_ratio(o, sunday, 0.0, countries)
    us = o.countries.index("US")
    assert r[0] == volume_ratio(o, sunday, 0.0)[us] and r[2] == pytest.approx(volume_ratio(o, sunday, 1e12, ["US"])[0])
    assert r[0] != 1.0
    for lv in plain:
        assert np.allclose(moved[lv], at_volume(plain[lv], r))


def test_climatology_from_the_lake_is_smoothed_and_leak_free(country_history) -> None:
    import datetime as dt

    from pipeline.forecast.calibrate import climatology

    labels = label_space()
    clim = climatology(country_history, dt.date(2025, 1, 4), ["US", "FR", "XX"], labels)
    root = labels["root"].index
    # days 1-3 only (the target day 4 is not seen): US had root 01 on days 1, 2 → (2 + ½) / (3 + 1)
    assert clim["root"][0, root["01"]] == 2.5 / 4
    assert clim["root"][1, root["19"]] == 2.5 / 4 and clim["root"][1, root["14"]] == 1.5 / 4  # FR 141 on day 3
    assert clim["root"][0, root["14"]] == 0.5 / 4  # US 141 happens on day 4 itself: not counted
    assert np.all(clim["event"][2] == 0.5 / 4)  # a country never seen: the prior
    assert climatology(country_history, dt.date(2025, 1, 1), ["US"], labels) is None  # no history


def test_stacked_blend_adds_what_the_learned_reference_knows() -> None:
    """Outcomes driven by a base rate, a day signal only the model sees and a history signal only the
    learned reference sees: the stacked blend weighs all three and beats the two-input blend and the
    reference alone on fresh rows."""
    from pipeline.forecast.calibrate import fit_blend

    logit = lambda p: np.log(p / (1 - p))  # noqa: E731
    sigmoid = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731

    def rows(rng, n=600, L=20):
        base = rng.uniform(0.05, 0.6, size=(n, 1)) * np.ones((1, L))
        day, history = rng.normal(0, 1.0, size=(n, L)), rng.normal(0, 1.0, size=(n, L))
        y = rng.uniform(size=(n, L)) < sigmoid(logit(base) + day + history)
        return sigmoid(day - 1.0), base, sigmoid(logit(base) + history), y

    rng = np.random.default_rng(5)
    lv = "root"
    P, C, R, Y = rows(rng)
    maps = fit({lv: P}, {lv: Y})
    two = fit_blend(fit({lv: P}, {lv: Y}), {lv: P}, {lv: Y}, {lv: C})
    stacked = fit_blend(maps, {lv: P}, {lv: Y}, {lv: C}, {lv: R}, stack=object())
    a, b, s, _ = stacked.blend[lv]
    assert a > 0.3 and s > 0.3 and stacked.stack is not None
    Pt, Ct, Rt, Yt = rows(rng)
    brier = lambda p: float(np.mean((p - Yt) ** 2))  # noqa: E731
    with_stack = stacked.apply({lv: Pt}, climatology={lv: Ct}, learned={lv: Rt})[lv]
    assert brier(with_stack) < 0.95 * brier(two.apply({lv: Pt}, climatology={lv: Ct})[lv])
    assert brier(with_stack) < 0.95 * brier(Rt)
    # without the stack's input a stacked level is not blended (the maps alone), never blended wrongly
    assert np.allclose(stacked.apply({lv: Pt}, climatology={lv: Ct})[lv], np.interp(Pt, *maps.knots[lv]))
    with pytest.raises(ValueError):
        fit_blend(fit({lv: P}, {lv: Y}), {lv: P}, {lv: Y}, {lv: C}, {lv: R})  # R without its stack


def _three_signal_rows(rng, model_sees_day: bool, n=600, L=20):
    """Outcomes from a base rate, a day signal and a history signal; the reference r knows base and history,
    the model p the day signal on top of r (or, with ``model_sees_day`` False, noise), c the base rate."""
    logit = lambda p: np.log(p / (1 - p))  # noqa: E731
    sigmoid = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    base = rng.uniform(0.05, 0.6, size=(n, 1)) * np.ones((1, L))
    day, history = rng.normal(0, 1.0, size=(n, L)), rng.normal(0, 1.0, size=(n, L))
    y = rng.uniform(size=(n, L)) < sigmoid(logit(base) + day + history)
    r = sigmoid(logit(base) + history)
    p = sigmoid(logit(r) + (day if model_sees_day else rng.normal(0, 1.0, size=(n, L))))
    return p, base, r, y


def test_residual_form_moves_from_the_reference_only_as_far_as_the_model_pays() -> None:
    """The residual blend σ(logit r + a·(logit p − logit r) + b·(logit c − logit r)): a model that knows the
    day gets a large a and beats the reference on fresh rows; a model of noise gets a ≈ 0 and the published
    forecast is the reference's; a level with nothing to learn is the reference itself; no intercept."""
    from pipeline.forecast.calibrate import fit_blend

    rng = np.random.default_rng(7)
    brier = lambda p, y: float(np.mean((p - y) ** 2))  # noqa: E731
    identity = {"root": ([0.0, 1.0], [0.0, 1.0]), "quad": ([0.0, 1.0], [0.0, 1.0])}
    for sees, a_range in ((True, (0.4, 1.2)), (False, (0.0, 0.05))):
        P, C, R, Y = _three_signal_rows(rng, sees)
        Yq = np.ones((len(Y), 4), bool)  # every QuadClass every day
        Q = rng.uniform(0.2, 0.9, (len(Y), 4))
        cal = fit_blend(Calibration(dict(identity), [], {}), {"root": P, "quad": Q}, {"root": Y, "quad": Yq},
                        {"root": C, "quad": Q}, {"root": R, "quad": Q}, stack=object(), form="residual")
        a, b, s, k = cal.blend["root"]
        assert cal.form == "residual" and k == 0.0 and s == pytest.approx(1 - a - b) and b >= 0
        assert a_range[0] <= a <= a_range[1], a
        assert cal.blend["quad"] == [0.0, 0.0, 1.0, 0.0]
        Pt, Ct, Rt, Yt = _three_signal_rows(rng, sees)
        out = cal.apply({"root": Pt}, climatology={"root": Ct}, learned={"root": Rt})["root"]
        if sees:
            assert brier(out, Yt) < 0.95 * brier(Rt, Yt)
        else:
            assert abs(brier(out, Yt) - brier(Rt, Yt)) < 0.002 * brier(Rt, Yt)
    with pytest.raises(ValueError, match="residual form"):
        fit_blend(Calibration(dict(identity), [], {}), {"root": P}, {"root": Y}, {"root": C}, form="residual")
    with pytest.raises(ValueError, match="form must be one of"):
        fit_blend(Calibration(dict(identity), [], {}), {"root": P}, {"root": Y}, {"root": C}, form="isotonic")


def test_residual_logistic_is_the_constrained_optimum() -> None:
    """Karush–Kuhn–Tucker at the fit: the log-loss gradient is 0 along a positive weight and ≥ 0 along one held
    at 0 (here the second input, anti-informative), and the loss is below the reference's (w = 0)."""
    from scipy.special import expit

    from pipeline.forecast.calibrate import residual_logistic

    rng = np.random.default_rng(3)
    ref, signal = rng.normal(size=5000), rng.normal(size=5000)
    y = rng.uniform(size=5000) < expit(ref + 0.7 * signal)
    X = np.stack([ref + signal, ref - signal, ref], axis=1)  # differences from the reference: +signal, −signal
    coef = residual_logistic(X, y)
    w, D = coef[:2], X[:, :2] - X[:, 2:]
    z = X @ coef[:3] + coef[3]
    grad = D.T @ (expit(z) - y) / len(y)
    assert coef[3] == 0.0 and coef[2] == pytest.approx(1 - w.sum())
    assert w[0] > 0.4 and abs(grad[0]) < 1e-4 and w[1] == 0.0 and grad[1] > 0
    loss = lambda z: -np.mean(y * np.log(expit(z)) + (1 - y) * np.log(expit(-z)))  # noqa: E731
    assert loss(z) < loss(X[:, 2]) - 0.01


def test_a_stack_is_saved_with_the_calibration_and_must_be_leak_free(country_history, tmp_path) -> None:
    import datetime as dt

    from pipeline.cameo.labels import load_outcomes
    from pipeline.core.errors import UserError
    from pipeline.forecast.calibrate import STACK_DIR, blend_inputs, fit_from_lake
    from pipeline.model.learned import fit_learned, training_days

    labels = label_space()
    outcomes = load_outcomes(country_history, None, dt.date(2025, 1, 3), labels)
    stack = fit_learned(outcomes, training_days(outcomes, dt.date(2025, 1, 4)), "logistic", labels=labels)
    assert stack.last_day == dt.date(2025, 1, 3)
    blend = {lv: [1.0, 0.0, 1.0, 0.0] for lv in LEVELS}  # σ(logit p + logit r)
    cal = Calibration({}, ["2025-01-04"], {}, blend, stack)
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    cal.save(model_dir)
    again = Calibration.load(model_dir)
    assert again.stack is not None and again.stack.fitted_on == stack.fitted_on and again.blend == blend
    clim, learned = blend_inputs(country_history, dt.date(2025, 1, 4), ["US", "FR", "XX"], labels, again.stack)
    assert learned["root"].shape == (3, len(labels["root"])) and np.all(learned["root"][2] == 1e-3)  # XX: never seen
    assert not np.allclose(learned["root"][0], learned["root"][1])  # the US and France histories differ
    half = {lv: np.full(len(labels[lv]), 0.5) for lv in LEVELS}
    out = again.apply(half, labels, {lv: v[0] for lv, v in clim.items()}, {lv: v[0] for lv, v in learned.items()})
    r = learned["event"][0]
    expected = np.clip(r, 1e-3, 1 - 1e-3)  # logit ½ = 0: the stack's own probability
    assert np.allclose(out["event"], expected)
    # a calibration without a stack removes the earlier one; one that names a missing stack is a user error
    Calibration({}, [], {}, {lv: [1.0, 0.0, 0.0] for lv in LEVELS}).save(model_dir)
    assert not (model_dir / STACK_DIR).exists() and Calibration.load(model_dir).stack is None
    cal.save(model_dir)
    import shutil

    shutil.rmtree(model_dir / STACK_DIR)
    with pytest.raises(UserError, match="stack"):
        Calibration.load(model_dir)
    with pytest.raises(ValueError, match="not before the first validation day"):
        fit_from_lake(country_history, "any-run", [dt.date(2025, 1, 3)], labels, stack=stack)
    # one fit per validation day (a walk-forward's): each must be fitted before its own day
    with pytest.raises(ValueError, match="stacked baseline-learned of 2025-01-03 was fitted on days up to 2025-01-03"):
        fit_from_lake(country_history, "any-run", [dt.date(2025, 1, 3), dt.date(2025, 1, 4)], labels,
                      stacks={dt.date(2025, 1, 4): stack, dt.date(2025, 1, 3): stack})
    with pytest.raises(ValueError, match="not both"):
        fit_from_lake(country_history, "any-run", [dt.date(2025, 1, 4)], labels, stack=stack,
                      stacks={dt.date(2025, 1, 4): stack})


def test_nonnegative_logistic_matches_sklearn_when_unconstrained_and_clips_a_negative_weight() -> None:
    from sklearn.linear_model import LogisticRegression

    from pipeline.forecast.calibrate import nonnegative_logistic

    rng = np.random.default_rng(11)
    X = rng.normal(size=(4000, 2))
    y = rng.uniform(size=4000) < 1 / (1 + np.exp(-(1.5 * X[:, 0] + 0.5 * X[:, 1] - 0.3)))
    ours = nonnegative_logistic(X, y)
    ref = LogisticRegression(C=1.0).fit(X, y)
    assert np.allclose(ours, [*ref.coef_[0], ref.intercept_[0]], atol=2e-3)  # both weights > 0: the same fit
    y_neg = rng.uniform(size=4000) < 1 / (1 + np.exp(-(1.5 * X[:, 0] - 0.8 * X[:, 1])))
    w = nonnegative_logistic(X, y_neg)
    assert w[1] == 0.0 and w[0] > 1.0  # the negative weight is held at 0


def test_calibrate_cli_stacks_a_leak_free_learned_baseline(sample_forecasts, tmp_path) -> None:
    """``gdelt-forecast calibrate`` on the sample: maps, the blend with its learned term, and the stack
    (refitted on the days before the validation day, as none is stored) saved with the model."""
    import json
    import shutil

    import yaml
    from typer.testing import CliRunner

    from gdelt_forecast.cli import app

    model = tmp_path / sample_forecasts.mr.run  # the run name is the folder's: its forecasts are in the lake
    shutil.copytree(sample_forecasts.mr.directory, model, ignore=shutil.ignore_patterns("checkpoint"))
    (model / "calibration.json").unlink(missing_ok=True)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"forecast": {"learned_dir": str(tmp_path / "none"), "learned_estimator": "logistic",
                                                "learned_max_rows": 20_000},
                                   "train": {"models_dir": str(tmp_path / "models")}}))  # its fits' cache there
    day = sample_forecasts.days[0]
    r = CliRunner().invoke(app, ["-c", str(cfg), "--lake", str(sample_forecasts.lake.root), "calibrate",
                                 "--model", str(model), "--start", day])
    assert r.exit_code == 0, r.output
    assert "logit learned" in r.output and "stack: baseline-learned fitted on" in r.output
    saved = json.loads((model / "calibration.json").read_text())
    assert max(saved["stack"]["fitted_on"]) < day and (model / "stack" / "learned.joblib").exists()
    # the default residual form: no maps (identity knots), the bar's weight 1 − a − b, no intercept
    assert saved["blend_form"] == "residual" and "(logit p − logit learned)" in r.output
    assert all(k == [[0.0, 1.0], [0.0, 1.0]] for k in saved["knots"].values())
    assert all(len(c) == 4 and c[3] == 0.0 and abs(c[0] + c[1] + c[2] - 1) < 1e-9 for c in saved["blend"].values())
    cfg_logistic = tmp_path / "logistic.yaml"
    logistic = yaml.safe_load(cfg.read_text())
    logistic["train"]["calibration_form"] = "logistic"
    cfg_logistic.write_text(yaml.safe_dump(logistic))
    r = CliRunner().invoke(app, ["-c", str(cfg_logistic), "--lake", str(sample_forecasts.lake.root), "calibrate",
                                 "--model", str(model), "--start", day])
    saved = json.loads((model / "calibration.json").read_text())
    assert r.exit_code == 0 and saved["blend_form"] == "logistic" and "·logit learned" in r.output
    assert any(len(k[0]) > 2 for k in saved["knots"].values())  # isotonic maps
    r = CliRunner().invoke(app, ["-c", str(cfg), "--lake", str(sample_forecasts.lake.root), "calibrate",
                                 "--model", str(model), "--start", day, "--no-stack"])
    assert r.exit_code == 0 and "logit learned" not in r.output and not (model / "stack").exists()
    assert json.loads((model / "calibration.json").read_text())["blend_form"] == "logistic"  # no stack: maps + blend


def test_one_read_of_outcomes_serves_every_target_exactly_as_a_read_per_target(country_history) -> None:
    """``Outcomes.until`` (what the backtest slices per day instead of re-reading the ``country`` table) equals
    a read that ends on that day, countries seen only later excluded; the blend inputs, the stack and the
    fitted calibration from it equal those from a read per target."""
    import dataclasses
    import datetime as dt

    from conftest import write_country_days
    from pipeline.cameo.labels import load_outcomes
    from pipeline.core.config import ForecastConfig
    from pipeline.forecast.calibrate import blend_inputs, stack_for

    # DE: first on 01-06, with FR acting in the US and DE in FR; IT: only on the last day
    write_country_days(country_history, {"2025-01-06": [("DE", "010"), ("US", "190"), ("US", "190", "FR"),
                                                        ("FR", "010", "DE")],
                                         "2025-01-07": [("IT", "010", "FR")]})
    labels = label_space()
    whole = load_outcomes(country_history, None, dt.date(2025, 1, 7), labels)
    assert "IT" in whole.countries and whole.actor["root"][-2].sum() == 2 and whole.actor["root"][-1].sum() == 1
    for last in (dt.date(2025, 1, 3), dt.date(2025, 1, 5), dt.date(2025, 1, 6)):
        read, cut = load_outcomes(country_history, None, last, labels), whole.until(last)
        seen = ["FR", "US"] if last < dt.date(2025, 1, 6) else ["DE", "FR", "US"]
        assert cut.days == read.days and cut.countries == read.countries == seen
        assert cut.actor["root"].sum() == (2 if len(seen) == 3 else 0)
        assert np.array_equal(cut.n_events, read.n_events) and np.array_equal(cut.quad_counts, read.quad_counts)
        for lv in LEVELS:
            assert np.array_equal(cut.y[lv], read.y[lv]) and np.array_equal(cut.counts[lv], read.counts[lv])
            assert np.array_equal(cut.mentions[lv], read.mentions[lv])
            assert np.array_equal(cut.actor[lv], read.actor[lv])
    with pytest.raises(FileNotFoundError):
        whole.until(dt.date(2024, 12, 31))
    cfg = dataclasses.replace(ForecastConfig(), learned_dir=None, learned_estimator="logistic")
    target, countries = dt.date(2025, 1, 5), ["US", "FR", "DE"]
    stack_a, stack_b = stack_for(country_history, target, cfg), stack_for(country_history, target, cfg, whole)
    assert stack_a.last_day == stack_b.last_day == dt.date(2025, 1, 4)
    a = blend_inputs(country_history, target, countries, labels, stack_a)
    b = blend_inputs(country_history, target, countries, labels, stack_b, whole)
    for lv in LEVELS:
        assert np.array_equal(a[0][lv], b[0][lv]) and np.allclose(a[1][lv], b[1][lv])
    assert np.all(b[1]["root"][2] == 1e-3)  # DE is unseen before the target in the sliced outcomes too


def test_the_config_picks_the_form_and_futures_shares_keep_the_maps() -> None:
    import dataclasses

    from pipeline.core.config import Config
    from pipeline.forecast.calibrate import form_of

    cfg = Config()
    assert form_of(cfg) == "residual"  # the default
    futures = dataclasses.replace(cfg, forecast=dataclasses.replace(cfg.forecast, probabilities="futures"))
    assert form_of(futures) == "logistic"  # shares of K futures underestimate occurrence: they need the maps
    logistic = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, calibration_form="logistic"))
    assert form_of(logistic) == "logistic"
