"""Stacking the tower's minor detector with the person/age cues (``sight_cues``).

Level 1 is the shipped logistic regression on the tower features; level 2 a small model on
``[level-1 logit, cue design]``. Within each fit the level-1 logits that train level 2 are
out-of-fold over the training rows (inner stratified folds), so no row's own label reaches its
level-2 input; at prediction time level 1 is the fit on all training rows.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn.model_selection import StratifiedKFold

Fitter = Callable[[np.ndarray, np.ndarray, np.ndarray], Callable[[np.ndarray], np.ndarray]]
LOG_FLOOR = 1e-4


def cue_design(features: np.ndarray, columns: list[str]) -> np.ndarray:
    """Model inputs from ``sight_cues.cue_vector`` rows: counts as log1p, probabilities as they
    are, ratios, sizes and ages as logs; a missing value (the photo does not show that part) as
    0 plus a 0/1 indicator column (fixed columns), so a linear model learns its own value for "not seen"."""
    x = np.asarray(features, dtype=np.float64)
    out = []
    for k, name in enumerate(columns):
        value = x[:, k]
        if name in ("persons", "persons_detected", "faces"):
            out.append(np.log1p(value))
            continue
        if "p_young" not in name:
            value = np.log(np.maximum(value, LOG_FLOOR))
        missing = np.isnan(value)
        out += [np.where(missing, 0.0, value), missing.astype(np.float64)]
    return np.column_stack(out).astype(np.float32)


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def stacked_fitter(level1: Fitter, level2: Fitter, width: int, *, inner_folds: int = 5,
                   seed: int = 0) -> Fitter:
    """A fitter on rows ``[tower inputs (width) | cue design]``: level 1 on the tower part, level
    2 on ``[out-of-fold level-1 logit, cue design]``."""
    def fit(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        tower, cues = x[:, :width], x[:, width:]
        inner = np.zeros(len(x))
        splitter = StratifiedKFold(n_splits=inner_folds, shuffle=True, random_state=seed)
        for train, test in splitter.split(tower, y):
            inner[test] = level1(tower[train], y[train], w[train])(tower[test])
        second = level2(np.column_stack([logit(inner), cues]), y, w)
        first = level1(tower, y, w)
        return lambda z: second(np.column_stack([logit(first(z[:, :width])), z[:, width:]]))
    return fit


def boosting_fitter(seed: int = 0) -> Fitter:
    """Shallow gradient-boosted trees (interactions between cues, e.g. an age only where a face
    is seen)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    def fit(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        model = HistGradientBoostingClassifier(max_depth=3, learning_rate=0.05, max_iter=200,
                                               l2_regularization=1.0, min_samples_leaf=20,
                                               random_state=seed)
        model.fit(x, y, sample_weight=w)
        return lambda z: model.predict_proba(z)[:, 1]
    return fit
