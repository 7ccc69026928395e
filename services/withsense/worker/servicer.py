"""grpc.aio transport of the InferenceService: status codes, metrics, logs.

ValidationError -> INVALID_ARGUMENT with the validator's message (names the item and the limit);
WorkerUnavailable -> UNAVAILABLE; anything else -> INTERNAL with a short message (the traceback
goes to the log, not to the client).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import grpc

from withsense.v1 import inference_pb2 as pb
from withsense.v1 import inference_pb2_grpc
from withsense.worker.batching import WorkerUnavailable
from withsense.worker.metrics import Metrics
from withsense.worker.protocol import ValidationError
from withsense.worker.serving import WorkerServing

log = logging.getLogger(__name__)

T = TypeVar("T")


def status_of(exc: BaseException) -> grpc.StatusCode:
    """The status a failure of the serving logic answers with (also what the in-process client
    of `serve all` counts it as)."""
    if isinstance(exc, ValidationError):
        return grpc.StatusCode.INVALID_ARGUMENT
    if isinstance(exc, WorkerUnavailable):
        return grpc.StatusCode.UNAVAILABLE
    if isinstance(exc, asyncio.CancelledError):
        return grpc.StatusCode.CANCELLED
    return grpc.StatusCode.INTERNAL


@contextlib.asynccontextmanager
async def tracked(metrics: Metrics, method: str) -> AsyncIterator[None]:
    """Counts one request in the worker's metrics (in flight, by method and status, latency),
    whichever transport brought it; exceptions pass through."""
    started = time.perf_counter()
    code = grpc.StatusCode.OK
    metrics.in_flight.inc()
    try:
        yield
    except BaseException as exc:
        code = status_of(exc)
        if code == grpc.StatusCode.INVALID_ARGUMENT:
            log.info("%s: invalid argument: %s", method, exc)
        elif code == grpc.StatusCode.INTERNAL:
            log.exception("%s failed", method)
        raise
    finally:
        metrics.in_flight.dec()
        metrics.requests.labels(method, code.name).inc()
        metrics.latency.labels(method).observe(time.perf_counter() - started)


class InferenceServicer(inference_pb2_grpc.InferenceServiceServicer):
    def __init__(self, serving: WorkerServing) -> None:
        self.serving = serving

    async def _handle(
        self, method: str, context: grpc.aio.ServicerContext, call: Callable[[], Awaitable[T]]
    ) -> T:
        try:
            async with tracked(self.serving.metrics, method):
                return await call()
        except (ValidationError, WorkerUnavailable) as exc:
            await context.abort(status_of(exc), str(exc))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # context.abort raises an AbortError of its own: let it pass untouched.
            if isinstance(exc, grpc.aio.AbortError):
                raise
            await context.abort(
                grpc.StatusCode.INTERNAL,
                f"internal error in {method} ({type(exc).__name__}); see the worker's log",
            )
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
