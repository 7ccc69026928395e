"""The gateway's ASGI app: the web page, the HTTP/JSON API and its OpenAPI document."""

from __future__ import annotations

from importlib import resources

import grpc
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from withsense.web.api import HttpApi
from withsense.web.openapi import openapi_document
from withsense.web.status import error_response

STATIC = resources.files("withsense.web") / "static"
# The page loads nothing from elsewhere; thumbnails fetched with an API key become blob: URLs.
SECURITY_HEADERS = {
    b"content-security-policy": b"default-src 'self'; img-src 'self' blob:; "
                                b"object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
    b"x-content-type-options": b"nosniff",
    b"referrer-policy": b"no-referrer",
}


class SecurityHeaders:
    """Adds SECURITY_HEADERS to every HTTP response (pure ASGI: it does not buffer bodies)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS.items()]
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _http_error(request: Request, error: Exception) -> Response:
    """Routing errors (unknown path, wrong method) in the API's error shape too."""
    status = getattr(error, "status_code", 500)
    code = {404: grpc.StatusCode.NOT_FOUND, 405: grpc.StatusCode.UNIMPLEMENTED}.get(
        status, grpc.StatusCode.INVALID_ARGUMENT if status < 500 else grpc.StatusCode.INTERNAL)
    detail = getattr(error, "detail", "") or "error"
    return error_response(code, f"{request.method} {request.url.path}: {detail}", http_status=status,
                          headers=getattr(error, "headers", None))


def build_app(api: HttpApi) -> Starlette:
    document = openapi_document()

    async def index(request: Request) -> Response:
        return FileResponse(str(STATIC / "index.html"), headers={"Cache-Control": "no-cache"})

    async def openapi(request: Request) -> Response:
        return JSONResponse(document)

    return Starlette(
        routes=[
            Route("/", index, methods=["GET"]),
            Route("/openapi.json", openapi, methods=["GET"]),
            *api.routes(),
            Mount("/static", StaticFiles(directory=str(STATIC)), name="static"),
        ],
        middleware=[Middleware(SecurityHeaders)],
        exception_handlers={HTTPException: _http_error},
    )
