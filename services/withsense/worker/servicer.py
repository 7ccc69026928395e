"""grpc.aio transport of the InferenceService: status codes, metrics, logs.

ValidationError -> INVALID_ARGUMENT with the validator's message (names the item and the limit);
WorkerUnavailable -> UNAVAILABLE; anything else -> INTERNAL with a short message (the traceback
goes to the log, not to the client).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import grpc

from withsense.v1 import inference_pb2 as pb
from withsense.v1 import inference_pb2_grpc
from withsense.worker.batching import WorkerUnavailable
from withsense.worker.protocol import ValidationError
from withsense.worker.serving import WorkerServing

log = logging.getLogger(__name__)

T = TypeVar("T")


class InferenceServicer(inference_pb2_grpc.InferenceServiceServicer):
    def __init__(self, serving: WorkerServing) -> None:
        self.serving = serving

    async def _handle(
        self, method: str, context: grpc.aio.ServicerContext, call: Callable[[], Awaitable[T]]
    ) -> T:
        metrics = self.serving.metrics
        started = time.perf_counter()
        code = grpc.StatusCode.OK
        metrics.in_flight.inc()
        try:
            return await call()
        except ValidationError as exc:
            code = grpc.StatusCode.INVALID_ARGUMENT
            log.info("%s: invalid argument: %s", method, exc)
            await context.abort(code, str(exc))
        except WorkerUnavailable as exc:
            code = grpc.StatusCode.UNAVAILABLE
            await context.abort(code, str(exc))
        except asyncio.CancelledError:
            code = grpc.StatusCode.CANCELLED
            raise
        except Exception as exc:
            # context.abort raises an AbortError of its own: let it pass untouched.
            if isinstance(exc, grpc.aio.AbortError):
                raise
            code = grpc.StatusCode.INTERNAL
            log.exception("%s failed", method)
            await context.abort(
                code, f"internal error in {method} ({type(exc).__name__}); see the worker's log"
            )
        finally:
            metrics.in_flight.dec()
            metrics.requests.labels(method, code.name).inc()
            metrics.latency.labels(method).observe(time.perf_counter() - started)
        raise AssertionError("unreachable")  # context.abort always raises

    async def EmbedText(  # noqa: N802 - gRPC method name
        self, request: pb.EmbedTextRequest, context: grpc.aio.ServicerContext
    ) -> pb.EmbedTextResponse:
        return await self._handle("EmbedText", context, lambda: self.serving.embed_text(request))

    async def EmbedImages(  # noqa: N802
        self, request: pb.EmbedImagesRequest, context: grpc.aio.ServicerContext
    ) -> pb.EmbedImagesResponse:
        return await self._handle(
            "EmbedImages", context, lambda: self.serving.embed_images(request)
        )

    async def Score(  # noqa: N802
        self, request: pb.ScoreRequest, context: grpc.aio.ServicerContext
    ) -> pb.ScoreResponse:
        return await self._handle("Score", context, lambda: self.serving.score(request))

    async def GetModelInfo(  # noqa: N802
        self, request: pb.GetModelInfoRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetModelInfoResponse:
        async def info() -> pb.GetModelInfoResponse:
            return self.serving.model_info()

        return await self._handle("GetModelInfo", context, info)
