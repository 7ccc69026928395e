"""A search benchmark's servers: worker and gateway as processes of their own, on free ports.

The gateway is handed the gallery's embedded store directly (``search_gallery`` writes no
catalogue: verifying one at start costs ~14 ms a photo). Everything else is the shipped code
path, from whichever source tree ``src`` names, so one run can serve main's checkout beside this
one. Settings go in as WITHSENSE_* environment variables, as in a deployment.

    python benchmarks/search_servers.py gateway --data-dir D --port P --worker 127.0.0.1:W
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Stack:
    """One worker and one gateway process serving one copy of a gallery."""

    name: str
    src: Path  # the `services` folder the processes import withsense from
    data_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    wrap: dict[str, list[str]] = field(default_factory=dict)  # role -> e.g. py-spy record ... --
    processes: list[subprocess.Popen] = field(default_factory=list)
    target: str = ""

    def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(self.src), **self.env}
        log = open(self.data_dir.parent / f"{self.data_dir.name}.log", "ab")  # noqa: SIM115
        worker_port, port = free_port(), free_port()
        python = sys.executable
        self.processes.append(subprocess.Popen(
            [*self.wrap.get("worker", []), python, "-m", "withsense.cli.main", "--log-level",
             "WARNING", "serve", "worker", "--port", str(worker_port)], env=env,
            stdout=log, stderr=subprocess.STDOUT))
        self.processes.append(subprocess.Popen(
            [*self.wrap.get("gateway", []), python, str(HERE), "gateway", "--data-dir",
             str(self.data_dir), "--port", str(port), "--worker", f"127.0.0.1:{worker_port}"],
            env=env, stdout=log, stderr=subprocess.STDOUT))
        self.target = f"127.0.0.1:{port}"

    def wait_ready(self, client, timeout_s: float = 600) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                client.search("warm-up", top_k=1, region="US", timeout_s=10)
                return
            except Exception:  # noqa: BLE001 - not up yet
                if time.monotonic() > deadline or any(p.poll() is not None for p in self.processes):
                    raise RuntimeError(f"stack {self.name} did not come up") from None
                time.sleep(1)

    def stop(self) -> None:
        for process in self.processes:
            process.send_signal(2)  # SIGINT: py-spy writes its profile, servers stop gracefully
        for process in self.processes:
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()


async def _gateway(args) -> None:
    from withsense.config import GatewaySettings
    from withsense.gateway.errors import Unavailable
    from withsense.gateway.server import start_gateway
    from withsense.rpc import wait_for_signal
    from withsense.store import EdgeStore

    settings = GatewaySettings(port=args.port, http_port=-1, data_dir=args.data_dir,
                               worker_address=args.worker)
    deadline = time.monotonic() + 600
    while True:  # the worker loads its model first
        store = EdgeStore(args.data_dir / "store", args.dim)
        try:
            gateway = await start_gateway(settings, dim=args.dim, store=store)
            break
        except Unavailable:
            store.close()
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(1)
    await wait_for_signal()
    await gateway.stop(1)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("role", choices=["gateway"])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--worker", required=True)
    parser.add_argument("--dim", type=int, default=384)
    asyncio.run(_gateway(parser.parse_args()))
