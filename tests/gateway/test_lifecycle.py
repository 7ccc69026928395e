"""The gateway's lifecycle is the worker's: NOT_SERVING as soon as it stops, a set grace."""

from __future__ import annotations

import asyncio

import grpc
import pytest

pytestmark = pytest.mark.slow


def test_stop_reports_not_serving_to_watchers_first(start_gateway, background_loop):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    gateway = start_gateway(grace_seconds=3.0)
    assert gateway.grace_seconds == 3.0
    channel = grpc.insecure_channel(gateway.address)
    watch = health_pb2_grpc.HealthStub(channel).Watch(
        health_pb2.HealthCheckRequest(service="withsense.v1.SearchService"), timeout=30)
    assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
    stopping = asyncio.run_coroutine_threadsafe(gateway.stop(), background_loop.loop)
    assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
    stopping.result(30)
    watch.cancel()
    channel.close()
