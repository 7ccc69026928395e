"""Creates the With Sense collection on the Qdrant cluster, with its layout set on purpose.

Run by the `qdrant-collection` Job (and, with `wait`, by the gateway's init container, so that the
gateway never creates the collection itself with single-node defaults). Idempotent: an existing
collection is checked, not recreated. Settings come from the environment (ConfigMap
`qdrant-collection`):

- SHARD_NUMBER=6: two shards per peer on 3 peers, so the cluster can grow to 6 peers by moving
  shards, without re-sharding.
- REPLICATION_FACTOR=2: every shard on two peers; one peer may be lost (or drained by its
  PodDisruptionBudget) with every shard still readable and writable.
- WRITE_CONSISTENCY_FACTOR=1: a write returns once one replica has applied it; Qdrant still sends
  it to all active replicas, and a replica that misses it is marked dead and re-synced by a
  shard transfer. With 2 the write would wait for both replicas, and with one peer down every
  write to its shards would fail: indexing is idempotent (point ids come from the photo content)
  and is re-run after a failure, so write availability is worth more here than an acknowledgment
  from both copies. Reads use the default consistency (one replica answers).
- HNSW m=16, ef_construct=128; QUANTIZATION=int8 (scalar, in RAM) with the float32 originals in
  RAM too at this scale (VECTORS_ON_DISK=false); at 100M photos set VECTORS_ON_DISK=true (see
  docs/deploy.md). The gateway rescores every candidate exactly in the worker, so quantization
  only affects which candidates are fetched (it oversamples).
- Payload indexes on `minor` (bool, the compliance filter) and `uri` (keyword, delete by uri).

Usage: python create_collection.py [create|wait]
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from qdrant_client import QdrantClient, models
from withsense.config.defaults import DEFAULT_COLLECTION
from withsense.store.base import PAYLOAD_INDEXES, VECTOR_NAME

# The collection name, vector name and payload indexes are the service's own (this runs in the
# gateway image, which has the withsense package).
SCHEMA_TYPES = {field: models.PayloadSchemaType(kind) for field, kind in PAYLOAD_INDEXES.items()}


def _bool(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


def collection_spec(env: Mapping[str, str]) -> dict[str, Any]:
    """The keyword arguments of `QdrantClient.create_collection` for this environment."""
    quantization: models.ScalarQuantization | models.BinaryQuantization | None
    kind = env.get("QUANTIZATION", "int8").strip().lower()
    if kind == "int8":
        quantization = models.ScalarQuantization(
            scalar=models.ScalarQuantizationConfig(
                type=models.ScalarType.INT8, quantile=0.99, always_ram=True
            )
        )
    elif kind == "binary":
        quantization = models.BinaryQuantization(
            binary=models.BinaryQuantizationConfig(always_ram=True)
        )
    elif kind in {"", "none"}:
        quantization = None
    else:
        raise ValueError(f"QUANTIZATION must be int8, binary or none, not {kind!r}")
    replication = int(env.get("REPLICATION_FACTOR", "2"))
    write_consistency = int(env.get("WRITE_CONSISTENCY_FACTOR", "1"))
    if not 1 <= write_consistency <= replication:
        raise ValueError(
            f"WRITE_CONSISTENCY_FACTOR={write_consistency} must be between 1 and "
            f"REPLICATION_FACTOR={replication}"
        )
    return {
        "collection_name": env.get("COLLECTION", DEFAULT_COLLECTION),
        "vectors_config": {
            env.get("VECTOR_NAME", VECTOR_NAME): models.VectorParams(
                size=int(env.get("VECTOR_SIZE", "384")),
                distance=models.Distance.COSINE,
                on_disk=_bool(env.get("VECTORS_ON_DISK", "false")),
            )
        },
        "shard_number": int(env.get("SHARD_NUMBER", "6")),
        "replication_factor": replication,
        "write_consistency_factor": write_consistency,
        "on_disk_payload": True,
        "hnsw_config": models.HnswConfigDiff(
            m=int(env.get("HNSW_M", "16")), ef_construct=int(env.get("HNSW_EF_CONSTRUCT", "128"))
        ),
        "quantization_config": quantization,
    }


def connect(env: Mapping[str, str]) -> QdrantClient:
    url = env.get("QDRANT_URL", "http://qdrant:6333")
    if url == ":memory:":
        return QdrantClient(":memory:")
    key_file = env.get("QDRANT_API_KEY_FILE", "")
    api_key = Path(key_file).read_text().strip() if key_file else None
    return QdrantClient(url=url, api_key=api_key or None, timeout=30)


def _retry(what: str, fn: Any, deadline: float, pause_s: float = 3.0) -> Any:
    while True:
        try:
            return fn()
        except Exception as exc:  # the cluster may still be forming: retry until the deadline
            if time.monotonic() > deadline:
                raise SystemExit(f"{what}: gave up: {exc}") from exc
            print(f"{what}: {exc}; retrying", flush=True)
            time.sleep(pause_s)


def wait_for_peers(client: QdrantClient, min_peers: int, deadline: float) -> None:
    """Returns once the cluster has min_peers peers (so shards are spread over all of them)."""
    if min_peers <= 1:
        return
    while True:
        status = _retry("cluster status", client.cluster_status, deadline)
        peers = len(getattr(status, "peers", {}) or {})
        if peers >= min_peers:
            print(f"cluster has {peers} peers", flush=True)
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"cluster has {peers} peers, {min_peers} needed")
        print(f"cluster has {peers} of {min_peers} peers; waiting", flush=True)
        time.sleep(3)


def create(client: QdrantClient, env: Mapping[str, str], deadline: float) -> str:
    spec = collection_spec(env)
    name = spec["collection_name"]
    if _retry("collection exists", lambda: client.collection_exists(name), deadline):
        info = client.get_collection(name)
        vectors = info.config.params.vectors
        vector_name = next(iter(spec["vectors_config"]))
        want = spec["vectors_config"][vector_name]
        have = vectors.get(vector_name) if isinstance(vectors, dict) else None
        if have is None or have.size != want.size or have.distance != want.distance:
            raise SystemExit(f"collection {name!r} exists with other vectors: {vectors}")
        params = info.config.params
        print(
            f"collection {name!r} exists: shards={params.shard_number} "
            f"replication_factor={params.replication_factor} "
            f"write_consistency_factor={params.write_consistency_factor}",
            flush=True,
        )
        want_wcf = spec["write_consistency_factor"]
        if params.write_consistency_factor not in (None, want_wcf):
            client.update_collection(
                name,
                collection_params=models.CollectionParamsDiff(write_consistency_factor=want_wcf),
            )
            print(f"set write_consistency_factor={want_wcf}", flush=True)
        if params.replication_factor not in (None, spec["replication_factor"]):
            # Raising it later needs shard replication (POST /collections/{name}/cluster), which
            # is an operator's decision: report it, do not guess.
            print(
                f"WARNING: replication_factor is {params.replication_factor}, "
                f"{spec['replication_factor']} wanted; see docs/deploy.md",
                flush=True,
            )
        result = "exists"
    else:
        client.create_collection(**spec)
        print(f"created collection {name!r}", flush=True)
        result = "created"
    for field, schema in SCHEMA_TYPES.items():
        client.create_payload_index(name, field, field_schema=schema, wait=True)
    return result


def wait_for_collection(client: QdrantClient, env: Mapping[str, str], deadline: float) -> None:
    name = env.get("COLLECTION", DEFAULT_COLLECTION)
    while not _retry("collection exists", lambda: client.collection_exists(name), deadline):
        if time.monotonic() > deadline:
            raise SystemExit(f"collection {name!r} did not appear")
        print(f"waiting for collection {name!r} (the qdrant-collection Job creates it)", flush=True)
        time.sleep(3)
    print(f"collection {name!r} is there", flush=True)


def main(argv: list[str], env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    mode = argv[0] if argv else "create"
    deadline = time.monotonic() + float(env.get("TIMEOUT_S", "600"))
    client = connect(env)
    try:
        if mode == "create":
            wait_for_peers(client, int(env.get("MIN_PEERS", "3")), deadline)
            create(client, env, deadline)
        elif mode == "wait":
            wait_for_collection(client, env, deadline)
        else:
            print(f"usage: {sys.argv[0]} [create|wait]", file=sys.stderr)
            return 2
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
