"""Requests that do not parse get INVALID_ARGUMENT from both services, never UNKNOWN or
INTERNAL; in an IndexImages stream only the bad item fails."""

from __future__ import annotations

import grpc
import pytest
from withsense.v1 import search_pb2 as pb

pytestmark = pytest.mark.slow

BAD_UTF8_FIELD_1 = b"\x0a\x02\xff\xfe"  # field 1 (a string in every request here), invalid UTF-8
GARBAGE = b"\xff\xff\xff\xff"


def _raw_call(address: str, method: str, payload: bytes) -> grpc.RpcError:
    with grpc.insecure_channel(address) as channel:
        call = channel.unary_unary(method)  # no serializers: raw bytes in and out
        with pytest.raises(grpc.RpcError) as error:
            call(payload, timeout=10)
    return error.value


# GetStatsRequest has no field 1, and an unknown field is valid protobuf: only garbage there.
@pytest.mark.parametrize(("method", "payload"), [
    ("Search", BAD_UTF8_FIELD_1), ("Search", GARBAGE), ("DeleteImages", BAD_UTF8_FIELD_1),
    ("DeleteImages", GARBAGE), ("GetStats", GARBAGE),
])
def test_gateway_refuses_undecodable_requests(start_gateway, method, payload):
    gateway = start_gateway()
    error = _raw_call(gateway.address, f"/withsense.v1.SearchService/{method}", payload)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error
    assert "not a valid" in error.details() and method in error.details()


@pytest.mark.parametrize("payload", [BAD_UTF8_FIELD_1, GARBAGE])
@pytest.mark.parametrize("method", ["EmbedText", "Score"])
def test_worker_refuses_undecodable_requests(worker_server, method, payload):
    error = _raw_call(f"127.0.0.1:{worker_server.port}", f"/withsense.v1.InferenceService/{method}",
                      payload)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error


def test_a_bad_uri_in_a_stream_fails_that_item_only(start_gateway, gallery_photos):
    gateway = start_gateway()
    good = pb.IndexImagesRequest(image=gallery_photos["coffee"], uri="coffee.jpg").SerializeToString()
    bad_uri = pb.IndexImagesRequest(image=gallery_photos["rocket"]).SerializeToString() + \
        b"\x12\x02\xff\xfe"  # field 2 (uri), invalid UTF-8
    with grpc.insecure_channel(gateway.address) as channel:
        call = channel.stream_unary("/withsense.v1.SearchService/IndexImages",
                                    response_deserializer=pb.IndexImagesResponse.FromString)
        reply = call(iter([good, bad_uri]), timeout=120)
    assert (reply.indexed, reply.failed) == (1, 1)
    assert reply.failures[0].uri == "item 1" and "not a valid" in reply.failures[0].reason
