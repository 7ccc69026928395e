"""The vector store's index: HNSW graph, int8 quantization, where the vectors live.

Both backends read these (Qdrant Edge in process, a Qdrant server through qdrant-client; local
mode of qdrant-client searches exactly and ignores them). The graph and storage settings apply
when a store (collection) is created, and to segments the optimizer builds later; the search
settings (`store_hnsw_ef`, `store_exact_up_to`, rescoring, oversampling) apply to every query.
The defaults were chosen with benchmarks/bench_store_tuning.py on realistic vectors at 100k and
1M photos (docs/benchmarks.md, "The store at scale").
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class StoreSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WITHSENSE_", extra="ignore")

    store_hnsw_m: int = Field(
        default=16, ge=4, le=128,
        description="HNSW: links per node. More raise recall and memory (about m x 8 bytes "
        "per photo) and slow the build.",
    )
    store_hnsw_ef_construct: int = Field(
        default=128, ge=8, le=4096,
        description="HNSW: candidates kept while building the graph; more: a better graph, "
        "a slower build.",
    )
    store_hnsw_ef: int = Field(
        default=0, ge=0, le=65536,
        description="HNSW: candidates kept while searching (at least the number of hits asked "
        "for); more: higher recall, slower queries. 0: grows with the store's size "
        "(search_ef below).",
    )
    store_exact_up_to: int = Field(
        default=25_000, ge=0,
        description="Search exactly (full recall) while the store holds at most this many "
        "photos: below it a scan costs a few ms and beats the graph.",
    )
    store_quantization: Literal["none", "int8"] = Field(
        default="int8",
        description="int8: scalar quantization of the vectors (a quarter of the memory, "
        "faster scans); candidates are rescored with the original vectors.",
    )
    store_quantization_quantile: float = Field(
        default=0.99, ge=0.5, le=1.0,
        description="int8: the share of values whose range the 256 levels cover (outliers "
        "are clipped).",
    )
    store_quantization_always_ram: bool = Field(
        default=True,
        description="int8: keep the quantized vectors in RAM (the graph search reads only "
        "them); the originals may then live on disk.",
    )
    store_quantization_rescore: bool = Field(
        default=True,
        description="int8: rescore the candidates with the original vectors, so that scores "
        "are exact cosines.",
    )
    store_quantization_oversampling: float = Field(
        default=2.0, ge=1.0, le=16.0,
        description="int8: candidates fetched per hit asked for, before rescoring.",
    )
    store_vectors_on_disk: bool = Field(
        default=True,
        description="Keep the original float32 vectors in memory-mapped files rather than "
        "in RAM (with int8 in RAM only rescoring reads them; the page cache keeps the hot "
        "ones). False: all in RAM (4 x dim bytes per photo more).",
    )

    store_prefault_mb: int = Field(
        default=512, ge=0,
        description="At start-up, fault in up to this many MB of the store's memory-mapped "
        "files (graphs and indexes first, then the image int8 vectors, payloads, image originals "
        "and description int8 vectors; the last file that does not fit, in part), "
        "so that the first searches do not each wait on hundreds of page faults "
        "(withsense.store.prefault). The pages are file-backed: they count in RSS, and the kernel "
        "can still drop them. 0: off.",
    )

    store_verify_full: bool = Field(
        default=False,
        description="Verify every point against the catalogue at each start-up, even when "
        "the store was sealed at a clean close (see withsense.store.seal). At 1M photos that "
        "takes minutes and maps all the vectors into memory.",
    )
    store_verify_sample: int = Field(
        default=1000, ge=0,
        description="Points fingerprinted against the catalogue, drawn at random, when a "
        "sealed store is opened.",
    )

    @property
    def quantized(self) -> bool:
        return self.store_quantization == "int8"


# The HNSW ef a store of a given size searches with, when `store_hnsw_ef` is 0. Measured on
# photo-like vectors (docs/benchmarks.md, "The store at scale"): ef 384 gives recall@10 0.995 at
# 100k photos, but 0.974 at 1M, where ef 768 gives 0.991. So ef doubles for each tenfold growth
# (exponent log10(2) ~ 0.3) from 384 at 100k, and never falls below 384: a smaller store costs
# little more at 384 and its recall is then higher still.
AUTO_EF_BASE = 384
AUTO_EF_BASE_POINTS = 100_000
AUTO_EF_GROWTH = math.log10(2)  # x2 per x10 photos


def search_ef(fixed: int, points: int) -> int:
    """The HNSW ef of a search: `fixed` when set (> 0), else the size rule above, in steps of 16."""
    if fixed > 0:
        return fixed
    scale = max(points, AUTO_EF_BASE_POINTS) / AUTO_EF_BASE_POINTS
    return 16 * round(AUTO_EF_BASE * scale ** AUTO_EF_GROWTH / 16)
