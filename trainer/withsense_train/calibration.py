"""Calibration: ``p = sigmoid(t * cos + b)`` fitted so that p means "experts judge this a match".

Modes (``TrainConfig.calibration``): ``all`` weighs every judged pair alike; ``expert`` fits on
expert pairs only; ``balanced`` weighs the expert pairs and the crowd-only pairs as two equal
halves (crowd-only pairs are many more and mostly random, unlike the expert pairs).

The label of a held-out judged pair is 1 when the expert mean score is >= 3, else (no expert
score) when the crowd share of "yes" is >= 0.5 (``data.Judgment.label``). A logistic regression
of the label on the cosine (Platt scaling, unregularised) gives the slope t and intercept b, which
go into the model's ``scale`` and ``bias``: the runtime, the Triton kernel and the gateway then
report calibrated probabilities with no further change.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
from withsense.model.fused import FusedModel

from withsense_train.metrics import expected_calibration_error
from withsense_train.prepare import Prepared, pair_cosines


@dataclass(frozen=True)
class Calibration:
    scale: float
    bias: float
    pairs: int
    matches: int
    expert_pairs: int
    ece_before: float  # on the calibration pairs, with the scale and bias training left
    ece_after: float   # on the same pairs (in-sample): held-out ECE is in the evaluation
    fitted: bool
    note: str = ""
    mode: str = "all"

    def as_dict(self) -> dict:
        return asdict(self)


def fit_platt(cosine: np.ndarray, label: np.ndarray, weight: np.ndarray | None = None) -> tuple[float, float]:
    """(t, b) of an unregularised logistic regression of label on cosine."""
    from sklearn.linear_model import LogisticRegression

    regression = LogisticRegression(C=1e6, max_iter=1000)
    regression.fit(np.asarray(cosine, dtype=np.float64).reshape(-1, 1), np.asarray(label),
                   sample_weight=weight)
    return float(regression.coef_[0, 0]), float(regression.intercept_[0])


def calibrate(model: FusedModel, cosine: np.ndarray, label: np.ndarray, *,
              expert: np.ndarray | None = None, weight: np.ndarray | None = None,
              min_matches: int = 5) -> Calibration:
    """Fits t and b on held-out pairs and writes them into ``model.scale`` / ``model.bias``.

    ``weight``: per-pair weights of the fit (e.g. expert pairs against crowd-only ones).

    With fewer than ``min_matches`` matches (or non-matches) the model is left as it is and
    the result says so.
    """
    cosine = np.asarray(cosine, dtype=np.float64)
    label = np.asarray(label, dtype=np.int64)
    expert_pairs = int(np.sum(expert)) if expert is not None else 0
    scale, bias = float(model.scale.detach()), float(model.bias.detach())
    before = _probability(cosine, scale, bias)
    ece_before = expected_calibration_error(before, label) if label.size else math.nan
    matches = int(label.sum())
    if matches < min_matches or label.size - matches < min_matches:
        return Calibration(scale, bias, int(label.size), matches, expert_pairs, ece_before,
                           ece_before, False, f"too few held-out matches ({matches}) to fit")
    new_scale, new_bias = fit_platt(cosine, label, weight)
    if new_scale <= 0:
        return Calibration(scale, bias, int(label.size), matches, expert_pairs, ece_before,
                           ece_before, False, f"fitted slope {new_scale:.3f} <= 0: kept training's")
    with torch.no_grad():
        model.scale.fill_(new_scale)
        model.bias.fill_(new_bias)
    after = _probability(cosine, new_scale, new_bias)
    return Calibration(new_scale, new_bias, int(label.size), matches, expert_pairs, ece_before,
                       expected_calibration_error(after, label), True)


def calibrate_on_photos(model: FusedModel, prep: Prepared, photos: list[str],
                        mode: str = "expert") -> Calibration:
    """Fits t and b on the judged pairs of these (held-out) photos, in one of the modes above."""
    judged = prep.judgments(photos, expert_only=mode == "expert")
    cosine = pair_cosines(model, prep, judged["text"], judged["photo"])
    weight = None
    if mode == "balanced":
        expert = judged["expert"]
        n_expert, n_crowd = int(expert.sum()), int((~expert).sum())
        if n_expert and n_crowd:
            weight = np.where(expert, 0.5 / n_expert, 0.5 / n_crowd) * len(expert)
    result = calibrate(model, cosine, judged["label"], expert=judged["expert"], weight=weight)
    return replace(result, mode=mode)


def _probability(cosine: np.ndarray, scale: float, bias: float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(scale * cosine + bias)))
