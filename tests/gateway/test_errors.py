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
    from withsense.config.defaults import MAX_MESSAGE_BYTES

    rng = np.random.default_rng(3)
    photos = {}
    for i in range(4):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (2480, 2480, 3), dtype=np.uint8)).save(buffer, "PNG",
                                                                                     compress_level=0)
        photos[f"big{i}.png"] = buffer.getvalue()
    sizes = [len(p) for p in photos.values()]
    assert all(17_000_000 < n < 20 * 1024 * 1024 for n in sizes) and sum(sizes) > MAX_MESSAGE_BYTES
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
    # No query cache: every search must reach the worker (the store is empty, so the cached
    # query alone would answer without it).
    gateway = start_gateway(worker_address=f"127.0.0.1:{port}", worker_timeout_s=5.0,
                            query_cache_size=0)
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
    # The lexicon's answer needs no worker: a child query in a restricted region is still
    # blocked; an allowed query there fails closed, UNAVAILABLE, never served unchecked.
    blocked = stub.Search(pb.SearchRequest(query="a child on a swing", top_k=1, region="DE"),
                          timeout=30)
    assert blocked.blocked and not blocked.hits and "lexicon" in blocked.reason
    with pytest.raises(grpc.RpcError) as unchecked:
        stub.Search(pb.SearchRequest(query="a cat", top_k=1, region="DE"), timeout=30)
    assert unchecked.value.code() == grpc.StatusCode.UNAVAILABLE

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


def test_a_failed_store_write_stops_serving_and_a_restart_settles_it(
        start_gateway, background_loop, gallery_photos, tmp_path):
    """The answer and the state agree: a write that failed midway is not served as done."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from tests.helpers import index_requests

    names = list(gallery_photos)
    first_half = {n: gallery_photos[n] for n in names[: len(names) // 2]}
    second_half = {n: gallery_photos[n] for n in names[len(names) // 2 :]}
    data_dir = tmp_path / "failing"
    gateway = start_gateway(data_dir=data_dir)
    stub = search_stub(gateway.address)
    stub.IndexImages(index_requests(first_half), timeout=300)
    inner = gateway.engine.store.inner
    write = inner.upsert

    def write_then_fail(records):  # as on a folder made read-only: applied, then flush fails
        write(records)
        from withsense.store import StoreError

        raise StoreError(f"upsert into {inner.path} failed: Read-only file system (os error 30)")

    inner.upsert = write_then_fail
    with pytest.raises(grpc.RpcError) as failed:
        stub.IndexImages(index_requests(second_half), timeout=300)
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "restart" in failed.value.details()
    for call in (lambda: stub.Search(pb.SearchRequest(query="a cat", top_k=3, region="US"), timeout=10),
                 lambda: stub.GetStats(pb.GetStatsRequest(), timeout=10)):
        with pytest.raises(grpc.RpcError) as refused:
            call()
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    health = health_pb2_grpc.HealthStub(grpc.insecure_channel(gateway.address))
    status = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status
    assert status == health_pb2.HealthCheckResponse.NOT_SERVING
    background_loop.run(gateway.stop(0.5))

    # The restart settles the interrupted write from the catalogue (here: it had reached the
    # store), and a rerun completes it with nothing to redo twice.
    restarted = search_stub(start_gateway(data_dir=data_dir).address)
    assert restarted.GetStats(pb.GetStatsRequest(), timeout=10).images in (len(first_half),
                                                                           len(gallery_photos))
    rerun = restarted.IndexImages(index_requests(gallery_photos), timeout=300)
    assert rerun.indexed + rerun.unchanged == len(gallery_photos) and rerun.failed == 0
    assert restarted.GetStats(pb.GetStatsRequest(), timeout=10).images == len(gallery_photos)


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


def test_search_keys_may_not_index_or_delete(start_gateway, gallery_photos, tmp_path):
    index_file = tmp_path / "index-keys"
    index_file.write_text("# indexer\nindexer-key\n")
    gateway = start_gateway(api_keys=["searcher"], index_api_keys_file=index_file)
    stub = search_stub(gateway.address)
    searcher, indexer = ((("authorization", f"Bearer {k}"),) for k in ("searcher", "indexer-key"))
    photo = [pb.IndexImagesRequest(image=gallery_photos["coffee"], uri="coffee.jpg")]
    for call in (lambda: stub.IndexImages(iter(photo), metadata=searcher, timeout=60),
                 lambda: stub.DeleteImages(pb.DeleteImagesRequest(uris=["coffee.jpg"]),
                                           metadata=searcher, timeout=10)):
        with pytest.raises(grpc.RpcError) as error:
            call()
        assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "INDEX_API_KEYS" in error.value.details()
    assert stub.IndexImages(iter(photo), metadata=indexer, timeout=120).indexed == 1
    for key in (searcher, indexer):  # both may search and read stats
        assert stub.GetStats(pb.GetStatsRequest(), metadata=key, timeout=10).images == 1
    assert stub.DeleteImages(pb.DeleteImagesRequest(uris=["coffee.jpg"]), metadata=indexer,
                             timeout=10).deleted == 1


@pytest.mark.parametrize("settings", [
    {"api_keys": " , ,"}, {"index_api_keys": ","}, {"api_keys_file": "comments-only"},
    {"index_api_keys_file": "comments-only"},
])
def test_a_configured_but_empty_key_list_refuses_to_start(start_gateway, tmp_path, settings):
    comments = tmp_path / "comments-only"
    comments.write_text("# keys go here\n\n   \n")
    settings = {k: comments if v == "comments-only" else v for k, v in settings.items()}
    with pytest.raises(ValueError, match="holds no key"):
        start_gateway(**settings)


def test_health_and_reflection_need_no_key(start_gateway):
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
        ProtoReflectionDescriptorDatabase,
    )
    from withsense.client import SearchClient

    gateway = start_gateway(api_keys=["sesame"])
    channel = SearchClient(gateway.address, retries=False).channel  # no key: none is needed
    health = health_pb2_grpc.HealthStub(channel)
    for service in ["", "withsense.v1.SearchService"]:
        reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    services = ProtoReflectionDescriptorDatabase(channel).get_services()
    assert "withsense.v1.SearchService" in services
