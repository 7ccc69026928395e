"""The gateway's client of the inference worker: deadlines on every call, fast failure.

The channel reconnects with a short backoff, so when a stopped worker comes back the gateway
recovers within a second or two instead of gRPC's default of up to two minutes. Every worker
call is idempotent (embeddings and scores are pure functions of the request), so gRPC's retry
policy retries UNAVAILABLE: with several workers behind the round-robin channel, a call that
hit a worker that just died goes to another one and the client never sees the error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import grpc
import numpy as np

from withsense.channel import message_options
from withsense.gateway.errors import DeadlineExceeded, GatewayError, InvalidArgument, Unavailable
from withsense.model.language import ENGLISH, PATH_FROM_WIRE, PATH_TO_WIRE, TextPath
from withsense.v1 import inference_pb2 as pb
from withsense.v1 import inference_pb2_grpc as pb_grpc
from withsense.worker_token import call_metadata

# Indexing's calls (a chunk's photos, its descriptions) carry many items and queue behind the
# other chunks being prepared: they get this many times worker_timeout_s.
BULK_DEADLINE_FACTOR = 3
RETRY_POLICY = {
    "maxAttempts": 4,
    "initialBackoff": "0.05s",
    "maxBackoff": "1s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}
SERVICE_CONFIG = json.dumps({"methodConfig": [{
    "name": [{"service": "withsense.v1.InferenceService"}],
    "retryPolicy": RETRY_POLICY,
}]})

CHANNEL_OPTIONS = [
    ("grpc.enable_retries", 1),
    ("grpc.service_config", SERVICE_CONFIG),
    # With several workers behind a headless Service (dns:///worker:50052), spread the calls.
    ("grpc.lb_policy_name", "round_robin"),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    *message_options(),
]


@dataclass(frozen=True)
class EmbeddedImages:
    """EmbedImages' answer: unit vectors, and p(child) per photo from the visual minor detector
    (None when the worker's model has none: the caller withholds those photos)."""

    vectors: np.ndarray
    minor: np.ndarray | None
    minor_version: str


@dataclass(frozen=True)
class EmbeddedTexts:
    """An EmbedText answer: joint vectors, model version, each text's path, and the check
    vectors of the semantic child check (None when not asked for or not sent)."""

    vectors: np.ndarray
    model_version: str
    paths: list[TextPath]
    check_vectors: list[np.ndarray] | None


def _vectors(message_vectors) -> np.ndarray:
    return np.asarray([list(v.values) for v in message_vectors], dtype=np.float32)


def _pb_vector(vector: np.ndarray) -> pb.Vector:
    return pb.Vector(values=vector.astype(np.float32).tolist())


class WorkerClient:
    def __init__(self, address: str, timeout_s: float, token: str = "") -> None:
        self.address = address
        self.timeout_s = timeout_s
        self._metadata = call_metadata(token)
        self._channel = grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS)
        self._stub = pb_grpc.InferenceServiceStub(self._channel)

    async def close(self) -> None:
        await self._channel.close()

    def _translate(self, error: grpc.aio.AioRpcError, what: str) -> GatewayError:
        code = error.code()
        if code == grpc.StatusCode.INVALID_ARGUMENT:
            return InvalidArgument(error.details() or what)
        if code == grpc.StatusCode.RESOURCE_EXHAUSTED:  # a message over the size limit
            return InvalidArgument(f"{what}: {error.details()}")
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return DeadlineExceeded(
                f"inference worker at {self.address} did not answer {what} within {self.timeout_s} s"
            )
        if code == grpc.StatusCode.UNAVAILABLE:
            return Unavailable(
                f"inference worker at {self.address} is unavailable ({what}): try again shortly"
            )
        return GatewayError(f"inference worker failed on {what}: {code.name} {error.details()}")

    async def embed_texts(self, texts: list[str], path: TextPath | None = None, *,
                          bulk: bool = False) -> tuple[np.ndarray, str]:
        vectors, version, _ = await self.embed_texts_routed(texts, path, bulk=bulk)
        return vectors, version

    async def _rpc(self, method: str, request: Any, timeout: float) -> Any:
        """One call of the InferenceService; every failure becomes a GatewayError."""
        try:
            return await getattr(self._stub, method)(request, timeout=timeout, metadata=self._metadata)
        except grpc.aio.AioRpcError as error:
            raise self._translate(error, method) from None

    async def embed_texts_routed(
        self, texts: list[str], path: TextPath | None = None, *, bulk: bool = False,
    ) -> tuple[np.ndarray, str, list[TextPath]]:
        """(vectors, model version, the path each text took); ``path`` None: by script.
        ``bulk``: an indexing call (descriptions, queued with the photos of the chunks being
        prepared), given the deadline of EmbedImages."""
        embedded = await self.embed_texts_checked(texts, path, check_vectors=False, bulk=bulk)
        return embedded.vectors, embedded.model_version, embedded.paths

    async def embed_texts_checked(
        self, texts: list[str], path: TextPath | None = None, *, check_vectors: bool = True,
        bulk: bool = False,
    ) -> EmbeddedTexts:
        """The texts' vectors and paths and, when asked for, their check vectors (what the
        semantic child check compares; ``check_vectors`` None in the answer when the worker
        sent none for every text: the check cannot run)."""
        request = pb.EmbedTextRequest(texts=texts, path=PATH_TO_WIRE[path] if path else pb.TEXT_PATH_AUTO,
                                      check_vectors=check_vectors)
        timeout = self.timeout_s * BULK_DEADLINE_FACTOR if bulk else self.timeout_s
        reply = await self._rpc("EmbedText", request, timeout)
        paths = [PATH_FROM_WIRE.get(p) for p in reply.paths]
        if len(paths) != len(texts) or any(p is None for p in paths):
            # A worker that does not say which path it took (older build): only English exists.
            paths = [ENGLISH] * len(texts)
        check = None
        if check_vectors and len(reply.check_vectors) == len(texts):
            check = [np.asarray(v.values, dtype=np.float32) for v in reply.check_vectors]
        return EmbeddedTexts(_vectors(reply.vectors), reply.model_version, paths, check)  # type: ignore[arg-type]

    async def embed_images(self, images: list[bytes]) -> EmbeddedImages:
        reply = await self._rpc("EmbedImages", pb.EmbedImagesRequest(images=images),
                                self.timeout_s * BULK_DEADLINE_FACTOR)
        minor = None
        if len(reply.minor_probabilities) == len(images):  # else: no detector, or a short reply
            minor = np.asarray(reply.minor_probabilities, dtype=np.float32)
        return EmbeddedImages(_vectors(reply.vectors), minor, reply.minor_detector_version)

    async def score(self, query: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        request = pb.ScoreRequest(queries=[pb.ScoreQuery(
            query=_pb_vector(query), candidates=[_pb_vector(c) for c in candidates],
        )])
        reply = await self._rpc("Score", request, self.timeout_s)
        return np.asarray(reply.results[0].probabilities, dtype=np.float32)

    async def model_info(self) -> pb.GetModelInfoResponse:
        reply: pb.GetModelInfoResponse = await self._rpc(
            "GetModelInfo", pb.GetModelInfoRequest(), self.timeout_s)
        return reply
