"""API keys with roles: `authorization: Bearer <key>` metadata on every SearchService call.

Two roles, from separate key lists (and separate mounted files): *search* keys may search and
read stats; *index* keys may also index and delete. `check_access` is the one decision, a plain
function that the gRPC interceptor and the HTTP API both call. A key list that is configured
but holds no key (`" , ,"`, a file of comments only) refuses to start rather than turning auth
off. Health checking and reflection stay open so probes and tools work without a key.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

import grpc

PROTECTED_PREFIX = "/withsense.v1.SearchService/"


class Role(IntEnum):
    """What a key may do; a higher role may do everything a lower one may."""

    SEARCH = 1
    INDEX = 2


#: The role each SearchService method needs (unknown methods need the highest).
METHOD_ROLES = {"Search": Role.SEARCH, "GetStats": Role.SEARCH,
                "IndexImages": Role.INDEX, "DeleteImages": Role.INDEX}


@dataclass(frozen=True)
class Denied:
    """Why a call is refused: UNAUTHENTICATED (no or unknown key) or PERMISSION_DENIED."""

    code: grpc.StatusCode
    message: str


@dataclass(frozen=True)
class KeyRing:
    keys: tuple[tuple[bytes, Role], ...] = ()

    @property
    def required(self) -> bool:
        return bool(self.keys)

    def role_of(self, token: str) -> Role | None:
        """The highest role of a key; every key is compared (constant time per key)."""
        found = [role for key, role in self.keys if hmac.compare_digest(token.encode(), key)]
        return max(found, default=None)


def check_access(ring: KeyRing, authorization: str | None, needed: Role) -> Denied | None:
    """None when a call carrying this `authorization` value may do what `needed` allows."""
    if not ring.required:
        return None
    if not authorization:
        return Denied(grpc.StatusCode.UNAUTHENTICATED,
                      "missing API key: send metadata 'authorization: Bearer <key>'")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return Denied(grpc.StatusCode.UNAUTHENTICATED,
                      "malformed authorization metadata: expected 'Bearer <key>'")
    role = ring.role_of(token.strip())
    if role is None:
        return Denied(grpc.StatusCode.UNAUTHENTICATED, "invalid API key")
    if role < needed:
        return Denied(grpc.StatusCode.PERMISSION_DENIED,
                      f"this API key may {role.name.lower()} only; {needed.name.lower()} needs a "
                      "key from WITHSENSE_INDEX_API_KEYS(_FILE)")
    return None


def _keys(setting: str, keys: list[str] | None, keys_file: Path | None) -> list[str]:
    """Keys from config plus one per line of a mounted secret (blank lines and # comments
    skipped). ValueError when the list or file is given but holds no key."""
    loaded = [k.strip() for k in keys or [] if k.strip()]
    if keys and not loaded:
        raise ValueError(f"WITHSENSE_{setting} is set but holds no key: remove it or give keys")
    if keys_file is not None:
        try:
            lines = Path(keys_file).read_text().splitlines()
        except OSError as exc:
            raise ValueError(f"WITHSENSE_{setting}_FILE {keys_file}: {exc.strerror}") from exc
        from_file = [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]
        if not from_file:
            raise ValueError(f"WITHSENSE_{setting}_FILE {keys_file} holds no key (only blank lines "
                             "or comments): add keys or unset it")
        loaded += from_file
    return loaded


def load_key_ring(search_keys: list[str] | None, search_file: Path | None,
                  index_keys: list[str] | None = None, index_file: Path | None = None) -> KeyRing:
    pairs: Iterable[tuple[str, Role]] = [
        *((k, Role.SEARCH) for k in _keys("API_KEYS", search_keys, search_file)),
        *((k, Role.INDEX) for k in _keys("INDEX_API_KEYS", index_keys, index_file)),
    ]
    return KeyRing(tuple((k.encode(), role) for k, role in pairs))


def _abort_handler(denied: Denied, streaming: bool) -> grpc.RpcMethodHandler:
    async def abort(request_or_iterator, context: grpc.aio.ServicerContext):
        await context.abort(denied.code, denied.message)

    if streaming:
        return grpc.stream_unary_rpc_method_handler(abort)
    return grpc.unary_unary_rpc_method_handler(abort)


class ApiKeyInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, ring: KeyRing) -> None:
        self._ring = ring

    def check(self, method: str, metadata: tuple) -> Denied | None:
        """None when a call of `method` (gRPC full name) with this metadata may go on, else why
        not. The HTTP API asks the same question with the name of the method it stands for."""
        if not method.startswith(PROTECTED_PREFIX):
            return None
        values = [str(v) for k, v in metadata if k == "authorization"]
        return check_access(self._ring, values[0] if values else None,
                            METHOD_ROLES.get(method[len(PROTECTED_PREFIX):], max(Role)))

    async def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method = handler_call_details.method
        denied = self.check(method, tuple(handler_call_details.invocation_metadata or ()))
        if denied is None:
            return await continuation(handler_call_details)
        return _abort_handler(denied, streaming=method.endswith("/IndexImages"))
