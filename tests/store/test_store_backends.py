"""Backend-specific behaviour: point ids, folder errors, threads, open_store, Edge quirks."""

from __future__ import annotations

import hashlib
import threading
import uuid
from pathlib import Path

import pytest
from store_testdata import COLLECTION, DIM, Dataset, open_backend
from withsense.store import (
    POINT_ID_NAMESPACE,
    CataloguedStore,
    EdgeStore,
    StoreError,
    VectorStore,
    open_store,
    point_id_for,
)
from withsense.store.client import QdrantClientStore

# ----------------------------------------------------------------------------- point ids


def test_point_id_for_is_deterministic() -> None:
    a = point_id_for(b"\xff\xd8 some jpeg bytes")
    assert a == point_id_for(b"\xff\xd8 some jpeg bytes")
    assert a != point_id_for(b"\xff\xd8 some jpeg bytez")
    parsed = uuid.UUID(a)
    assert parsed.version == 5 and str(parsed) == a
    digest = hashlib.sha256(b"\xff\xd8 some jpeg bytes").hexdigest()
    assert a == str(uuid.uuid5(POINT_ID_NAMESPACE, digest))
    # Golden value: changing the namespace would re-key every stored image.
    assert point_id_for(b"") == "0fb975cb-e489-516f-bb4c-1c53cfeaecad"


# ----------------------------------------------------------------------------- Edge folder


def test_edge_unwritable_folder_is_named(tmp_path: Path) -> None:
    # Tests run as root, where chmod does not stop writes: a folder under a regular file
    # cannot be created by anyone.
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    target = blocker / "store"
    with pytest.raises(StoreError) as err:
        EdgeStore(target, DIM)
    assert str(target) in str(err.value)
    with pytest.raises(StoreError) as err:
        EdgeStore(blocker, DIM)  # the path itself is a file
    assert str(blocker) in str(err.value)


def test_edge_creates_missing_parents_and_loads(tmp_path: Path, dataset: Dataset) -> None:
    path = tmp_path / "a" / "b" / "store"
    with EdgeStore(path, DIM) as store:
        store.upsert(dataset.records[:3])
    assert (path / "edge_config.json").exists()
    with EdgeStore(path, DIM) as store:
        assert store.count() == 3


def test_edge_minor_filter_uses_a_real_bool() -> None:
    """qdrant-edge-py turns MatchValue(True) into the integer 1, which never matches a bool.

    The store builds its condition with numpy.True_; if a future binding changes either
    behaviour, this test says so.
    """
    from qdrant_edge import MatchValue
    from withsense.store import edge

    assert edge._BOOL_TRUE.value is True
    plain = MatchValue(value=True).value
    assert plain is True or plain == 1  # documents the quirk (int 1 on 0.9) without relying on it


def test_edge_payload_indexes_exist(tmp_path: Path) -> None:
    with EdgeStore(tmp_path / "s", DIM) as store:
        assert store._shard is not None
        schema = store._shard.info().payload_schema
        assert {"minor", "uri"} <= set(schema)


def test_edge_switches_from_exact_to_hnsw_search(tmp_path: Path, dataset: Dataset) -> None:
    """Above `exact_up_to` points the store asks for HNSW (ef >= limit); the answers of this
    small shard (no HNSW segment: below Qdrant's indexing threshold) stay exact, filtered."""
    with EdgeStore(tmp_path / "s", DIM, exact_up_to=50, hnsw_ef=64) as store:
        store.upsert(dataset.records[:50])
        assert store.searches_exactly
        store.upsert(dataset.records[50:120])
        assert not store.searches_exactly
        keep = dataset.mask(exclude_minor=True)
        keep[120:] = False
        for q in dataset.vectors[:5]:
            hits = store.search(q, 80, exclude_minor=True)
            assert [h.image_id for h in hits] == dataset.brute_force(q, 80, keep)[:80]
        assert store.delete(dataset.ids[:100]) == 100
        assert store.searches_exactly


# ----------------------------------------------------------------------------- threads


@pytest.mark.parametrize("kind", ["edge", "client-local"])
def test_concurrent_calls_from_threads(kind: str, tmp_path: Path, dataset: Dataset) -> None:
    store = open_backend(kind, tmp_path)
    store.upsert(dataset.records[:100])
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for j in range(10):
                i = 100 + t * 10 + j
                store.upsert([dataset.records[i]])
                hits = store.search(dataset.vectors[i], 5, exclude_minor=True)
                assert all(not h.payload["minor"] for h in hits)
                store.get([dataset.ids[i]])
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    try:
        assert not errors, errors
        assert store.count() == 140
    finally:
        store.close()


# ----------------------------------------------------------------------------- client


def test_client_needs_exactly_one_location(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="exactly one"):
        QdrantClientStore(collection=COLLECTION, dim=DIM)
    with pytest.raises(StoreError, match="exactly one"):
        QdrantClientStore(location=":memory:", path=str(tmp_path), collection=COLLECTION, dim=DIM)


def test_client_in_memory_mode(dataset: Dataset) -> None:
    with QdrantClientStore(location=":memory:", collection=COLLECTION, dim=DIM) as store:
        store.upsert(dataset.records[:20])
        hits = store.search(dataset.vectors[3], 3, exclude_minor=False)
        assert hits[0].image_id == dataset.ids[3]
        store.optimize()  # a no-op here
        assert store.count() == 20


def test_client_unreachable_server_is_a_store_error() -> None:
    # Port 9 (discard) on localhost: nothing listens; the REST client fails fast.
    with pytest.raises(StoreError, match="127.0.0.1:9"):
        QdrantClientStore(
            "http://127.0.0.1:9", collection=COLLECTION, dim=DIM, prefer_grpc=False, timeout=2
        )


# ----------------------------------------------------------------------------- open_store


def test_open_store_defaults_to_edge(tmp_path: Path, dataset: Dataset) -> None:
    store = open_store(qdrant_url="", data_dir=tmp_path, dim=DIM)
    try:
        assert isinstance(store, CataloguedStore) and isinstance(store, VectorStore)
        assert isinstance(store.inner, EdgeStore)
        assert store.backend == "qdrant-edge"
        assert store.path == tmp_path / "store"
        store.upsert(dataset.records[:2])
        assert store.count() == 2
    finally:
        store.close()


def test_open_store_with_url_uses_qdrant_client() -> None:
    with pytest.raises(StoreError, match="127.0.0.1:9"):
        open_store(qdrant_url="http://127.0.0.1:9", data_dir=Path("unused"), dim=DIM)


def test_store_package_imports_client_lazily() -> None:
    import withsense.store as pkg

    assert pkg.QdrantClientStore is QdrantClientStore
    with pytest.raises(AttributeError):
        _ = pkg.NoSuchThing  # type: ignore[attr-defined]


# ----------------------------------------------------------------------------- several uris


def test_a_photo_with_several_uris_is_found_by_each(store: VectorStore, dataset: Dataset) -> None:
    first, second = dataset.records[0], dataset.records[1]
    store.upsert([first, second])
    payload = {**first.payload, "uri": "a.jpg", "uris": ["a.jpg", "b.jpg"]}
    store.set_payloads({first.image_id: payload})
    assert store.ids_for_uris(["b.jpg"]) == [first.image_id]
    assert store.ids_for_uris([second.payload["uri"], "a.jpg"]) == [second.image_id, first.image_id]
    assert store.get([first.image_id])[first.image_id]["uris"] == ["a.jpg", "b.jpg"]
    hit = store.search(first.vector, 1, exclude_minor=False)[0]
    assert hit.image_id == first.image_id and hit.vector is not None  # the vector stayed
    with pytest.raises(StoreError, match="uris"):
        store.set_payloads({first.image_id: {**payload, "uris": []}})
