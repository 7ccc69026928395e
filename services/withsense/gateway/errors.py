"""Errors the gateway's serving logic raises; the servicer maps each to one gRPC status."""

from __future__ import annotations

import grpc


class GatewayError(Exception):
    code = grpc.StatusCode.INTERNAL


class InvalidArgument(GatewayError):
    """A request field is wrong; the message names the field."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(GatewayError):
    """The named photo (or its thumbnail) does not exist."""

    code = grpc.StatusCode.NOT_FOUND


class PermissionDenied(GatewayError):
    """The request is valid but compliance forbids the answer (a withheld photo's thumbnail)."""

    code = grpc.StatusCode.PERMISSION_DENIED


class Unavailable(GatewayError):
    """A dependency (worker, store) cannot be reached; retrying later may work."""

    code = grpc.StatusCode.UNAVAILABLE


class ResourceExhausted(GatewayError):
    """The gateway is at capacity: the request was shed at once (admission control)."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class DeadlineExceeded(GatewayError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED
