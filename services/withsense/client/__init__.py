"""`withsense.client`: the Python client of the With Sense gateway.

    from withsense.client import SearchClient

    with SearchClient("127.0.0.1:50051", api_key="...") as client:
        result = client.search("A man is crossing a mountain pass on a metal bridge", region="US")
        for hit in result.hits:
            print(hit.uri, round(hit.score, 3), hit.disclaimer if hit.withheld else "")
        client.index_folder("photos/")

`AsyncSearchClient` has the same methods as coroutines. Both speak TLS (`tls=True` or
`tls_ca=PATH`), send an API key (`api_key=` or `api_key_file=`), put a deadline on every call
(`timeout_s`), and retry idempotent calls on UNAVAILABLE through gRPC's retry policy. This package
is the only code that builds channels to the gateway or its auth metadata.
"""

from withsense.client.aio import AsyncSearchClient
from withsense.client.base import DEFAULT_TARGET
from withsense.client.channel import ChannelSettings, read_api_key
from withsense.client.folder import IMAGE_SUFFIXES, find_photos
from withsense.client.sync import SearchClient
from withsense.client.types import Hit, IndexReport, SearchResult, Stats

__all__ = [
    "DEFAULT_TARGET",
    "IMAGE_SUFFIXES",
    "AsyncSearchClient",
    "ChannelSettings",
    "Hit",
    "IndexReport",
    "SearchClient",
    "SearchResult",
    "Stats",
    "find_photos",
    "read_api_key",
]
