"""The evidence fusion model: one calibrated p(match | query, photo, descriptions).

Inputs per (query, photo) pair:

* the pixel model's calibrated logit `t * cos(query, image) + b` (what the worker's Score kernel
  turns into the pixels-only probability);
* the photo's descriptions, embedded by the same text head as the query: the best and the mean
  cosine to the query, and how many there are;
* the keyword coverage (`withsense.keywords.keyword_coverage`): the share of the query's
  content words found in the descriptions.

The model is a logistic regression over features that are all zero for a photo without
descriptions except the image logit and the intercept, with a presence indicator `described`
that lets the described group have its own intercept and image weight. Its logit is then
calibrated on expert judgments, again with a per-group slope and intercept, so that p means
the same ("an expert would say this photo matches") for photos with and without descriptions
and scores are comparable across them.

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
FORMAT = "withsense-fusion-1"

#: Feature names, in the order of `feature_matrix`'s columns.
FEATURES = (
    "image_logit",
    "described",
    "described_x_image_logit",
    "best_description_cosine",
    "mean_description_cosine",
    "keyword_coverage",
    "log1p_descriptions",
)
#: Which evidence each feature belongs to (what a hit reports it rests on).
EVIDENCE_OF = {
    "image_logit": "pixels",
    "described_x_image_logit": "pixels",
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
    image_logit = np.asarray(image_logit, dtype=np.float64)
    n = np.asarray([len(c) for c in cosines], dtype=np.float64)
    described = (n > 0).astype(np.float64)
    best = np.asarray([c.max() if len(c) else 0.0 for c in cosines], dtype=np.float64)
    mean = np.asarray([c.mean() if len(c) else 0.0 for c in cosines], dtype=np.float64)
    keyword = np.asarray(keyword, dtype=np.float64) * described
    return np.stack([image_logit, described, described * image_logit, best, mean, keyword,
                     np.log1p(n)], axis=1)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -60, 60)))


@dataclass(frozen=True)
class FusionModel:
    """Logistic fusion `z = w . x + w0`, then per-group calibration
    `p = sigmoid(a z + b + described (c z + d))`."""

    weights: tuple[float, ...]
    intercept: float
    calibration: tuple[float, float, float, float]  # a, b, c, d
    reference: tuple[float, ...]  # mean feature values of non-matching training pairs
    metrics: dict[str, Any]

    def __post_init__(self) -> None:
        if len(self.weights) != len(FEATURES) or len(self.reference) != len(FEATURES):
            raise FusionError(f"fusion model: expected {len(FEATURES)} weights and references")

    def logit(self, features: np.ndarray) -> np.ndarray:
        return np.asarray(features, dtype=np.float64) @ np.asarray(self.weights) + self.intercept

    def probability(self, features: np.ndarray) -> np.ndarray:
        features = np.asarray(features, dtype=np.float64)
        z = self.logit(features)
        a, b, c, d = self.calibration
        described = features[:, FEATURES.index("described")]
        return _sigmoid(a * z + b + described * (c * z + d))

    def evidence(self, features: np.ndarray) -> list[list[str]]:
        """Per pair, the kinds of evidence that raised its score (strongest first)."""
        features = np.asarray(features, dtype=np.float64)
        terms = (features - np.asarray(self.reference)) * np.asarray(self.weights)
        out = []
        for row in terms:
            gain = dict.fromkeys(EVIDENCE_KINDS, 0.0)
            for name, value in zip(FEATURES, row, strict=True):
                if name in EVIDENCE_OF:
                    gain[EVIDENCE_OF[name]] += float(value)
            kinds = sorted((k for k in EVIDENCE_KINDS if gain[k] >= EVIDENCE_MIN_LOGIT),
                           key=lambda k: -gain[k])
            out.append(kinds)
        return out

    # --- the file ----------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "features": list(FEATURES), **asdict(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any], where: str = FUSION_FILE) -> FusionModel:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise FusionError(f"{where}: not a fusion model of format {FORMAT!r}")
        if list(data.get("features", [])) != list(FEATURES):
            raise FusionError(f"{where}: features {data.get('features')} are not {list(FEATURES)}")
        try:
            model = cls(weights=tuple(float(w) for w in data["weights"]),
                        intercept=float(data["intercept"]),
                        calibration=tuple(float(v) for v in data["calibration"]),  # type: ignore[arg-type]
                        reference=tuple(float(v) for v in data["reference"]),
                        metrics=dict(data.get("metrics", {})))
        except (KeyError, TypeError, ValueError) as exc:
            raise FusionError(f"{where}: {exc}") from None
        values = [*model.weights, model.intercept, *model.calibration, *model.reference]
        if len(model.calibration) != 4 or not all(math.isfinite(v) for v in values):
            raise FusionError(f"{where}: calibration must be 4 finite numbers, weights finite")
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
    "FusionError",
    "FusionModel",
    "description_cosines",
    "feature_matrix",
    "image_logits",
    "load_fusion",
]
