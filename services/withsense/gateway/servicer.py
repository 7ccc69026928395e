"""gRPC transport of the gateway: messages in and out, errors to status codes.

The `search`, `index_images`, `delete_images` and `get_stats` coroutines take and return the
protobuf messages and raise `GatewayError`; the gRPC methods and the HTTP/JSON API
(`withsense.web.api`) both call them, so both transports share one implementation.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterable, AsyncIterator

import grpc

from withsense.gateway.errors import GatewayError, InvalidArgument
from withsense.gateway.metrics import METRICS
from withsense.gateway.protocol import IndexItem, index_item, search_params
from withsense.gateway.serving import SearchEngine
from withsense.v1 import search_pb2 as pb
from withsense.v1 import search_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)


def status_of(method: str, error: Exception) -> tuple[grpc.StatusCode, str]:
    """The status code and message a client sees for an error in `method`; counted."""
    if isinstance(error, GatewayError):
        code, message = error.code, str(error)
    else:
        log.exception("%s failed", method, exc_info=error)
        code, message = grpc.StatusCode.INTERNAL, f"internal error in {method}; see gateway logs"
    METRICS.errors.labels(method=method, code=code.name).inc()
    return code, message


class SearchServicer(pb_grpc.SearchServiceServicer):
    def __init__(self, engine: SearchEngine) -> None:
        self.engine = engine

    # --- transport-free: protobuf in, protobuf out ------------------------------------------

    async def search(self, request: pb.SearchRequest,
                     time_left_s: float | None = None) -> pb.SearchResponse:
        """``time_left_s``: until the caller's deadline (gRPC's), for admission control."""
        started = time.perf_counter()
        params = search_params(request, self.engine.settings)
        async with self.engine.admission.slot(time_left_s):
            result = await self.engine.search(params)
        METRICS.search_seconds.observe(time.perf_counter() - started)
        hits = [pb.SearchHit(image_id=h.image_id, uri=h.uri, score=h.score, withheld=h.withheld,
                             disclaimer=self.engine.gate.disclaimer if h.withheld else "",
                             reason=h.reason, evidence=list(h.evidence)) for h in result.hits]
        return pb.SearchResponse(hits=hits, blocked=result.blocked, disclaimer=result.disclaimer,
                                 reason=result.reason, model_version=result.model_version,
                                 restricted_region=result.restricted)

    async def index_images(self, requests: AsyncIterable[pb.IndexImagesRequest]) -> pb.IndexImagesResponse:
        async def items() -> AsyncIterator[IndexItem | tuple[str, str]]:
            position = 0
            async for request in requests:
                try:
                    yield index_item(request, position)
                except InvalidArgument as error:
                    yield (getattr(request, "uri", "") or f"item {position}", str(error))
                position += 1

        summary = await self.engine.indexer.index(items())
        return pb.IndexImagesResponse(
            indexed=summary.indexed, unchanged=summary.unchanged, failed=len(summary.failures),
            failures=[pb.IndexFailure(uri=uri, reason=reason) for uri, reason in summary.failures],
            flagged=summary.flagged, image_ids=summary.image_ids,
            flags_changed=summary.flags_changed,
            flagged_by_description=summary.flagged_by_description,
            flagged_by_sight=summary.flagged_by_sight,
        )

    async def delete_images(self, request: pb.DeleteImagesRequest) -> pb.DeleteImagesResponse:
        deleted = await self.engine.indexer.delete(list(request.image_ids), list(request.uris))
        return pb.DeleteImagesResponse(deleted=deleted)

    async def get_stats(self, request: pb.GetStatsRequest) -> pb.GetStatsResponse:
        return pb.GetStatsResponse(**await self.engine.stats())

    # --- gRPC methods -----------------------------------------------------------------------

    async def _abort(self, context: grpc.aio.ServicerContext, method: str, error: Exception) -> None:
        code, message = status_of(method, error)
        await context.abort(code, message)

    async def Search(self, request: pb.SearchRequest, context) -> pb.SearchResponse:
        try:
            return await self.search(request, context.time_remaining())
        except Exception as error:  # noqa: BLE001 - every error becomes a status code
            await self._abort(context, "Search", error)
            raise AssertionError("unreachable") from error

    async def IndexImages(self, request_iterator, context) -> pb.IndexImagesResponse:
        try:
            return await self.index_images(request_iterator)
        except Exception as error:  # noqa: BLE001
            await self._abort(context, "IndexImages", error)
            raise AssertionError("unreachable") from error

    async def DeleteImages(self, request: pb.DeleteImagesRequest, context) -> pb.DeleteImagesResponse:
        try:
            return await self.delete_images(request)
        except Exception as error:  # noqa: BLE001
            await self._abort(context, "DeleteImages", error)
            raise AssertionError("unreachable") from error

    async def GetStats(self, request: pb.GetStatsRequest, context) -> pb.GetStatsResponse:
        try:
            return await self.get_stats(request)
        except Exception as error:  # noqa: BLE001
            await self._abort(context, "GetStats", error)
            raise AssertionError("unreachable") from error
