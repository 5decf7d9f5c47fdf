"""Probabilities over the CAMEO hierarchy: the floor they stay within, their logit, parent ≥ child.

In the model layer because ``baseline-learned`` (:mod:`pipeline.model.learned`, also the occurrence
head's prior) uses it; the calibration and the forecast above use the same functions.
"""

from __future__ import annotations

import numpy as np

from pipeline.cameo.labels import LabelSpace, label_space

PROB_FLOOR = 1e-3
"""Calibrated and learned probabilities stay within [PROB_FLOOR, 1 − PROB_FLOOR]."""
HIERARCHY: tuple[tuple[str, str], ...] = (("event", "base"), ("base", "root"), ("root", "quad"))
"""(child, parent) levels, bottom up."""


def logit(p: np.ndarray) -> np.ndarray:
    """log(p / (1 − p)) of ``p`` clipped to [PROB_FLOOR, 1 − PROB_FLOOR]."""
    p = np.clip(np.asarray(p, float), PROB_FLOOR, 1.0 - PROB_FLOOR)
    return np.log(p / (1.0 - p))


def restore_hierarchy(probs: dict[str, np.ndarray], labels: LabelSpace | None = None) -> dict[str, np.ndarray]:
    """Bottom up (event → base → root → quad): ``p(parent) = max(p(parent), max p(child))``, {level: (..., L)}."""
    labels = labels or label_space()
    out = dict(probs)
    for child, parent in HIERARCHY:
        if child in out and parent in out:
            m = labels.parent_matrix(child, parent).astype(bool)  # (L_child, L_parent)
            under = np.where(m, out[child][..., :, None], 0.0).max(axis=-2)  # (..., L_parent)
            out[parent] = np.maximum(out[parent], under)
    return out
