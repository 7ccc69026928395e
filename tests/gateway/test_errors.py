"""Bad input, a stopped worker, an unusable store and API keys: clear errors, nothing lost."""

from __future__ import annotations

import time

import grpc
import pytest
from withsense.v1 import search_pb2 as pb

from tests.helpers import search_stub

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(("request_fields", "field"), [
    ({"query": ""}, "query"),
    ({"query": "   "}, "query"),
    ({"query": "x" * 10_000}, "query"),
    ({"query": "a cat", "top_k": 0}, "top_k"),
    ({"query": "a cat", "top_k": 10**6}, "top_k"),
    ({"query": "a cat", "region": "USA"}, "region"),
    ({"query": "a cat", "region": "ZZ"}, "region"),
    ({"query": "a cat", "min_score": 1.5}, "min_score"),
    ({"query": "a cat", "filters": {"minor": "false"}}, "filters"),
])
def test_bad_search_requests_name_the_field(indexed_gateway, request_fields, field):
    _, stub = indexed_gateway
    request = pb.SearchRequest(**{"top_k": 5, **request_fields})
    with pytest.raises(grpc.RpcError) as error:
        stub.Search(request, timeout=30)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in error.value.details()
    # The gateway keeps serving.
    assert stub.Search(pb.SearchRequest(query="a cat", top_k=1, region="US"), timeout=30).hits


def test_bad_photos_are_reported_per_file_and_the_rest_indexed(start_gateway, gallery_photos):
    stub = search_stub(start_gateway().address)
    truncated = gallery_photos["coffee"][: len(gallery_photos["coffee"]) // 3]
    requests = [
        pb.IndexImagesRequest(image=gallery_photos["rocket"], uri="rocket.jpg"),
        pb.IndexImagesRequest(image=b"this is not a photo", uri="notes.jpg"),
        pb.IndexImagesRequest(image=truncated, uri="truncated.jpg"),
        pb.IndexImagesRequest(image=gallery_photos["moon"], uri=""),
        pb.IndexImagesRequest(image=gallery_photos["moon"], uri="moon.jpg"),
    ]
    reply = stub.IndexImages(iter(requests), timeout=300)
    assert reply.indexed == 2 and reply.failed == 3
    reasons = {failure.uri: failure.reason for failure in reply.failures}
    assert set(reasons) == {"notes.jpg", "truncated.jpg", "item 3"}
    assert "uri" in reasons["item 3"]
    assert all(reason for reason in reasons.values())


def test_large_valid_photos_in_one_stream_are_all_indexed(start_gateway):
    """Four ~18 MB PNGs (each under the worker's 20 MB limit, 72 MB together) and one over it."""
    import io

    import numpy as np
    from PIL import Image
    from withsense.gateway.worker_client import WORKER_MESSAGE_BYTES

    rng = np.random.default_rng(3)
    photos = {}
    for i in range(4):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (2480, 2480, 3), dtype=np.uint8)).save(buffer, "PNG",
                                                                                     compress_level=0)
        photos[f"big{i}.png"] = buffer.getvalue()
    sizes = [len(p) for p in photos.values()]
    assert all(17_000_000 < n < 20 * 1024 * 1024 for n in sizes) and sum(sizes) > WORKER_MESSAGE_BYTES
    photos["too-big.png"] = photos["big0.png"] + b"\0" * (3 * 1024 * 1024)  # over the 20 MB limit
    stub = search_stub(start_gateway().address)
    reply = stub.IndexImages(iter([pb.IndexImagesRequest(image=data, uri=uri)
                                   for uri, data in photos.items()]), timeout=300)
    assert reply.indexed == 4
    assert [f.uri for f in reply.failures] == ["too-big.png"]


def test_stopped_worker_fails_fast_and_recovers(background_loop, model_runtime, start_gateway):
    from withsense.config import WorkerSettings
    from withsense.worker.server import start_worker

    worker = background_loop.run(start_worker(WorkerSettings(port=0), runtime=model_runtime))
    port = worker.port
    gateway = start_gateway(worker_address=f"127.0.0.1:{port}", worker_timeout_s=5.0)
    stub = search_stub(gateway.address)
    request = pb.SearchRequest(query="a cat", top_k=1, region="US")
    stub.Search(request, timeout=30)

    background_loop.run(worker.stop(0))
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as error:
        stub.Search(request, timeout=30)
    assert error.value.code() == grpc.StatusCode.UNAVAILABLE
    assert f"127.0.0.1:{port}" in error.value.details() and "unavailable" in error.value.details()
    assert time.monotonic() - started < 5.0  # fails fast, well before the worker deadline

    worker = background_loop.run(start_worker(WorkerSettings(port=port), runtime=model_runtime))
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                stub.Search(request, timeout=30)
                break
            except grpc.RpcError as retry_error:
                assert retry_error.code() == grpc.StatusCode.UNAVAILABLE
                assert time.monotonic() < deadline, "gateway did not recover"
                time.sleep(0.2)
    finally:
        background_loop.run(worker.stop(0))


def test_unusable_store_folder_is_a_clear_error_at_start(start_gateway, tmp_path):
    from withsense.store import StoreError

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the data folder should be")
    with pytest.raises(StoreError) as error:
        start_gateway(data_dir=blocker)
    assert str(blocker) in str(error.value)


def test_a_damaged_store_is_refused_at_start_with_what_to_do(start_gateway, background_loop,
                                                            gallery_photos, tmp_path):
    from withsense.store import StoreDamaged

    from tests.helpers import index_requests

    data_dir = tmp_path / "damaged"
    first = start_gateway(data_dir=data_dir)
    stub = search_stub(first.address)
    names = list(gallery_photos)
    for part in (names[: len(names) // 2], names[len(names) // 2 :]):  # two streams, as in use
        stub.IndexImages(index_requests({n: gallery_photos[n] for n in part}), timeout=300)
    background_loop.run(first.stop(0.5))
    # What the write-ahead log no longer holds (the first stream) is lost with the id tracker.
    for tracker in (data_dir / "store").rglob("mutable_id_tracker.mappings"):
        tracker.write_bytes(b"")
    with pytest.raises(StoreDamaged) as error:
        start_gateway(data_dir=data_dir)
    assert "missing" in str(error.value) and "withsense store restore" in str(error.value)


def test_api_keys(start_gateway, tmp_path):
    keys_file = tmp_path / "keys"
    keys_file.write_text("# mounted secret\nkey-from-file\n")
    gateway = start_gateway(api_keys=["sesame"], api_keys_file=keys_file)
    stub = search_stub(gateway.address)
    request = pb.SearchRequest(query="a cat", top_k=1, region="US")
    for metadata in [(), (("authorization", "Bearer wrong"),), (("authorization", "sesame"),)]:
        with pytest.raises(grpc.RpcError) as error:
            stub.Search(request, metadata=metadata, timeout=10)
        assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as error:
        stub.IndexImages(iter([pb.IndexImagesRequest(image=b"x", uri="x.jpg")]), timeout=10)
    assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED
    for key in ["sesame", "key-from-file"]:
        stub.Search(request, metadata=(("authorization", f"Bearer {key}"),), timeout=30)


def test_health_and_reflection_need_no_key(start_gateway):
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
        ProtoReflectionDescriptorDatabase,
    )

    gateway = start_gateway(api_keys=["sesame"])
    channel = grpc.insecure_channel(gateway.address)
    health = health_pb2_grpc.HealthStub(channel)
    for service in ["", "withsense.v1.SearchService"]:
        reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    services = ProtoReflectionDescriptorDatabase(channel).get_services()
    assert "withsense.v1.SearchService" in services
