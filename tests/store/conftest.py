"""Fixtures of the vector store tests (helpers and data in store_testdata.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from store_testdata import BACKENDS, Dataset, make_dataset, open_backend
from withsense.store import VectorStore


def pytest_configure(config: pytest.Config) -> None:
    # qdrant-client checks the server version in a background thread; against the unreachable
    # URLs of the error-path tests it warns later, during whichever test then runs.
    config.addinivalue_line(
        "filterwarnings", "ignore:Failed to obtain server version:UserWarning"
    )


@pytest.fixture(scope="session")
def dataset() -> Dataset:
    return make_dataset()


@pytest.fixture(scope="session")
def filled_stores(
    tmp_path_factory: pytest.TempPathFactory, dataset: Dataset
) -> Iterator[Callable[[str], VectorStore]]:
    """Lazily built, read-only stores holding the whole data set, one per backend."""
    built: dict[str, VectorStore] = {}

    def get(kind: str) -> VectorStore:
        if kind not in built:
            store = open_backend(kind, tmp_path_factory.mktemp(f"filled-{kind}"))
            store.upsert(dataset.records)
            built[kind] = store
        return built[kind]

    yield get
    for store in built.values():
        store.close()


@pytest.fixture(params=BACKENDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def filled(kind: str, filled_stores: Callable[[str], VectorStore]) -> VectorStore:
    """The full data set in the backend of this test's parameter (do not modify it)."""
    return filled_stores(kind)


@pytest.fixture
def store(kind: str, tmp_path: Path) -> Iterator[VectorStore]:
    """A fresh, empty store of this test's backend."""
    s = open_backend(kind, tmp_path)
    yield s
    s.close()
