"""Starting and stopping the gateway's gRPC server."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import grpc
from grpc_health.v1.health import aio as health_aio
from prometheus_client import start_http_server

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
from withsense.v1 import search_pb2, search_pb2_grpc
from withsense.worker_token import load_token

log = logging.getLogger(__name__)
SERVICE = search_pb2.DESCRIPTOR.services_by_name["SearchService"].full_name


@dataclass
class GatewayServer:
    server: grpc.aio.Server
    engine: SearchEngine
    port: int
    health: health_aio.HealthServicer
    grace_seconds: float = 10.0
    _stopped: bool = False

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def stop(self, grace: float | None = None) -> None:
        """Like the worker: health NOT_SERVING first (load balancers stop sending), no new
        calls, calls in flight get `grace` seconds (default: settings.grace_seconds), then the
        worker channel and the store close."""
        if self._stopped:
            return
        self._stopped = True
        await self.health.enter_graceful_shutdown()
        await self.server.stop(self.grace_seconds if grace is None else grace)
        await self.engine.worker.close()
        self.engine.store.close()


async def start_gateway(settings: GatewaySettings, *, dim: int = 384,
                        store: VectorStore | None = None) -> GatewayServer:
    """Opens the store (a clear error if unusable), connects the worker, then serves."""
    gate = ComplianceGate(settings.restricted_regions, settings.semantic_threshold)
    keys = load_key_ring(settings.api_keys, settings.api_keys_file,
                         settings.index_api_keys, settings.index_api_keys_file)
    store = store or open_store(qdrant_url=settings.qdrant_url, data_dir=settings.data_dir, dim=dim,
                                collection=settings.qdrant_collection, api_key=settings.qdrant_api_key)
    if isinstance(store, CataloguedStore):
        try:
            store.require_intact()  # never serve a store that lost or changed photos
        except BaseException:
            store.close()
            raise
    worker = WorkerClient(settings.worker_address, settings.worker_timeout_s,
                          load_token(settings.worker_token, settings.worker_token_file))
    engine = SearchEngine(settings, store, worker, gate)
    interceptors = [DecodeErrorInterceptor(), *([ApiKeyInterceptor(keys)] if keys.required else [])]
    server = grpc.aio.server(interceptors=interceptors,
                             options=server_options(max_message_mb=MAX_MESSAGE_MB))
    search_pb2_grpc.add_SearchServiceServicer_to_server(SearchServicer(engine), server)
    health = add_health_and_reflection(server, [SERVICE])
    engine.on_store_failure = lambda: set_serving(health, [SERVICE], False)
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
    await set_serving(health, [SERVICE], True)
    if settings.metrics_port:
        start_http_server(settings.metrics_port)
    log.info("gateway serving on %s:%d (store %s, worker %s, keys %s)", settings.host, port,
             store.backend, settings.worker_address, "required" if keys.required else "not required")
    return GatewayServer(server=server, engine=engine, port=port, health=health,
                         grace_seconds=settings.grace_seconds)


async def serve_gateway(settings: GatewaySettings) -> None:
    """Blocking entry point of `withsense serve gateway`."""
    gateway = await start_gateway(settings)
    await wait_for_signal()
    await gateway.stop()
