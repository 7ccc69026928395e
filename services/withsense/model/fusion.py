"""The evidence fusion model: one calibrated p(match | query, photo, descriptions).

Inputs per (query, photo) pair:

* the pixel model's calibrated logit `t * cos(query, image) + b` (what the worker's Score kernel
  turns into the pixels-only probability);
* the photo's descriptions, embedded by the same text head as the query: the best and the mean
  cosine to the query, and how many there are;
* the keyword coverage (`withsense.keywords.keyword_coverage`): the share of the query's
  content words found in the descriptions.

A photo without descriptions is scored by the pixel model alone: its probability *is* the
pixel model's calibrated `sigmoid(t cos + b)`, so adding descriptions to other photos never
changes it. A described photo is scored by a linear logit over the image logit and the
description features (`withsense_train.fusion` fits it with a listwise objective), then
calibrated on expert judgments of described photos (Platt: `sigmoid(a z + b)`). Both groups
are calibrated against the same label ("an expert would say this photo matches"), which is
what makes scores comparable across photos with and without descriptions: a presence indicator
(`described`) picks the branch.

Stored in the model artifact as `fusion.json` (trained by `withsense_train.fusion`); numpy
only, so the gateway can apply it to its candidates without torch.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

FUSION_FILE = "fusion.json"
FORMAT = "withsense-fusion-2"

#: Feature names, in the order of `feature_matrix`'s columns.
FEATURES = (
    "image_logit",
    "described",
    "best_description_cosine",
    "mean_description_cosine",
    "keyword_coverage",
    "log1p_descriptions",
)
#: The regression's inputs (for described photos): every feature but the presence indicator.
REGRESSION_FEATURES = tuple(f for f in FEATURES if f != "described")
_REGRESSION_COLUMNS = [FEATURES.index(f) for f in REGRESSION_FEATURES]
_DESCRIBED = FEATURES.index("described")
_IMAGE = FEATURES.index("image_logit")
#: Which evidence each regression input belongs to (what a hit reports it rests on).
EVIDENCE_OF = {
    "image_logit": "pixels",
    "best_description_cosine": "descriptions",
    "mean_description_cosine": "descriptions",
    "log1p_descriptions": "descriptions",
    "keyword_coverage": "keywords",
}
EVIDENCE_KINDS = ("pixels", "descriptions", "keywords")
#: A signal counts as evidence when it raises the logit by at least this much over its
#: reference value (the mean among non-matching pairs): e-fold odds.
EVIDENCE_MIN_LOGIT = 1.0
IMAGE_LOGIT_CLIP = 20.0


class FusionError(ValueError):
    """A fusion file that cannot be used (names the file and the problem)."""


def image_logits(probabilities: np.ndarray) -> np.ndarray:
    """The pixel model's logit from its probability (clipped away from 0 and 1)."""
    p = np.clip(np.asarray(probabilities, dtype=np.float64), 1e-9, 1 - 1e-9)
    return np.clip(np.log(p / (1 - p)), -IMAGE_LOGIT_CLIP, IMAGE_LOGIT_CLIP)


def description_cosines(query: np.ndarray, descriptions: np.ndarray | None) -> np.ndarray:
    """Cosines of the query with each description vector (both unit length); [] if none."""
    if descriptions is None or len(descriptions) == 0:
        return np.zeros(0)
    return np.asarray(descriptions, dtype=np.float64) @ np.asarray(query, dtype=np.float64)


def feature_matrix(image_logit: np.ndarray, cosines: Sequence[np.ndarray],
                   keyword: np.ndarray) -> np.ndarray:
    """[N, len(FEATURES)] features of N pairs: image logits, each pair's description cosines
    (an empty array for a photo without descriptions) and keyword coverages."""
    n = np.asarray([len(c) for c in cosines], dtype=np.float64)
    best = np.asarray([c.max() if len(c) else 0.0 for c in cosines], dtype=np.float64)
    mean = np.asarray([c.mean() if len(c) else 0.0 for c in cosines], dtype=np.float64)
    return summary_features(image_logit, best, mean, n, keyword)


def summary_features(image_logit: np.ndarray, best: np.ndarray, mean: np.ndarray, n: np.ndarray,
                     keyword: np.ndarray) -> np.ndarray:
    """`feature_matrix` from each pair's best and mean description cosine and number of
    descriptions (best and mean 0 where n is 0): a search's candidates get these from one
    matrix product rather than from an array per candidate."""
    image_logit = np.asarray(image_logit, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    described = (n > 0).astype(np.float64)
    keyword = np.asarray(keyword, dtype=np.float64) * described
    return np.stack([image_logit, described, np.asarray(best, dtype=np.float64),
                     np.asarray(mean, dtype=np.float64), keyword, np.log1p(n)], axis=1)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -60, 60)))


@dataclass(frozen=True)
class FusionModel:
    """Described photos: `p = sigmoid(a z + b)` with `z = w . x + w0` over REGRESSION_FEATURES;
    photos without descriptions: `p = sigmoid(image_logit)`, the pixel model's own p."""

    weights: tuple[float, ...]  # one per REGRESSION_FEATURES
    intercept: float
    calibration: tuple[float, float]  # a, b
    reference: tuple[float, ...]  # mean REGRESSION_FEATURES of non-matching described pairs
    metrics: dict[str, Any]

    def __post_init__(self) -> None:
        n = len(REGRESSION_FEATURES)
        if len(self.weights) != n or len(self.reference) != n or len(self.calibration) != 2:
            raise FusionError(f"fusion model: expected {n} weights and references, 2 calibration "
                              "values")

    def logit(self, features: np.ndarray) -> np.ndarray:
        """The regression's (uncalibrated) logit of each pair, as if it were described."""
        x = np.asarray(features, dtype=np.float64)[:, _REGRESSION_COLUMNS]
        return x @ np.asarray(self.weights) + self.intercept

    def probability(self, features: np.ndarray) -> np.ndarray:
        features = np.asarray(features, dtype=np.float64)
        a, b = self.calibration
        described = features[:, _DESCRIBED] > 0
        return np.where(described, _sigmoid(a * self.logit(features) + b),
                        _sigmoid(features[:, _IMAGE]))

    def evidence(self, features: np.ndarray) -> list[list[str]]:
        """Per pair, the kinds of evidence that raised its calibrated logit by at least
        EVIDENCE_MIN_LOGIT over a typical non-matching photo, strongest first."""
        features = np.asarray(features, dtype=np.float64)
        a = self.calibration[0]
        x = features[:, _REGRESSION_COLUMNS]
        terms = a * (x - np.asarray(self.reference)) * np.asarray(self.weights)
        pixels_alone = features[:, _IMAGE] - self.reference[REGRESSION_FEATURES.index("image_logit")]
        out = []
        for row, described, pixel_gain in zip(terms, features[:, _DESCRIBED] > 0, pixels_alone,
                                              strict=True):
            gain = dict.fromkeys(EVIDENCE_KINDS, 0.0)
            if described:
                for name, value in zip(REGRESSION_FEATURES, row, strict=True):
                    gain[EVIDENCE_OF[name]] += float(value)
            else:
                gain["pixels"] = float(pixel_gain)
            out.append(sorted((k for k in EVIDENCE_KINDS if gain[k] >= EVIDENCE_MIN_LOGIT),
                              key=lambda k: -gain[k]))
        return out

    # --- the file ----------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "features": list(REGRESSION_FEATURES), **asdict(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any], where: str = FUSION_FILE) -> FusionModel:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise FusionError(f"{where}: not a fusion model of format {FORMAT!r}")
        if list(data.get("features", [])) != list(REGRESSION_FEATURES):
            raise FusionError(f"{where}: features {data.get('features')} are not "
                              f"{list(REGRESSION_FEATURES)}")
        try:
            model = cls(weights=tuple(float(w) for w in data["weights"]),
                        intercept=float(data["intercept"]),
                        calibration=tuple(float(v) for v in data["calibration"]),  # type: ignore[arg-type]
                        reference=tuple(float(v) for v in data["reference"]),
                        metrics=dict(data.get("metrics", {})))
        except (KeyError, TypeError, ValueError) as exc:
            raise FusionError(f"{where}: {exc}") from None
        values = [*model.weights, model.intercept, *model.calibration, *model.reference]
        if not all(math.isfinite(v) for v in values):
            raise FusionError(f"{where}: weights and calibration must be finite")
        return model

    def save(self, folder: Path) -> Path:
        path = Path(folder) / FUSION_FILE
        path.write_text(json.dumps(self.to_json(), indent=1, sort_keys=True) + "\n")
        return path


def load_fusion(folder: Path, expected_sha256: str | None = None) -> FusionModel | None:
    """The fusion model of an artifact folder, or None when it has none (pixels only).
    `expected_sha256`: the hash config.json records for it (checked when given)."""
    path = Path(folder) / FUSION_FILE
    if not path.exists():
        if expected_sha256:
            raise FusionError(f"{path} is missing but config.json lists it")
        return None
    try:
        raw = path.read_bytes()
        data = json.loads(raw)
    except (OSError, ValueError) as exc:
        raise FusionError(f"{path}: cannot read ({exc})") from None
    actual = hashlib.sha256(raw).hexdigest()
    if expected_sha256 and actual != expected_sha256:
        raise FusionError(f"{path} hashes to {actual[:12]}…, config.json says {expected_sha256}")
    return FusionModel.from_json(data, str(path))


__all__ = [
    "EVIDENCE_KINDS",
    "FEATURES",
    "FUSION_FILE",
    "REGRESSION_FEATURES",
    "FusionError",
    "FusionModel",
    "description_cosines",
    "feature_matrix",
    "image_logits",
    "load_fusion",
    "summary_features",
]
