"""Dynamic batching: concurrent calls share model batches and get the same numbers as alone."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pytest
from withsense.v1 import inference_pb2 as pb
from withsense.v1 import inference_pb2_grpc
from withsense.worker.batching import DynamicBatcher
from withsense.worker.metrics import Metrics

from tests.worker.helpers import vectors_of

TEXTS = [
    "a cat on a sofa", "a cup of coffee", "a rocket on the launch pad", "snowy mountains",
    "a man is crossing a mountain pass on a metal bridge", "two dogs play in the grass",
    "a red car", "people walking in a busy street at night",
]


async def test_concurrent_embed_text_calls_are_batched(start_test_worker):
    worker = await start_test_worker(max_wait_ms=20, max_batch_size=32)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{worker.port}") as channel:
        stub = inference_pb2_grpc.InferenceServiceStub(channel)
        alone = [await stub.EmbedText(pb.EmbedTextRequest(texts=[t]), timeout=30) for t in TEXTS]
        together = await asyncio.gather(
            *(stub.EmbedText(pb.EmbedTextRequest(texts=[t]), timeout=30) for t in TEXTS)
        )
    assert all(reply.batch_size == 1 for reply in alone)
    assert max(reply.batch_size for reply in together) > 1, [r.batch_size for r in together]
    for single, batched in zip(alone, together, strict=True):
        np.testing.assert_allclose(vectors_of(batched), vectors_of(single), atol=1e-5)
    text = worker.metrics.registry.get_sample_value(
        "withsense_worker_batch_requests_count", {"kind": "text"}
    )
    assert text is not None and text < len(alone) + len(together)


async def test_concurrent_embed_images_calls_are_batched(start_test_worker, photos):
    worker = await start_test_worker(max_wait_ms=50, max_batch_size=8)
    names = list(photos)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{worker.port}") as channel:
        stub = inference_pb2_grpc.InferenceServiceStub(channel)
        together = await asyncio.gather(*(
            stub.EmbedImages(pb.EmbedImagesRequest(images=[photos[n]]), timeout=60) for n in names
        ))
        alone = await stub.EmbedImages(pb.EmbedImagesRequest(images=list(photos.values())))
    assert max(reply.batch_size for reply in together) > 1
    assert all(reply.batch_size <= 8 for reply in together)
    np.testing.assert_allclose(
        np.concatenate([vectors_of(r) for r in together]), vectors_of(alone), atol=1e-5
    )


# --- the batcher on its own (no model) --------------------------------------------------------


@pytest.fixture
def model_thread():
    executor = ThreadPoolExecutor(1)
    yield executor
    executor.shutdown()


def doubler(calls: list[list[int]]):
    def run(payloads: list[list[int]]) -> list[list[int]]:
        calls.append([len(p) for p in payloads])
        return [[2 * x for x in payload] for payload in payloads]

    return run


async def test_batcher_respects_max_batch_size_and_never_splits_a_request(model_thread):
    calls: list[list[int]] = []
    batcher = DynamicBatcher("t", doubler(calls), executor=model_thread, max_batch_size=4,
                             max_wait_s=0.05, metrics=Metrics())
    sizes = [1, 3, 2, 2, 6, 1]
    results = await asyncio.gather(
        *(batcher.submit(list(range(n)), n) for n in sizes)
    )
    await batcher.close()
    assert [r.value for r in results] == [[2 * x for x in range(n)] for n in sizes]
    # All six queued before the first batch: merged in order up to 4 items, the 6-item request
    # alone (never split), the last one in a batch of its own.
    assert calls == [[1, 3], [2, 2], [6], [1]]
    assert [(r.batch_size, r.batch_requests) for r in results] == [
        (4, 2), (4, 2), (4, 2), (4, 2), (6, 1), (1, 1)]


async def test_batcher_max_wait_zero_runs_at_once(model_thread):
    calls: list[list[int]] = []
    batcher = DynamicBatcher("t", doubler(calls), executor=model_thread, max_batch_size=64,
                             max_wait_s=0.0)
    result = await asyncio.wait_for(batcher.submit([1], 1), 1.0)
    assert result.value == [2] and result.batch_size == 1
    await batcher.close()


async def test_batcher_max_cost_bounds_a_batch(model_thread):
    calls: list[list[int]] = []
    batcher = DynamicBatcher("t", doubler(calls), executor=model_thread, max_batch_size=100,
                             max_cost=10, max_wait_s=0.05)
    results = await asyncio.gather(*(batcher.submit([i], 1, cost=4) for i in range(5)))
    await batcher.close()
    assert [r.value for r in results] == [[0], [2], [4], [6], [8]]
    assert calls == [[1, 1], [1, 1], [1]]  # merged two at a time: 3 x 4 > 10


async def test_batcher_drops_cancelled_requests_and_reports_errors(model_thread):
    calls: list[list[int]] = []
    batcher = DynamicBatcher("t", doubler(calls), executor=model_thread, max_batch_size=8,
                             max_wait_s=0.1)
    doomed = asyncio.ensure_future(batcher.submit([99], 1))
    kept = asyncio.ensure_future(batcher.submit([1, 2], 2))
    await asyncio.sleep(0.01)
    doomed.cancel()
    assert (await kept).value == [2, 4]
    assert calls == [[2]]  # the cancelled request never reached the model

    def failing(payloads):
        raise RuntimeError("out of memory")

    broken = DynamicBatcher("t", failing, executor=model_thread, max_batch_size=8, max_wait_s=0)
    with pytest.raises(RuntimeError, match="out of memory"):
        await broken.submit([1], 1)
    await broken.close()
    await batcher.close()


async def test_batcher_close_runs_what_is_queued_then_refuses(model_thread):
    from withsense.worker.batching import WorkerUnavailable

    calls: list[list[int]] = []
    batcher = DynamicBatcher("t", doubler(calls), executor=model_thread, max_batch_size=8,
                             max_wait_s=10.0)  # would wait 10 s for more
    queued = asyncio.ensure_future(batcher.submit([5], 1))
    await asyncio.sleep(0.01)
    await asyncio.wait_for(batcher.close(), 2.0)  # closing does not wait out max_wait
    assert (await queued).value == [10]
    with pytest.raises(WorkerUnavailable):
        await batcher.submit([1], 1)
