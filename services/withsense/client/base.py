"""What the blocking and the asyncio client share: settings, key, requests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from withsense.client.channel import ChannelSettings
from withsense.v1 import search_pb2 as pb

DEFAULT_TARGET = "127.0.0.1:50051"


class ClientBase:
    def __init__(self, target: str = DEFAULT_TARGET, *, api_key: str | None = None,
                 api_key_file: Path | None = None, tls: bool = False, tls_ca: Path | None = None,
                 timeout_s: float = 30.0, retries: bool = True,
                 options: Sequence[tuple[str, object]] = ()) -> None:
        """`target` HOST:PORT; `api_key` or `api_key_file` (first non-comment line); TLS with the
        system's roots (`tls=True`) or a CA file (`tls_ca`); `timeout_s`: each call's deadline
        unless the call gives its own; `retries`: UNAVAILABLE retried on idempotent calls."""
        self.settings = ChannelSettings(target=target, api_key=api_key, api_key_file=api_key_file,
                                        tls=tls, tls_ca=tls_ca, retries=retries,
                                        options=tuple(options))
        self.metadata = self.settings.metadata()
        self.timeout_s = timeout_s

    @property
    def target(self) -> str:
        return self.settings.target

    def _timeout(self, timeout_s: float | None) -> float:
        return self.timeout_s if timeout_s is None else timeout_s


def search_request(query: str, top_k: int, region: str, min_score: float,
                   filters: Mapping[str, str] | None) -> pb.SearchRequest:
    return pb.SearchRequest(query=query, top_k=top_k, region=region, min_score=min_score,
                            filters=dict(filters or {}))


def delete_request(image_ids: Sequence[str], uris: Sequence[str]) -> pb.DeleteImagesRequest:
    return pb.DeleteImagesRequest(image_ids=list(image_ids), uris=list(uris))
