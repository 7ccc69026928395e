"""The gateway: address, worker, store, compliance and access settings."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

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
    worker_address: str = Field(
        default="127.0.0.1:50052", description="host:port of the inference worker."
    )
    worker_timeout_s: float = Field(default=10.0, gt=0, description="Deadline of worker calls.")
    store_timeout_s: float = Field(default=5.0, gt=0, description="Deadline of store calls.")
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
        default=[], description="Accepted API keys (Bearer tokens); empty: none required."
    )
    api_keys_file: Path | None = Field(
        default=None, description="A mounted secret with one API key per line."
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
    metrics_port: int = Field(
        default=0, ge=0, le=65535, description="Prometheus metrics HTTP port; 0: off."
    )

    @field_validator("restricted_regions", "api_keys", mode="before")
    @classmethod
    def _csv(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("restricted_regions")
    @classmethod
    def _upper(cls, value: list[str]) -> list[str]:
        return [v.upper() for v in value]
