"""The serving logic: the model thread and the batchers (``batching``) of each kind of request.

All model work runs in ONE thread (`run_in_executor` on a one-thread pool), so the event loop
stays responsive and torch/ONNX Runtime get the cores to themselves. Texts, photos and Score
requests each have their own `DynamicBatcher`; their batches take turns in the model thread.
Photos are decoded, checked and preprocessed in a small pool of decode threads (PIL releases the
GIL), so the model thread only runs the network.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

from withsense.config.model import ModelSettings
from withsense.config.worker import WorkerSettings
from withsense.v1 import inference_pb2 as pb
from withsense.worker import protocol
from withsense.worker.batching import DynamicBatcher, WorkerUnavailable
from withsense.worker.metrics import Metrics
from withsense.worker.protocol import ScoreInputs

if TYPE_CHECKING:
    from withsense.model.runtime import ModelRuntime

log = logging.getLogger(__name__)

SERVICE_NAME = "withsense.v1.InferenceService"


def load_runtime(settings: WorkerSettings, model_settings: ModelSettings | None = None) -> ModelRuntime:
    from withsense.model.runtime import ModelRuntime

    model_settings = model_settings or ModelSettings()
    if model_settings.torch_threads:
        torch.set_num_threads(model_settings.torch_threads)
    return ModelRuntime(model_settings.model_dir, image_backend=settings.image_backend)


def _vectors(array: np.ndarray) -> list[pb.Vector]:
    return [pb.Vector(values=row) for row in array.tolist()]


class WorkerServing:
    """What the InferenceService does, independent of the transport."""

    def __init__(self, settings: WorkerSettings, metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.runtime: ModelRuntime | None = None
        self.model_executor = ThreadPoolExecutor(1, thread_name_prefix="withsense-model")
        self.decode_executor = ThreadPoolExecutor(
            settings.decode_threads, thread_name_prefix="withsense-decode"
        )
        self._draft_size: int | None = None
        self._text: DynamicBatcher[list[str], np.ndarray] | None = None
        self._image: DynamicBatcher[torch.Tensor, np.ndarray] | None = None
        self._score: DynamicBatcher[ScoreInputs, np.ndarray] | None = None

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self.runtime is not None

    async def load(
        self, runtime: ModelRuntime | None = None, model_settings: ModelSettings | None = None
    ) -> ModelRuntime:
        """Loads the model in the model thread (unless given), warms it up, starts batching."""
        loop = asyncio.get_running_loop()
        if runtime is None:
            runtime = await loop.run_in_executor(
                self.model_executor, load_runtime, self.settings, model_settings
            )
        settings = self.settings
        wait_s = settings.max_wait_ms / 1000
        self._text = DynamicBatcher(
            "text", self._run_texts, executor=self.model_executor,
            max_batch_size=settings.max_batch_size, max_wait_s=wait_s, metrics=self.metrics,
        )
        self._image = DynamicBatcher(
            "image", self._run_images, executor=self.model_executor,
            max_batch_size=settings.max_batch_size, max_wait_s=wait_s, metrics=self.metrics,
        )
        self._score = DynamicBatcher(
            "score", self._run_scores, executor=self.model_executor,
            max_batch_size=settings.max_score_queries, max_cost=settings.max_score_candidates,
            max_wait_s=wait_s, metrics=self.metrics,
        )
        tower = runtime.image_tower
        self._draft_size = protocol.draft_size_for(
            tower.image_size, float(tower.data_config.get("crop_pct") or 0.875)
        )
        message_bytes = settings.max_message_mb * 1024 * 1024
        score_bytes = settings.max_score_candidates * (4 * runtime.dim + 8)  # packed floats + tags
        if score_bytes > message_bytes:
            log.warning(
                "a Score request with max_score_candidates=%d vectors of dim %d (~%d MiB) exceeds "
                "max_message_mb=%d: clients get RESOURCE_EXHAUSTED before the candidate limit",
                settings.max_score_candidates, runtime.dim, score_bytes // 2**20,
                settings.max_message_mb,
            )
        if settings.warmup:
            started = time.perf_counter()
            await loop.run_in_executor(self.model_executor, _warm_up, runtime)
            log.info("model warm-up took %.2f s", time.perf_counter() - started)
        self.runtime = runtime
        self.metrics.model_loaded.set(1)
        return runtime

    async def close(self) -> None:
        """Runs what is queued, then stops the batchers and the threads."""
        for batcher in (self._text, self._image, self._score):
            if batcher is not None:
                await batcher.close()
        self.metrics.model_loaded.set(0)
        self.decode_executor.shutdown(wait=True, cancel_futures=True)
        self.model_executor.shutdown(wait=True)

    def require_runtime(self) -> ModelRuntime:
        if self.runtime is None:
            raise WorkerUnavailable(
                "the model is still loading; retry when grpc.health.v1 reports SERVING"
            )
        return self.runtime

    # -- model-thread functions (one batch each) --------------------------------------------

    def _run_texts(self, payloads: list[list[str]]) -> list[np.ndarray]:
        runtime = self.require_runtime()
        flat = [text for texts in payloads for text in texts]
        vectors = runtime.embed_texts(flat)
        return _split_rows(vectors, [len(texts) for texts in payloads])

    def _run_images(self, payloads: list[torch.Tensor]) -> list[np.ndarray]:
        runtime = self.require_runtime()
        pixels = torch.cat(payloads) if len(payloads) > 1 else payloads[0]
        step = self.settings.max_batch_size
        vectors = np.concatenate(
            [runtime.embed_pixels(pixels[i:i + step]) for i in range(0, pixels.shape[0], step)]
        )
        return _split_rows(vectors, [int(p.shape[0]) for p in payloads])

    def _run_scores(self, payloads: list[ScoreInputs]) -> list[np.ndarray]:
        runtime = self.require_runtime()
        if len(payloads) == 1:
            merged = payloads[0]
        else:
            shifts = np.cumsum([0] + [p.num_candidates for p in payloads[:-1]])
            merged = ScoreInputs(
                np.concatenate([p.queries for p in payloads]),
                np.concatenate([p.candidates for p in payloads]),
                np.concatenate(
                    [[0]] + [p.offsets[1:] + shift for p, shift in zip(payloads, shifts, strict=True)]
                ).astype(np.int64),
            )
        probs = runtime.score(merged.queries, merged.candidates, merged.offsets)
        return _split_rows(probs, [p.num_candidates for p in payloads])

    # -- the RPCs ------------------------------------------------------------------------

    async def embed_text(self, request: pb.EmbedTextRequest) -> pb.EmbedTextResponse:
        runtime = self.require_runtime()
        texts = protocol.parse_embed_text(request, self.settings)
        assert self._text is not None
        result = await self._text.submit(texts, len(texts))
        return pb.EmbedTextResponse(
            vectors=_vectors(result.value), model_version=runtime.version,
            batch_size=result.batch_size,
        )

    async def embed_images(self, request: pb.EmbedImagesRequest) -> pb.EmbedImagesResponse:
        runtime = self.require_runtime()
        pixels = await self.decode_images(list(request.images))
        assert self._image is not None
        result = await self._image.submit(pixels, int(pixels.shape[0]))
        return pb.EmbedImagesResponse(
            vectors=_vectors(result.value), model_version=runtime.version,
            batch_size=result.batch_size,
        )

    async def decode_images(self, images: list[bytes]) -> torch.Tensor:
        """Checks, decodes and preprocesses photos in the decode threads, in parallel; on bad
        input raises the error of the first bad photo (lowest index)."""
        runtime = self.require_runtime()
        protocol.check_image_count(len(images), self.settings)
        loop = asyncio.get_running_loop()

        def one(index: int, data: bytes) -> torch.Tensor:
            image = protocol.decode_image(data, index, self.settings, draft_size=self._draft_size)
            return runtime.preprocess_image(image)

        results = await asyncio.gather(
            *(loop.run_in_executor(self.decode_executor, one, i, d) for i, d in enumerate(images)),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return torch.stack(results)  # type: ignore[arg-type]

    async def score(self, request: pb.ScoreRequest) -> pb.ScoreResponse:
        runtime = self.require_runtime()
        loop = asyncio.get_running_loop()
        inputs = await loop.run_in_executor(
            self.decode_executor, protocol.parse_score, request, self.settings, runtime.dim
        )
        assert self._score is not None
        result = await self._score.submit(inputs, inputs.num_queries, inputs.num_candidates)
        return pb.ScoreResponse(
            results=[
                pb.ScoreResult(probabilities=segment.tolist())
                for segment in protocol.split_probabilities(result.value, inputs.offsets)
            ],
            model_version=runtime.version, backend=runtime.backend, batch_size=result.batch_size,
        )

    def model_info(self) -> pb.GetModelInfoResponse:
        runtime = self.require_runtime()
        config = runtime.artifact.config
        image = config.get("image_tower", {})
        text = config.get("text_tower", {})
        settings = self.settings
        return pb.GetModelInfoResponse(
            model_version=runtime.version,
            dim=runtime.dim,
            image_tower=f"{image.get('timm_name')} ({image.get('package')} "
            f"{image.get('package_version')})",
            text_tower=f"{text.get('name')} ({text.get('package')} {text.get('package_version')})",
            scale=runtime.scale,
            bias=runtime.bias,
            zero_shot=runtime.artifact.zero_shot,
            artifact_dir=str(runtime.artifact.path or ""),
            score_backend=runtime.backend,
            model_card_json=json.dumps(runtime.artifact.card, sort_keys=True),
            max_texts=settings.max_texts,
            max_text_chars=settings.max_text_chars,
            max_images=settings.max_images,
            max_image_bytes=settings.max_image_bytes,
            max_image_pixels=settings.max_image_pixels,
            max_score_queries=settings.max_score_queries,
            max_score_candidates=settings.max_score_candidates,
            max_message_bytes=settings.max_message_mb * 1024 * 1024,
            image_size=runtime.image_tower.image_size,
            image_backend=runtime.image_tower.backend,
            load_seconds=float(getattr(runtime, "load_seconds", 0.0)),
            semantic_child_threshold=config.get("semantic_child_threshold"),
        )


def _split_rows(array: np.ndarray, counts: list[int]) -> list[np.ndarray]:
    bounds = np.cumsum(counts)[:-1]
    return list(np.split(array, bounds))


def _warm_up(runtime: ModelRuntime) -> None:
    runtime.embed_texts(["warm-up"])
    runtime.embed_pixels(runtime.preprocess_image(Image.new("RGB", (64, 64))).unsqueeze(0))


__all__ = ["SERVICE_NAME", "WorkerServing", "load_runtime"]
