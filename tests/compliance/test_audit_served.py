"""The audit log reaches the operator of a server started as deployed: `withsense serve worker`
and `withsense serve gateway` as real processes, configured only by WITHSENSE_* variables (as the
Dockerfiles and Kubernetes manifests start them), their output read back as a log shipper would."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.helpers import search_stub

pytestmark = pytest.mark.slow
SALT = "test-salt-7f3a"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve(role: str, env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("w") as out:
        return subprocess.Popen([sys.executable, "-m", "withsense.cli.main", "serve", role],
                                stdout=out, stderr=subprocess.STDOUT, env=env)


def _wait_serving(address: str, process: subprocess.Popen, log: Path, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"server exited {process.returncode}:\n{log.read_text()}")
            try:
                reply = health.Check(health_pb2.HealthCheckRequest(), timeout=2)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.5)
    pytest.fail(f"{address} not serving after {timeout} s:\n{log.read_text()}")


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def _audit_lines(log: Path) -> list[dict]:
    lines = [line for line in log.read_text().splitlines() if line.startswith("{")]
    return [json.loads(line) for line in lines]


def test_served_gateway_writes_salted_audit_lines(tmp_path: Path) -> None:
    worker_port, gateway_port = _free_port(), _free_port()
    (tmp_path / "salt").write_text(SALT + "\n")
    env = {key: value for key, value in os.environ.items() if not key.startswith("WITHSENSE_")}
    env.update({
        "WITHSENSE_WORKER_HOST": "127.0.0.1", "WITHSENSE_WORKER_PORT": str(worker_port),
        "WITHSENSE_HOST": "127.0.0.1", "WITHSENSE_PORT": str(gateway_port),
        "WITHSENSE_HTTP_PORT": "0",  # a free port: other tests' servers may hold 8080
        "WITHSENSE_WORKER_ADDRESS": f"127.0.0.1:{worker_port}",
        "WITHSENSE_DATA_DIR": str(tmp_path / "data"), "WITHSENSE_RESTRICTED_REGIONS": "DE",
        "WITHSENSE_AUDIT_SALT_FILE": str(tmp_path / "salt"), "HF_HUB_OFFLINE": "1",
    })
    worker_log, gateway_log = tmp_path / "worker.log", tmp_path / "gateway.log"
    worker = _serve("worker", env, worker_log)
    try:
        _wait_serving(f"127.0.0.1:{worker_port}", worker, worker_log)
        gateway = _serve("gateway", env, gateway_log)
        try:
            _wait_serving(f"127.0.0.1:{gateway_port}", gateway, gateway_log)
            from withsense.v1 import search_pb2 as pb

            stub = search_stub(f"127.0.0.1:{gateway_port}")
            blocked = stub.Search(pb.SearchRequest(query="a boy on a swing", region="DE", top_k=3))
            stub.Search(pb.SearchRequest(query="a red car", region="US", top_k=3))
        finally:
            _stop(gateway)
    finally:
        _stop(worker)

    text = gateway_log.read_text()
    assert "INFO" in text and "gateway serving on" in text, text  # INFO is the server default
    assert "a boy on a swing" not in text and "unsalted" not in text
    searches = [r for r in _audit_lines(gateway_log) if r["event"] == "search"]
    assert [r["decision"] for r in searches] == ["blocked", "allowed"], text
    assert blocked.blocked and searches[0]["rule"] == "lexicon:child" and searches[0]["region"] == "DE"
    salted = hashlib.sha256((SALT + "a boy on a swing").encode()).hexdigest()[:16]
    assert searches[0]["query_sha256"] == salted
