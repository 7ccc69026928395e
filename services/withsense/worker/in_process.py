"""The gateway's worker client when both run in one process (`withsense serve all`, the demo).

Over loopback gRPC a search's one worker call costs protobuf encoding twice, HTTP/2 framing and
grpc's threads on both sides, all in the same process and under the same GIL; here the gateway
awaits the worker's serving logic (`WorkerServing`: the same batchers, the same model thread)
directly. Requests and replies stay the protobuf messages of the RPCs, so validation, limits
and replies are the worker's own, and the worker's metrics count each call as the servicer
does. The worker keeps serving gRPC on its port for other clients. A gateway in another process
(Docker, Kubernetes) keeps using `WorkerClient` over gRPC.

Measured: benchmarks/bench_worker_hop.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from withsense.gateway.errors import DeadlineExceeded, GatewayError, InvalidArgument, Unavailable
from withsense.gateway.worker_client import WorkerClient
from withsense.v1 import inference_pb2 as pb
from withsense.worker.batching import WorkerUnavailable
from withsense.worker.protocol import ValidationError
from withsense.worker.servicer import tracked
from withsense.worker.serving import WorkerServing

IN_PROCESS = "in-process"


class InProcessWorkerClient(WorkerClient):
    """`WorkerClient` over a `WorkerServing` of this process, with the same deadlines and the
    same errors as the gRPC client."""

    def __init__(self, serving: WorkerServing, timeout_s: float) -> None:
        # No channel, no stub, no token: nothing of the gRPC client's set-up applies.
        self.address = IN_PROCESS
        self.timeout_s = timeout_s
        self._serving = serving

    async def close(self) -> None:
        """Nothing to close: the worker's own server stops it."""

    def _method(self, method: str) -> Callable[[Any], Awaitable[Any]]:
        serving = self._serving

        async def model_info(_: pb.GetModelInfoRequest) -> pb.GetModelInfoResponse:
            return serving.model_info()

        methods: dict[str, Callable[[Any], Awaitable[Any]]] = {
            "EmbedText": serving.embed_text, "EmbedImages": serving.embed_images,
            "Score": serving.score, "GetModelInfo": model_info,
        }
        return methods[method]

    async def _rpc(self, method: str, request: Any, timeout: float) -> Any:
        call = self._method(method)
        try:
            async with tracked(self._serving.metrics, method):
                return await asyncio.wait_for(call(request), timeout)
        except ValidationError as exc:
            raise InvalidArgument(str(exc)) from None
        except WorkerUnavailable as exc:
            raise Unavailable(f"inference worker ({IN_PROCESS}) is unavailable ({method}): {exc}") from None
        except TimeoutError:
            raise DeadlineExceeded(
                f"inference worker ({IN_PROCESS}) did not answer {method} within {timeout} s") from None
        except GatewayError:
            raise
        except Exception as exc:  # the worker's log has the traceback (``tracked``)
            raise GatewayError(f"inference worker failed on {method}: INTERNAL "
                               f"({type(exc).__name__}); see the log") from None


__all__ = ["IN_PROCESS", "InProcessWorkerClient"]
