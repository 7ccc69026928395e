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
                      **gateway_overrides) -> Stack:
    from withsense.worker.server import start_worker

    worker = await start_worker(
        WorkerSettings(host="127.0.0.1", port=worker_port),
        ModelSettings(model_dir=model_dir, data_dir=data_dir),
    )
    try:
        gateway = await start_gateway(GatewaySettings(
            host=host, port=gateway_port, data_dir=data_dir,
            worker_address=f"127.0.0.1:{worker.port}", **gateway_overrides,
        ), dim=worker.dim)
    except BaseException:
        await worker.stop(0)
        raise
    return Stack(worker=worker, gateway=gateway)
