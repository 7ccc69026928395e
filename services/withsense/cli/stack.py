"""Worker and gateway in one process: `withsense serve all` and the demo."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from withsense.config import GatewaySettings, ModelSettings, WorkerSettings
from withsense.gateway.server import GatewayServer, start_gateway


@dataclass
class Stack:
    worker: object
    gateway: GatewayServer

    @property
    def target(self) -> str:
        return self.gateway.address

    async def stop(self) -> None:
        await self.gateway.stop()
        await self.worker.stop(5.0)


async def start_stack(*, data_dir: Path, gateway_port: int = 0, worker_port: int = 0,
                      model_dir: Path | None = None, host: str = "127.0.0.1",
                      worker_over_grpc: bool = False, **gateway_overrides) -> Stack:
    """The worker, then the gateway. The gateway calls the worker in process
    (``InProcessWorkerClient``: no loopback gRPC hop a search) unless ``worker_over_grpc``;
    the worker serves gRPC on ``worker_port`` either way."""
    from withsense.worker.in_process import InProcessWorkerClient
    from withsense.worker.server import start_worker

    worker = await start_worker(
        WorkerSettings(host="127.0.0.1", port=worker_port),
        ModelSettings(model_dir=model_dir, data_dir=data_dir),
    )
    try:
        settings = GatewaySettings(
            host=host, port=gateway_port, data_dir=data_dir,
            worker_address=f"127.0.0.1:{worker.port}", **gateway_overrides,
        )
        client = None if worker_over_grpc else InProcessWorkerClient(worker.serving,
                                                                      settings.worker_timeout_s)
        gateway = await start_gateway(settings, dim=worker.dim, worker=client)
    except BaseException:
        await worker.stop(0)
        raise
    return Stack(worker=worker, gateway=gateway)
