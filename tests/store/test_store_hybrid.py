"""Descriptions as vectors in both backends: round trip, hybrid search, congruence, old schema.

Each photo of a small synthetic set has an image vector; some also have description vectors
(a multivector) and a keyword sparse vector (withsense.keywords). Both real engines must store
them, return them, and answer the same hybrid query (three prefetches fused by RRF) the same way.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from qdrant_client import QdrantClient, models
from qdrant_edge import Distance, EdgeConfig, EdgeShard, EdgeVectorParams
from store_testdata import BACKENDS, COLLECTION, DIM, make_payload, open_backend
from withsense.keywords import document_vector, query_vector
from withsense.store import ImageRecord, StoreError, VectorStore, point_id_for

N = 60
rng = np.random.default_rng(11)


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


IMAGES = unit(rng.standard_normal((N, DIM)))
TEXTS = {
    i: [f"scene {i} with a red boat", f"harbour view number {i}"] for i in range(0, N, 2)
}
TEXTS[10] = ["Shot on a Nikon D750 at Brighton pier", "a pier at dusk"]
DESCRIPTIONS = {i: unit(rng.standard_normal((len(t), DIM))) for i, t in TEXTS.items()}
IDS = [point_id_for(f"hybrid-{i}".encode()) for i in range(N)]


def records() -> list[ImageRecord]:
    out = []
    for i in range(N):
        payload = {**make_payload(i, minor=(i % 7 == 3)), "descriptions": TEXTS.get(i, [])}
        out.append(ImageRecord(IDS[i], IMAGES[i], payload, descriptions=DESCRIPTIONS.get(i),
                               keywords=document_vector(TEXTS.get(i, []))))
    return out


@pytest.fixture
def hybrid(kind: str, tmp_path: Path) -> VectorStore:
    store = open_backend(kind, tmp_path)
    store.upsert(records())
    yield store
    store.close()


def test_round_trip_of_named_and_sparse_vectors(hybrid: VectorStore) -> None:
    hits = hybrid.hybrid_search(IMAGES[10], query_vector("Nikon"), N, exclude_minor=False,
                                with_image_vectors=True)
    by_id = {h.image_id: h for h in hits}
    assert len(by_id) == N  # every photo is a candidate of the image list (limit = N)
    assert len(hits) == N  # the union, each photo once
    described, bare = by_id[IDS[10]], by_id[IDS[11]]
    np.testing.assert_allclose(described.vector, IMAGES[10], atol=1e-6)
    np.testing.assert_allclose(described.descriptions, DESCRIPTIONS[10], atol=1e-6)
    assert described.keywords == document_vector(TEXTS[10])
    assert bare.descriptions is None and bare.keywords is None
    np.testing.assert_allclose(bare.vector, IMAGES[11], atol=1e-6)


@pytest.mark.parametrize("with_image_vectors", [False, True])
def test_hits_carry_the_engines_exact_image_cosine(hybrid: VectorStore, with_image_vectors: bool) -> None:
    """Each candidate's cosine, scored by the engine over the candidates alone, is the cosine
    of its original image vector; the image vector itself leaves the engine only when asked."""
    query = unit(IMAGES[4] + 0.3 * rng.standard_normal(DIM))
    hits = hybrid.hybrid_search(query, query_vector("red boat harbour"), 8, exclude_minor=True,
                                with_image_vectors=with_image_vectors)
    assert len(hits) > 8  # the union of three lists
    index = {IDS[i]: i for i in range(N)}
    for hit in hits:
        assert hit.cosine == pytest.approx(float(IMAGES[index[hit.image_id]] @ query), abs=1e-6)
        assert (hit.vector is not None) == with_image_vectors
        if index[hit.image_id] in DESCRIPTIONS:
            np.testing.assert_allclose(hit.descriptions, DESCRIPTIONS[index[hit.image_id]], atol=1e-6)
            assert hit.keywords == document_vector(TEXTS[index[hit.image_id]])
        else:
            assert hit.descriptions is None and hit.keywords is None


def test_undescribed_photo_is_found_by_its_pixels(hybrid: VectorStore) -> None:
    hits = hybrid.hybrid_search(IMAGES[11], query_vector("red boat"), 5, exclude_minor=False)
    assert IDS[11] in [h.image_id for h in hits]
    # A query vector with no description near it and no keywords at all: still found.
    hits = hybrid.hybrid_search(IMAGES[21], None, 3, exclude_minor=False)
    assert len(hits) <= 6 and IDS[21] in [h.image_id for h in hits]


def test_described_photo_is_found_by_a_keyword(hybrid: VectorStore) -> None:
    # The query vector points at another photo; only the camera model names photo 10.
    hits = hybrid.hybrid_search(IMAGES[33], query_vector("nikon d750"), 3, exclude_minor=False)
    assert IDS[10] in [h.image_id for h in hits]
    hits = hybrid.hybrid_search(IMAGES[33], query_vector("brighton"), 3, exclude_minor=False)
    assert IDS[10] in [h.image_id for h in hits]


def test_described_photo_is_found_by_a_description_vector(hybrid: VectorStore) -> None:
    hits = hybrid.hybrid_search(DESCRIPTIONS[40][1], None, 3, exclude_minor=False)
    assert IDS[40] in [h.image_id for h in hits]


def test_hybrid_search_filters(hybrid: VectorStore) -> None:
    hits = hybrid.hybrid_search(IMAGES[3], query_vector("red boat"), N, exclude_minor=True)
    assert hits and not any(h.payload["minor"] for h in hits)
    assert IDS[3] not in [h.image_id for h in hits]  # 3 % 7 == 3: minor
    hits = hybrid.hybrid_search(IMAGES[3], None, N, exclude_minor=False,
                                filters={"photographer": "p1"})
    assert hits and all(h.payload["photographer"] == "p1" for h in hits)
    assert hybrid.hybrid_search(IMAGES[3], None, 0, exclude_minor=False) == []


def test_backends_agree_on_hybrid_search(tmp_path: Path) -> None:
    stores = [open_backend(kind, tmp_path / kind) for kind in BACKENDS]
    try:
        for store in stores:
            store.upsert(records())
        # Keywords shared by many photos tie in the keyword list, and engines order ties
        # differently; these name one photo each.
        for i, text in [(10, "nikon pier"), (5, "dusk"), (22, ""), (41, "d750")]:
            first, *others = (s.hybrid_search(IMAGES[i], query_vector(text) or None, 12,
                                              exclude_minor=True) for s in stores)
            # RRF gives equal scores to equal rank combinations; the engines break such ties
            # differently, so compare (score, id) pairs in a tie-independent order.
            def pairs(hits: list) -> list[tuple[float, str]]:
                return sorted((-round(h.score, 6), h.image_id) for h in hits)

            for other in others:
                assert pairs(other) == pairs(first)
    finally:
        for store in stores:
            store.close()


def test_bad_description_vectors_are_refused(store: VectorStore) -> None:
    bad = ImageRecord(IDS[0], IMAGES[0], make_payload(0, minor=False),
                      descriptions=np.ones((2, DIM + 1), np.float32))
    with pytest.raises(StoreError, match=r"description 0: expected a vector of shape \(32,\)"):
        store.upsert([bad])
    assert store.count() == 0


def test_store_of_the_old_schema_is_a_clear_error(kind: str, tmp_path: Path) -> None:
    """A store made before descriptions were vectors (only "image") is refused by name."""
    if kind.startswith("edge"):
        folder = tmp_path / ("edge" if kind == "edge" else "catalogued/store")
        folder.parent.mkdir(parents=True, exist_ok=True)
        EdgeShard.create(str(folder), EdgeConfig(
            vectors={"image": EdgeVectorParams(size=DIM, distance=Distance.Cosine)})).close()
    else:
        client = QdrantClient(path=str(tmp_path / "local"))
        client.create_collection(COLLECTION, vectors_config={
            "image": models.VectorParams(size=DIM, distance=models.Distance.COSINE)})
        client.close()
    with pytest.raises(StoreError, match="older With Sense without description vectors"):
        open_backend(kind, tmp_path)
