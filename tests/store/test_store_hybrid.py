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
from withsense.config.store import StoreSettings
from withsense.gateway.evidence import description_summaries
from withsense.keywords import document_vector, query_vector
from withsense.store import EdgeStore, ImageRecord, StoreError, StoreHit, VectorStore, point_id_for
from withsense.store.edge import edge_config

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


def expected_summary(i: int, query: np.ndarray) -> tuple[float, float, int]:
    """(best, mean, count) of photo i's description cosines to `query`, in float64."""
    if i not in DESCRIPTIONS:
        return (0.0, 0.0, 0)
    q = np.asarray(query, np.float64)
    cosines = DESCRIPTIONS[i].astype(np.float64) @ (q / np.linalg.norm(q))
    return (float(cosines.max()), float(cosines.mean()), len(cosines))


def assert_summary(hit: StoreHit, i: int, query: np.ndarray) -> None:
    best, mean, count = expected_summary(i, query)
    assert hit.description_summary is not None
    assert hit.description_summary[0] == pytest.approx(best, abs=1e-5)
    assert hit.description_summary[1] == pytest.approx(mean, abs=1e-5)
    assert hit.description_summary[2] == count


def test_round_trip_of_named_and_sparse_vectors(hybrid: VectorStore) -> None:
    """The engine summarises a hit's descriptions (best, mean, count) instead of handing out
    their rows; the rows themselves are stored as written."""
    hits = hybrid.hybrid_search(IMAGES[10], query_vector("Nikon"), N, exclude_minor=False,
                                with_image_vectors=True)
    by_id = {h.image_id: h for h in hits}
    assert len(by_id) == N  # every photo is a candidate of the image list (limit = N)
    assert len(hits) == N  # the union, each photo once
    described, bare = by_id[IDS[10]], by_id[IDS[11]]
    np.testing.assert_allclose(described.vector, IMAGES[10], atol=1e-6)
    assert described.descriptions is None  # summarised in the engine, not taken out
    assert_summary(described, 10, IMAGES[10])
    assert described.keywords == document_vector(TEXTS[10])
    assert bare.descriptions is None and bare.keywords is None
    assert bare.description_summary == (0.0, 0.0, 0)
    np.testing.assert_allclose(bare.vector, IMAGES[11], atol=1e-6)
    if isinstance(hybrid, EdgeStore):  # the rows, as stored
        _, vectors = hybrid.points([IDS[10]])[IDS[10]]
        np.testing.assert_allclose(vectors["descriptions"], DESCRIPTIONS[10], atol=1e-6)


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
        assert_summary(hit, index[hit.image_id], query)
        if index[hit.image_id] in DESCRIPTIONS:
            assert hit.keywords == document_vector(TEXTS[index[hit.image_id]])
        else:
            assert hit.keywords is None


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


def _made_before_the_summary(kind: str, folder: Path) -> None:
    """A store as With Sense made it before DESCRIPTION_STATS_VECTOR: descriptions and
    keywords, no summary."""
    if kind == "edge":
        folder.mkdir(parents=True)
        EdgeShard.create(str(folder / "edge"), edge_config(DIM, StoreSettings(), stats=False)).close()
        return
    client = QdrantClient(path=str(folder / "local"))
    client.create_collection(
        COLLECTION,
        vectors_config={
            "image": models.VectorParams(size=DIM, distance=models.Distance.COSINE),
            "descriptions": models.VectorParams(
                size=DIM, distance=models.Distance.COSINE,
                multivector_config=models.MultiVectorConfig(
                    comparator=models.MultiVectorComparator.MAX_SIM)),
        },
        sparse_vectors_config={"keywords": models.SparseVectorParams(modifier=models.Modifier.IDF)})
    client.close()


@pytest.mark.parametrize("old", ["edge", "client-local"])
def test_a_store_made_before_the_summary_is_searched_with_its_rows(old: str, tmp_path: Path) -> None:
    """A store without the summary vector opens, takes writes and searches as before (the
    description rows come out and the gateway summarises them), and the gateway's evidence is
    the same as from a store that summarises in the engine."""
    _made_before_the_summary(old, tmp_path / "old")
    stores = [open_backend(old, tmp_path / "old"), open_backend(old, tmp_path / "new")]
    try:
        assert [s.summarises for s in stores] == [False, True]  # type: ignore[attr-defined]
        for store in stores:
            store.upsert(records())
        # Keywords that name one photo each: a shared one ties, and ties fall in any order.
        for i, text in [(10, "nikon pier"), (4, "dusk"), (21, "")]:
            query = unit(IMAGES[i] + 0.5 * rng.standard_normal(DIM))
            before, after = (s.hybrid_search(query, query_vector(text) or None, 10,
                                              exclude_minor=False) for s in stores)
            # The same candidates (RRF's ties may fall in another order: compare by id).
            before.sort(key=lambda h: h.image_id)
            after.sort(key=lambda h: h.image_id)
            assert [h.image_id for h in before] == [h.image_id for h in after]
            assert all(h.description_summary is None for h in before)
            index = {IDS[j]: j for j in range(N)}
            for hit in before:
                j = index[hit.image_id]
                if j in DESCRIPTIONS:
                    np.testing.assert_allclose(hit.descriptions, DESCRIPTIONS[j], atol=1e-6)
                else:
                    assert hit.descriptions is None
            for from_rows, from_engine in zip(description_summaries(query, before),
                                              description_summaries(query, after), strict=True):
                np.testing.assert_allclose(from_rows, from_engine, atol=1e-5)
            assert description_summaries(query, after)[2].sum() > 0  # some are described
    finally:
        for store in stores:
            store.close()
