"""The OpenAPI 3.1 document of the HTTP/JSON API, built from the protos' descriptors.

Schemas come from the message descriptors with their JSON names, so a field added to a proto
appears in the document (and in the API) with no change here; only the paths are written out.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor

import withsense
from withsense.v1 import search_pb2 as pb
from withsense.web.status import HTTP_STATUS

_SCALARS: dict[int, dict[str, Any]] = {
    FieldDescriptor.TYPE_STRING: {"type": "string"},
    FieldDescriptor.TYPE_BOOL: {"type": "boolean"},
    FieldDescriptor.TYPE_FLOAT: {"type": "number", "format": "float"},
    FieldDescriptor.TYPE_DOUBLE: {"type": "number", "format": "double"},
    FieldDescriptor.TYPE_INT32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_SINT32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_UINT32: {"type": "integer", "format": "int32", "minimum": 0},
    # proto3 JSON writes 64-bit integers as strings (JavaScript numbers lose precision).
    FieldDescriptor.TYPE_INT64: {"type": "string", "format": "int64"},
    FieldDescriptor.TYPE_UINT64: {"type": "string", "format": "uint64"},
    FieldDescriptor.TYPE_BYTES: {"type": "string", "format": "byte"},
}


def _field_schema(field: FieldDescriptor) -> dict[str, Any]:
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        value = field.message_type.fields_by_name["value"]
        return {"type": "object", "additionalProperties": _field_schema(value)}
    if field.message_type is not None:
        item: dict[str, Any] = {"$ref": f"#/components/schemas/{field.message_type.name}"}
    elif field.enum_type is not None:
        item = {"type": "string", "enum": [v.name for v in field.enum_type.values]}
    else:
        item = dict(_SCALARS.get(field.type, {"type": "string"}))
    repeated = getattr(field, "is_repeated", None)
    is_repeated = repeated if repeated is not None else field.label == FieldDescriptor.LABEL_REPEATED
    return {"type": "array", "items": item} if is_repeated else item


def message_schema(descriptor: Descriptor) -> dict[str, Any]:
    return {"type": "object", "title": descriptor.full_name,
            "properties": {f.json_name: _field_schema(f) for f in descriptor.fields}}


def _schemas() -> dict[str, Any]:
    schemas = {d.name: message_schema(d) for d in pb.DESCRIPTOR.message_types_by_name.values()}
    # The HTTP search adds each visible hit's thumbnail URL to the proto's fields.
    hit = schemas["SearchHit"]
    hit["properties"]["thumbnailUrl"] = {
        "type": "string", "description": "HTTP only: GET it for the 256 px WebP thumbnail; "
        "absent for withheld hits"}
    schemas["Error"] = {"type": "object", "properties": {"error": {"type": "object", "properties": {
        "code": {"type": "integer"}, "message": {"type": "string"},
        "status": {"type": "string", "enum": [code.name for code in HTTP_STATUS]}}}}}
    schemas["Health"] = {"type": "object", "properties": {
        "status": {"type": "string", "enum": ["SERVING", "NOT_SERVING"]}}}
    return schemas


def _json(name: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}


def _errors(*statuses: int) -> dict[str, Any]:
    return {str(s): {"description": "error (google.rpc status mapping)", "content": _json("Error")}
            for s in statuses}


def _operation(summary: str, rpc: str, reply: str, *statuses: int, **extra: Any) -> dict[str, Any]:
    return {"summary": summary, "operationId": rpc, "tags": ["SearchService"],
            "responses": {"200": {"description": "OK", "content": _json(reply)},
                          **_errors(401, *statuses, 500, 503)}, **extra}


def openapi_document() -> dict[str, Any]:
    region = {"name": "region", "in": "query", "schema": {"type": "string"},
              "description": "ISO 3166-1 alpha-2 code; empty: unknown (restricted)"}
    return {
        "openapi": "3.1.0",
        "info": {"title": "With Sense search", "version": withsense.__version__,
            "description": "HTTP/JSON transcoding of withsense.v1.SearchService: the same "
            "semantics, limits, API keys (Authorization: Bearer KEY) and status codes as gRPC."},
        "components": {"schemas": _schemas(), "securitySchemes": {
            "apiKey": {"type": "http", "scheme": "bearer"}}},
        "security": [{"apiKey": []}],
        "paths": {
            "/v1/search": {"post": _operation(
                "Search photos by a text description", "Search", "SearchResponse", 400, 429, 504,
                requestBody={"required": True, "content": _json("SearchRequest")})},
            "/v1/images": {
                "post": _operation(
                    "Index photos (multipart: files in 'images', optional 'description' fields)",
                    "IndexImages", "IndexImagesResponse", 400, 413,
                    requestBody={"required": True, "content": {"multipart/form-data": {"schema": {
                        "type": "object", "required": ["images"], "properties": {
                            "images": {"type": "array", "items": {
                                "type": "string", "contentMediaType": "image/*"}},
                            "description": {"type": "array", "items": {"type": "string"}}}}}}}),
                "delete": _operation(
                    "Delete photos by image id or uri (JSON body, or imageIds/uris query "
                    "parameters)", "DeleteImages", "DeleteImagesResponse", 400,
                    requestBody={"required": False, "content": _json("DeleteImagesRequest")}),
            },
            "/v1/images/{imageId}/thumbnail": {"get": {
                "summary": "A photo's 256 px WebP thumbnail; refused (403) for a photo withheld "
                "in the region", "operationId": "GetThumbnail", "tags": ["SearchService"],
                "parameters": [{"name": "imageId", "in": "path", "required": True,
                                "schema": {"type": "string"}}, region],
                "responses": {"200": {"description": "the thumbnail",
                                      "content": {"image/webp": {}}},
                              **_errors(400, 401, 403, 404, 503)}}},
            "/v1/stats": {"get": _operation("What the gateway holds", "GetStats", "GetStatsResponse")},
            "/healthz": {"get": {"summary": "Serving or not", "operationId": "Health",
                                 "security": [], "responses": {
                                     "200": {"description": "serving", "content": _json("Health")},
                                     "503": {"description": "not serving", "content": _json("Health")}}}},
        },
    }
