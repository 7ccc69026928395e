"""The shared secret between gateway and worker: only the gateway may call the worker.

Both read it from `WITHSENSE_WORKER_TOKEN` or, better, a mounted secret file
`WITHSENSE_WORKER_TOKEN_FILE`. The gateway sends `authorization: Bearer <token>` on every
worker call; the worker refuses InferenceService calls without it (UNAUTHENTICATED). Health
checking and reflection stay open for probes. Without a token the worker accepts any caller,
which is only safe on loopback (its default address), so it warns when it listens elsewhere.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc

log = logging.getLogger(__name__)
PROTECTED_PREFIX = "/withsense.v1.InferenceService/"
LOOPBACK = {"127.0.0.1", "::1", "localhost"}


def load_token(token: str, token_file: Path | None) -> str:
    """The token from the setting or the file (one line); ValueError if the file is unusable
    or empty, so a mis-mounted secret never turns the check off."""
    if token_file is None:
        return token.strip()
    try:
        text = Path(token_file).read_text().strip()
    except OSError as exc:
        raise ValueError(f"WITHSENSE_WORKER_TOKEN_FILE {token_file}: {exc.strerror}") from exc
    if not text:
        raise ValueError(f"WITHSENSE_WORKER_TOKEN_FILE {token_file} is empty")
    return text


def call_metadata(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),) if token else ()


def _refuse(message: str, streaming: bool) -> grpc.RpcMethodHandler:
    async def abort(request, context: grpc.aio.ServicerContext):
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    return (grpc.stream_unary_rpc_method_handler(abort) if streaming
            else grpc.unary_unary_rpc_method_handler(abort))


class WorkerTokenInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, token: str) -> None:
        self._expected = f"Bearer {token}".encode()

    async def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        if not details.method.startswith(PROTECTED_PREFIX):
            return await continuation(details)
        sent = [str(v) for k, v in details.invocation_metadata or () if k == "authorization"]
        if sent and hmac.compare_digest(sent[0].encode(), self._expected):
            return await continuation(details)
        return _refuse("the inference worker accepts calls from the gateway only "
                       "(WITHSENSE_WORKER_TOKEN_FILE)", streaming=False)


def interceptors(token: str, host: str) -> list[grpc.aio.ServerInterceptor]:
    if token:
        return [WorkerTokenInterceptor(token)]
    if host not in LOOPBACK:
        log.warning("the worker listens on %s without WITHSENSE_WORKER_TOKEN(_FILE): any caller "
                    "that reaches it may use it", host)
    return []
