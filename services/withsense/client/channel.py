"""The one place that builds gRPC channels and auth metadata for clients of the gateway.

TLS (system roots, or a CA file for a private CA), an API key from a value or a mounted file,
message limits, and gRPC's own retry policy: idempotent calls that fail with UNAVAILABLE (a
gateway restarting, a pod going away) are retried with backoff by the channel itself, so every
caller gets the same behaviour without a retry loop of its own. IndexImages, a client stream,
is not retried by the channel: re-run it, it is idempotent (photos are keyed by content).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from withsense.channel import message_options
from withsense.config.defaults import MAX_MESSAGE_BYTES

SEARCH_SERVICE = "withsense.v1.SearchService"
HEALTH_SERVICE = "grpc.health.v1.Health"
IDEMPOTENT_METHODS = [
    {"service": SEARCH_SERVICE, "method": "Search"},
    {"service": SEARCH_SERVICE, "method": "GetStats"},
    {"service": SEARCH_SERVICE, "method": "DeleteImages"},
    {"service": HEALTH_SERVICE, "method": "Check"},
]
RETRY_POLICY = {
    "maxAttempts": 4,
    "initialBackoff": "0.1s",
    "maxBackoff": "2s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}
SERVICE_CONFIG = json.dumps({"methodConfig": [{"name": IDEMPOTENT_METHODS, "retryPolicy": RETRY_POLICY}]})


def read_api_key(path: Path) -> str:
    """The first line of a key file (a mounted secret) that is not blank or a # comment."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        raise ValueError(f"API key file {path}: {exc.strerror}") from None
    for line in lines:
        if line.strip() and not line.lstrip().startswith("#"):
            return line.strip()
    raise ValueError(f"API key file {path} holds no key")


@dataclass(frozen=True)
class ChannelSettings:
    """How to reach the gateway. `tls=True` uses the system's roots; `tls_ca` implies TLS."""

    target: str
    api_key: str | None = None
    api_key_file: Path | None = None
    tls: bool = False
    tls_ca: Path | None = None
    retries: bool = True
    options: tuple[tuple[str, object], ...] = field(default_factory=tuple)

    def metadata(self) -> tuple[tuple[str, str], ...]:
        """Call metadata: `authorization: Bearer KEY` when a key is set, else nothing."""
        key = self.api_key or (read_api_key(self.api_key_file) if self.api_key_file else None)
        return (("authorization", f"Bearer {key}"),) if key else ()

    def credentials(self) -> grpc.ChannelCredentials | None:
        if self.tls_ca is not None:
            try:
                return grpc.ssl_channel_credentials(Path(self.tls_ca).read_bytes())
            except OSError as exc:
                raise ValueError(f"TLS CA file {self.tls_ca}: {exc.strerror}") from None
        return grpc.ssl_channel_credentials() if self.tls else None

    def channel_options(self) -> list[tuple[str, object]]:
        # One photo per IndexImages message: up to the limit the gateway accepts.
        options: list[tuple[str, object]] = list(message_options(MAX_MESSAGE_BYTES))
        if self.retries:
            options += [("grpc.enable_retries", 1), ("grpc.service_config", SERVICE_CONFIG)]
        else:
            options += [("grpc.enable_retries", 0)]
        return options + list(self.options)


def open_channel(settings: ChannelSettings) -> grpc.Channel:
    credentials = settings.credentials()
    if credentials is None:
        return grpc.insecure_channel(settings.target, options=settings.channel_options())
    return grpc.secure_channel(settings.target, credentials, options=settings.channel_options())


def open_aio_channel(settings: ChannelSettings) -> grpc.aio.Channel:
    credentials = settings.credentials()
    if credentials is None:
        return grpc.aio.insecure_channel(settings.target, options=settings.channel_options())
    return grpc.aio.secure_channel(settings.target, credentials, options=settings.channel_options())
