"""gRPC status codes as HTTP statuses, and the error body, both as Google's HTTP/JSON APIs do
(google.rpc.Code's documented mapping; body `{"error": {"code", "message", "status"}}`)."""

from __future__ import annotations

import grpc
from starlette.responses import JSONResponse

HTTP_STATUS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
}


def error_response(code: grpc.StatusCode, message: str, *, http_status: int | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    status = http_status or HTTP_STATUS[code]
    body = {"error": {"code": status, "message": message, "status": code.name}}
    return JSONResponse(body, status_code=status, headers=headers)
