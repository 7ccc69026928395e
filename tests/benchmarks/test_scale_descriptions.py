"""The descriptions of the scale benchmarks' generated photos (benchmarks/scale_descriptions.py),
on a small synthetic stand-in for the real vectors: each photo is described by its nearest real
photo's captions, with noise, deterministically, and flagged when that photo is."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from scale_descriptions import Describer  # noqa: E402
from scale_vectors import RealVectors, unit  # noqa: E402

DIM, PHOTOS, CAPTIONS_EACH = 32, 20, 3
WORDS = ["mountain", "bridge", "harbour", "market", "forest"]


@pytest.fixture(scope="module")
def real() -> RealVectors:
    rng = np.random.default_rng(3)
    image = unit(rng.standard_normal((PHOTOS, DIM)))
    owner = np.repeat(np.arange(PHOTOS), CAPTIONS_EACH)
    captions = unit(image[owner] + 0.3 * rng.standard_normal((len(owner), DIM)))
    return RealVectors(image, captions, owner, np.arange(PHOTOS) % 4 == 0)


def texts() -> list[str]:
    return [f"a {WORDS[p % len(WORDS)]} seen from place {p} in view {c}"
            for p in range(PHOTOS) for c in range(CAPTIONS_EACH)]


def test_a_photo_is_described_by_its_nearest_real_photo(real: RealVectors) -> None:
    rng = np.random.default_rng(0)
    owners = rng.integers(0, PHOTOS, 50)
    generated = unit(real.image[owners] + 0.1 * rng.standard_normal((50, DIM)))
    described = Describer(real, texts(), 2).describe(generated, start=0)
    for j, owner in enumerate(owners):
        assert described.texts[j] == [f"a {WORDS[owner % len(WORDS)]} seen from place {owner} in view {c}"
                                      for c in range(2)]  # its first two captions, as written
        rows = described.vectors[j]
        assert rows.shape == (2, DIM) and np.allclose(np.linalg.norm(rows, axis=1), 1, atol=1e-5)
        cosines = np.sum(rows * real.captions[owner * CAPTIONS_EACH:owner * CAPTIONS_EACH + 2], axis=1)
        assert np.all(cosines > 0.85) and np.all(cosines < 0.9999)  # near the captions, not them
        assert described.keywords[j].indices  # the texts' content words
        assert described.minor[j] == real.minor[owner]


def test_deterministic_by_position(real: RealVectors) -> None:
    generated = real.image[:8]
    describer = Describer(real, texts(), 3)
    first, again = describer.describe(generated, start=4096), describer.describe(generated, start=4096)
    for a, b in zip(first.vectors, again.vectors, strict=True):
        np.testing.assert_array_equal(a, b)
    other = describer.describe(generated, start=0)
    assert not np.allclose(other.vectors[0], first.vectors[0])


def test_a_count_out_of_range_is_refused(real: RealVectors) -> None:
    for count in (0, 6):
        with pytest.raises(ValueError, match="descriptions a photo"):
            Describer(real, texts(), count)
