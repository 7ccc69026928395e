"""gRPC transport of the gateway: messages in and out, errors to status codes."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator

import grpc

from withsense.gateway.errors import GatewayError, InvalidArgument
from withsense.gateway.metrics import METRICS
from withsense.gateway.protocol import IndexItem, index_item, search_params
from withsense.gateway.serving import SearchEngine
from withsense.v1 import search_pb2 as pb
from withsense.v1 import search_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)


class SearchServicer(pb_grpc.SearchServiceServicer):
    def __init__(self, engine: SearchEngine) -> None:
        self.engine = engine

    async def _fail(self, context: grpc.aio.ServicerContext, method: str, error: Exception) -> None:
        if isinstance(error, GatewayError):
            code, message = error.code, str(error)
        else:
            log.exception("%s failed", method)
            code, message = grpc.StatusCode.INTERNAL, f"internal error in {method}; see gateway logs"
        METRICS.errors.labels(method=method, code=code.name).inc()
        await context.abort(code, message)

    async def Search(self, request: pb.SearchRequest, context) -> pb.SearchResponse:
        started = time.perf_counter()
        try:
            params = search_params(request, self.engine.settings)
            result = await self.engine.search(params)
        except Exception as error:  # noqa: BLE001 - every error becomes a status code
            await self._fail(context, "Search", error)
            raise AssertionError("unreachable") from error
        METRICS.search_seconds.observe(time.perf_counter() - started)
        hits = [pb.SearchHit(image_id=h.image_id, uri=h.uri, score=h.score, withheld=h.withheld,
                             disclaimer=self.engine.gate.disclaimer if h.withheld else "",
                             reason=h.reason) for h in result.hits]
        return pb.SearchResponse(hits=hits, blocked=result.blocked, disclaimer=result.disclaimer,
                                 reason=result.reason, model_version=result.model_version,
                                 restricted_region=result.restricted)

    async def IndexImages(self, request_iterator, context) -> pb.IndexImagesResponse:
        async def items() -> AsyncIterator[IndexItem | tuple[str, str]]:
            position = 0
            async for request in request_iterator:
                try:
                    yield index_item(request, position)
                except InvalidArgument as error:
                    yield (request.uri or f"item {position}", str(error))
                position += 1

        try:
            summary = await self.engine.index(items())
        except Exception as error:  # noqa: BLE001
            await self._fail(context, "IndexImages", error)
            raise AssertionError("unreachable") from error
        return pb.IndexImagesResponse(
            indexed=summary.indexed, unchanged=summary.unchanged, failed=len(summary.failures),
            failures=[pb.IndexFailure(uri=uri, reason=reason) for uri, reason in summary.failures],
            flagged=summary.flagged, image_ids=summary.image_ids,
            flags_changed=summary.flags_changed,
            flagged_by_description=summary.flagged_by_description,
            flagged_by_sight=summary.flagged_by_sight,
        )

    async def DeleteImages(self, request: pb.DeleteImagesRequest, context) -> pb.DeleteImagesResponse:
        try:
            deleted = await self.engine.delete(list(request.image_ids), list(request.uris))
        except Exception as error:  # noqa: BLE001
            await self._fail(context, "DeleteImages", error)
            raise AssertionError("unreachable") from error
        return pb.DeleteImagesResponse(deleted=deleted)

    async def GetStats(self, request: pb.GetStatsRequest, context) -> pb.GetStatsResponse:
        try:
            stats = await self.engine.stats()
        except Exception as error:  # noqa: BLE001
            await self._fail(context, "GetStats", error)
            raise AssertionError("unreachable") from error
        return pb.GetStatsResponse(**stats)
