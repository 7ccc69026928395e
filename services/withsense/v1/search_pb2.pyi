from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SearchRequest(_message.Message):
    __slots__ = ("query", "top_k", "region", "min_score", "filters")
    class FiltersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    QUERY_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    MIN_SCORE_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    query: str
    top_k: int
    region: str
    min_score: float
    filters: _containers.ScalarMap[str, str]
    def __init__(self, query: _Optional[str] = ..., top_k: _Optional[int] = ..., region: _Optional[str] = ..., min_score: _Optional[float] = ..., filters: _Optional[_Mapping[str, str]] = ...) -> None: ...

class SearchHit(_message.Message):
    __slots__ = ("image_id", "uri", "score", "withheld", "disclaimer", "reason", "evidence")
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    URI_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    WITHHELD_FIELD_NUMBER: _ClassVar[int]
    DISCLAIMER_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    image_id: str
    uri: str
    score: float
    withheld: bool
    disclaimer: str
    reason: str
    evidence: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, image_id: _Optional[str] = ..., uri: _Optional[str] = ..., score: _Optional[float] = ..., withheld: _Optional[bool] = ..., disclaimer: _Optional[str] = ..., reason: _Optional[str] = ..., evidence: _Optional[_Iterable[str]] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("hits", "blocked", "disclaimer", "reason", "model_version", "restricted_region")
    HITS_FIELD_NUMBER: _ClassVar[int]
    BLOCKED_FIELD_NUMBER: _ClassVar[int]
    DISCLAIMER_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    RESTRICTED_REGION_FIELD_NUMBER: _ClassVar[int]
    hits: _containers.RepeatedCompositeFieldContainer[SearchHit]
    blocked: bool
    disclaimer: str
    reason: str
    model_version: str
    restricted_region: bool
    def __init__(self, hits: _Optional[_Iterable[_Union[SearchHit, _Mapping]]] = ..., blocked: _Optional[bool] = ..., disclaimer: _Optional[str] = ..., reason: _Optional[str] = ..., model_version: _Optional[str] = ..., restricted_region: _Optional[bool] = ...) -> None: ...

class IndexImagesRequest(_message.Message):
    __slots__ = ("image", "uri", "descriptions", "payload")
    class PayloadEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    URI_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTIONS_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    image: bytes
    uri: str
    descriptions: _containers.RepeatedScalarFieldContainer[str]
    payload: _containers.ScalarMap[str, str]
    def __init__(self, image: _Optional[bytes] = ..., uri: _Optional[str] = ..., descriptions: _Optional[_Iterable[str]] = ..., payload: _Optional[_Mapping[str, str]] = ...) -> None: ...

class IndexFailure(_message.Message):
    __slots__ = ("uri", "reason")
    URI_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    uri: str
    reason: str
    def __init__(self, uri: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class IndexImagesResponse(_message.Message):
    __slots__ = ("indexed", "unchanged", "failed", "failures", "flagged", "image_ids", "flags_changed", "flagged_by_description", "flagged_by_sight")
    INDEXED_FIELD_NUMBER: _ClassVar[int]
    UNCHANGED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    FAILURES_FIELD_NUMBER: _ClassVar[int]
    FLAGGED_FIELD_NUMBER: _ClassVar[int]
    IMAGE_IDS_FIELD_NUMBER: _ClassVar[int]
    FLAGS_CHANGED_FIELD_NUMBER: _ClassVar[int]
    FLAGGED_BY_DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    FLAGGED_BY_SIGHT_FIELD_NUMBER: _ClassVar[int]
    indexed: int
    unchanged: int
    failed: int
    failures: _containers.RepeatedCompositeFieldContainer[IndexFailure]
    flagged: int
    image_ids: _containers.RepeatedScalarFieldContainer[str]
    flags_changed: int
    flagged_by_description: int
    flagged_by_sight: int
    def __init__(self, indexed: _Optional[int] = ..., unchanged: _Optional[int] = ..., failed: _Optional[int] = ..., failures: _Optional[_Iterable[_Union[IndexFailure, _Mapping]]] = ..., flagged: _Optional[int] = ..., image_ids: _Optional[_Iterable[str]] = ..., flags_changed: _Optional[int] = ..., flagged_by_description: _Optional[int] = ..., flagged_by_sight: _Optional[int] = ...) -> None: ...

class DeleteImagesRequest(_message.Message):
    __slots__ = ("image_ids", "uris")
    IMAGE_IDS_FIELD_NUMBER: _ClassVar[int]
    URIS_FIELD_NUMBER: _ClassVar[int]
    image_ids: _containers.RepeatedScalarFieldContainer[str]
    uris: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, image_ids: _Optional[_Iterable[str]] = ..., uris: _Optional[_Iterable[str]] = ...) -> None: ...

class DeleteImagesResponse(_message.Message):
    __slots__ = ("deleted",)
    DELETED_FIELD_NUMBER: _ClassVar[int]
    deleted: int
    def __init__(self, deleted: _Optional[int] = ...) -> None: ...

class GetStatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetStatsResponse(_message.Message):
    __slots__ = ("images", "flagged", "store_backend", "model_version", "restricted_regions")
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    FLAGGED_FIELD_NUMBER: _ClassVar[int]
    STORE_BACKEND_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    RESTRICTED_REGIONS_FIELD_NUMBER: _ClassVar[int]
    images: int
    flagged: int
    store_backend: str
    model_version: str
    restricted_regions: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, images: _Optional[int] = ..., flagged: _Optional[int] = ..., store_backend: _Optional[str] = ..., model_version: _Optional[str] = ..., restricted_regions: _Optional[_Iterable[str]] = ...) -> None: ...
