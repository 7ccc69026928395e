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

from withsense.compliance.semantic import tower_threshold
from withsense.config.model import ModelSettings
from withsense.config.worker import WorkerSettings
from withsense.model.language import PATH_TO_WIRE
from withsense.v1 import inference_pb2 as pb
from withsense.worker import protocol
from withsense.worker.batching import DynamicBatcher, WorkerUnavailable
from withsense.worker.metrics import Metrics
from withsense.worker.protocol import ScoreInputs

# EmbedImages' result: unit vectors [N, dim], p(child) [N] or None (the model has no detector)
ImageResult = tuple[np.ndarray, "np.ndarray | None"]

if TYPE_CHECKING:
    from withsense.model.runtime import ModelRuntime

log = logging.getLogger(__name__)

SERVICE_NAME = "withsense.v1.InferenceService"


def load_runtime(settings: WorkerSettings, model_settings: ModelSettings | None = None) -> ModelRuntime:
    from withsense.model.runtime import ModelRuntime

    model_settings = model_settings or ModelSettings()
    if model_settings.torch_threads:
        torch.set_num_threads(model_settings.torch_threads)
    return ModelRuntime(model_settings.model_dir, image_backend=settings.image_backend,
                        multilingual_threads=model_settings.multilingual_threads,
                        text_backend=settings.text_backend, text_precision=settings.text_precision,
                        text_threads=settings.text_threads,
                        image_precision=settings.image_precision,
                        image_threads=settings.image_threads)


# One EmbedText request's answer: joint vectors, check vectors, the path of each text.
TextResult = tuple[np.ndarray, list[np.ndarray], list[str]]


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
        self._text: DynamicBatcher[protocol.TextInputs, TextResult] | None = None
        self._image: DynamicBatcher[torch.Tensor, ImageResult] | None = None
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

    def _run_texts(self, payloads: list[protocol.TextInputs]) -> list[TextResult]:
        """One batch of texts; requests that ask for the same path share one model call (the
        check vectors come with it at no extra pass)."""
        runtime = self.require_runtime()
        results: dict[int, TextResult] = {}
        for path in dict.fromkeys(p.path for p in payloads):
            members = [i for i, p in enumerate(payloads) if p.path == path]
            flat = [text for i in members for text in payloads[i].texts]
            vectors, check, paths = runtime.embed_texts_checked(flat, path)
            start = 0
            for i in members:
                end = start + len(payloads[i].texts)
                results[i] = (vectors[start:end], check[start:end], list(paths[start:end]))
                start = end
        return [results[i] for i in range(len(payloads))]

    def _run_images(self, payloads: list[torch.Tensor]) -> list[ImageResult]:
        """Per request: (vectors, minor probabilities or None when the model has no detector)."""
        runtime = self.require_runtime()
        pixels = torch.cat(payloads) if len(payloads) > 1 else payloads[0]
        step = self.settings.max_batch_size
        parts = [runtime.embed_pixels_with_minor(pixels[i:i + step])
                 for i in range(0, pixels.shape[0], step)]
        counts = [int(p.shape[0]) for p in payloads]
        vectors = _split_rows(np.concatenate([v for v, _ in parts]), counts)
        if any(p is None for _, p in parts):
            return [(v, None) for v in vectors]
        minor = _split_rows(np.concatenate([p for _, p in parts]), counts)  # type: ignore[misc]
        return list(zip(vectors, minor, strict=True))

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
        inputs = protocol.parse_embed_text(request, self.settings, multilingual=runtime.multilingual)
        assert self._text is not None
        result = await self._text.submit(inputs, len(inputs.texts))
        vectors, check, paths = result.value
        return pb.EmbedTextResponse(
            vectors=_vectors(vectors), model_version=runtime.version,
            batch_size=result.batch_size, paths=[PATH_TO_WIRE[p] for p in paths],
            check_vectors=[pb.Vector(values=row.tolist()) for row in check]
            if inputs.check_vectors else [],
        )

    async def embed_images(self, request: pb.EmbedImagesRequest) -> pb.EmbedImagesResponse:
        runtime = self.require_runtime()
        pixels = await self.decode_images(list(request.images))
        assert self._image is not None
        result = await self._image.submit(pixels, int(pixels.shape[0]))
        vectors, minor = result.value
        return pb.EmbedImagesResponse(
            vectors=_vectors(vectors), model_version=runtime.version,
            batch_size=result.batch_size,
            minor_probabilities=[] if minor is None else minor.tolist(),
            minor_detector_version=runtime.minor.version if runtime.minor is not None else "",
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
        multilingual = (config.get("multilingual") or {}) if runtime.multilingual else {}
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
            # The folder's name only: the server's paths are nobody's business.
            artifact_dir=runtime.artifact.path.name if runtime.artifact.path else "",
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
            image_backend=image_backend_name(runtime.image_tower),
            load_seconds=float(getattr(runtime, "load_seconds", 0.0)),
            semantic_child_threshold=tower_threshold(config),
            fusion_json=_fusion_json(runtime),
            multilingual=runtime.multilingual,
            multilingual_text_tower=str(multilingual.get("tower", {}).get("name", "")),
            multilingual_semantic_child_threshold=multilingual.get("semantic_child_threshold"),
            **_minor_info(runtime),
        )


def image_backend_name(tower: object) -> str:
    """"torch", "onnx" or "onnx-int8" (GetModelInfo's image_backend)."""
    backend = str(getattr(tower, "backend", "torch"))
    return f"{backend}-int8" if getattr(tower, "precision", "fp32") == "int8" else backend


def _fusion_json(runtime: object) -> str:
    fusion = getattr(runtime, "fusion", None)
    return "" if fusion is None else json.dumps(fusion.to_json(), sort_keys=True)


def _minor_info(runtime: ModelRuntime) -> dict:
    """GetModelInfo's fields about the visual minor detector (none when the model has none)."""
    if runtime.minor is None:
        return {}
    return {"minor_detector_version": runtime.minor.version,
            "minor_threshold": runtime.minor.threshold,
            "minor_curve_json": json.dumps(runtime.minor.curve)}


def _split_rows(array: np.ndarray, counts: list[int]) -> list[np.ndarray]:
    bounds = np.cumsum(counts)[:-1]
    return list(np.split(array, bounds))


def _warm_up(runtime: ModelRuntime) -> None:
    runtime.embed_texts(["warm-up"])
    runtime.embed_pixels(runtime.preprocess_image(Image.new("RGB", (64, 64))).unsqueeze(0))


__all__ = ["SERVICE_NAME", "WorkerServing", "load_runtime"]
