from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TextPath(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TEXT_PATH_AUTO: _ClassVar[TextPath]
    TEXT_PATH_ENGLISH: _ClassVar[TextPath]
    TEXT_PATH_MULTILINGUAL: _ClassVar[TextPath]
TEXT_PATH_AUTO: TextPath
TEXT_PATH_ENGLISH: TextPath
TEXT_PATH_MULTILINGUAL: TextPath

class Vector(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, values: _Optional[_Iterable[float]] = ...) -> None: ...

class EmbedTextRequest(_message.Message):
    __slots__ = ("texts", "path", "check_vectors")
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    CHECK_VECTORS_FIELD_NUMBER: _ClassVar[int]
    texts: _containers.RepeatedScalarFieldContainer[str]
    path: TextPath
    check_vectors: bool
    def __init__(self, texts: _Optional[_Iterable[str]] = ..., path: _Optional[_Union[TextPath, str]] = ..., check_vectors: _Optional[bool] = ...) -> None: ...

class EmbedTextResponse(_message.Message):
    __slots__ = ("vectors", "model_version", "batch_size", "paths", "check_vectors")
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    PATHS_FIELD_NUMBER: _ClassVar[int]
    CHECK_VECTORS_FIELD_NUMBER: _ClassVar[int]
    vectors: _containers.RepeatedCompositeFieldContainer[Vector]
    model_version: str
    batch_size: int
    paths: _containers.RepeatedScalarFieldContainer[TextPath]
    check_vectors: _containers.RepeatedCompositeFieldContainer[Vector]
    def __init__(self, vectors: _Optional[_Iterable[_Union[Vector, _Mapping]]] = ..., model_version: _Optional[str] = ..., batch_size: _Optional[int] = ..., paths: _Optional[_Iterable[_Union[TextPath, str]]] = ..., check_vectors: _Optional[_Iterable[_Union[Vector, _Mapping]]] = ...) -> None: ...

class EmbedImagesRequest(_message.Message):
    __slots__ = ("images",)
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    images: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, images: _Optional[_Iterable[bytes]] = ...) -> None: ...

class EmbedImagesResponse(_message.Message):
    __slots__ = ("vectors", "model_version", "batch_size", "minor_probabilities", "minor_detector_version")
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    MINOR_PROBABILITIES_FIELD_NUMBER: _ClassVar[int]
    MINOR_DETECTOR_VERSION_FIELD_NUMBER: _ClassVar[int]
    vectors: _containers.RepeatedCompositeFieldContainer[Vector]
    model_version: str
    batch_size: int
    minor_probabilities: _containers.RepeatedScalarFieldContainer[float]
    minor_detector_version: str
    def __init__(self, vectors: _Optional[_Iterable[_Union[Vector, _Mapping]]] = ..., model_version: _Optional[str] = ..., batch_size: _Optional[int] = ..., minor_probabilities: _Optional[_Iterable[float]] = ..., minor_detector_version: _Optional[str] = ...) -> None: ...

class ScoreQuery(_message.Message):
    __slots__ = ("query", "candidates")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    query: Vector
    candidates: _containers.RepeatedCompositeFieldContainer[Vector]
    def __init__(self, query: _Optional[_Union[Vector, _Mapping]] = ..., candidates: _Optional[_Iterable[_Union[Vector, _Mapping]]] = ...) -> None: ...

class ScoreRequest(_message.Message):
    __slots__ = ("queries",)
    QUERIES_FIELD_NUMBER: _ClassVar[int]
    queries: _containers.RepeatedCompositeFieldContainer[ScoreQuery]
    def __init__(self, queries: _Optional[_Iterable[_Union[ScoreQuery, _Mapping]]] = ...) -> None: ...

class ScoreResult(_message.Message):
    __slots__ = ("probabilities",)
    PROBABILITIES_FIELD_NUMBER: _ClassVar[int]
    probabilities: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, probabilities: _Optional[_Iterable[float]] = ...) -> None: ...

class ScoreResponse(_message.Message):
    __slots__ = ("results", "model_version", "backend", "batch_size")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[ScoreResult]
    model_version: str
    backend: str
    batch_size: int
    def __init__(self, results: _Optional[_Iterable[_Union[ScoreResult, _Mapping]]] = ..., model_version: _Optional[str] = ..., backend: _Optional[str] = ..., batch_size: _Optional[int] = ...) -> None: ...

class GetModelInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetModelInfoResponse(_message.Message):
    __slots__ = ("model_version", "dim", "image_tower", "text_tower", "scale", "bias", "zero_shot", "artifact_dir", "score_backend", "model_card_json", "max_texts", "max_text_chars", "max_images", "max_image_bytes", "max_image_pixels", "max_score_queries", "max_score_candidates", "max_message_bytes", "image_size", "image_backend", "load_seconds", "semantic_child_threshold", "fusion_json", "multilingual", "multilingual_text_tower", "multilingual_semantic_child_threshold", "minor_detector_version", "minor_threshold", "minor_curve_json")
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    DIM_FIELD_NUMBER: _ClassVar[int]
    IMAGE_TOWER_FIELD_NUMBER: _ClassVar[int]
    TEXT_TOWER_FIELD_NUMBER: _ClassVar[int]
    SCALE_FIELD_NUMBER: _ClassVar[int]
    BIAS_FIELD_NUMBER: _ClassVar[int]
    ZERO_SHOT_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_DIR_FIELD_NUMBER: _ClassVar[int]
    SCORE_BACKEND_FIELD_NUMBER: _ClassVar[int]
    MODEL_CARD_JSON_FIELD_NUMBER: _ClassVar[int]
    MAX_TEXTS_FIELD_NUMBER: _ClassVar[int]
    MAX_TEXT_CHARS_FIELD_NUMBER: _ClassVar[int]
    MAX_IMAGES_FIELD_NUMBER: _ClassVar[int]
    MAX_IMAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_IMAGE_PIXELS_FIELD_NUMBER: _ClassVar[int]
    MAX_SCORE_QUERIES_FIELD_NUMBER: _ClassVar[int]
    MAX_SCORE_CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    MAX_MESSAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    IMAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    IMAGE_BACKEND_FIELD_NUMBER: _ClassVar[int]
    LOAD_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SEMANTIC_CHILD_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    FUSION_JSON_FIELD_NUMBER: _ClassVar[int]
    MULTILINGUAL_FIELD_NUMBER: _ClassVar[int]
    MULTILINGUAL_TEXT_TOWER_FIELD_NUMBER: _ClassVar[int]
    MULTILINGUAL_SEMANTIC_CHILD_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    MINOR_DETECTOR_VERSION_FIELD_NUMBER: _ClassVar[int]
    MINOR_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    MINOR_CURVE_JSON_FIELD_NUMBER: _ClassVar[int]
    model_version: str
    dim: int
    image_tower: str
    text_tower: str
    scale: float
    bias: float
    zero_shot: bool
    artifact_dir: str
    score_backend: str
    model_card_json: str
    max_texts: int
    max_text_chars: int
    max_images: int
    max_image_bytes: int
    max_image_pixels: int
    max_score_queries: int
    max_score_candidates: int
    max_message_bytes: int
    image_size: int
    image_backend: str
    load_seconds: float
    semantic_child_threshold: float
    fusion_json: str
    multilingual: bool
    multilingual_text_tower: str
    multilingual_semantic_child_threshold: float
    minor_detector_version: str
    minor_threshold: float
    minor_curve_json: str
    def __init__(self, model_version: _Optional[str] = ..., dim: _Optional[int] = ..., image_tower: _Optional[str] = ..., text_tower: _Optional[str] = ..., scale: _Optional[float] = ..., bias: _Optional[float] = ..., zero_shot: _Optional[bool] = ..., artifact_dir: _Optional[str] = ..., score_backend: _Optional[str] = ..., model_card_json: _Optional[str] = ..., max_texts: _Optional[int] = ..., max_text_chars: _Optional[int] = ..., max_images: _Optional[int] = ..., max_image_bytes: _Optional[int] = ..., max_image_pixels: _Optional[int] = ..., max_score_queries: _Optional[int] = ..., max_score_candidates: _Optional[int] = ..., max_message_bytes: _Optional[int] = ..., image_size: _Optional[int] = ..., image_backend: _Optional[str] = ..., load_seconds: _Optional[float] = ..., semantic_child_threshold: _Optional[float] = ..., fusion_json: _Optional[str] = ..., multilingual: _Optional[bool] = ..., multilingual_text_tower: _Optional[str] = ..., multilingual_semantic_child_threshold: _Optional[float] = ..., minor_detector_version: _Optional[str] = ..., minor_threshold: _Optional[float] = ..., minor_curve_json: _Optional[str] = ...) -> None: ...
