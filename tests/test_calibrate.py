"""Calibration maps: fitted on validation days, monotone, better Brier, hierarchy kept."""

from __future__ import annotations

import numpy as np

from pipeline.calibrate import Calibration, fit
from pipeline.labels import LEVELS, label_space


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
