"""Pooling a photo's tiles for the visual minor detector (issue 14, "multi-crop" routes).

A photo is a bag of views: the full frame (centre + mirror mean, as the worker embeds it) and
its ``TILES`` tiles (``withsense_train.tiles``). Its label says whether *some* view shows a
child: a multiple-instance label. Inputs here are ``[N, views, F]`` arrays of detector inputs
(``detector_inputs``), view 0 the full frame. Each ``*_fitter`` returns a ``Fitter``
(``withsense_train.minor``): fit(x, y, w) -> predict(x) -> p.

- ``full_then_max``: the full-frame logistic regression, applied to every view; p is the max.
- ``instance_fitter``: every view trained on as its photo's label (noisy for tiles without
  the child), pooled by max or mean at prediction.
- ``lse_fitter``: a logistic regression whose photo score is a smooth max (log-mean-exp, with
  sharpness ``r``) of the views' scores, trained on the photo labels (multiple-instance).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from withsense_train.minor import Fitter, logistic_fitter, standardiser

POOLS = ("max", "mean")


def _check_views(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 3 or x.shape[1] < 1:
        raise ValueError(f"tile inputs must be [photos, views, features], got {x.shape}")
    return x


def pool(p: np.ndarray, how: str) -> np.ndarray:
    """[N, views] probabilities -> [N] by ``how`` (max or mean)."""
    if how not in POOLS:
        raise ValueError(f"unknown pool {how!r}; known: {POOLS}")
    return p.max(1) if how == "max" else p.mean(1)


def full_then_max(c: float, seed: int = 0) -> Fitter:
    """Trained on the full frame (view 0) only; p = max over all views."""
    inner = logistic_fitter(c, seed)

    def fit(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        x = _check_views(x)
        predict = inner(x[:, 0], y, w)

        def p(z: np.ndarray) -> np.ndarray:
            z = _check_views(z)
            return predict(z.reshape(-1, z.shape[2])).reshape(z.shape[:2]).max(1)
        return p
    return fit


def instance_fitter(c: float, how: str, seed: int = 0) -> Fitter:
    """Every view a training row with its photo's label and 1/views of its weight; p pooled."""
    if how not in POOLS:
        raise ValueError(f"unknown pool {how!r}; known: {POOLS}")

    def fit(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        x = _check_views(x)
        views = x.shape[1]
        flat = x.reshape(-1, x.shape[2])
        mean, std = standardiser(flat)
        model = LogisticRegression(C=c, max_iter=3000, random_state=seed)
        model.fit((flat - mean) / std, np.repeat(y, views), sample_weight=np.repeat(w, views) / views)

        def p(z: np.ndarray) -> np.ndarray:
            z = _check_views(z)
            flat_z = (z.reshape(-1, z.shape[2]) - mean) / std
            return pool(model.predict_proba(flat_z)[:, 1].reshape(z.shape[:2]), how)
        return p
    return fit


def smooth_max(scores: torch.Tensor, sharpness: float) -> torch.Tensor:
    """[N, views] -> [N]: log-mean-exp with sharpness r (r -> 0: mean, r -> inf: max)."""
    views = scores.shape[1]
    return (torch.logsumexp(sharpness * scores, dim=1) - np.log(views)) / sharpness


def lse_fitter(c: float, sharpness: float = 4.0, seed: int = 0, max_iter: int = 200) -> Fitter:
    """L2 logistic regression (sklearn's scale: sum of losses + ||w||^2 / 2C) on the smooth max
    of the views' linear scores; full-batch L-BFGS in float64 from the full-frame logistic
    regression's solution, so it is deterministic and starts where the shipped route ends."""
    def fit(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        x = _check_views(x)
        mean, std = standardiser(x.reshape(-1, x.shape[2]))
        z = torch.from_numpy(((x - mean) / std).astype(np.float64))
        start = LogisticRegression(C=c, max_iter=3000, random_state=seed)
        start.fit(z[:, 0].numpy(), y, sample_weight=w)
        weight = torch.tensor(start.coef_[0], dtype=torch.float64, requires_grad=True)
        bias = torch.tensor(float(start.intercept_[0]), dtype=torch.float64, requires_grad=True)
        target = torch.as_tensor(y, dtype=torch.float64)
        sample = torch.as_tensor(w, dtype=torch.float64)
        optimiser = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=max_iter,
                                      line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            optimiser.zero_grad()
            score = smooth_max(z @ weight + bias, sharpness)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                score, target, weight=sample, reduction="sum") + weight.square().sum() / (2 * c)
            loss.backward()
            return loss
        optimiser.step(closure)
        final_w, final_b = weight.detach(), bias.detach()

        def p(z_new: np.ndarray) -> np.ndarray:
            z_new = torch.from_numpy(((_check_views(z_new) - mean) / std).astype(np.float64))
            return torch.sigmoid(smooth_max(z_new @ final_w + final_b, sharpness)).numpy()
        return p
    return fit
