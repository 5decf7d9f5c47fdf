"""Forecast: phrases → actors + action, projection onto the CAMEO basis, aggregation across levels."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from pipeline.cameo import codes as cameo
from pipeline.core.config import ForecastConfig
from pipeline.forecast.forecast import (
    aggregate, build_basis, forecast_tables, project, project_futures, split_actors, top_actor_pairs,
)
from pipeline.cameo.labels import LEVELS, label_space
from pipeline.core.lake import Lake
from pipeline.core.schemas import FORECASTS_SCHEMA, FUTURES_SCHEMA


@pytest.fixture(scope="session")
def basis(embedder):
    return build_basis(embedder.encode)


class FakeModel:
    """Stands in for ``EventForecaster``: returns fixed futures (B × K × phrases) whatever the batch."""

    def __init__(self, futures):
        self.futures = futures
        self.calls = []

    def generate_phrases(self, batch, num_futures, temperature, top_p, seed):
        self.calls.append((num_futures, temperature, top_p, seed))
        return [self.futures[:num_futures] for _ in batch["country"]]


FUTURES = [
    ["Iran threaten to use military force Israel", "Iran make statement"],
    ["Iran make statement", "Iran make statement"],  # repeats count once per future
    [],
    ["Israel use conventional military force Iran"],
]


def test_split_actors():
    assert split_actors("Iran threaten to use military force Israel") == ("IR", "threaten to use military force", "IS")
    assert split_actors("South Korea make a visit United States") == ("KS", "make a visit", "US")
    assert split_actors("use conventional military force Ukraine") == (None, "use conventional military force", "UP")
    assert split_actors("  praise or   endorse ") == (None, "praise or endorse", None)
    assert split_actors("France") == (None, "France", None)


def test_exact_descriptions_project_onto_their_own_code(basis, embedder):
    codes = list(basis.codes)
    descriptions = [cameo.description(c) for c in codes]  # GDELT's text, "not specified below" and all
    x = embedder.encode(descriptions)
    for mode in ("argmax", "soft"):
        a = project(x, basis, temperature=0.05, mode=mode)
        assert np.allclose(a.sum(1), 1.0)
        assert [codes[i] for i in a.argmax(1)] == codes


def test_aggregate_is_the_share_of_futures_and_consistent_across_levels():
    labels = label_space()
    ev = labels["event"]
    L = len(ev)
    onehot = np.zeros((4, L))
    for i, code in enumerate(["138", "010", "010", "190"]):
        onehot[i, ev.index[code]] = 1
    p = aggregate(onehot, np.array([0, 0, 1, 3]), K=4)
    assert p["event"][ev.index["010"]] == 0.5 and p["event"][ev.index["138"]] == 0.25
    assert p["root"][labels["root"].index["19"]] == 0.25
    assert p["quad"].tolist() == [0.5, 0.0, 0.25, 0.25]  # quads 1, 3, 4; future 2 is empty
    # soft: 1 − Π(1 − a) per future, then the mean over futures
    rng = np.random.default_rng(0)
    soft = rng.dirichlet(np.full(L, 0.05), size=6)
    fut = np.array([0, 0, 1, 1, 1, 2])
    p = aggregate(soft, fut, K=3)
    code = ev.index["010"]
    expect = np.mean([1 - np.prod(1 - soft[fut == k, code]) for k in range(3)])
    assert p["event"][code] == pytest.approx(expect)
    for child, parent in (("event", "base"), ("base", "root"), ("root", "quad")):
        m = labels.parent_matrix(child, parent)
        for i, j in zip(*np.nonzero(m)):
            assert p[parent][j] >= p[child][i] - 1e-12
    for lv in LEVELS:
        assert ((p[lv] >= 0) & (p[lv] <= 1)).all()


def test_top_actor_pairs():
    a = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.6, 0.4]])
    pairs = [("IR", "IS"), ("IR", "IS"), ("US", None), ("IR", None)]
    out = top_actor_pairs(a, pairs, np.eye(2), top=2)
    assert out[0][0] == {"actor1": "IR", "actor2": "IS", "share": pytest.approx(2 / 2.6)}
    assert out[0][1]["actor2"] is None and len(out[0]) == 2
    assert out[1][0]["actor1"] == "US" and out[1][0]["share"] == pytest.approx(1 / 1.4)
    # a sliver of a label's mass (soft assignment) is not a pair worth showing, except as the only one
    a = np.array([[1.0, 0.0], [0.995, 0.005], [0.002, 0.998]])
    out = top_actor_pairs(a, [("IR", "IS"), ("US", None), ("FR", None)], np.eye(2), top=3)
    assert [p["actor1"] for p in out[0]] == ["IR", "US"] and [p["actor1"] for p in out[1]] == ["FR"]
    out = top_actor_pairs(np.array([[0.001, 0.999]]), [("IR", None)], np.eye(2), top=3)
    assert [p["actor1"] for p in out[0]] == ["IR"]


def test_fake_model_forecast_tables(basis, embedder, tmp_path):
    labels = label_space()
    model = FakeModel(FUTURES)
    cfg = ForecastConfig(num_futures=4, assignment="argmax")
    futures = model.generate_phrases({"country": ["IR"]}, 4, cfg.temperature, cfg.top_p, cfg.seed)[0]
    fc = project_futures("IR", futures, basis, embedder.encode, cfg, labels)
    ev = labels["event"]
    assert fc.probs["event"][ev.index["010"]] == 0.5
    assert fc.probs["event"][ev.index["138"]] == 0.25 and fc.probs["event"][ev.index["190"]] == 0.25
    assert fc.pairs["event"][ev.index["010"]] == [{"actor1": "IR", "actor2": None, "share": 1.0}]
    assert fc.pairs["root"][labels["root"].index["19"]][0]["actor1"] == "IS"
    assert fc.codes == [["138", "010"], ["010", "010"], [], ["190"]]

    soft = project_futures("IS", futures, basis, embedder.encode, ForecastConfig(num_futures=4), labels)
    issued = dt.datetime(2025, 6, 1, 6, tzinfo=dt.timezone.utc)
    table, fut = forecast_tables([soft, fc], "fake-run", 4, issued, labels)
    lake = Lake(tmp_path / "lake")
    lake.write_partition("forecasts", table, "2025-06-02", schema=FORECASTS_SCHEMA, model="fake-run")
    lake.write_partition("futures", fut, "2025-06-02", schema=FUTURES_SCHEMA, model="fake-run")
    t = lake.read("forecasts", model="fake-run").to_pandas()
    assert list(t.country.unique()) == ["IR", "IS"]  # sorted
    assert t.probability.between(0, 1).all() and (t.n_futures == 4).all()
    assert (t[t.level == "quad"].groupby("country").size() == 4).all()
    for country, g in t.groupby("country"):
        p = {(r.level, r.code): r.probability for r in g.itertuples()}
        for (lv, code), prob in p.items():
            if lv != "quad":
                up = {"event": "base", "base": "root", "root": "quad"}[lv]
                assert p[(up, labels.parent_code(code, up))] >= prob - 1e-12
    # soft mass spreads a little, but the projected codes keep most of it
    s = t[(t.country == "IS") & (t.level == "event")].set_index("code").probability
    assert s["010"] > 0.45 and s.idxmax() == "010"
    f = lake.read("futures", model="fake-run").to_pandas()
    assert len(f) == 8 and list(f[f.country == "IR"].codes.iloc[0]) == ["138", "010"]


# ------------------------------------------------------------------ end to end on the real sample
def test_end_to_end_forecast_on_the_sample(sample_forecasts, embedder):
    from pipeline.forecast.forecast import run_forecast

    lake, mr = sample_forecasts.lake, sample_forecasts.mr
    FORECAST_DAYS, SAMPLE_COUNTRIES = sample_forecasts.days, sample_forecasts.countries
    labels = label_space()
    day = FORECAST_DAYS[-1]
    t = lake.read("forecasts", day, day, model=mr.run).to_pandas()
    assert sorted(t.country.unique()) == sorted(SAMPLE_COUNTRIES)
    assert t.probability.between(0, 1).all() and (t.n_futures == 6).all() and (t.model_run == mr.run).all()
    assert set(t.level) == set(LEVELS) and (t[t.level == "quad"].groupby("country").size() == 4).all()
    for country, g in t.groupby("country"):
        p = {(r.level, r.code): r.probability for r in g.itertuples()}
        assert max(v for (lv, _), v in p.items() if lv == "quad") > 0  # every future holds a phrase or more
        for (lv, code), prob in p.items():
            if lv != "quad":
                up = {"event": "base", "base": "root", "root": "quad"}[lv]
                assert p[(up, labels.parent_code(code, up))] >= prob - 1e-9, (country, lv, code)
    fut = lake.read("futures", day, day, model=mr.run).to_pandas()
    assert (fut.groupby("country").size() == 6).all()
    assert all(len(p) == len(c) for p, c in zip(fut.phrases, fut.codes))

    # re-running the day replaces exactly that partition with the same rows (seeded sampling);
    # a country without descriptors is skipped and reported, not fatal
    res = run_forecast(lake, day, ForecastConfig(num_futures=6, countries=[*SAMPLE_COUNTRIES, "US"]), mr, embedder)
    assert list(res["skipped"]) == ["US"] and res["countries"] == len(SAMPLE_COUNTRIES)
    again = lake.read("forecasts", day, day, model=mr.run).drop_columns(["issued_at"])
    first = t.drop(columns=["issued_at"])
    assert again.num_rows == len(first)
    assert again.to_pandas().drop(columns=["actor_pairs"]).equals(first.drop(columns=["actor_pairs"]))
    assert lake.partitions("forecasts", model=mr.run) == [dt.date.fromisoformat(d) for d in FORECAST_DAYS]


def test_forecast_applies_the_climatology_blend(sample_forecasts, embedder, tmp_path):
    """A calibration with a blend: probabilities move toward each country's climatology, hierarchy kept."""
    import shutil

    from pipeline.forecast.calibrate import Calibration, climatology
    from pipeline.forecast.forecast import load_model_run, run_forecast

    day = dt.date.fromisoformat(sample_forecasts.days[-1])
    lake = Lake(tmp_path / "lake")
    shutil.copytree(sample_forecasts.lake.root, lake.root)  # the session lake keeps its runs as they are
    model_dir = tmp_path / "blended"
    shutil.copytree(sample_forecasts.mr.directory, model_dir)
    identity = {lv: ([0.0, 1.0], [0.0, 1.0]) for lv in LEVELS}
    Calibration(identity, [], {}, {lv: [0.0, 1.0, 0.0] for lv in LEVELS}).save(model_dir)  # = climatology
    mr = load_model_run(model_dir)
    run_forecast(lake, day, ForecastConfig(num_futures=2), mr, embedder)
    t = lake.read("forecasts", day, day, model=mr.run).to_pandas()
    labels = label_space()
    clim = climatology(lake, day, sample_forecasts.countries, labels)
    for i, country in enumerate(sample_forecasts.countries):
        g = t[(t.country == country) & (t.level == "root")].set_index("code").probability
        expect = np.clip(clim["root"][i], 1e-3, 1 - 1e-3)
        for code, j in labels["root"].index.items():  # a = 0, b = 1: exactly the climatology (≥ children)
            assert g.get(code, 0.0) >= expect[j] - 1e-9
        assert np.isclose(g.min(), expect.min(), atol=1e-6) or g.min() >= expect.min()


def test_futures_are_reused_when_only_the_calibration_changed(sample_forecasts, embedder, tmp_path):
    """Re-forecasting a day after calibrating gives exactly what sampling again would, without sampling."""
    import shutil

    from pipeline.forecast.calibrate import Calibration
    from pipeline.forecast.forecast import load_model_run, run_forecast

    day = sample_forecasts.days[-1]
    lake = Lake(tmp_path / "lake")
    shutil.copytree(sample_forecasts.lake.root, lake.root)
    model_dir = tmp_path / "m"
    shutil.copytree(sample_forecasts.mr.directory, model_dir)
    cfg = ForecastConfig(num_futures=3)
    first = run_forecast(lake, day, cfg, load_model_run(model_dir), embedder)
    assert first["reused_futures"] == 0
    Calibration({lv: ([0.0, 1.0], [0.2, 0.8]) for lv in LEVELS}, [], {}).save(model_dir)
    mr = load_model_run(model_dir)
    calls = []
    generate = mr.model.generate_phrases
    mr.model.generate_phrases = lambda *a, **k: calls.append(1) or generate(*a, **k)
    again = run_forecast(lake, day, cfg, mr, embedder)
    assert again["reused_futures"] == again["countries"] and not calls
    reused = lake.read("forecasts", day, day, model="m").drop_columns(["issued_at"])
    lake.delete_partition("futures", day, model="m")  # sample afresh: the same futures, the same forecast
    fresh = run_forecast(lake, day, cfg, mr, embedder)
    assert fresh["reused_futures"] == 0 and calls
    assert lake.read("forecasts", day, day, model="m").drop_columns(["issued_at"]).equals(reused)
    assert lake.read("futures", day, day, model="m").column("sampling_key").null_count == 0
    # other sampling settings: sampled again
    assert run_forecast(lake, day, ForecastConfig(num_futures=3, seed=7), mr, embedder)["reused_futures"] == 0


def test_a_countrys_futures_do_not_depend_on_the_other_countries(sample_forecasts, embedder, tmp_path):
    """``country_seed``: the same futures for a country forecast alone, or in a batch of any size or order."""
    import shutil

    from pipeline.forecast.forecast import run_forecast

    day = sample_forecasts.days[-1]
    mr, countries = sample_forecasts.mr, sample_forecasts.countries
    together = sample_forecasts.lake.read("futures", day, day, model=mr.run).to_pandas()  # K = 6, one batch
    lake = Lake(tmp_path / "lake")
    shutil.copytree(sample_forecasts.lake.root, lake.root)
    lake.delete_partition("futures", day, model=mr.run)
    one = countries[1]
    run_forecast(lake, day, ForecastConfig(num_futures=6, countries=[one]), mr, embedder)
    alone = lake.read("futures", day, day, model=mr.run).to_pandas()
    run_forecast(lake, day, ForecastConfig(num_futures=6, batch_countries=1), mr, embedder)  # one batch each
    split = lake.read("futures", day, day, model=mr.run).to_pandas()

    def futures_of(t, c):
        return [list(p) for p in t[t.country == c].sort_values("future").phrases]

    assert futures_of(alone, one) == futures_of(together, one) and futures_of(together, one)
    for c in countries:
        assert futures_of(split, c) == futures_of(together, c)
    assert futures_of(together, countries[0]) != futures_of(together, one)  # each country its own stream


def test_published_probabilities_source_then_calibration():
    """One step decides P: the occurrence head when given (parent ≥ child restored), else the futures'
    share; then the calibration, blended with climatology only when the calibration has a blend."""
    from pipeline.forecast.calibrate import Calibration
    from pipeline.forecast.forecast import published_probabilities

    labels = label_space()
    rng = np.random.default_rng(0)
    futures = {lv: np.full(len(labels[lv]), 0.25) for lv in LEVELS}
    occurrence = {lv: rng.uniform(0.01, 0.99, len(labels[lv])) for lv in LEVELS}
    assert published_probabilities(futures, None, None, None, labels) is futures
    raw = published_probabilities(futures, occurrence, None, None, labels)
    root_of_event = labels.parent_matrix("event", "root")  # (E, R) membership
    assert np.all(raw["root"] >= (raw["event"][:, None] * root_of_event).max(axis=0) - 1e-12)
    assert not np.allclose(raw["event"], 0.25)
    halve = Calibration(knots={lv: ([0.0, 1.0], [0.0, 0.5]) for lv in LEVELS}, fitted_on=[], n={}, blend={})
    calibrated = published_probabilities(futures, None, halve, None, labels)
    assert np.allclose(calibrated["event"], 0.125)
    clim = {lv: np.full(len(labels[lv]), 0.9) for lv in LEVELS}
    blended = Calibration(knots={}, fitted_on=[], n={}, blend={lv: (0.0, 1.0, 0.0) for lv in LEVELS})
    assert np.allclose(published_probabilities(futures, None, blended, clim, labels)["root"], 0.9)
    assert np.allclose(published_probabilities(futures, None, blended, None, labels)["root"], 0.25)


def test_constrained_futures_of_the_trained_model_are_vocabulary_phrases_and_keyed(sample_forecasts):
    """The sample's forecasts (the default, constrained) hold only vocabulary phrases, each projected onto
    its own verb's code; the sampling key names the decoding, so free futures are never reused as
    constrained ones (or back)."""
    from pipeline.cameo.phrases import parse_phrase
    from pipeline.forecast.forecast import sampling_key

    lake, mr = sample_forecasts.lake, sample_forecasts.mr
    day = dt.date.fromisoformat(sample_forecasts.days[-1])
    fut = lake.read("futures", day, day, model=mr.run).to_pandas()
    phrases = [p for ps in fut.phrases for p in ps]
    assert phrases and all(parse_phrase(p) is not None for p in phrases)
    basis_codes = set(label_space()["event"].codes)
    for ps, cs in zip(fut.phrases, fut.codes):
        for p, c in zip(ps, cs):
            code = parse_phrase(p)[1]
            if code in basis_codes:  # a verb of an event code is projected onto that code
                assert c == code, (p, c)
    countries = sample_forecasts.countries
    key = sampling_key(lake, mr, ForecastConfig(), day, countries)
    assert key == sampling_key(lake, mr, ForecastConfig(), day, countries)
    assert key != sampling_key(lake, mr, ForecastConfig(constrained=False), day, countries)
