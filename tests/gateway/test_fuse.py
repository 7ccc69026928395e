"""The search's fusion of candidates (one matrix product for every description of every
candidate) gives the probabilities and evidence of the per-pair reference
(``fusion.feature_matrix`` over ``description_cosines``, what the trainer fits on)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from withsense.gateway.evidence import PIXELS_ONLY, description_summaries, fuse
from withsense.keywords import coverage, document_vector, query_words
from withsense.model.fusion import (
    description_cosines,
    feature_matrix,
    image_logits,
    load_fusion,
)
from withsense.store import StoreHit

ARTIFACT = Path(__file__).resolve().parents[2] / "services/withsense/model/artifacts/default"
DIM = 16
TEXTS = ["a red boat in the harbour", "a dog runs on the beach", "two cups of coffee", ""]


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def _candidates(rng: np.random.Generator, n: int) -> list[StoreHit]:
    """Candidates with 0 to 5 descriptions each (some with keywords, some without)."""
    out = []
    for i in range(n):
        count = int(rng.integers(0, 6))
        descriptions = _unit(rng.standard_normal((count, DIM))) if count else None
        keywords = document_vector([TEXTS[i % len(TEXTS)]]) if count else None
        out.append(StoreHit(image_id=str(i), score=0.0, payload={}, vector=None,
                            descriptions=descriptions, keywords=keywords or None))
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fused_probabilities_and_evidence_equal_the_per_pair_reference(seed: int) -> None:
    fusion = load_fusion(ARTIFACT)
    assert fusion is not None
    rng = np.random.default_rng(seed)
    query = _unit(rng.standard_normal(DIM))
    candidates = _candidates(rng, 120)
    pixels = rng.uniform(0.001, 0.999, len(candidates))
    words = query_words("a red dog on the beach")
    fused = fuse(fusion, words, query, candidates, pixels)

    cosines = [description_cosines(query, c.descriptions) for c in candidates]
    keyword = np.asarray([coverage(words, c.keywords.indices) if c.keywords else 0.0
                          for c in candidates])
    reference = feature_matrix(image_logits(pixels), cosines, keyword)
    np.testing.assert_allclose(fused.features, reference, rtol=0, atol=1e-12)
    np.testing.assert_allclose(fused.probabilities, fusion.probability(reference), rtol=0, atol=1e-12)
    expected = [tuple(e) for e in fusion.evidence(reference)]
    assert [fused.evidence(i) for i in range(len(candidates))] == expected
    assert any(len(c) for c in cosines) and any(not len(c) for c in cosines)


def test_summaries_of_candidates_without_descriptions() -> None:
    empty = [StoreHit(image_id="a", score=0.0, payload={}, vector=None)]
    best, mean, counts = description_summaries(np.ones(DIM, np.float32), empty)
    assert (best.tolist(), mean.tolist(), counts.tolist()) == ([0.0], [0.0], [0])
    best, mean, counts = description_summaries(np.ones(DIM, np.float32), [])
    assert len(best) == len(mean) == len(counts) == 0


def test_without_a_fusion_model_the_pixels_decide() -> None:
    pixels = np.array([0.2, 0.9])
    fused = fuse(None, [], np.ones(DIM, np.float32), _candidates(np.random.default_rng(3), 2), pixels)
    np.testing.assert_array_equal(fused.probabilities, pixels)
    assert fused.evidence(1) == PIXELS_ONLY


def test_the_engines_summaries_stand_for_the_rows() -> None:
    """Candidates the store summarised (best, mean, count) give the features their rows give;
    when any candidate lacks a summary, every candidate's rows are used."""
    rng = np.random.default_rng(4)
    query = _unit(rng.standard_normal(DIM))
    rows = _candidates(rng, 40)
    reference = description_summaries(query, rows)
    summarised = [StoreHit(image_id=c.image_id, score=0.0, payload={}, vector=None,
                           keywords=c.keywords,
                           description_summary=(float(b), float(m), int(n)))
                  for c, b, m, n in zip(rows, *reference, strict=True)]
    for got, want in zip(description_summaries(query, summarised), reference, strict=True):
        np.testing.assert_array_equal(got, want)
    # A summary that disagrees with the rows shows which one was read.
    off = [StoreHit(image_id=c.image_id, score=0.0, payload={}, vector=None,
                    descriptions=c.descriptions, description_summary=(9.0, 9.0, 9)) for c in rows]
    assert description_summaries(query, off)[0].tolist() == [9.0] * len(rows)
    mixed = off[:-1] + [rows[-1]]  # the last without a summary: rows for all
    np.testing.assert_array_equal(description_summaries(query, mixed)[0], reference[0])
