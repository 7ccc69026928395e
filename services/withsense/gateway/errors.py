"""Errors the gateway's serving logic raises; the servicer maps each to one gRPC status."""

from __future__ import annotations

import grpc


class GatewayError(Exception):
    code = grpc.StatusCode.INTERNAL


class InvalidArgument(GatewayError):
    """A request field is wrong; the message names the field."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class Unavailable(GatewayError):
    """A dependency (worker, store) cannot be reached; retrying later may work."""

    code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(GatewayError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED
