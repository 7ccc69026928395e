"""Bad input gets INVALID_ARGUMENT naming the item and the limit; the worker keeps serving."""

from __future__ import annotations

import io

import grpc
import numpy as np
import pytest
from PIL import Image
from withsense.v1 import inference_pb2 as pb
from withsense.v1 import inference_pb2_grpc

from tests.worker.helpers import png_bomb, rpc_error

# Small count limits so "too many" is cheap to send; the pixel limit stays the default (50 MP).
LIMITS = {
    "max_texts": 8, "max_text_chars": 2000, "max_images": 4, "max_image_bytes": 2_000_000,
    "max_score_queries": 4, "max_score_candidates": 16,
}
DIM = 384


@pytest.fixture
async def limited_stub(start_test_worker):
    worker = await start_test_worker(**LIMITS)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{worker.port}") as channel:
        yield inference_pb2_grpc.InferenceServiceStub(channel)


def vec(values) -> pb.Vector:
    return pb.Vector(values=list(values))


def good_vector(seed: int = 0) -> list[float]:
    return np.random.default_rng(seed).standard_normal(DIM).astype(np.float32).tolist()


def score(*segments: tuple[list[float], list[list[float]]]) -> pb.ScoreRequest:
    return pb.ScoreRequest(queries=[
        pb.ScoreQuery(query=vec(q), candidates=[vec(c) for c in cands]) for q, cands in segments
    ])


def webp_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), "orange").save(buffer, "WEBP")
    return buffer.getvalue()


def png_bytes(mode: str = "RGBA") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (40, 30)).save(buffer, "PNG")
    return buffer.getvalue()


def nan_at(index: int) -> list[float]:
    values = good_vector(1)
    values[index] = float("nan")
    return values


def inf_at(index: int) -> list[float]:
    values = good_vector(2)
    values[index] = float("-inf")
    return values


def text_cases():
    ok = ["fine"]
    return [
        pytest.param(ok * 3 + ["x" * 2301], ["texts[3] is 2301 characters", "the limit is 2000",
                                             "WITHSENSE_WORKER_MAX_TEXT_CHARS"], id="too-long"),
        pytest.param(ok + [""], ["texts[1] is empty"], id="empty-text"),
        pytest.param(ok * 2 + [" \n\t"], ["texts[2] is empty or only whitespace"], id="blank-text"),
        pytest.param([], ["texts is empty", "send 1 to 8 texts"], id="no-texts"),
        pytest.param(ok * 9, ["texts has 9 items", "the limit is 8",
                              "WITHSENSE_WORKER_MAX_TEXTS"], id="too-many-texts"),
    ]


@pytest.mark.parametrize(("texts", "expected"), text_cases())
async def test_bad_texts(limited_stub, texts, expected):
    error = await rpc_error(limited_stub.EmbedText(pb.EmbedTextRequest(texts=texts), timeout=30))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    for part in expected:
        assert part in error.details(), error.details()
    reply = await limited_stub.EmbedText(pb.EmbedTextRequest(texts=["still serving"]), timeout=30)
    assert len(reply.vectors) == 1


def image_cases(photos: dict[str, bytes]):
    cat = photos["chelsea"]
    return {
        "not-an-image": ([cat, b"GIF89a this is not a photo at all"],
                         ["images[1] is not a JPEG, PNG or WebP image"]),
        "gif-not-accepted": ([_gif()], ["images[0] is not a JPEG, PNG or WebP image"]),
        "empty-bytes": ([cat, b""], ["images[1] is empty"]),
        "truncated-jpeg": ([cat, cat, cat[: len(cat) // 2]],
                           ["images[2] is a truncated or corrupt JPEG image"]),
        "bomb-10000x10000": ([cat, png_bomb(10_000, 10_000)],
                             ["images[1] is 10000x10000 = 100000000 pixels",
                              "the limit is 50000000", "WITHSENSE_WORKER_MAX_IMAGE_PIXELS"]),
        "bomb-beyond-pil-guard": ([png_bomb(20_000, 20_000)],
                                  ["images[0] is", "pixels", "the limit is 50000000",
                                   "WITHSENSE_WORKER_MAX_IMAGE_PIXELS"]),
        "too-thin": ([png_bomb(5000, 10)], ["images[0] is 5000x10, aspect ratio 500.0",
                                            "WITHSENSE_WORKER_MAX_IMAGE_ASPECT_RATIO"]),
        "too-many-bytes": ([b"\xff\xd8" + bytes(2_000_000)],
                           ["images[0] is 2000002 bytes", "the limit is 2000000",
                            "WITHSENSE_WORKER_MAX_IMAGE_BYTES"]),
        "too-many-images": ([cat] * 5, ["images has 5 items", "the limit is 4",
                                        "WITHSENSE_WORKER_MAX_IMAGES"]),
        "no-images": ([], ["images is empty"]),
    }


def _gif() -> bytes:
    buffer = io.BytesIO()
    Image.new("P", (10, 10)).save(buffer, "GIF")
    return buffer.getvalue()


IMAGE_CASES = ["not-an-image", "gif-not-accepted", "empty-bytes", "truncated-jpeg",
               "bomb-10000x10000", "bomb-beyond-pil-guard", "too-thin", "too-many-bytes",
               "too-many-images", "no-images"]


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # expected here
@pytest.mark.parametrize("case", IMAGE_CASES)
async def test_bad_images(limited_stub, photos, case):
    images, expected = image_cases(photos)[case]
    error = await rpc_error(limited_stub.EmbedImages(pb.EmbedImagesRequest(images=images), timeout=30))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    for part in expected:
        assert part in error.details(), error.details()
    reply = await limited_stub.EmbedImages(
        pb.EmbedImagesRequest(images=[photos["coffee"], webp_bytes(), png_bytes("RGBA"),
                                      png_bytes("L")]), timeout=60,
    )
    assert len(reply.vectors) == 4  # JPEG, WebP and PNG (RGBA, grey) are all fine


def score_cases():
    q, c = good_vector(0), good_vector(3)
    short = c[:-1]
    return [
        pytest.param(score((q, [c, c, short])), ["queries[0].candidates[2] has 383 values",
                                                  "the model's dim is 384"], id="short-candidate"),
        pytest.param(score((q, [c]), (q + [0.5], [c])), ["queries[1].query has 385 values"],
                     id="long-query"),
        pytest.param(score((q, []), ([], [c])), ["queries[1].query has 0 values"],
                     id="missing-query"),
        pytest.param(score((q, [c]), (q, [c, c, nan_at(17)])),
                     ["queries[1].candidates[2] has a non-finite value (nan) at index 17"],
                     id="nan-candidate"),
        pytest.param(score((inf_at(5), [c])), ["queries[0].query has a non-finite value (-inf)"],
                     id="inf-query"),
        pytest.param(score((q, [c, [0.0] * DIM])), ["queries[0].candidates[1] is all zeros"],
                     id="zero-candidate"),
        pytest.param(score(*[(q, [c])] * 5), ["queries has 5 items", "the limit is 4",
                                              "WITHSENSE_WORKER_MAX_SCORE_QUERIES"],
                     id="too-many-queries"),
        pytest.param(score((q, [c] * 10), (q, [c] * 7)),
                     ["17 candidates over all queries", "the limit is 16",
                      "WITHSENSE_WORKER_MAX_SCORE_CANDIDATES"], id="too-many-candidates"),
        pytest.param(pb.ScoreRequest(), ["queries is empty"], id="no-queries"),
    ]


@pytest.mark.parametrize(("request_", "expected"), score_cases())
async def test_bad_score_requests(limited_stub, request_, expected):
    error = await rpc_error(limited_stub.Score(request_, timeout=30))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    for part in expected:
        assert part in error.details(), error.details()
    reply = await limited_stub.Score(score((good_vector(0), [good_vector(1)] * 16)), timeout=30)
    assert len(reply.results[0].probabilities) == 16


async def test_message_size_limit_is_enforced(start_test_worker):
    worker = await start_test_worker(max_message_mb=1)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{worker.port}") as channel:
        stub = inference_pb2_grpc.InferenceServiceStub(channel)
        error = await rpc_error(
            stub.EmbedImages(pb.EmbedImagesRequest(images=[bytes(1_100_000)]), timeout=30)
        )
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        reply = await stub.EmbedText(pb.EmbedTextRequest(texts=["still serving"]), timeout=30)
        assert len(reply.vectors) == 1


async def test_unexpected_errors_are_internal_with_a_short_message(
    start_test_worker, worker_runtime, caplog
):
    """A model failure is INTERNAL (type only, no traceback) and logged; the worker recovers."""
    worker = await start_test_worker()
    original = worker.serving._run_texts
    calls = 0

    def flaky(payloads):
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("CUDA error: an illegal memory access with secret details")
        return original(payloads)

    worker.serving._text._run_fn = flaky
    async with grpc.aio.insecure_channel(f"127.0.0.1:{worker.port}") as channel:
        stub = inference_pb2_grpc.InferenceServiceStub(channel)
        error = await rpc_error(stub.EmbedText(pb.EmbedTextRequest(texts=["boom"]), timeout=30))
        assert error.code() == grpc.StatusCode.INTERNAL
        assert error.details() == "internal error in EmbedText (RuntimeError); see the worker's log"
        assert "secret" not in error.details()
        assert any("EmbedText failed" in r.getMessage() for r in caplog.records)
        reply = await stub.EmbedText(pb.EmbedTextRequest(texts=["fine again"]), timeout=30)
        assert len(reply.vectors) == 1
    assert worker.metrics.registry.get_sample_value(
        "withsense_worker_requests_total", {"method": "EmbedText", "code": "INTERNAL"}
    ) == 1
