"""The realistic vector generator of the scale benchmarks (benchmarks/scale_vectors.py), on a
small synthetic stand-in for the real vectors: shape, unit length, determinism, fitted spread."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from scale_vectors import (  # noqa: E402
    BLOCK,
    RealVectors,
    fit_noise,
    generated_set,
    nearest_neighbour_cosines,
    realistic_vectors,
    unit,
)

DIM = 24


@pytest.fixture(scope="module")
def real() -> RealVectors:
    """200 'photos' with a low intrinsic dimension (a few strong directions), 20% flagged."""
    rng = np.random.default_rng(7)
    directions = rng.standard_normal((4, DIM)) * np.array([[4.0], [3.0], [2.0], [1.0]])
    image = unit(rng.standard_normal((200, 4)) @ directions + 0.3 * rng.standard_normal((200, DIM)))
    captions = unit(image[:50] + 0.5 * rng.standard_normal((50, DIM)))
    return RealVectors(image, captions, np.arange(50), rng.random(200) < 0.2)


def collect(real: RealVectors, n: int, **kwargs) -> tuple[np.ndarray, np.ndarray]:
    parts = list(realistic_vectors(real, n, **kwargs))
    return np.concatenate([v for v, _ in parts]), np.concatenate([m for _, m in parts])


def test_shape_dtype_and_unit_length(real: RealVectors) -> None:
    vectors, minor = collect(real, 1000)
    assert vectors.shape == (1000, DIM) and vectors.dtype == np.float32
    assert minor.shape == (1000,) and minor.dtype == bool
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert 0.1 < minor.mean() < 0.3  # inherited from the real photos' 20%


def test_deterministic_and_blockwise(real: RealVectors) -> None:
    whole, flags = collect(real, BLOCK + 500)
    again, _ = collect(real, BLOCK + 500)
    np.testing.assert_array_equal(whole, again)
    # Any slice is the same slice of the endless set, across a block boundary.
    part, part_flags = collect(real, 600, start=BLOCK - 100)
    np.testing.assert_array_equal(part, whole[BLOCK - 100:BLOCK + 500])
    np.testing.assert_array_equal(part_flags, flags[BLOCK - 100:BLOCK + 500])
    other, _ = collect(real, 100, seed=1)
    assert not np.allclose(other, whole[:100])


def test_spread_is_fitted_to_the_real_neighbours(real: RealVectors) -> None:
    noise = fit_noise(real.image)
    target = np.median(nearest_neighbour_cosines(real.image))
    rng = np.random.default_rng(3)
    centres = real.image[rng.integers(0, 200, 4000)]
    z = rng.standard_normal((4000, DIM)).astype(np.float32) @ noise.basis
    cosines = np.sum(unit(centres + noise.scale * z) * centres, axis=1)
    assert abs(np.median(cosines) - target) < 0.02
    # Anisotropic like the real vectors: most variance in few directions, unlike random ones.
    vectors, _ = collect(real, 4000)
    share = np.linalg.eigvalsh(np.cov(vectors, rowvar=False))[::-1]
    assert share[:4].sum() / share.sum() > 0.5


def test_generated_set_is_kept_and_reused(tmp_path: Path, real: RealVectors) -> None:
    vectors, flags = generated_set(real, 300, tmp_path / "v.npy")
    expected, expected_flags = collect(real, 300)
    np.testing.assert_array_equal(np.asarray(vectors), expected)
    np.testing.assert_array_equal(flags, expected_flags)
    smaller, _ = generated_set(real, 100, tmp_path / "v.npy")  # a prefix of the kept set
    np.testing.assert_array_equal(np.asarray(smaller), expected[:100])


def test_bad_arguments_are_refused(real: RealVectors) -> None:
    with pytest.raises(ValueError, match="n and start"):
        collect(real, -1)
