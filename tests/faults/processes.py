"""Real service processes for the fault tests: start, wait for SERVING, kill -9, restart.

Every wait is bounded; a process that does not come up fails the test with the tail of its log.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

#: Loading the model in a fresh process takes ~10 s on a quiet machine, over a minute on a
#: busy one; this bounds it.
START_TIMEOUT_S = float(os.environ.get("WITHSENSE_FAULT_START_TIMEOUT_S", "240"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serving(port: int, timeout: float = 1.0) -> bool:
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(),
                                                              timeout=timeout)
        return reply.status == health_pb2.HealthCheckResponse.SERVING
    except grpc.RpcError:
        return False


@dataclass
class Service:
    """One `withsense serve ROLE` process on a fixed port, restartable."""

    role: str
    port: int
    log: Path
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen | None = None

    def start(self) -> Service:
        command = [sys.executable, "-m", "withsense.cli.main", "serve", self.role,
                   "--host", "127.0.0.1", "--port", str(self.port), *self.args]
        # The gateway's HTTP port on a free one, not the default 8080: tests run side by side
        # (make test's two workers), and a second server on 8080 would not start.
        env = {**os.environ, "WITHSENSE_HTTP_PORT": "0", **self.env}
        with self.log.open("a") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                            env=env, start_new_session=True)
        return self

    def wait_serving(self, timeout: float = START_TIMEOUT_S) -> Service:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"{self.role} exited with {self.process.returncode}:\n{self.tail()}")
            if serving(self.port):
                return self
            time.sleep(0.2)
        raise AssertionError(f"{self.role} not SERVING within {timeout} s:\n{self.tail()}")

    def wait_exit(self, timeout: float = START_TIMEOUT_S) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def kill9(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(30)

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"
