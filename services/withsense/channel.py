"""The message limits both gRPC services accept, as channel options. Clients of the gateway get
their channels, keys and retries from `withsense.client`; the gateway's channel to the worker is
`withsense.gateway.worker_client`."""

from __future__ import annotations

from withsense.config.defaults import MAX_MESSAGE_BYTES


def message_options(limit: int = MAX_MESSAGE_BYTES) -> list[tuple[str, int]]:
    """gRPC channel options of the send and receive message limits."""
    return [("grpc.max_send_message_length", limit), ("grpc.max_receive_message_length", limit)]
