"""Test helpers: an event loop in a background thread that hosts the real gRPC servers, so
tests can talk to them with plain synchronous gRPC clients over 127.0.0.1."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import grpc

T = TypeVar("T")

# The customer's data set (tests that need it skip when it is absent). WITHSENSE_SHARED_DATA
# points elsewhere, e.g. from a git worktree that is not a sibling of shared/.
SHARED_DATA = Path(os.environ.get("WITHSENSE_SHARED_DATA",
                                  Path(__file__).resolve().parents[2] / "shared" / "data" / "withsense"))


class BackgroundLoop:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="servers", daemon=True)
        self.thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 300) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def index_requests(photos: dict[str, bytes], extra: dict[str, dict[str, str]] | None = None):
    """IndexImages requests for the built-in gallery, with its descriptions."""
    from withsense.gallery import GALLERY
    from withsense.v1 import search_pb2 as pb

    extra = extra or {}
    for name, data in photos.items():
        yield pb.IndexImagesRequest(image=data, uri=f"{name}.jpg", descriptions=GALLERY[name],
                                    payload=extra.get(name, {}))


def search_stub(address: str, credentials: grpc.ChannelCredentials | None = None):
    from withsense.v1 import search_pb2_grpc

    channel = (grpc.secure_channel(address, credentials) if credentials
               else grpc.insecure_channel(address))
    return search_pb2_grpc.SearchServiceStub(channel)
