"""What both gRPC servers share: health checking, reflection, ports, signals."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import Counter

UNDECODABLE = Counter("withsense_rpc_undecodable_requests_total",
                      "Requests that did not parse as their message type", ["method"])


def server_options(max_message_mb: int) -> list[tuple[str, int]]:
    """Message limits set on purpose; no port sharing (a second server on a taken port must
    fail rather than silently split the traffic); connections recycled after 5 minutes."""
    limit = max_message_mb * 1024 * 1024
    return [("grpc.max_send_message_length", limit), ("grpc.max_receive_message_length", limit),
            ("grpc.so_reuseport", 0),
            # Clients reconnect every few minutes, so new pods behind a Service get traffic.
            ("grpc.max_connection_age_ms", 300_000), ("grpc.max_connection_age_grace_ms", 30_000)]


def add_health_and_reflection(server: grpc.aio.Server, services: Iterable[str]) -> health.aio.HealthServicer:
    """Registers grpc.health.v1 (NOT_SERVING until told) and reflection for the services."""
    names = list(services)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection([*names, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
    return health_servicer


async def set_serving(health_servicer: health.aio.HealthServicer, services: Iterable[str],
                      serving: bool) -> None:
    status = (health_pb2.HealthCheckResponse.SERVING if serving
              else health_pb2.HealthCheckResponse.NOT_SERVING)
    for name in ["", *services]:
        await health_servicer.set(name, status)


def bind(server: grpc.aio.Server, host: str, port: int, *, tls_cert: Path | None = None,
         tls_key: Path | None = None) -> int:
    """Binds host:port (TLS when a certificate and key are given); returns the bound port."""
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        if tls_cert is None and tls_key is None:
            bound = server.add_insecure_port(address)
        elif tls_cert is None or tls_key is None:
            raise ValueError("TLS needs both WITHSENSE_TLS_CERT and WITHSENSE_TLS_KEY")
        else:
            key_pair = (Path(tls_key).read_bytes(), Path(tls_cert).read_bytes())
            bound = server.add_secure_port(address, grpc.ssl_server_credentials([key_pair]))
    except RuntimeError as exc:
        raise OSError(f"cannot listen on {address}: {exc}") from exc
    if bound == 0:
        raise OSError(f"cannot listen on {address}: the port is taken or the address is not local")
    return bound


async def wait_for_signal() -> None:
    """Returns on SIGINT or SIGTERM (how Kubernetes asks a pod to stop)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


# --------------------------------------------------------------------------- undecodable requests


@dataclass(frozen=True)
class Undecodable:
    """Stands in for a request message that did not parse (garbage bytes, invalid UTF-8 in a
    string field): streaming servicers get it in the stream and report that one item."""

    message_type: str
    error: str

    def describe(self) -> str:
        return f"not a valid {self.message_type} message ({self.error})"


def _tolerant(deserializer: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    message_type = getattr(getattr(deserializer, "__self__", None), "__name__", "request")

    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception as error:  # noqa: BLE001 - DecodeError and friends
            return Undecodable(message_type, str(error) or type(error).__name__)

    return deserialize


def _rejecting(behavior: Callable[..., Awaitable[Any]], method: str) -> Callable[..., Awaitable[Any]]:
    async def checked(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if isinstance(request, Undecodable):
            UNDECODABLE.labels(method=method).inc()
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{method}: {request.describe()}")
        return await behavior(request, context)

    return checked


class DecodeErrorInterceptor(grpc.aio.ServerInterceptor):
    """A request that does not parse is INVALID_ARGUMENT (gRPC's default is UNKNOWN
    "Unexpected DecodeError"). Unary calls are refused before the servicer runs; in a client
    stream the bad message arrives as `Undecodable`, so the servicer can report that item alone."""

    async def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None or handler.request_deserializer is None:
            return handler
        deserializer = _tolerant(handler.request_deserializer)
        method = details.method.rsplit("/", 1)[-1]
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                _rejecting(handler.unary_unary, method), request_deserializer=deserializer,
                response_serializer=handler.response_serializer)
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                _rejecting(handler.unary_stream, method), request_deserializer=deserializer,
                response_serializer=handler.response_serializer)
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(
                handler.stream_unary, request_deserializer=deserializer,
                response_serializer=handler.response_serializer)
        return grpc.stream_stream_rpc_method_handler(
            handler.stream_stream, request_deserializer=deserializer,
            response_serializer=handler.response_serializer)
