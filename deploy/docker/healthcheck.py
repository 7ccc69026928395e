"""Container HEALTHCHECK: asks a gRPC server's grpc.health.v1 service whether it is SERVING.

Usage: python healthcheck.py HOST:PORT [SERVICE] ; exit 0 when SERVING, 1 otherwise.
Kubernetes does not use this (it has native gRPC probes); docker and compose do.
"""

from __future__ import annotations

import sys

import grpc
from withsense.client import SearchClient


def check(target: str, service: str = "", timeout_s: float = 3.0) -> bool:
    # No retries: a health check reports what it sees now; docker retries by its own settings.
    with SearchClient(target, retries=False, timeout_s=timeout_s) as client:
        try:
            status = client.health(service)
        except grpc.RpcError as exc:
            print(f"{target}: {exc.code().name}: {exc.details()}", file=sys.stderr)
            return False
    if status != "SERVING":
        print(f"{target}: {status}", file=sys.stderr)
    return status == "SERVING"


def main(argv: list[str]) -> int:
    if not argv or len(argv) > 2:
        print("usage: healthcheck.py HOST:PORT [SERVICE]", file=sys.stderr)
        return 2
    return 0 if check(argv[0], argv[1] if len(argv) > 1 else "") else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
