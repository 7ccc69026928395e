"""Serving the ASGI app with uvicorn in the gateway's own event loop, beside grpc.aio."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from starlette.types import ASGIApp


class _EmbeddedServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The gateway process owns SIGINT/SIGTERM (withsense.rpc.wait_for_signal) and stops us.
        yield


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port} (HTTP): {exc.strerror}") from exc
    sock.set_inheritable(True)
    return sock


@dataclass
class HttpServer:
    server: uvicorn.Server
    task: asyncio.Task[None]
    port: int

    async def stop(self, grace: float = 5.0) -> None:
        self.server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(self.task), grace)
        except TimeoutError:
            self.server.force_exit = True
            await self.task


async def start_http(app: ASGIApp, host: str, port: int, *, tls_cert: Path | None = None,
                     tls_key: Path | None = None) -> HttpServer:
    """Binds host:port (0 picks a free one), starts serving, returns once it accepts."""
    sock = _listen(host, port)
    config = uvicorn.Config(
        app, lifespan="off", log_level="warning", access_log=False, server_header=False,
        ssl_certfile=str(tls_cert) if tls_cert else None, ssl_keyfile=str(tls_key) if tls_key else None,
        timeout_graceful_shutdown=5,
    )
    server = _EmbeddedServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name=f"http:{port}")
    while not server.started:
        if task.done():
            sock.close()
            task.result()  # raises what stopped it
            raise OSError(f"the HTTP server on {host}:{port} stopped at start")
        await asyncio.sleep(0.01)
    return HttpServer(server=server, task=task, port=sock.getsockname()[1])
