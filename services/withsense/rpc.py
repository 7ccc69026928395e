"""What both gRPC servers share: health checking, reflection, ports, signals."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterable
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection


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
