"""Evaluation: metrics equal scikit-learn / rouge-score / scipy on small cases; the scores table and skill table."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss, log_loss, precision_recall_fscore_support

from pipeline.forecast.baselines import run_baselines
from pipeline.core.config import EvaluateConfig, ForecastConfig
from pipeline.scoring.evaluate import (
    brier_per_label, evaluate, glean_metrics, log_loss_per_label, mirai_metrics, per_row_prf, quad_kl,
    reliability, rouge_scores, tune_threshold, weighted_f1,
)
from pipeline.cameo.labels import label_space


@pytest.fixture()
def small_case():
    rng = np.random.default_rng(0)
    P = rng.random((40, 6))
    Y = rng.random((40, 6)) < P  # calibrated-ish outcomes
    Y[:, 0] = True  # a label that always occurs
    P[0, 1], P[1, 1] = 0.0, 1.0  # exact 0 / 1 forecasts exercise the clipping
    return P, Y


def test_brier_and_log_loss_match_sklearn(small_case):
    P, Y = small_case
    bs = brier_per_label(P, Y)
    ll = log_loss_per_label(P, Y, eps=1e-3)
    for j in range(P.shape[1]):
        assert bs[j] == pytest.approx(brier_score_loss(Y[:, j], P[:, j], labels=[0, 1]))
        assert ll[j] == pytest.approx(log_loss(Y[:, j], np.clip(P[:, j], 1e-3, 1 - 1e-3), labels=[0, 1]))


def test_reliability_matches_calibration_curve_and_ece(small_case):
    P, Y = small_case
    frame, ece = reliability(P, Y, n_bins=5)
    prob_true, prob_pred = calibration_curve(Y.ravel(), P.ravel(), n_bins=5, strategy="uniform")
    nonempty = frame[frame["count"] > 0]
    np.testing.assert_allclose(nonempty["freq"], prob_true)
    np.testing.assert_allclose(nonempty["mean_p"], prob_pred)
    assert frame["count"].sum() == P.size
    # ECE by an explicit loop over entries
    b = np.minimum((P.ravel() * 5).astype(int), 4)
    expect = sum(abs(P.ravel()[b == k].mean() - Y.ravel()[b == k].mean()) * (b == k).sum()
                 for k in range(5) if (b == k).any()) / P.size
    assert ece == pytest.approx(expect)
    perfect, ece0 = reliability(np.array([[0.0, 1.0]]), np.array([[False, True]]), n_bins=10)
    assert ece0 == 0.0 and perfect["count"].iloc[-1] == 1  # p = 1 lands in the last bin


def test_set_metrics_match_sklearn(small_case):
    P, Y = small_case
    pred = P >= 0.5
    pred[3] = False  # a day with nothing predicted
    p, r, f = per_row_prf(pred, Y)
    sk = precision_recall_fscore_support(Y, pred, average="samples", zero_division=0)
    assert (p.mean(), r.mean(), f.mean()) == pytest.approx(sk[:3])
    m = mirai_metrics(Y, pred)
    assert (m["precision"], m["recall"], m["f1"]) == pytest.approx(sk[:3])
    g = glean_metrics(Y, pred)
    assert g["hamming"] == pytest.approx((Y != pred).mean())
    support = Y.sum(0)
    f1_per = precision_recall_fscore_support(Y, pred, average=None, zero_division=0)[2]
    assert g["f1_w"] == pytest.approx((f1_per * support).sum() / support.sum())
    assert 0 <= g["f2_w"] <= 1 and 0 <= g["recall_w"] <= 1


def test_weighted_f1_is_scikit_learns_on_every_edge():
    """The threshold search's F1, and the Glean and MIRAI metrics, equal scikit-learn's (zero_division=0):
    random label sets, labels that never happen or are never predicted, nothing predicted, nothing happening."""
    from sklearn.metrics import f1_score, fbeta_score, hamming_loss, recall_score

    rng = np.random.default_rng(0)
    for trial in range(200):
        n, L = rng.integers(1, 30), rng.integers(2, 12)  # one column scikit-learn reads as binary, not multilabel
        Y = rng.random((n, L)) < rng.random(L)  # per-label rates, some near 0
        pred = rng.random((n, L)) < rng.random(L)
        if trial % 10 == 1:
            Y[:, 0] = False  # a label that never happens: weight 0
        if trial % 10 == 2:
            pred[:] = False
        if trial % 10 == 3:
            Y[:] = False
        assert weighted_f1(Y, pred) == pytest.approx(f1_score(Y, pred, average="weighted", zero_division=0),
                                                     abs=1e-12), trial
        g, m = glean_metrics(Y, pred), mirai_metrics(Y, pred)
        assert g["recall_w"] == pytest.approx(recall_score(Y, pred, average="weighted", zero_division=0),
                                              abs=1e-12), trial
        assert g["f2_w"] == pytest.approx(fbeta_score(Y, pred, beta=2, average="weighted", zero_division=0),
                                          abs=1e-12), trial
        assert g["hamming"] == pytest.approx(hamming_loss(Y, pred), abs=1e-12), trial
        sk = precision_recall_fscore_support(Y, pred, average="samples", zero_division=0)[:3]
        assert (m["precision"], m["recall"], m["f1"]) == pytest.approx(sk, abs=1e-12), trial


def test_threshold_tuning_finds_the_separating_threshold():
    P = np.array([[0.9, 0.2], [0.7, 0.35], [0.3, 0.8]])
    Y = np.array([[1, 0], [1, 0], [0, 1]], bool)
    t = tune_threshold(P, Y, [0.1, 0.25, 0.4, 0.6, 0.9])
    assert t == 0.4 and glean_metrics(Y, P >= t)["f1_w"] == 1.0


def test_quad_kl():
    labels = label_space()
    ev = labels["event"]
    Y = np.zeros((2, len(ev)), bool)
    Y[0, ev.index["010"]] = Y[0, ev.index["190"]] = True  # one verbal-coop code, one material-conflict code
    P = np.zeros((2, len(ev)))
    P[0, ev.index["010"]] = P[0, ev.index["190"]] = 0.5
    kl = quad_kl(P, Y)
    assert kl[0] == pytest.approx(0.0, abs=1e-9) and np.isnan(kl[1])  # same shares; nothing happened
    P[0, ev.index["190"]] = 0.0
    q = (np.array([0.5, 0, 0, 0.5]) + 1e-3) / 1.004
    qh = (np.array([1.0, 0, 0, 0]) + 1e-3) / 1.004
    assert quad_kl(P, Y)[0] == pytest.approx(float((q * np.log(q / qh)).sum()))


def test_rouge_matches_rouge_score():
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    target = ["United States police arrest protesters", "France makes a statement"]
    futures = [["United States police arrest people"], ["Germany threatens France", "France makes statement"]]
    got = rouge_scores(futures, target)
    ref = " . ".join(target)
    exp = [np.mean([scorer.score(ref, " . ".join(f))[k].fmeasure for f in futures]) for k in ("rouge1", "rouge2",
                                                                                            "rougeL")]
    assert got == pytest.approx(tuple(exp))
    assert rouge_scores([target], target) == pytest.approx((1.0, 1.0, 1.0))


def test_phrase_rouge_is_rouge_scores_own_on_many_phrases():
    """The memoised stemmer changes nothing: phrase_rouge equals a plain rouge-score scorer (use_stemmer=True) on
    the joined phrases, over random phrases of CAMEO verbs and country names (repeats, odd spellings, digits)."""
    from rouge_score import rouge_scorer

    from pipeline.cameo.phrases import join_phrases, phrase_rouge, vocabulary

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    words = [w for v in vocabulary() for w in v] + ["Côte d'Ivoire", "São Tomé", "G-20", "re-arrests", "UN's"]
    rng = np.random.default_rng(0)
    for _ in range(60):
        a, b = ([" ".join(rng.choice(words, rng.integers(1, 5))) for _ in range(rng.integers(0, 6))]
                for _ in range(2))
        sc = scorer.score(join_phrases(a), join_phrases(b))
        assert phrase_rouge(a, b) == pytest.approx(tuple(sc[k].fmeasure for k in ("rouge1", "rouge2", "rougeL")),
                                                   abs=1e-15)


def test_evaluate_on_hand_made_history(country_history, tmp_path):
    lake = country_history
    run_baselines(lake, "2025-01-02", "2025-01-05", ForecastConfig(learned_dir=None, learned_estimator="logistic"))
    cfg = EvaluateConfig(val_days=2, top_countries=1, reports_dir=tmp_path / "reports")
    ev = evaluate(lake, "2025-01-04", "2025-01-05", cfg=cfg)
    # baseline-learned too: each target day from a fit on the days before it (none before 2025-01-03)
    assert set(ev.runs) == {f"baseline-{n}" for n in ("climatology", "persistence", "freq7", "freq30", "ewm",
                                                          "weekday", "learned")}
    assert lake.partitions("forecasts", model="baseline-learned") == [dt.date(2025, 1, 3 + i) for i in range(3)]
    clim = ev.table("all", "root").loc["baseline-climatology"]
    assert clim.bss_climatology == pytest.approx(0.0) and clim.n_country_days == 4
    assert set(ev.summary.group) == {"all", "busy", "small"}
    assert (ev.table("busy", "root").n_country_days == 2).all()  # US only, on 2 days
    # climatology on 2025-01-05 for US at quad level: history 1-4 (190 → quad 4, 141 → quad 3, as GDELT
    # assigns them) gives [3/4, 0, 1/4, 1/4]; truth [1, 0, 0, 0]
    s = lake.read("scores", "2025-01-05", "2025-01-05", model="baseline-climatology").to_pandas()
    us = s[(s.country == "US") & (s.level == "quad")].iloc[0]
    assert us.brier == pytest.approx(3 * 0.25**2 / 4)
    assert us.n_true == 1 and us.busy and us.n_events == 1
    assert (ev.summary.ece >= 0).all() and ev.summary.brier.between(0, 1).all()
    assert (tmp_path / "reports" / "eval-2025-01-04_2025-01-05" / "summary.csv").exists()
    # the best baseline has no interval against itself; every other run's day-bootstrap interval holds its BSS
    ci = ev.summary.dropna(subset=["bss_best_lo"])
    assert len(ci) and not (ev.summary.run == ev.summary.best_baseline)[ev.summary.bss_best_lo.notna()].any()
    assert ((ci.bss_best_lo <= ci.bss_best_baseline + 1e-12) & (ci.bss_best_baseline <= ci.bss_best_hi + 1e-12)).all()
    # validation days 01-02, 01-03 exist for every run, so no default thresholds
    assert not any("validation" in n for n in ev.notes)
    # the intervals by countries in the same pass (what the backtest reports) are those of a pass by countries
    both = evaluate(lake, "2025-01-04", "2025-01-05", cfg=cfg, write=False, also_by=("country",))
    by_country = evaluate(lake, "2025-01-04", "2025-01-05", cfg=replace(cfg, bootstrap_unit="country"), write=False)
    pd.testing.assert_frame_equal(both.summary, ev.summary)
    pd.testing.assert_frame_equal(both.also["country"], by_country.summary)
    assert not np.allclose(both.also["country"].bss_best_lo.fillna(0), ev.summary.bss_best_lo.fillna(0))
    with pytest.raises(ValueError, match="'region'"):
        evaluate(lake, "2025-01-04", "2025-01-05", cfg=cfg, write=False, also_by=("region",))


def test_bootstrap_bss_interval_covers_the_effect_and_moves_clusters_together():
    from pipeline.scoring.evaluate import bootstrap_bss

    rng = np.random.default_rng(1)
    days = np.repeat(np.arange(40), 30)  # 40 days × 30 countries
    ref = rng.uniform(0.02, 0.06, days.size) * np.repeat(rng.uniform(0.5, 1.5, 40), 30)  # day effects
    better = ref * 0.9 + rng.normal(0, 0.002, days.size)  # truly 10 % better
    lo, hi, p = bootstrap_bss(better, ref, days, 2000)
    assert lo < 0.1 < hi and lo > 0 and p == 1.0
    lo, hi, p = bootstrap_bss(ref, ref, days, 500)
    assert lo == hi == 0.0 and p == 0.0
    noisy = ref + rng.normal(0, 0.02, days.size)  # no skill, lots of noise: the interval straddles 0
    lo, hi, p = bootstrap_bss(np.abs(noisy), ref, days, 2000)
    assert lo < 0 and 0 < p < 1
    # one cluster: every resample is the same sample → a zero-width interval at the point estimate
    lo, hi, _ = bootstrap_bss(better[:30], ref[:30], days[:30], 100)
    assert lo == pytest.approx(hi) == pytest.approx(1 - better[:30].sum() / ref[:30].sum())
    # resampling days is wider than resampling rows when the skill varies from day to day
    better = ref * (1 - np.repeat(rng.normal(0.1, 0.08, 40), 30))
    rows = np.arange(days.size)
    day_width = np.subtract(*bootstrap_bss(better, ref, days, 2000)[1::-1])
    row_width = np.subtract(*bootstrap_bss(better, ref, rows, 2000)[1::-1])
    assert day_width > row_width


def test_plugin_decisions_take_the_top_k_that_maximise_expected_f1_per_day_and_label():
    """bench/f1_rules.py's plug-in rule, against brute force: per (day, label) every k of the sorted rows."""
    from bench.f1_rules import plugin_decisions

    rng = np.random.default_rng(3)
    P = rng.beta(0.6, 0.9, size=(40, 5))
    P[:20, 0] = 0.99  # a label that is near-certain on day 0: every row of it is predicted
    P[20:, 1], P[20, 1] = 0.01, 0.9  # one likely row among unlikely ones on day 1: that row alone
    days = np.repeat([0, 1], 20)
    pred = plugin_decisions(P, days)
    for d in (0, 1):
        rows = np.flatnonzero(days == d)
        for j in range(P.shape[1]):
            p = P[rows, j]
            ef = [2 * np.sort(p)[::-1][:k].sum() / (k + p.sum()) for k in range(1, len(p) + 1)]
            k = int(np.argmax(ef)) + 1
            chosen = pred[rows, j]
            assert chosen.sum() == k
            assert p[chosen].min() >= p[~chosen].max(initial=0.0)  # the k most probable rows
    assert pred[:20, 0].all() and pred[20:, 1].tolist() == [True] + [False] * 19


def test_load_forecast_reads_back_the_dense_probabilities_and_names_an_unknown_code(tmp_path):
    """forecast_rows → a ``forecasts`` partition → load_forecast gives the same (C, L) matrices, countries sorted
    (written out of order); a code outside the CAMEO table is a one-line error naming it."""
    import datetime as dt

    import pyarrow.compute as pc

    from pipeline.core.lake import Lake
    from pipeline.core.schemas import FORECASTS_SCHEMA
    from pipeline.forecast.table import forecast_rows, load_forecast

    labels, day = label_space(), dt.date(2025, 6, 7)
    countries = ["US", "AF", "NI"]
    rng = np.random.default_rng(0)
    probs = {lv: np.where(rng.random((3, len(labels[lv]))) < 0.3, rng.random((3, len(labels[lv]))), 0.0)
             for lv in ("event", "base", "root", "quad")}
    lake = Lake(tmp_path / "lake")
    t = forecast_rows(countries, probs, np.ones(3, bool), "m", 10, dt.datetime(2025, 6, 6), labels)
    lake.write_partition("forecasts", t, day, schema=FORECASTS_SCHEMA, model="m")
    got_countries, got = load_forecast(lake, "m", day, labels)
    order = np.argsort(countries)
    assert got_countries == sorted(countries)
    for lv in probs:
        np.testing.assert_array_equal(got[lv], probs[lv][order])
    bad = t.set_column(t.schema.get_field_index("code"), "code",
                       pc.if_else(pc.equal(t["code"], t["code"][0]), "999", t["code"]))
    lake.write_partition("forecasts", bad, day, schema=FORECASTS_SCHEMA, model="m")
    with pytest.raises(ValueError, match=r"unknown \w+ codes \['999'\]"):
        load_forecast(lake, "m", day, labels)
