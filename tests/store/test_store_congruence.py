"""Congruence suite: both backends against brute force and against each other.

In the spirit of qdrant-client's own congruence tests, every behaviour is checked the same way
on "edge" (Qdrant Edge) and "client-local" (qdrant-client local mode).

On exactness: HNSW is approximate, so comparing top-k ids with brute force is only sound while
the engine searches exactly. Qdrant builds an HNSW index for a segment only once it passes the
indexing threshold (about 10 MB of vectors); the 500 x 32 float32 data set here (64 KB) stays
below it, so even after `optimize()` Qdrant Edge answers by exact (plain) search, and
qdrant-client's local mode always does. `test_optimize_keeps_exact_results` asserts that
premise (no indexed vectors) before comparing, so the check cannot silently turn approximate.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from store_testdata import DIM, Dataset, make_payload, open_backend
from withsense.store import EdgeStore, ImageRecord, StoreError, VectorStore

K = 10
rng = np.random.default_rng(7)
QUERIES = [q / np.linalg.norm(q) for q in rng.standard_normal((12, DIM))]


def ids_of(hits: list) -> list[str]:
    return [h.image_id for h in hits]


# ----------------------------------------------------------------------------- search


def test_store_satisfies_protocol(filled: VectorStore, kind: str) -> None:
    assert isinstance(filled, VectorStore)
    assert filled.backend == {"edge": "qdrant-edge", "edge-catalogued": "qdrant-edge",
                              "client-local": "qdrant-client"}[kind]
    assert filled.dim == DIM


def test_search_order_equals_brute_force(filled: VectorStore, dataset: Dataset) -> None:
    for q in QUERIES:
        hits = filled.search(q, K, exclude_minor=False)
        assert ids_of(hits) == dataset.brute_force(q, K)
        scores = [h.score for h in hits]
        assert scores == sorted(scores, reverse=True)
        for h in hits:
            assert h.score == pytest.approx(dataset.cosine(h.image_id, q), abs=1e-5)


def test_search_returns_payload_and_vectors(filled: VectorStore, dataset: Dataset) -> None:
    q = QUERIES[0]
    hits = filled.search(q, 5, exclude_minor=False, with_vectors=True)
    for h in hits:
        i = dataset.ids.index(h.image_id)
        assert h.payload == dataset.payloads[i]
        assert h.vector is not None and h.vector.dtype == np.float32
        assert h.vector.shape == (DIM,)
        np.testing.assert_allclose(h.vector, dataset.vectors[i], atol=1e-6)
    bare = filled.search(q, 5, exclude_minor=False, with_vectors=False)
    assert ids_of(bare) == ids_of(hits)
    assert all(h.vector is None for h in bare)


def test_search_limit_edge_cases(filled: VectorStore) -> None:
    assert filled.search(QUERIES[0], 0, exclude_minor=True) == []
    assert len(filled.search(QUERIES[0], 1, exclude_minor=True)) == 1
    with pytest.raises(StoreError, match="limit"):
        filled.search(QUERIES[0], -1, exclude_minor=True)
    with pytest.raises(StoreError, match=r"shape \(32,\)"):
        filled.search(np.ones(DIM + 1), 3, exclude_minor=True)
    with pytest.raises(StoreError, match="all zeros"):
        filled.search(np.zeros(DIM), 3, exclude_minor=True)


def test_exclude_minor_never_returns_minor_and_fills_limit(
    filled: VectorStore, dataset: Dataset
) -> None:
    allowed = dataset.mask(exclude_minor=True)
    minor_idx = [i for i, p in enumerate(dataset.payloads) if p["minor"]]
    # Query right at minor images: unfiltered, the best hit is a minor one.
    for i in minor_idx[:8]:
        q = dataset.vectors[i]
        assert filled.search(q, 1, exclude_minor=False)[0].payload["minor"] is True
        hits = filled.search(q, 50, exclude_minor=True)
        assert len(hits) == 50  # filtering inside the engine fills the top-k
        assert not any(h.payload["minor"] for h in hits)
        assert ids_of(hits) == dataset.brute_force(q, 50, allowed)
    # Asking for more than there are allowed points returns exactly the allowed points.
    everything = filled.search(QUERIES[0], len(dataset.ids), exclude_minor=True)
    assert len(everything) == int(allowed.sum())
    assert not any(h.payload["minor"] for h in everything)


def test_payload_filters(filled: VectorStore, dataset: Dataset) -> None:
    for q in QUERIES[:4]:
        hits = filled.search(q, K, exclude_minor=True, filters={"photographer": "p1"})
        assert len(hits) == K
        assert all(h.payload["photographer"] == "p1" and not h.payload["minor"] for h in hits)
        keep = dataset.mask(exclude_minor=True, filters={"photographer": "p1"})
        assert ids_of(hits) == dataset.brute_force(q, K, keep)

        both = {"photographer": "p2", "license": "cc-by"}
        hits = filled.search(q, K, exclude_minor=False, filters=both)
        assert ids_of(hits) == dataset.brute_force(q, K, dataset.mask(filters=both))

    one_uri = dataset.payloads[3]["uri"]
    hits = filled.search(QUERIES[0], K, exclude_minor=True, filters={"uri": one_uri})
    assert ids_of(hits) == [dataset.ids[3]]
    assert filled.search(QUERIES[0], K, exclude_minor=False, filters={"photographer": "x"}) == []
    with pytest.raises(StoreError, match="must be a str"):
        filled.search(QUERIES[0], K, exclude_minor=False, filters={"minor": True})  # type: ignore[dict-item]


def test_optimize_keeps_exact_results(
    kind: str, tmp_path: Path, dataset: Dataset
) -> None:
    store = open_backend(kind, tmp_path)
    try:
        store.upsert(dataset.records)
        before = [ids_of(store.search(q, K, exclude_minor=True)) for q in QUERIES]
        store.optimize()
        if isinstance(store, EdgeStore):
            assert store.indexed_vectors_count() == 0, "HNSW built: the exact check is unsound"
        after = [ids_of(store.search(q, K, exclude_minor=True)) for q in QUERIES]
        assert after == before
        keep = dataset.mask(exclude_minor=True)
        assert after == [dataset.brute_force(q, K, keep) for q in QUERIES]
    finally:
        store.close()


def test_backends_agree(filled_stores: Callable[[str], VectorStore], dataset: Dataset) -> None:
    """The same queries against both backends give identical top-k id lists."""
    edge, local = filled_stores("edge"), filled_stores("client-local")
    cases = [
        {"exclude_minor": False},
        {"exclude_minor": True},
        {"exclude_minor": True, "filters": {"license": "cc-by"}},
        {"exclude_minor": False, "filters": {"photographer": "p0", "license": "cc-by"}},
    ]
    for q in QUERIES:
        for case in cases:
            a = edge.search(q, 25, **case)  # type: ignore[arg-type]
            b = local.search(q, 25, **case)  # type: ignore[arg-type]
            assert ids_of(a) == ids_of(b), case
            np.testing.assert_allclose([h.score for h in a], [h.score for h in b], atol=1e-5)
    assert edge.count() == local.count() == len(dataset.ids)
    assert edge.count(minor=True) == local.count(minor=True)
    uris = [p["uri"] for p in dataset.payloads[:7]]
    assert edge.ids_for_uris(uris) == local.ids_for_uris(uris)


# ----------------------------------------------------------------------------- reads


def test_get(filled: VectorStore, dataset: Dataset) -> None:
    unknown = "00000000-0000-0000-0000-000000000000"
    got = filled.get([dataset.ids[1], dataset.ids[2].upper(), unknown])
    assert set(got) == {dataset.ids[1], dataset.ids[2]}
    assert got[dataset.ids[1]] == dataset.payloads[1]
    assert filled.get([]) == {}
    with pytest.raises(StoreError, match="not a UUID"):
        filled.get(["photo-1"])


def test_count(filled: VectorStore, dataset: Dataset) -> None:
    n_minor = sum(p["minor"] for p in dataset.payloads)
    assert 0 < n_minor < len(dataset.ids)
    assert filled.count() == len(dataset.ids)
    assert filled.count(minor=None) == len(dataset.ids)
    assert filled.count(minor=True) == n_minor
    assert filled.count(minor=False) == len(dataset.ids) - n_minor


def test_ids_for_uris(filled: VectorStore, dataset: Dataset) -> None:
    uris = [dataset.payloads[i]["uri"] for i in (42, 7, 300)] + ["photos/missing.jpg"]
    assert filled.ids_for_uris(uris) == [dataset.ids[i] for i in (42, 7, 300)]
    assert filled.ids_for_uris([]) == []
    everything = filled.ids_for_uris([p["uri"] for p in dataset.payloads])
    assert everything == dataset.ids  # more than one scroll page's worth on some backends


# ----------------------------------------------------------------------------- writes


def test_upsert_is_idempotent(store: VectorStore, dataset: Dataset) -> None:
    first = dataset.records[:20]
    store.upsert(first)
    store.upsert(first)
    assert store.count() == 20
    # Same id, new payload: replaced, not added.
    changed = ImageRecord(
        first[0].image_id, first[0].vector, {**first[0].payload, "license": "changed"}
    )
    store.upsert([changed, changed])
    assert store.count() == 20
    assert store.get([first[0].image_id])[first[0].image_id]["license"] == "changed"
    store.upsert([])
    assert store.count() == 20


def test_upsert_validates_records(store: VectorStore, dataset: Dataset) -> None:
    rec = dataset.records[0]
    bad = [
        (ImageRecord("not-a-uuid", rec.vector, rec.payload), "not a UUID"),
        (ImageRecord(rec.image_id, rec.vector[:-1], rec.payload), r"shape \(32,\)"),
        (ImageRecord(rec.image_id, rec.vector * np.nan, rec.payload), "NaN"),
        (
            ImageRecord(rec.image_id, rec.vector, {k: v for k, v in rec.payload.items()
                                                   if k != "minor"}),
            "lacks required keys",
        ),
        (ImageRecord(rec.image_id, rec.vector, {**rec.payload, "minor": "no"}), "bool"),
    ]
    for record, message in bad:
        with pytest.raises(StoreError, match=message):
            # A bad record anywhere in the batch: nothing of the batch is written.
            store.upsert([dataset.records[1], record])
    assert store.count() == 0
    # numpy bools (as a classifier may produce) are accepted and stored as plain bools.
    store.upsert([ImageRecord(rec.image_id, rec.vector, {**rec.payload, "minor": np.bool_(True)})])
    assert store.get([rec.image_id])[rec.image_id]["minor"] is True
    assert store.count(minor=True) == 1


def test_delete_returns_counts(store: VectorStore, dataset: Dataset) -> None:
    store.upsert(dataset.records[:30])
    unknown = "00000000-0000-0000-0000-000000000001"
    assert store.delete([dataset.ids[0], dataset.ids[1], unknown]) == 2
    assert store.delete([dataset.ids[0], dataset.ids[1]]) == 0
    assert store.delete([dataset.ids[2], dataset.ids[2]]) == 1
    assert store.delete([]) == 0
    assert store.count() == 27
    assert store.get(dataset.ids[:4]) == {dataset.ids[3]: dataset.payloads[3]}
    hits = store.search(dataset.vectors[0], 30, exclude_minor=False)
    assert len(hits) == 27 and dataset.ids[0] not in ids_of(hits)


def test_ids_for_uris_with_shared_uri(store: VectorStore, dataset: Dataset) -> None:
    """A photo replaced under the same uri keeps both ids until the old one is deleted."""
    old, other = dataset.records[0], dataset.records[1]
    new = ImageRecord(dataset.ids[2], dataset.records[2].vector, {**old.payload})
    store.upsert([old, other, new])
    uri = old.payload["uri"]
    assert store.ids_for_uris([other.payload["uri"], uri]) == [
        other.image_id,
        *sorted([old.image_id, new.image_id]),
    ]


def test_count_after_minor_changes(store: VectorStore, dataset: Dataset) -> None:
    recs = dataset.records[:10]
    store.upsert(recs)
    n_minor = sum(r.payload["minor"] for r in recs)
    assert store.count(minor=True) == n_minor
    flipped = ImageRecord(recs[1].image_id, recs[1].vector, make_payload(1, minor=True))
    store.upsert([flipped])
    assert store.count(minor=True) == n_minor + 1
    assert store.count(minor=False) == 10 - n_minor - 1
    hits = store.search(recs[1].vector, 10, exclude_minor=True)
    assert recs[1].image_id not in ids_of(hits)


# ----------------------------------------------------------------------------- lifecycle


def test_persistence_close_and_reopen(kind: str, tmp_path: Path, dataset: Dataset) -> None:
    store = open_backend(kind, tmp_path)
    store.upsert(dataset.records[:120])
    assert store.delete(dataset.ids[:5]) == 5
    before = [store.search(q, K, exclude_minor=True) for q in QUERIES[:4]]
    count, minors = store.count(), store.count(minor=True)
    store.close()
    store.close()  # idempotent
    with pytest.raises(StoreError, match="closed"):
        store.count()

    reopened = open_backend(kind, tmp_path)
    try:
        assert reopened.count() == count == 115
        assert reopened.count(minor=True) == minors
        after = [reopened.search(q, K, exclude_minor=True) for q in QUERIES[:4]]
        for a, b in zip(before, after, strict=True):
            assert ids_of(a) == ids_of(b)
            assert [h.score for h in a] == pytest.approx([h.score for h in b], abs=1e-6)
        assert reopened.get(dataset.ids[:6]) == {dataset.ids[5]: dataset.payloads[5]}
    finally:
        reopened.close()


def test_dim_mismatch_is_a_clear_error(kind: str, tmp_path: Path, dataset: Dataset) -> None:
    store = open_backend(kind, tmp_path, dim=DIM)
    store.upsert(dataset.records[:3])
    store.close()
    with pytest.raises(StoreError, match=r"32-d vectors but dim=16"):
        open_backend(kind, tmp_path, dim=16)
    # The failed open leaves the store usable with the right dim.
    again = open_backend(kind, tmp_path, dim=DIM)
    try:
        assert again.count() == 3
    finally:
        again.close()


def test_second_open_of_same_folder_fails(kind: str, tmp_path: Path) -> None:
    store = open_backend(kind, tmp_path)
    try:
        with pytest.raises(StoreError, match="already|another"):
            open_backend(kind, tmp_path)
    finally:
        store.close()
    open_backend(kind, tmp_path).close()  # free again once closed
