"""The HTTP/JSON API against a real gateway, worker and store: each endpoint, its errors, keys."""

from __future__ import annotations

import io

import grpc
import httpx
import pytest
from PIL import Image
from withsense.config.gateway import DISCLAIMER
from withsense.store import point_id_for
from withsense.v1 import search_pb2 as pb
from withsense.web.status import HTTP_STATUS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def http(web_gateway):
    with httpx.Client(base_url=web_gateway.http_url, timeout=60) as client:
        yield client


def search(http, **body) -> httpx.Response:
    return http.post("/v1/search", json={"topK": 5, **body})


def assert_error(response: httpx.Response, status: int, code: str, *words: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == status and error["status"] == code
    for word in words:
        assert word in error["message"], error["message"]


# --- search ------------------------------------------------------------------------------------

def test_search_returns_proto_fields_in_lower_camel_case_with_thumbnails(http):
    response = search(http, query="a cup of coffee on a table", region="US")
    assert response.status_code == 200
    reply = response.json()
    assert set(reply) >= {"hits", "blocked", "disclaimer", "reason", "modelVersion", "restrictedRegion"}
    top = reply["hits"][0]
    assert top["uri"] == "coffee.jpg" and 0 < top["score"] <= 1 and top["withheld"] is False
    assert top["imageId"] and top["thumbnailUrl"] == f"/v1/images/{top['imageId']}/thumbnail?region=US"
    assert len(reply["hits"]) == 5 and reply["restrictedRegion"] is False

    thumbnail = http.get(top["thumbnailUrl"])
    assert thumbnail.status_code == 200 and thumbnail.headers["content-type"] == "image/webp"
    image = Image.open(io.BytesIO(thumbnail.content))
    assert image.format == "WEBP" and max(image.size) == 256


def test_snake_case_field_names_are_accepted_too(http):
    reply = http.post("/v1/search", json={"query": "a rocket", "top_k": 2, "region": "US"}).json()
    assert len(reply["hits"]) == 2


def test_flagged_photo_is_a_disclaimer_tile_in_a_restricted_region(http):
    # The gallery's camera photo is flagged by its description ("My son ...").
    served = search(http, query="a man filming with a camera on a tripod", region="US").json()
    assert served["hits"][0]["uri"] == "camera.jpg"
    for region in ["DE", "fr", ""]:
        reply = search(http, query="a man filming with a camera on a tripod", region=region).json()
        hit = reply["hits"][0]
        assert hit["withheld"] and reply["restrictedRegion"] is True
        assert hit["disclaimer"] == DISCLAIMER and "minor by description" in hit["reason"]
        assert hit["imageId"] == "" and hit["uri"] == "" and "thumbnailUrl" not in hit


def test_blocked_query_carries_the_disclaimer_and_the_reason(http):
    reply = search(http, query="a little girl playing in the park", region="DE").json()
    assert reply["blocked"] is True and reply["hits"] == []
    assert reply["disclaimer"] == DISCLAIMER and "blocked" in reply["reason"]


@pytest.mark.parametrize(("body", "field"), [
    ({"query": ""}, "query"),
    ({"query": "x" * 10_000}, "query"),
    ({"query": "a cat", "topK": 0}, "top_k"),
    ({"query": "a cat", "topK": 10**6}, "top_k"),
    ({"query": "a cat", "region": "USA"}, "region"),
    ({"query": "a cat", "minScore": 1.5}, "min_score"),
    ({"query": "a cat", "filters": {"minor": "false"}}, "filters"),
    ({"query": "a cat", "colour": "red"}, "colour"),
    ({"query": 5}, "query"),
])
def test_bad_search_requests_are_400_naming_the_field(http, body, field):
    assert_error(http.post("/v1/search", json={"topK": 3, **body}), 400, "INVALID_ARGUMENT", field)
    assert search(http, query="a cat", region="US").status_code == 200  # still serving


@pytest.mark.parametrize("content", [b"{not json", b"[1, 2]", b"\xff\xfe"])
def test_a_body_that_is_not_a_json_object_is_400(http, content):
    response = http.post("/v1/search", content=content, headers={"content-type": "application/json"})
    assert_error(response, 400, "INVALID_ARGUMENT", "JSON")


def test_an_oversized_body_is_refused(http):
    response = http.post("/v1/search", content=b" " * (2 * 1024 * 1024))
    assert_error(response, 413, "RESOURCE_EXHAUSTED", "bytes")


def test_wrong_method_and_unknown_path(http):
    assert_error(http.get("/v1/search"), 405, "UNIMPLEMENTED", "GET /v1/search")
    assert_error(http.get("/v1/nothing"), 404, "NOT_FOUND", "/v1/nothing")


# --- thumbnails --------------------------------------------------------------------------------

def test_withheld_photo_thumbnail_is_refused_in_a_restricted_region(http, gallery_photos):
    camera = point_id_for(gallery_photos["camera"])  # flagged by its description
    for region in ["DE", "fr", ""]:
        response = http.get(f"/v1/images/{camera}/thumbnail", params={"region": region})
        assert_error(response, 403, "PERMISSION_DENIED", DISCLAIMER)
        assert response.headers["content-type"] == "application/json"
    assert http.get(f"/v1/images/{camera}/thumbnail").status_code == 403  # no region: restricted
    allowed = http.get(f"/v1/images/{camera}/thumbnail", params={"region": "US"})
    assert allowed.status_code == 200 and allowed.content[8:12] == b"WEBP"


def test_thumbnail_errors(http, gallery_photos):
    coffee = point_id_for(gallery_photos["coffee"])
    assert_error(http.get(f"/v1/images/{coffee}/thumbnail?region=ZZ"), 400, "INVALID_ARGUMENT", "region")
    missing = point_id_for(b"never indexed")
    assert_error(http.get(f"/v1/images/{missing}/thumbnail?region=US"), 404, "NOT_FOUND", missing)
    assert_error(http.get("/v1/images/..%2F..%2Fetc/thumbnail?region=US"), 404, "NOT_FOUND")
    first = http.get(f"/v1/images/{coffee}/thumbnail?region=US")
    again = http.get(f"/v1/images/{coffee}/thumbnail?region=US",
                     headers={"if-none-match": first.headers["etag"]})
    assert again.status_code == 304 and "no-cache" in first.headers["cache-control"]


# --- stats, health, OpenAPI, page ----------------------------------------------------------------

def test_stats(http, gallery_photos):
    stats = http.get("/v1/stats").json()
    # The camera by its description, the astronaut (and any photo the recall-first detector
    # holds back) by its pixels.
    assert int(stats["images"]) == len(gallery_photos) and 2 <= int(stats["flagged"]) < len(gallery_photos)
    assert stats["storeBackend"] == "qdrant-edge" and stats["modelVersion"]
    assert stats["restrictedRegions"] == ["DE", "FR"]


def test_healthz(http):
    response = http.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "SERVING"}


def test_openapi_document_describes_every_endpoint_and_every_proto_field(http):
    document = http.get("/openapi.json").json()
    assert document["openapi"].startswith("3.1")
    paths = document["paths"]
    assert set(paths["/v1/images"]) == {"post", "delete"}
    for path in ["/v1/search", "/v1/stats", "/healthz", "/v1/images/{imageId}/thumbnail"]:
        assert path in paths
    schemas = document["components"]["schemas"]
    for descriptor in pb.DESCRIPTOR.message_types_by_name.values():
        assert set(schemas[descriptor.name]["properties"]) >= {f.json_name for f in descriptor.fields}
    assert schemas["SearchRequest"]["properties"]["topK"]["type"] == "integer"


def test_page_and_its_assets_are_served_with_a_content_security_policy(http):
    page = http.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert 'id="q"' in page.text
    for asset in ["/static/app.js", "/static/style.css"]:
        assert http.get(asset).status_code == 200


def test_every_grpc_status_has_an_http_status():
    assert set(HTTP_STATUS) == set(grpc.StatusCode)
    assert HTTP_STATUS[grpc.StatusCode.RESOURCE_EXHAUSTED] == 429
    assert HTTP_STATUS[grpc.StatusCode.UNAVAILABLE] == 503


# --- upload and delete ---------------------------------------------------------------------------

def test_upload_then_find_then_delete(fresh_gateway, gallery_photos):
    gateway = fresh_gateway()
    with httpx.Client(base_url=gateway.http_url, timeout=120) as http:
        gone = http.request("DELETE", "/v1/images", json={"uris": ["coffee.jpg"]})
        assert gone.status_code == 200 and gone.json() == {"deleted": 1}
        files = [("images", ("my-coffee.jpg", gallery_photos["coffee"], "image/jpeg")),
                 ("images", ("notes.jpg", b"not a photo", "image/jpeg"))]
        reply = http.post("/v1/images", files=files,
                          data={"description": "Latte art in a white cup on a wooden table"})
        assert reply.status_code == 200, reply.text
        summary = reply.json()
        assert summary["indexed"] == 1 and summary["failed"] == 1 and summary["flagged"] == 0
        assert summary["failures"][0]["uri"] == "notes.jpg" and summary["failures"][0]["reason"]

        top = search(http, query="a cup of coffee on a table", region="US").json()["hits"][0]
        assert top["uri"] == "my-coffee.jpg"
        assert http.get(top["thumbnailUrl"]).status_code == 200

        again = http.post("/v1/images", files=files[:1],
                          data={"description": "Latte art in a white cup on a wooden table"})
        assert again.json()["unchanged"] == 1 and again.json()["indexed"] == 0

        deleted = http.request("DELETE", "/v1/images", params={"imageIds": top["imageId"]})
        assert deleted.json() == {"deleted": 1}
        assert http.get(top["thumbnailUrl"]).status_code == 404


def test_uploaded_photo_described_with_a_child_is_flagged_and_its_thumbnail_withheld(
        fresh_gateway, gallery_photos):
    gateway = fresh_gateway()
    with httpx.Client(base_url=gateway.http_url, timeout=120) as http:
        http.request("DELETE", "/v1/images", json={"uris": ["rocket.jpg"]})
        reply = http.post("/v1/images", files=[("images", ("launch.jpg", gallery_photos["rocket"]))],
                          data={"description": "My son watching the rocket launch"}).json()
        assert reply["indexed"] == 1 and reply["flagged"] == 1
        image_id = reply["imageIds"][0]
        assert http.get(f"/v1/images/{image_id}/thumbnail?region=DE").status_code == 403
        assert http.get(f"/v1/images/{image_id}/thumbnail?region=US").status_code == 200


def test_upload_errors(fresh_gateway):
    gateway = fresh_gateway(max_upload_mb=1)
    with httpx.Client(base_url=gateway.http_url, timeout=60) as http:
        assert_error(http.post("/v1/images", data={"description": "no photo"}), 400,
                     "INVALID_ARGUMENT", "images")
        big = [("images", ("big.jpg", b"\0" * (2 * 1024 * 1024), "image/jpeg"))]
        assert_error(http.post("/v1/images", files=big), 413, "RESOURCE_EXHAUSTED", "limit")
        assert_error(http.request("DELETE", "/v1/images", json={"imageIds": "x"}), 400,
                     "INVALID_ARGUMENT", "imageIds")


# --- keys and failures ---------------------------------------------------------------------------

def test_api_keys_are_required_as_for_grpc(fresh_gateway, gallery_photos):
    gateway = fresh_gateway(api_keys=["peek"], index_api_keys=["sesame"])
    chelsea = point_id_for(gallery_photos["coffee"])
    calls = [("POST", "/v1/search", {"json": {"query": "a cat", "topK": 1, "region": "US"}}),
             ("GET", "/v1/stats", {}),
             ("POST", "/v1/images", {"files": [("images", ("a.jpg", b"x"))]}),
             ("DELETE", "/v1/images", {"json": {"uris": ["coffee.jpg"]}}),
             ("GET", f"/v1/images/{chelsea}/thumbnail?region=US", {})]
    with httpx.Client(base_url=gateway.http_url, timeout=60) as http:
        for method, path, kwargs in calls:
            for headers in [{}, {"authorization": "Bearer wrong"}, {"authorization": "sesame"}]:
                response = http.request(method, path, headers=headers, **kwargs)
                assert_error(response, 401, "UNAUTHENTICATED")
                assert response.headers["www-authenticate"].startswith("Bearer")
        key = {"authorization": "Bearer sesame"}
        assert http.post("/v1/search", json={"query": "a cat", "topK": 1, "region": "US"},
                         headers=key).status_code == 200
        assert http.get(f"/v1/images/{chelsea}/thumbnail?region=US", headers=key).status_code == 200
        # A search key searches, and is refused what only index keys may do: 403, not 401.
        peek = {"authorization": "Bearer peek"}
        assert http.post("/v1/search", json={"query": "a cat", "topK": 1, "region": "US"},
                         headers=peek).status_code == 200
        for method, path, kwargs in calls[2:4]:
            response = http.request(method, path, headers=peek, **kwargs)
            assert_error(response, 403, "PERMISSION_DENIED", "index")
            assert "www-authenticate" not in response.headers
        for open_path in ["/healthz", "/openapi.json", "/", "/static/app.js"]:
            assert http.get(open_path).status_code == 200


def test_a_stopped_worker_is_503(background_loop, model_runtime, fresh_gateway):
    from withsense.config import WorkerSettings
    from withsense.worker.server import start_worker

    worker = background_loop.run(start_worker(WorkerSettings(port=0), runtime=model_runtime))
    try:
        gateway = fresh_gateway(worker_address=f"127.0.0.1:{worker.port}", worker_timeout_s=5.0)
    finally:
        background_loop.run(worker.stop(0))
    with httpx.Client(base_url=gateway.http_url, timeout=60) as http:
        response = http.post("/v1/search", json={"query": "a cat", "topK": 1, "region": "US"})
        assert_error(response, 503, "UNAVAILABLE", f"127.0.0.1:{worker.port}")
        assert http.get("/healthz").status_code == 200  # the gateway itself still serves
