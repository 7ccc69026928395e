"""Starting and stopping the gateway's gRPC server."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import grpc
from prometheus_client import start_http_server

from withsense.config import GatewaySettings
from withsense.config.defaults import MAX_MESSAGE_MB
from withsense.gateway.auth import ApiKeyInterceptor, load_api_keys
from withsense.gateway.compliance_gate import ComplianceGate
from withsense.gateway.servicer import SearchServicer
from withsense.gateway.serving import SearchEngine
from withsense.gateway.worker_client import WorkerClient
from withsense.rpc import (
    add_health_and_reflection,
    bind,
    server_options,
    set_serving,
    wait_for_signal,
)
from withsense.store import VectorStore, open_store
from withsense.v1 import search_pb2, search_pb2_grpc

log = logging.getLogger(__name__)
SERVICE = search_pb2.DESCRIPTOR.services_by_name["SearchService"].full_name


@dataclass
class GatewayServer:
    server: grpc.aio.Server
    engine: SearchEngine
    port: int

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def stop(self, grace: float = 5.0) -> None:
        await self.server.stop(grace)
        await self.engine.worker.close()
        self.engine.store.close()


async def start_gateway(settings: GatewaySettings, *, dim: int = 384,
                        store: VectorStore | None = None) -> GatewayServer:
    """Opens the store (a clear error if unusable), connects the worker, then serves."""
    gate = ComplianceGate(settings.restricted_regions, settings.semantic_threshold)
    keys = load_api_keys(settings.api_keys, settings.api_keys_file)
    store = store or open_store(qdrant_url=settings.qdrant_url, data_dir=settings.data_dir, dim=dim,
                                collection=settings.qdrant_collection, api_key=settings.qdrant_api_key)
    worker = WorkerClient(settings.worker_address, settings.worker_timeout_s)
    engine = SearchEngine(settings, store, worker, gate)
    server = grpc.aio.server(interceptors=[ApiKeyInterceptor(keys)] if keys else [],
                             options=server_options(max_message_mb=MAX_MESSAGE_MB))
    search_pb2_grpc.add_SearchServiceServicer_to_server(SearchServicer(engine), server)
    health = add_health_and_reflection(server, [SERVICE])
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
             store.backend, settings.worker_address, "required" if keys else "not required")
    return GatewayServer(server=server, engine=engine, port=port)


async def serve_gateway(settings: GatewaySettings) -> None:
    """Blocking entry point of `withsense serve gateway`."""
    gateway = await start_gateway(settings)
    await wait_for_signal()
    await gateway.stop()
