"""Rescoring pairs each probability with the candidate it was computed for."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("score_in", ["gateway", "worker"])
def test_a_candidate_without_a_vector_does_not_shift_the_scores(start_gateway, background_loop,
                                                                 score_in):
    """Scored in the gateway from the store's cosines, or by the worker from the vectors: a
    candidate with neither is left out and the others keep their own probabilities."""
    from withsense.gateway.protocol import SearchParams
    from withsense.keywords import query_words
    from withsense.store import StoreHit

    engine = start_gateway(score_in=score_in).engine
    rng = np.random.default_rng(5)
    query = rng.normal(size=engine.store.dim).astype(np.float32)
    query /= np.linalg.norm(query)
    near = (query + 0.05 * rng.normal(size=query.shape)).astype(np.float32)  # high probability
    far = -near  # low probability

    def hit(uri, vector):
        payload = {"uri": uri, "minor": False}
        cosine = None if vector is None else float(vector @ query / np.linalg.norm(vector))
        return StoreHit(image_id=f"id-{uri}", score=0.0, payload=payload, vector=vector, cosine=cosine)

    candidates = [hit("far.jpg", far), hit("no-vector.jpg", None), hit("near.jpg", near)]
    expected = background_loop.run(engine.worker.score(query, np.stack([far, near])))
    params = SearchParams(query="q", top_k=3, region="US", min_score=0.0)
    region = engine.gate.region("US")
    hits = background_loop.run(engine._rescore(query, query_words(params.query), candidates, params,
                                                    region, engine.fusion))
    assert [h.uri for h in hits] == ["near.jpg", "far.jpg"]
    assert [h.score for h in hits] == pytest.approx([float(expected[1]), float(expected[0])], abs=1e-6)
