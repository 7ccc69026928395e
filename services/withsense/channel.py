"""A client's connection to a With Sense gRPC service: the channel (plaintext or TLS, with the
message limits both services accept) and the API key it sends."""

from __future__ import annotations

from pathlib import Path

import grpc

from withsense.config.defaults import MAX_MESSAGE_BYTES


def message_options(limit: int = MAX_MESSAGE_BYTES) -> list[tuple[str, int]]:
    """gRPC channel options of the send and receive message limits."""
    return [("grpc.max_send_message_length", limit), ("grpc.max_receive_message_length", limit)]


def client_channel(target: str, tls_ca: Path | None = None) -> grpc.aio.Channel:
    options = message_options()
    if tls_ca is not None:
        credentials = grpc.ssl_channel_credentials(Path(tls_ca).read_bytes())
        return grpc.aio.secure_channel(target, credentials, options=options)
    return grpc.aio.insecure_channel(target, options=options)


def bearer(api_key: str | None) -> tuple:
    """The call metadata that carries an API key (none without one)."""
    return (("authorization", f"Bearer {api_key}"),) if api_key else ()


def read_api_key(path: Path) -> str | None:
    """The first line of a key file (a mounted secret) that is neither empty nor a # comment."""
    lines = [line.strip() for line in Path(path).read_text().splitlines()]
    keys = [line for line in lines if line and not line.startswith("#")]
    return keys[0] if keys else None
