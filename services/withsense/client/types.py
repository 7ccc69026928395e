"""What the client returns: plain dataclasses made from the gateway's protobuf replies."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from google.protobuf import json_format

from withsense.v1 import search_pb2 as pb


def _extra(message, known: set[str]) -> dict[str, Any]:
    """Fields of `message` this client version does not name (e.g. added to the proto later)."""
    data = json_format.MessageToDict(message, preserving_proto_field_name=True)
    return {key: value for key, value in data.items() if key not in known}


@dataclass(frozen=True)
class Hit:
    """One search hit. A withheld hit has no image_id or uri, only the disclaimer and reason."""

    image_id: str
    uri: str
    score: float
    withheld: bool = False
    disclaimer: str = ""
    reason: str = ""
    #: What the score rests on, strongest first: "pixels", "descriptions", "keywords".
    evidence: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_proto(cls, hit: pb.SearchHit) -> Hit:
        names = {f.name for f in fields(cls)} - {"extra"}
        return cls(image_id=hit.image_id, uri=hit.uri, score=hit.score, withheld=hit.withheld,
                   disclaimer=hit.disclaimer, reason=hit.reason, evidence=tuple(hit.evidence),
                   extra=_extra(hit, names))


@dataclass(frozen=True)
class SearchResult:
    hits: list[Hit]
    blocked: bool
    disclaimer: str
    reason: str
    model_version: str
    restricted_region: bool

    @classmethod
    def from_proto(cls, reply: pb.SearchResponse) -> SearchResult:
        return cls(hits=[Hit.from_proto(h) for h in reply.hits], blocked=reply.blocked,
                   disclaimer=reply.disclaimer, reason=reply.reason,
                   model_version=reply.model_version, restricted_region=reply.restricted_region)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class IndexReport:
    indexed: int = 0
    unchanged: int = 0
    flagged: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    image_ids: list[str] = field(default_factory=list)
    #: Flags that a new detector (or operating point) changed on photos already stored.
    flags_changed: int = 0
    flagged_by_description: int = 0
    flagged_by_sight: int = 0

    def add_reply(self, reply: pb.IndexImagesResponse) -> None:
        self.indexed += reply.indexed
        self.unchanged += reply.unchanged
        self.flagged += reply.flagged
        self.flags_changed += reply.flags_changed
        self.flagged_by_description += reply.flagged_by_description
        self.flagged_by_sight += reply.flagged_by_sight
        self.failures += [(f.uri, f.reason) for f in reply.failures]
        self.image_ids += list(reply.image_ids)

    def to_dict(self) -> dict[str, Any]:
        return {"indexed": self.indexed, "unchanged": self.unchanged, "flagged": self.flagged,
                "flagged_by_description": self.flagged_by_description,
                "flagged_by_sight": self.flagged_by_sight, "flags_changed": self.flags_changed,
                "failed": len(self.failures),
                "failures": [{"uri": u, "reason": r} for u, r in self.failures]}


@dataclass(frozen=True)
class Stats:
    images: int
    flagged: int
    store_backend: str
    model_version: str
    restricted_regions: list[str]

    @classmethod
    def from_proto(cls, reply: pb.GetStatsResponse) -> Stats:
        return cls(images=reply.images, flagged=reply.flagged, store_backend=reply.store_backend,
                   model_version=reply.model_version,
                   restricted_regions=list(reply.restricted_regions))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
