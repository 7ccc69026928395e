"""The store's index settings (StoreSettings): bad values are refused by name, both backends
build their index from them, and a quantized store still searches exactly when asked to."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError
from store_testdata import COLLECTION, DIM, Dataset
from withsense.config import StoreSettings
from withsense.config.store import search_ef
from withsense.store import EdgeStore
from withsense.store.client import QdrantClientStore


@pytest.mark.parametrize(("variable", "value"), [
    ("WITHSENSE_STORE_HNSW_M", "2"),
    ("WITHSENSE_STORE_HNSW_EF", "-1"),
    ("WITHSENSE_STORE_HNSW_EF_CONSTRUCT", "many"),
    ("WITHSENSE_STORE_QUANTIZATION", "int4"),
    ("WITHSENSE_STORE_QUANTIZATION_OVERSAMPLING", "0.5"),
    ("WITHSENSE_STORE_QUANTIZATION_QUANTILE", "1.5"),
    ("WITHSENSE_STORE_EXACT_UP_TO", "-1"),
])
def test_bad_values_name_the_setting(monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError) as err:
        StoreSettings()
    assert variable.removeprefix("WITHSENSE_").lower() in str(err.value)


def test_environment_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WITHSENSE_STORE_HNSW_M", "24")
    monkeypatch.setenv("WITHSENSE_STORE_QUANTIZATION", "none")
    monkeypatch.setenv("WITHSENSE_STORE_VECTORS_ON_DISK", "false")
    settings = StoreSettings()
    assert settings.store_hnsw_m == 24 and not settings.quantized
    assert not settings.store_vectors_on_disk


def test_edge_store_records_its_index(tmp_path: Path, dataset: Dataset) -> None:
    settings = StoreSettings(store_hnsw_m=8, store_hnsw_ef_construct=64, store_hnsw_ef=77,
                             store_quantization="int8", store_vectors_on_disk=True)
    with EdgeStore(tmp_path / "s", DIM, settings=settings) as store:
        store.upsert(dataset.records[:20])
        assert store.hnsw_ef == 77 and store.quantized
    config = json.loads((tmp_path / "s" / "edge_config.json").read_text())
    assert config["hnsw_config"]["m"] == 8 and config["hnsw_config"]["ef_construct"] == 64
    assert config["quantization_config"]["scalar"]["type"] == "int8"
    assert config["vectors"]["image"]["on_disk"] is True
    # Reopened with other settings: the stored points stay and search as before.
    with EdgeStore(tmp_path / "s", DIM, settings=StoreSettings(store_quantization="none")) as store:
        assert store.count() == 20


def test_quantized_exact_search_uses_the_original_vectors(tmp_path: Path, dataset: Dataset) -> None:
    """int8 scores would differ from the cosines in the last digits; exact mode must not."""
    settings = StoreSettings(store_quantization="int8")
    with EdgeStore(tmp_path / "s", DIM, settings=settings) as store:
        store.upsert(dataset.records)
        store.optimize()
        assert store.searches_exactly
        for q in dataset.vectors[:5]:
            hits = store.search(q, 20, exclude_minor=False)
            assert [h.image_id for h in hits] == dataset.brute_force(q, 20)[:20]
            cosines = dataset.vectors @ q
            by_id = dict(zip(dataset.ids, cosines, strict=True))
            assert np.allclose([h.score for h in hits], [by_id[h.image_id] for h in hits], atol=1e-5)


def test_hnsw_search_of_a_quantized_store_finds_the_neighbours(tmp_path: Path, dataset: Dataset) -> None:
    """Above `exact_up_to` the query takes the quantized, rescored path (no HNSW segment at this
    size, so the answers are still exact)."""
    with EdgeStore(tmp_path / "s", DIM, settings=StoreSettings(), exact_up_to=10) as store:
        store.upsert(dataset.records)
        assert not store.searches_exactly
        adults = dataset.mask(exclude_minor=True)
        for q in dataset.vectors[:5]:
            hits = store.search(q, 10, exclude_minor=True)
            assert [h.image_id for h in hits] == dataset.brute_force(q, 10, adults)[:10]


def test_client_store_accepts_the_index_settings(tmp_path: Path, dataset: Dataset) -> None:
    settings = StoreSettings(store_hnsw_m=8, store_hnsw_ef=99, store_quantization="int8")
    store = QdrantClientStore(path=str(tmp_path / "local"), collection=COLLECTION, dim=DIM,
                              settings=settings)
    try:
        assert store.hnsw_ef == 99
        store.upsert(dataset.records[:30])
        hits = store.search(dataset.vectors[0], 5, exclude_minor=False)
        stored = np.arange(len(dataset.ids)) < 30
        assert [h.image_id for h in hits] == dataset.brute_force(dataset.vectors[0], 5, stored)
    finally:
        store.close()


def test_search_ef_grows_with_the_store() -> None:
    """0 (the default): 384 up to 100k photos (recall@10 0.995 there), doubling per tenfold
    growth (768 at 1M, recall@10 0.991); a fixed ef is used as it is."""
    assert StoreSettings().store_hnsw_ef == 0
    assert [search_ef(0, n) for n in (0, 1_000, 100_000)] == [384, 384, 384]
    assert search_ef(0, 1_000_000) == 768 and search_ef(0, 10_000_000) == 1536
    sizes = [10 ** k for k in range(3, 9)] + [300_000, 3_000_000]
    efs = [search_ef(0, n) for n in sorted(sizes)]
    assert efs == sorted(efs) and all(ef % 16 == 0 for ef in efs)
    assert search_ef(77, 1_000_000) == 77


def test_edge_store_searches_with_the_ef_of_its_size(tmp_path: Path, dataset: Dataset) -> None:
    with EdgeStore(tmp_path / "s", DIM, settings=StoreSettings(), exact_up_to=10) as store:
        store.upsert(dataset.records[:30])
        assert store._search_params(40).hnsw_ef == 384  # the size rule, above the 40 asked for
        assert store._search_params(500).hnsw_ef == 500
        store.hnsw_ef = 64
        assert store._search_params(40).hnsw_ef == 64


def test_client_store_counts_its_collection_again_by_age(tmp_path: Path, dataset: Dataset) -> None:
    """The size that sizes a server search's ef is counted at open and again once older than
    POINTS_MAX_AGE_S (other gateways write to a shared collection); a failed count keeps the
    last estimate instead of failing the search."""
    from withsense.store.client import POINTS_MAX_AGE_S

    store = QdrantClientStore(path=str(tmp_path / "local"), collection=COLLECTION, dim=DIM)
    try:
        store.upsert(dataset.records[:30])
        client = store._client
        assert store._collection_size(client) == 0  # counted at open, still fresh
        store._points_at -= POINTS_MAX_AGE_S + 1
        assert store._collection_size(client) == 30

        class Unreachable:
            def count(self, *args: object, **kwargs: object) -> None:
                raise ConnectionError("server gone")

        store._points_at -= POINTS_MAX_AGE_S + 1
        assert store._collection_size(Unreachable()) == 30
    finally:
        store.close()
