"""The vector store: one small synchronous interface (`VectorStore`), two backends.

* `EdgeStore`: Qdrant Edge in process, persisted under a folder (the embedded default).
* `QdrantClientStore`: a Qdrant server or cluster through qdrant-client (gRPC preferred), or
  qdrant-client's local mode in tests.

`open_store` picks one from the gateway settings. `QdrantClientStore` is imported lazily so
that the embedded default does not pay for importing qdrant-client (about a second).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from withsense.config.defaults import DEFAULT_COLLECTION

from .base import (
    PAYLOAD_INDEXES,
    POINT_ID_NAMESPACE,
    REQUIRED_PAYLOAD_KEYS,
    VECTOR_NAME,
    ImageRecord,
    StoreError,
    StoreHit,
    VectorStore,
    point_id_for,
)
from .edge import EdgeStore

if TYPE_CHECKING:
    from .client import QdrantClientStore



def open_store(
    *,
    qdrant_url: str,
    data_dir: Path,
    dim: int,
    collection: str = DEFAULT_COLLECTION,
    api_key: str = "",
) -> VectorStore:
    """Empty `qdrant_url`: an `EdgeStore` in `data_dir/"store"`; else a `QdrantClientStore`."""
    if not qdrant_url.strip():
        return EdgeStore(Path(data_dir) / "store", dim)
    from .client import QdrantClientStore

    return QdrantClientStore(
        qdrant_url.strip(), collection=collection, dim=dim, api_key=api_key or None
    )


def __getattr__(name: str) -> Any:
    if name == "QdrantClientStore":
        from .client import QdrantClientStore

        return QdrantClientStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_COLLECTION",
    "PAYLOAD_INDEXES",
    "POINT_ID_NAMESPACE",
    "REQUIRED_PAYLOAD_KEYS",
    "VECTOR_NAME",
    "EdgeStore",
    "ImageRecord",
    "QdrantClientStore",
    "StoreError",
    "StoreHit",
    "VectorStore",
    "open_store",
    "point_id_for",
]
