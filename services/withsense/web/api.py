"""The HTTP/JSON API: the gRPC methods over HTTP, with the same code behind them.

Each endpoint parses JSON (or a multipart form) into the gRPC request message, asks the same API
keys check as the gRPC interceptor, calls the transport-free coroutine of `SearchServicer`, and
writes the reply with protobuf's JSON mapping (lowerCamelCase names, as Google's HTTP/JSON
transcoding does). Fields added to the protos appear here without a change.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import quote

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from withsense.gateway.auth import PROTECTED_PREFIX, ApiKeyInterceptor
from withsense.gateway.errors import InvalidArgument
from withsense.gateway.servicer import SearchServicer, status_of
from withsense.thumbnails import THUMBNAIL_MEDIA_TYPE
from withsense.v1 import search_pb2 as pb
from withsense.web.status import error_response

MAX_JSON_BYTES = 1024 * 1024
# One upload form: at most this many photos (the page sends a few at a time).
MAX_UPLOAD_FILES = 200
FORM_FIELD_PHOTOS = "images"
FORM_FIELD_DESCRIPTION = "description"


class RequestTooLarge(Exception):
    pass


def to_json(message: Message) -> dict[str, Any]:
    """Protobuf's canonical JSON mapping, every field present (zero values too)."""
    return json_format.MessageToDict(message, always_print_fields_with_no_presence=True)


def thumbnail_url(image_id: str, region: str) -> str:
    return f"/v1/images/{quote(image_id, safe='')}/thumbnail?region={quote(region, safe='')}"


class HttpApi:
    def __init__(self, servicer: SearchServicer, auth: ApiKeyInterceptor | None,
                 max_upload_bytes: int, serving: Callable[[], bool]) -> None:
        self.servicer = servicer
        self.auth = auth
        self.max_upload_bytes = max_upload_bytes
        self.serving = serving

    def routes(self) -> list[Route]:
        return [
            Route("/v1/search", self.search, methods=["POST"]),
            Route("/v1/images", self.index_images, methods=["POST"]),
            Route("/v1/images", self.delete_images, methods=["DELETE"]),
            Route("/v1/images/{image_id}/thumbnail", self.thumbnail, methods=["GET"]),
            Route("/v1/stats", self.stats, methods=["GET"]),
            Route("/healthz", self.healthz, methods=["GET"]),
        ]

    # --- the common path: keys, errors ------------------------------------------------------

    async def _call(self, request: Request, method: str,
                    handler: Callable[[], Awaitable[Response]]) -> Response:
        """Checks the key as for gRPC method `method`, runs handler, maps errors to statuses."""
        if self.auth is not None:
            header = request.headers.get("authorization")
            metadata = (("authorization", header),) if header is not None else ()
            denied = self.auth.check(PROTECTED_PREFIX + method, metadata)
            if denied is not None:
                challenge = denied.code == grpc.StatusCode.UNAUTHENTICATED
                return error_response(denied.code, denied.message, headers=(
                    {"WWW-Authenticate": 'Bearer realm="withsense"'} if challenge else None))
        try:
            return await handler()
        except RequestTooLarge as error:
            return error_response(grpc.StatusCode.RESOURCE_EXHAUSTED, str(error), http_status=413)
        except Exception as error:  # noqa: BLE001 - every error becomes a status code
            code, message = status_of(method, error)
            return error_response(code, message)

    async def _parse(self, request: Request, message: Message) -> Message:
        raw = await _read_limited(request, MAX_JSON_BYTES)
        try:
            data = json.loads(raw) if raw.strip() else {}
        except ValueError as exc:
            raise InvalidArgument(f"request body is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise InvalidArgument("request body must be a JSON object")
        try:
            return json_format.ParseDict(data, message)
        except json_format.ParseError as exc:
            raise InvalidArgument(str(exc)) from None

    # --- endpoints ---------------------------------------------------------------------------

    async def search(self, request: Request) -> Response:
        async def handle() -> Response:
            search_request = await self._parse(request, pb.SearchRequest())
            reply = await self.servicer.search(search_request)
            body = to_json(reply)
            region = search_request.region.strip().upper()
            for hit, message in zip(body["hits"], reply.hits, strict=True):
                if message.image_id and not message.withheld:
                    hit["thumbnailUrl"] = thumbnail_url(message.image_id, region)
            return JSONResponse(body)

        return await self._call(request, "Search", handle)

    async def index_images(self, request: Request) -> Response:
        async def handle() -> Response:
            length = int(request.headers.get("content-length") or 0)
            if length > self.max_upload_bytes:
                raise RequestTooLarge(f"upload is {length} bytes; the limit is {self.max_upload_bytes}")
            try:
                form = await request.form(max_files=MAX_UPLOAD_FILES, max_fields=MAX_UPLOAD_FILES)
            except HTTPException as exc:
                raise InvalidArgument(f"multipart form: {exc.detail}") from None
            try:
                return JSONResponse(to_json(await self.servicer.index_images(_index_requests(form))))
            finally:
                await form.close()

        return await self._call(request, "IndexImages", handle)

    async def delete_images(self, request: Request) -> Response:
        async def handle() -> Response:
            delete = await self._parse(request, pb.DeleteImagesRequest())
            delete.image_ids.extend(request.query_params.getlist("imageIds"))
            delete.uris.extend(request.query_params.getlist("uris"))
            return JSONResponse(to_json(await self.servicer.delete_images(delete)))

        return await self._call(request, "DeleteImages", handle)

    async def stats(self, request: Request) -> Response:
        async def handle() -> Response:
            return JSONResponse(to_json(await self.servicer.get_stats(pb.GetStatsRequest())))

        return await self._call(request, "GetStats", handle)

    async def thumbnail(self, request: Request) -> Response:
        """A photo's thumbnail, checked against the region and the photo's flag on every
        request. Counted as a Search call for API keys: a key that may search may see it."""
        async def handle() -> Response:
            image_id = request.path_params["image_id"]
            data = await self.servicer.engine.thumbnail(image_id, request.query_params.get("region", ""))
            etag = f'"{image_id}"'
            # no-cache: the browser asks again each time, so a photo flagged later is refused.
            headers = {"ETag": etag, "Cache-Control": "private, no-cache"}
            if request.headers.get("if-none-match") == etag:
                return Response(status_code=304, headers=headers)
            return Response(data, media_type=THUMBNAIL_MEDIA_TYPE, headers=headers)

        return await self._call(request, "Search", handle)

    async def healthz(self, request: Request) -> Response:
        serving = self.serving()
        return JSONResponse({"status": "SERVING" if serving else "NOT_SERVING"},
                            status_code=200 if serving else 503)


async def _read_limited(request: Request, limit: int) -> bytes:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise RequestTooLarge(f"request body is over {limit} bytes")
    return bytes(body)


async def _index_requests(form) -> AsyncIterator[pb.IndexImagesRequest]:
    """One IndexImagesRequest per uploaded photo, each with every description in the form."""
    descriptions = [str(d) for d in form.getlist(FORM_FIELD_DESCRIPTION) if str(d).strip()]
    photos = form.getlist(FORM_FIELD_PHOTOS)
    if not photos:
        raise InvalidArgument(f"{FORM_FIELD_PHOTOS}: no photo in the form; send one or more files "
                              f"in the multipart field '{FORM_FIELD_PHOTOS}'")
    for photo in photos:
        if not isinstance(photo, UploadFile):
            raise InvalidArgument(f"{FORM_FIELD_PHOTOS}: {str(photo)[:40]!r} is text, not a file")
        yield pb.IndexImagesRequest(image=await photo.read(), uri=photo.filename or "",
                                    descriptions=descriptions)
