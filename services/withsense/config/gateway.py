"""The gateway: address, worker, store, compliance and access settings."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from withsense.config.defaults import DEFAULT_COLLECTION

DISCLAIMER = "This image is unavailable in your country in compliance with local laws."


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WITHSENSE_", extra="ignore")

    host: str = Field(default="127.0.0.1", description="Gateway listen address.")
    port: int = Field(default=50051, ge=0, le=65535, description="Gateway port; 0 picks one.")
    http_port: int = Field(
        default=8080, ge=-1, le=65535,
        description="Port of the web page and the HTTP/JSON API, on the same host; 0 picks one, "
        "-1 turns HTTP off.",
    )
    max_upload_mb: int = Field(
        default=256, ge=1, description="Largest HTTP upload (POST /v1/images) in MiB."
    )
    worker_address: str = Field(
        default="127.0.0.1:50052", description="host:port of the inference worker."
    )
    worker_token: str = Field(
        default="", description="Shared secret sent to the worker (prefer worker_token_file)."
    )
    worker_token_file: Path | None = Field(
        default=None, description="A mounted secret with the worker's shared secret (one line)."
    )
    worker_timeout_s: float = Field(default=10.0, gt=0, description="Deadline of worker calls.")
    store_timeout_s: float = Field(default=5.0, gt=0, description="Deadline of store calls.")
    max_in_flight: int = Field(
        default=16, ge=1, description="Admission control: searches served at once; more wait "
        "for a slot (the text tower and scoring are CPU bound, so more in flight only queue).",
    )
    max_queued: int = Field(
        default=64, ge=0, description="Admission control: searches that may wait for a slot; "
        "beyond that a search is shed at once with RESOURCE_EXHAUSTED (HTTP 429).",
    )
    queue_timeout_ms: float = Field(
        default=1000.0, gt=0, description="Admission control: how long a search may wait for a "
        "slot before it is shed, so that accepted searches keep a bounded latency.",
    )
    queue_standing_timeout_ms: float = Field(
        default=50.0, gt=0, description="Admission control: how long a search may wait for a "
        "slot once the queue has not emptied for 100 ms (sustained overload, not a burst); "
        "at most queue_timeout_ms applies.",
    )
    query_cache_size: int = Field(
        default=1024, ge=0, description="Query embeddings kept (LRU, keyed by the query texts "
        "and the model version); 0: off.",
    )
    score_in: Literal["auto", "gateway", "worker"] = Field(
        default="auto",
        description="Where candidates are scored: 'gateway' (the store returns their vectors; "
        "numpy, or the Triton kernel with a GPU here: no second worker call), 'worker' (its "
        "Score call), or 'auto' (the gateway, unless the worker scores on a GPU and the gateway "
        "has none). Same probabilities either way (docs/benchmarks.md, Search path).",
    )
    data_dir: Path = Field(default=Path("data"), description="Embedded store lives here.")
    qdrant_url: str = Field(
        default="", description="Qdrant server URL; empty: the embedded Qdrant Edge store."
    )
    qdrant_api_key: str = Field(default="", description="API key of the Qdrant server.")
    qdrant_collection: str = Field(default=DEFAULT_COLLECTION, description="Collection name.")
    restricted_regions: Annotated[list[str], NoDecode] = Field(
        default=["*"],
        description="ISO 3166 codes where flagged photos are withheld; '*' means everywhere.",
    )
    withheld_mode: str = Field(
        default="disclaimer",
        pattern="^(disclaimer|drop)$",
        description="In a restricted region a flagged hit is replaced by the disclaimer or dropped.",
    )
    api_keys: Annotated[list[str], NoDecode] = Field(
        default=[], description="API keys that may search (Bearer tokens, comma-separated). "
        "With no keys at all (neither these nor index keys) none is required; set but holding "
        "no key (' , ,') refuses to start."
    )
    api_keys_file: Path | None = Field(
        default=None, description="A mounted secret with one search key per line (# comments); "
        "a file without a key refuses to start."
    )
    index_api_keys: Annotated[list[str], NoDecode] = Field(
        default=[], description="API keys that may also index and delete (comma-separated)."
    )
    index_api_keys_file: Path | None = Field(
        default=None, description="A mounted secret with one index key per line."
    )
    tls_cert: Path | None = Field(default=None, description="PEM certificate: serve TLS.")
    tls_key: Path | None = Field(default=None, description="PEM private key for tls_cert.")
    oversample: int = Field(
        default=4, ge=1, le=50, description="Candidates fetched per hit asked, for rescoring."
    )
    max_top_k: int = Field(default=100, ge=1, le=1000)
    max_query_chars: int = Field(default=1000, ge=1)
    semantic_threshold: float | None = Field(
        default=None, ge=-1.0, le=1.0,
        description="Cosine to the nearest child-concept prototype from which a query is "
        "blocked as a paraphrase of a child term. Empty: the threshold the trainer chose on the "
        "training captions in the model's own text space (GetModelInfo), else 0.45 (chosen the "
        "same way for the zero-shot model: 1% of adult captions blocked).",
    )
    grace_seconds: float = Field(
        default=10.0, ge=0, description="On shutdown, how long requests in flight may finish "
        "(health reports NOT_SERVING from the start of it)."
    )
    multilingual_semantic_threshold: float | None = Field(
        default=None, ge=-1.0, le=1.0,
        description="The same for queries on the multilingual text path (Russian, other "
        "non-Latin scripts), whose vectors come from another tower. Empty: the threshold the "
        "trainer chose in that path's space (GetModelInfo), else the English one.",
    )
    minor_recall_target: float | None = Field(
        default=None, gt=0.0, le=1.0,
        description="Visual minor detector: the share of child photos to catch, as measured "
        "on the training photos by cross-validation; picks the threshold from the trade-off "
        "curve in the model artifact (docs/compliance.md lists each point's cost in adult "
        "photos withheld). Empty: the artifact's operating point (chosen for 97%).",
    )
    minor_threshold: float | None = Field(
        default=None, ge=0.0, le=1.0,
        description="Visual minor detector: an explicit threshold on p(child); wins over "
        "minor_recall_target. Changing either re-flags photos on the next `withsense index`.",
    )
    metrics_port: int = Field(
        default=0, ge=0, le=65535, description="Prometheus metrics HTTP port; 0: off."
    )
    index_pipeline_depth: int = Field(
        default=2, ge=1, le=8,
        description="Chunks of an IndexImages stream (16 photos each) prepared at once: while "
        "one is written to the store the next are embedded and thumbnailed. 1: one chunk at a "
        "time. More keeps more photos in memory and more requests queued in the worker (each "
        "must finish within worker_timeout_s); see docs/benchmarks.md, Indexing.",
    )

    @field_validator("restricted_regions", mode="before")
    @classmethod
    def _csv(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("api_keys", "index_api_keys", mode="before")
    @classmethod
    def _key_csv(cls, value: object) -> object:
        # Empty parts are kept so that a list set to " , ," is seen as set-but-empty (refused
        # at start) rather than as unset (no auth).
        if isinstance(value, str):
            return [part.strip() for part in value.split(",")] if value.strip() else []
        return value

    @field_validator("restricted_regions")
    @classmethod
    def _upper(cls, value: list[str]) -> list[str]:
        return [v.upper() for v in value]
