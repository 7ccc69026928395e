"""The inference worker: address, batching and input limits."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class WorkerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WITHSENSE_WORKER_", extra="ignore")

    host: str = Field(default="127.0.0.1", description="Listen address (loopback by default).")
    port: int = Field(default=50052, ge=0, le=65535, description="Listen port; 0 picks a free one.")
    max_batch_size: int = Field(
        default=32, ge=1, le=1024, description="Most items the dynamic batcher runs together."
    )
    max_wait_ms: float = Field(
        default=5.0, ge=0, le=1000,
        description="How long the batcher waits for more requests before running a batch.",
    )
    max_texts: int = Field(default=256, ge=1, description="Most texts in one EmbedText call.")
    max_text_chars: int = Field(default=2000, ge=1, description="Longest accepted text.")
    max_images: int = Field(default=64, ge=1, description="Most photos in one EmbedImages call.")
    max_image_bytes: int = Field(
        default=20 * 1024 * 1024, ge=1, description="Largest accepted encoded photo."
    )
    max_image_pixels: int = Field(
        default=50_000_000, ge=1,
        description="Largest accepted width x height (decompression-bomb guard).",
    )
    max_score_queries: int = Field(default=256, ge=1, description="Most queries in one Score call.")
    max_score_candidates: int = Field(
        default=100_000, ge=1, description="Most candidates over all queries of one Score call."
    )
    max_message_mb: int = Field(
        default=64, ge=1, le=1024, description="gRPC send/receive message limit, MiB."
    )
    grace_seconds: float = Field(
        default=10.0, ge=0, description="On shutdown, how long requests in flight may finish."
    )
