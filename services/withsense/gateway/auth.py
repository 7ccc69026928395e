"""API keys: `authorization: Bearer <key>` metadata on every SearchService call.

Health checking and reflection stay open so probes and tools work without a key.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc

PROTECTED_PREFIX = "/withsense.v1.SearchService/"


def load_api_keys(keys: list[str], keys_file: Path | None) -> list[str]:
    """Keys from config plus one per line of a mounted secret; blank lines and # comments skipped."""
    loaded = [k for k in keys if k]
    if keys_file is not None:
        try:
            lines = Path(keys_file).read_text().splitlines()
        except OSError as exc:
            raise ValueError(f"WITHSENSE_API_KEYS_FILE {keys_file}: {exc.strerror}") from exc
        loaded += [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    return loaded


def _abort_handler(message: str) -> grpc.RpcMethodHandler:
    async def abort(request, context: grpc.aio.ServicerContext):
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    return grpc.unary_unary_rpc_method_handler(abort)


def _abort_stream_handler(message: str) -> grpc.RpcMethodHandler:
    async def abort(request_iterator, context: grpc.aio.ServicerContext):
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    return grpc.stream_unary_rpc_method_handler(abort)


class ApiKeyInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, keys: list[str]) -> None:
        self._keys = [k.encode() for k in keys]

    def _allowed(self, metadata: tuple) -> str | None:
        """None when the call carries a valid key, else why not."""
        values = [v for k, v in metadata if k == "authorization"]
        if not values:
            return "missing API key: send metadata 'authorization: Bearer <key>'"
        scheme, _, token = str(values[0]).partition(" ")
        if scheme.lower() != "bearer" or not token:
            return "malformed authorization metadata: expected 'Bearer <key>'"
        if not any(hmac.compare_digest(token.encode(), key) for key in self._keys):
            return "invalid API key"
        return None

    def check(self, method: str, metadata: tuple) -> str | None:
        """None when a call of `method` (gRPC full name) with this metadata may go on, else why
        not. The HTTP API asks the same question with the name of the method it stands for."""
        if not method.startswith(PROTECTED_PREFIX):
            return None
        return self._allowed(metadata)

    async def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method = handler_call_details.method
        problem = self.check(method, tuple(handler_call_details.invocation_metadata or ()))
        if problem is None:
            return await continuation(handler_call_details)
        if method.endswith("/IndexImages"):
            return _abort_stream_handler(problem)
        return _abort_handler(problem)
