"""Container HEALTHCHECK: asks a gRPC server's grpc.health.v1 service whether it is SERVING.

Usage: python healthcheck.py HOST:PORT [SERVICE] ; exit 0 when SERVING, 1 otherwise.
Kubernetes does not use this (it has native gRPC probes); docker and compose do.
"""

from __future__ import annotations

import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def check(target: str, service: str = "", timeout_s: float = 3.0) -> bool:
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout_s)
        except grpc.RpcError as exc:
            print(f"{target}: {exc.code().name}: {exc.details()}", file=sys.stderr)
            return False
    serving = reply.status == health_pb2.HealthCheckResponse.SERVING
    if not serving:
        name = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
        print(f"{target}: {name}", file=sys.stderr)
    return serving


def main(argv: list[str]) -> int:
    if not argv or len(argv) > 2:
        print("usage: healthcheck.py HOST:PORT [SERVICE]", file=sys.stderr)
        return 2
    return 0 if check(argv[0], argv[1] if len(argv) > 1 else "") else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
