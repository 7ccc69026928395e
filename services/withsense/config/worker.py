"""The inference worker: address, batching and input limits."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from withsense.config.defaults import MAX_MESSAGE_MB
from withsense.model.catalog import DEFAULT_IMAGE_BACKEND


class WorkerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WITHSENSE_WORKER_", extra="ignore")

    host: str = Field(default="127.0.0.1", description="Listen address (loopback by default).")
    token: str = Field(
        default="", description="Shared secret the gateway must send (prefer token_file)."
    )
    token_file: Path | None = Field(
        default=None, description="A mounted secret holding the shared secret (one line)."
    )
    port: int = Field(default=50052, ge=0, le=65535, description="Listen port; 0 picks a free one.")
    max_batch_size: int = Field(
        default=32, ge=1, le=1024, description="Most items the dynamic batcher runs together."
    )
    max_wait_ms: float = Field(
        default=0.0, ge=0, le=1000,
        description="How long the batcher waits for more requests before running a batch. 0: "
        "no wait; requests that arrive while the model is busy still run together as the next "
        "batch. A wait is paid twice per search (two worker calls) at low load: see "
        "docs/benchmarks.md, Gateway.",
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
        default=20_000, ge=1,
        description="Most candidates over all queries of one Score call (20k x 384 floats "
        "fit the gRPC message limit, config.defaults.MAX_MESSAGE_MB).",
    )
    max_message_mb: int = Field(
        default=MAX_MESSAGE_MB, ge=1, le=1024, description="gRPC send/receive message limit, MiB."
    )
    grace_seconds: float = Field(
        default=10.0, ge=0, description="On shutdown, how long requests in flight may finish."
    )
    max_image_aspect_ratio: float = Field(
        default=20.0, ge=1,
        description="Largest accepted long side / short side of a photo (a 1 x 10^7 strip would "
        "blow up when resized to the tower's input).",
    )
    jpeg_draft: bool = Field(
        default=True,
        description="Decode large JPEGs at a reduced DCT scale (still at least twice the tower's "
        "input size): large photos decode several times faster with the same vector (see "
        "docs/benchmarks.md, Worker).",
    )
    decode_threads: int = Field(
        default=2, ge=1, le=64,
        description="Threads that decode and preprocess photos (the model runs in one other thread).",
    )
    image_backend: Literal["auto", "onnx", "torch"] = Field(
        default=DEFAULT_IMAGE_BACKEND,
        description="Image tower runtime: ONNX Runtime on the CPU ('onnx'), eager torch ('torch'), "
        "or 'auto' (ONNX Runtime on the CPU when installed, torch on CUDA).",
    )
    image_precision: Literal["auto", "fp32", "int8"] = Field(
        default="auto",
        description="Image tower precision on ONNX Runtime: 'int8' (static quantization with the "
        "artifact's calibration table; faster), 'fp32', or 'auto': the variant the artifact's "
        "heads were trained on (config.json image_precision). The other one runs but is logged "
        "as a model mismatch; int8 is refused when the artifact has no table or records "
        "another recipe than this build's (docs/model.md, int8 image tower).",
    )
    image_threads: int = Field(
        default=0, ge=0, le=64,
        description="Intra-op threads of the ONNX Runtime image tower; 0: torch's thread count "
        "(WITHSENSE_TORCH_THREADS, else all cores). One costs less CPU per pass than two on 2 "
        "cores but indexes slower (24.9 vs 29.4 photos/s; docs/benchmarks.md, Indexing).",
    )
    text_backend: Literal["auto", "onnx", "torch"] = Field(
        default="auto",
        description="English text path (MiniLM + the text head) runtime: ONNX Runtime ('onnx', "
        "1.6-1.8x faster than eager torch for a query on 2 cores, equal to 1e-6; "
        "docs/benchmarks.md), eager torch ('torch', the reference), or 'auto' (ONNX Runtime on "
        "the CPU when it can be had, torch on CUDA).",
    )
    text_precision: Literal["fp32", "int8", "int8-blocks"] = Field(
        default="fp32",
        description="ONNX text path precision. int8 (dynamic quantization) is the fastest but "
        "moves embeddings to cosine 0.955-0.99 of fp32, below the 0.995 the project asks for; "
        "int8-blocks (8-bit weights and activations in blocks of 128) stays within 0.997 and "
        "makes a query 16-19% faster, a batch 2-8% slower, cross-validated R@1 0.002 lower "
        "(benchmarks/bench_text_tower.py, docs/benchmarks.md).",
    )
    text_threads: int = Field(
        default=1, ge=1, le=64,
        description="Intra-op threads of the ONNX text path: one is fastest for single queries "
        "on 2 shared cores (docs/benchmarks.md).",
    )
    warmup: bool = Field(
        default=True, description="Run one tiny text and photo through the model before SERVING."
    )
    metrics_port: int = Field(
        default=0, ge=0, le=65535,
        description="Port of the Prometheus /metrics HTTP endpoint on the worker's host; 0 = off.",
    )
