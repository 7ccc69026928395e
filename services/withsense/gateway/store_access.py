"""The gateway's calls to the vector store: each in a thread (the event loop keeps answering other
calls while the engine works), under the store timeout, its errors turned into the gateway's.

Search and indexing both go through one `StoreAccess`, so a failed write stops every kind of
call until a restart settles it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from withsense.gateway.errors import DeadlineExceeded, Unavailable
from withsense.store import StoreError, VectorStore

log = logging.getLogger(__name__)
T = TypeVar("T")


class StoreAccess:
    def __init__(self, store: VectorStore, timeout_s: float) -> None:
        self.store = store
        self.timeout_s = timeout_s
        # Set when a store write failed midway: what the store holds is then unknown until the
        # catalogue settles it at the next start, so nothing is served (see `write`).
        self.failure = ""
        self.on_failure: Callable[[], Awaitable[None]] | None = None

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if self.failure:
            raise Unavailable(self.failure)
        try:
            return await asyncio.wait_for(asyncio.to_thread(fn, *args, **kwargs), self.timeout_s)
        except TimeoutError:
            raise DeadlineExceeded(
                f"vector store ({self.store.backend}) did not answer within {self.timeout_s} s"
            ) from None
        except StoreError as exc:
            raise Unavailable(f"vector store ({self.store.backend}): {exc}") from None

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        """A write (upsert, delete). If it fails or times out, part of it may have reached the
        store, so an error answer would disagree with what is searchable: the gateway stops
        serving instead (health NOT_SERVING) until a restart settles the write."""
        try:
            return await self.call(fn, *args)
        except (Unavailable, DeadlineExceeded) as exc:
            if self.failure:
                raise
            self.failure = (
                f"{exc}; the gateway stopped serving because the store may hold part of this "
                "write: restart it once the data folder is writable (the write is then settled "
                "from the store's catalogue) and send the photos again (indexing is idempotent)"
            )
            log.error("store write failed; not serving until restarted: %s", exc)
            if self.on_failure is not None:
                await self.on_failure()
            raise Unavailable(self.failure) from None
