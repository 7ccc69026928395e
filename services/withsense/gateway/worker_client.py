"""The gateway's client of the inference worker: deadlines on every call, fast failure.

The channel reconnects with a short backoff, so when a stopped worker comes back the gateway
recovers within a second or two instead of gRPC's default of up to two minutes.
"""

from __future__ import annotations

import grpc
import numpy as np

from withsense.channel import message_options
from withsense.gateway.errors import DeadlineExceeded, GatewayError, InvalidArgument, Unavailable
from withsense.v1 import inference_pb2 as pb
from withsense.v1 import inference_pb2_grpc as pb_grpc

CHANNEL_OPTIONS = [
    # With several workers behind a headless Service (dns:///worker:50052), spread the calls.
    ("grpc.lb_policy_name", "round_robin"),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    *message_options(),
]


def _vectors(message_vectors) -> np.ndarray:
    return np.asarray([list(v.values) for v in message_vectors], dtype=np.float32)


def _pb_vector(vector: np.ndarray) -> pb.Vector:
    return pb.Vector(values=vector.astype(np.float32).tolist())


class WorkerClient:
    def __init__(self, address: str, timeout_s: float) -> None:
        self.address = address
        self.timeout_s = timeout_s
        self._channel = grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS)
        self._stub = pb_grpc.InferenceServiceStub(self._channel)

    async def close(self) -> None:
        await self._channel.close()

    def _translate(self, error: grpc.aio.AioRpcError, what: str) -> GatewayError:
        code = error.code()
        if code == grpc.StatusCode.INVALID_ARGUMENT:
            return InvalidArgument(error.details() or what)
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return DeadlineExceeded(
                f"inference worker at {self.address} did not answer {what} within {self.timeout_s} s"
            )
        if code == grpc.StatusCode.UNAVAILABLE:
            return Unavailable(
                f"inference worker at {self.address} is unavailable ({what}): try again shortly"
            )
        return GatewayError(f"inference worker failed on {what}: {code.name} {error.details()}")

    async def embed_texts(self, texts: list[str]) -> tuple[np.ndarray, str]:
        try:
            reply = await self._stub.EmbedText(pb.EmbedTextRequest(texts=texts), timeout=self.timeout_s)
        except grpc.aio.AioRpcError as error:
            raise self._translate(error, "EmbedText") from None
        return _vectors(reply.vectors), reply.model_version

    async def embed_images(self, images: list[bytes]) -> np.ndarray:
        try:
            reply = await self._stub.EmbedImages(
                pb.EmbedImagesRequest(images=images), timeout=self.timeout_s * 3
            )
        except grpc.aio.AioRpcError as error:
            raise self._translate(error, "EmbedImages") from None
        return _vectors(reply.vectors)

    async def score(self, query: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        request = pb.ScoreRequest(queries=[pb.ScoreQuery(
            query=_pb_vector(query), candidates=[_pb_vector(c) for c in candidates],
        )])
        try:
            reply = await self._stub.Score(request, timeout=self.timeout_s)
        except grpc.aio.AioRpcError as error:
            raise self._translate(error, "Score") from None
        return np.asarray(reply.results[0].probabilities, dtype=np.float32)

    async def model_info(self) -> pb.GetModelInfoResponse:
        try:
            return await self._stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=self.timeout_s)
        except grpc.aio.AioRpcError as error:
            raise self._translate(error, "GetModelInfo") from None
