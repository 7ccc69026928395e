"""Request validation: protobuf messages in, typed and checked parameters out.

Every error names the offending field and the limit, so a client can fix the request.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from withsense.config import GatewaySettings
from withsense.gateway.errors import InvalidArgument
from withsense.store.base import REQUIRED_PAYLOAD_KEYS
from withsense.v1 import search_pb2 as pb

FILTER_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
# Payload fields the gateway owns (every record's required keys): clients may not set or filter
# on them.
RESERVED_FIELDS = frozenset(REQUIRED_PAYLOAD_KEYS)
MAX_DESCRIPTIONS = 50
MAX_DESCRIPTION_CHARS = 2000
MAX_URI_CHARS = 1024


@dataclass(frozen=True)
class SearchParams:
    query: str
    top_k: int
    region: str
    min_score: float
    filters: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class IndexItem:
    image: bytes
    uri: str
    descriptions: tuple[str, ...]
    payload: dict[str, str]


def _check_filters(filters: dict[str, str], name: str) -> dict[str, str]:
    for key, value in filters.items():
        if not FILTER_KEY.match(key):
            raise InvalidArgument(
                f"{name} key {key!r} must be 1-64 letters, digits or '_', starting with a letter"
            )
        if key in RESERVED_FIELDS:
            raise InvalidArgument(f"{name} key {key!r} is reserved by the service")
        if len(value) > 256:
            raise InvalidArgument(f"{name}[{key!r}] is {len(value)} characters; the limit is 256")
    return dict(filters)


def search_params(request: pb.SearchRequest, settings: GatewaySettings) -> SearchParams:
    query = request.query.strip()
    if not query:
        raise InvalidArgument("query is empty: describe the scene you are looking for")
    if len(request.query) > settings.max_query_chars:
        raise InvalidArgument(
            f"query is {len(request.query)} characters; the limit is {settings.max_query_chars}"
        )
    top_k = request.top_k
    if not 1 <= top_k <= settings.max_top_k:
        raise InvalidArgument(f"top_k is {request.top_k}; it must be 1..{settings.max_top_k}")
    if not 0.0 <= request.min_score <= 1.0:
        raise InvalidArgument(f"min_score is {request.min_score}; it must be in [0, 1]")
    return SearchParams(
        query=query, top_k=top_k, region=request.region.strip(), min_score=request.min_score,
        filters=_check_filters(dict(request.filters), "filters"),
    )


def index_item(request: pb.IndexImagesRequest, position: int) -> IndexItem:
    """Checks one streamed photo; `position` names it in errors when it has no uri."""
    name = request.uri or f"item {position}"
    if not request.uri:
        raise InvalidArgument(f"{name}: uri is empty; give the path or name the photo is indexed under")
    if len(request.uri) > MAX_URI_CHARS:
        raise InvalidArgument(f"{name}: uri is {len(request.uri)} characters; limit {MAX_URI_CHARS}")
    if not request.image:
        raise InvalidArgument(f"{name}: image is empty")
    if len(request.descriptions) > MAX_DESCRIPTIONS:
        raise InvalidArgument(
            f"{name}: {len(request.descriptions)} descriptions; the limit is {MAX_DESCRIPTIONS}"
        )
    for i, text in enumerate(request.descriptions):
        if len(text) > MAX_DESCRIPTION_CHARS:
            raise InvalidArgument(
                f"{name}: descriptions[{i}] is {len(text)} characters; limit {MAX_DESCRIPTION_CHARS}"
            )
    return IndexItem(
        image=request.image, uri=request.uri,
        descriptions=tuple(d.strip() for d in request.descriptions if d.strip()),
        payload=_check_filters(dict(request.payload), "payload"),
    )
