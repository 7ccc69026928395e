"""Starting and stopping the gateway's gRPC server."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import grpc
from grpc_health.v1.health import aio as health_aio
from prometheus_client import start_http_server

from withsense.compliance.audit import configure_query_salt
from withsense.config import GatewaySettings
from withsense.config.defaults import MAX_MESSAGE_MB
from withsense.gateway.auth import ApiKeyInterceptor, load_key_ring
from withsense.gateway.compliance_gate import ComplianceGate
from withsense.gateway.servicer import SearchServicer
from withsense.gateway.serving import SearchEngine
from withsense.gateway.worker_client import WorkerClient
from withsense.rpc import (
    DecodeErrorInterceptor,
    add_health_and_reflection,
    bind,
    server_options,
    set_serving,
    wait_for_signal,
)
from withsense.store import CataloguedStore, VectorStore, open_store
from withsense.store.prefault import prefault_store
from withsense.thumbnails import open_thumbnail_store
from withsense.v1 import search_pb2, search_pb2_grpc
from withsense.worker_token import load_token

if TYPE_CHECKING:
    from withsense.web.server import HttpServer

log = logging.getLogger(__name__)
SERVICE = search_pb2.DESCRIPTOR.services_by_name["SearchService"].full_name


@dataclass
class GatewayServer:
    server: grpc.aio.Server
    engine: SearchEngine
    port: int
    health: health_aio.HealthServicer
    grace_seconds: float = 10.0
    http: HttpServer | None = None
    _stopped: bool = False

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str:
        """Base URL of the web page and HTTP API; empty when HTTP is off."""
        return f"http://127.0.0.1:{self.http.port}" if self.http else ""

    @property
    def serving(self) -> bool:
        """What the HTTP health check says: false once stopping, or after a failed store write."""
        return not self._stopped and not self.engine.access.failure

    async def stop(self, grace: float | None = None) -> None:
        """Like the worker: health NOT_SERVING first (load balancers stop sending), no new
        calls, calls in flight get `grace` seconds (default: settings.grace_seconds), then the
        worker channel and the store close."""
        if self._stopped:
            return
        self._stopped = True
        grace = self.grace_seconds if grace is None else grace
        await self.health.enter_graceful_shutdown()
        if self.http is not None:
            await self.http.stop(grace)
        await self.server.stop(grace)
        await self.engine.worker.close()
        self.engine.store.close()


def _require_intact(store: CataloguedStore) -> None:
    """Never serve a store that lost or changed photos (closed, and StoreDamaged, if so)."""
    started = time.perf_counter()
    try:
        report = store.require_intact()
    except BaseException:
        store.close()
        raise
    how = (f"sealed: counts and {report.sampled} sampled points" if report.mode == "sealed"
           else f"full: every point, because {report.full_because}")
    log.info("store verified against its catalogue in %.1f s (%d images; %s)",
             time.perf_counter() - started, report.images, how)


async def start_gateway(settings: GatewaySettings, *, dim: int = 384,
                        store: VectorStore | None = None,
                        worker: WorkerClient | None = None) -> GatewayServer:
    """Opens the store (a clear error if unusable), connects the worker, then serves.
    ``worker``: a client of a worker in this process (``serve all``), else gRPC to
    ``settings.worker_address``."""
    configure_query_salt()
    gate = ComplianceGate(settings.restricted_regions, settings.semantic_threshold,
                          settings.multilingual_semantic_threshold)
    keys = load_key_ring(settings.api_keys, settings.api_keys_file,
                         settings.index_api_keys, settings.index_api_keys_file)
    store = store or open_store(qdrant_url=settings.qdrant_url, data_dir=settings.data_dir, dim=dim,
                                collection=settings.qdrant_collection, api_key=settings.qdrant_api_key)
    if isinstance(store, CataloguedStore):
        _require_intact(store)
        # After the verification: a full one reopens the engine, which drops its mappings.
        log.info("%s", prefault_store(store.path, store.settings.store_prefault_mb).describe())
    worker = worker or WorkerClient(settings.worker_address, settings.worker_timeout_s,
                                    load_token(settings.worker_token, settings.worker_token_file))
    engine = SearchEngine(settings, store, worker, gate, open_thumbnail_store(settings.data_dir))
    auth = ApiKeyInterceptor(keys) if keys.required else None
    interceptors = [DecodeErrorInterceptor(), *([auth] if auth else [])]
    server = grpc.aio.server(interceptors=interceptors,
                             options=server_options(max_message_mb=MAX_MESSAGE_MB))
    servicer = SearchServicer(engine)
    search_pb2_grpc.add_SearchServiceServicer_to_server(servicer, server)
    health = add_health_and_reflection(server, [SERVICE])
    engine.access.on_failure = lambda: set_serving(health, [SERVICE], False)
    try:
        port = bind(server, settings.host, settings.port, tls_cert=settings.tls_cert,
                    tls_key=settings.tls_key)
        await server.start()
        await set_serving(health, [SERVICE], False)
        await engine.start()
    except BaseException:
        await server.stop(None)
        await worker.close()
        store.close()
        raise
    gateway = GatewayServer(server=server, engine=engine, port=port, health=health,
                            grace_seconds=settings.grace_seconds)
    if settings.http_port >= 0:
        try:
            gateway.http = await _start_http(settings, servicer, auth, lambda: gateway.serving)
        except BaseException:
            await gateway.stop(0)
            raise
    await set_serving(health, [SERVICE], True)
    if settings.metrics_port:
        start_http_server(settings.metrics_port)
    log.info("gateway serving on %s:%d, HTTP %s (store %s, worker %s, keys %s)", settings.host, port,
             gateway.http.port if gateway.http else "off", store.backend, worker.address,
             "required" if keys.required else "not required")
    return gateway


async def _start_http(settings: GatewaySettings, servicer: SearchServicer,
                      auth: ApiKeyInterceptor | None, serving) -> HttpServer:
    """The web page and HTTP/JSON API on settings.http_port, in this event loop."""
    from withsense.web.api import HttpApi
    from withsense.web.app import build_app
    from withsense.web.server import start_http

    api = HttpApi(servicer, auth, settings.max_upload_mb * 1024 * 1024, serving)
    return await start_http(build_app(api), settings.host, settings.http_port,
                            tls_cert=settings.tls_cert, tls_key=settings.tls_key)


async def serve_gateway(settings: GatewaySettings) -> None:
    """Blocking entry point of `withsense serve gateway`."""
    gateway = await start_gateway(settings)
    await wait_for_signal()
    await gateway.stop()
