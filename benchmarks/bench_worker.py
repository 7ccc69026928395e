"""Benchmark of the inference worker: gRPC overhead and the image tower's fast path.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_worker.py [--repeats N] [--extra]
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_worker.py --against OTHER_ARTIFACT_DIR

Prints Markdown tables (docs/benchmarks.md, section "Worker"), each against a baseline measured
in the same run:

1. Text and image embedding through the worker (real gRPC on 127.0.0.1, worker in this process
   on its own event-loop thread, `max_wait_ms=0` since the client is sequential) against the
   same ModelRuntime called in process, at batch sizes 1, 8, 32: medians, the two interleaved
   call by call so background load hits both alike. Images are JPEG bytes in both paths (the
   in-process path decodes them one by one; the worker decodes in its decode threads).
2. Image tower throughput (32 preprocessed photos, network only; of an ensemble, its first
   network): plain eager timm (NCHW fp32)
   against channels_last eager, ONNX Runtime fp32 (the worker's default) and bf16; `--extra`
   adds ONNX Runtime int8 (static, QDQ) and torch.compile (about a minute to compile).
3. The floor: FLOPs per photo (torch.utils.flop_counter) over this machine's measured fp32
   FLOP/s (a 2048^3 matmul, in this run).
4. JPEG decoding of a 24-megapixel photo: full decode against draft (DCT-scaled) decode.

``--against DIR`` prints only the cost per photo at indexing of the served artifact against
another artifact (its towers, networks and TTA), interleaved: what a model change costs.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from functools import partial
from typing import Any

import grpc
import numpy as np
import torch
from bench_utils import interleaved, load_note, matmul_flops_per_second
from PIL import Image

CAPTIONS = [
    "A man is crossing a mountain pass on a metal bridge",
    "Two dogs are playing with a red ball in the snow",
    "A woman in a blue dress walks along a crowded city street at night",
    "A black and white cat sleeps on a wooden chair",
    "Surfers ride a large wave under a cloudy sky",
    "A cup of coffee and a croissant on a marble table",
    "Children's toys scattered on a green lawn",
    "An old red tractor in a field of golden wheat at sunset",
]
PHOTOS = ("chelsea", "coffee", "rocket", "astronaut", "camera", "hubble_deep_field", "horse",
          "immunohistochemistry")
BATCHES = (1, 8, 32)


def jpeg(array: np.ndarray | Image.Image, quality: int = 90) -> bytes:
    image = Image.fromarray(array) if isinstance(array, np.ndarray) else array
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def photo_bytes() -> list[bytes]:
    from skimage import data

    return [jpeg(getattr(data, name)()) for name in PHOTOS]


class BackgroundWorker:
    """The worker on its own event loop in a thread, so this thread can be a plain client."""

    def __init__(self, runtime: Any, **overrides: Any) -> None:
        from withsense.config import WorkerSettings
        from withsense.worker.server import start_worker

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        settings = WorkerSettings(host="127.0.0.1", port=0, max_wait_ms=0.0, **overrides)
        self.server = self._run(start_worker(settings, runtime))
        self.settings = settings

    def _run(self, coroutine: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        return future.result(600)

    def close(self) -> None:
        self._run(self.server.stop(1.0))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def bench_grpc_overhead(runtime: Any, repeats: int) -> list[dict[str, Any]]:
    from withsense.v1 import inference_pb2 as pb
    from withsense.v1 import inference_pb2_grpc
    from withsense.worker import protocol

    worker = BackgroundWorker(runtime)
    settings = worker.settings
    photos = photo_bytes()
    draft = protocol.draft_size_for(runtime.image_tower.image_size,
                                    float(runtime.image_tower.data_config["crop_pct"]))
    rows = []
    try:
        with grpc.insecure_channel(f"127.0.0.1:{worker.server.port}") as channel:
            stub = inference_pb2_grpc.InferenceServiceStub(channel)
            for batch in BATCHES:
                texts = [CAPTIONS[i % len(CAPTIONS)] + f" ({i})" for i in range(batch)]
                request = pb.EmbedTextRequest(texts=texts)
                text_calls: dict[str, Callable[[], Any]] = {
                    "in-process": partial(runtime.embed_texts, texts),
                    "worker": partial(stub.EmbedText, request, timeout=60),
                }
                times = interleaved(text_calls, 3 * repeats, warmup=2)  # cheap: more runs
                rows.append({"kind": "text", "batch": batch, **times})
            for batch in BATCHES:
                images = [photos[i % len(photos)] for i in range(batch)]
                request = pb.EmbedImagesRequest(images=images)

                def local(images: list[bytes] = images) -> np.ndarray:
                    decoded = [protocol.decode_image(b, i, settings, draft_size=draft)
                               for i, b in enumerate(images)]
                    return runtime.embed_images(decoded)

                image_calls: dict[str, Callable[[], Any]] = {
                    "in-process": local,
                    "worker": partial(stub.EmbedImages, request, timeout=120),
                }
                times = interleaved(image_calls, repeats)
                rows.append({"kind": "image", "batch": batch, **times})
            info = pb.GetModelInfoRequest()
            round_trip = interleaved({"info": partial(stub.GetModelInfo, info, timeout=10)},
                                     3 * repeats, warmup=2)["info"]
            rows.append({"kind": "round trip", "batch": 0, "in-process": 0.0, "worker": round_trip})
    finally:
        worker.close()
    return rows


def bench_image_paths(runtime: Any, repeats: int, extra: bool) -> tuple[list[dict[str, Any]], float]:
    from withsense.model.towers import OnnxImageSession, load_timm_efficientnet

    tower = runtime.image_tower
    photos = [Image.open(io.BytesIO(b)) for b in photo_bytes()]
    pixels = tower.preprocess([photos[i % len(photos)] for i in range(32)])
    plain = load_timm_efficientnet(tower.timm_name, tower.weights)  # NCHW, as timm makes it
    channels_last = tower.model  # the ImageTower's torch path
    onnx = OnnxImageSession([tower.model], tower.image_size)  # the first network alone
    bf16 = load_timm_efficientnet(tower.timm_name, tower.weights).to(
        memory_format=torch.channels_last).to(torch.bfloat16)
    pixels_cl = pixels.contiguous(memory_format=torch.channels_last)

    def logits_of(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return model(x).float()

    variants: dict[str, Callable[[], torch.Tensor]] = {
        "eager timm, NCHW fp32 (baseline)": lambda: logits_of(plain, pixels),
        "eager timm, channels_last fp32": lambda: logits_of(channels_last, pixels_cl),
        "ONNX Runtime fp32 (worker default)": lambda: onnx(pixels).logits,
        "eager timm, channels_last bf16": lambda: logits_of(bf16, pixels_cl.to(torch.bfloat16)),
    }
    if extra:
        variants["ONNX Runtime int8 (static QDQ)"] = int8_session(tower, pixels)
        started = time.perf_counter()
        compiled = torch.compile(load_timm_efficientnet(tower.timm_name, tower.weights).to(
            memory_format=torch.channels_last))
        logits_of(compiled, pixels_cl)
        print(f"(torch.compile took {time.perf_counter() - started:.0f} s to compile)", file=sys.stderr)
        variants["torch.compile, channels_last fp32"] = lambda: logits_of(compiled, pixels_cl)

    reference = variants["eager timm, NCHW fp32 (baseline)"]()
    times = interleaved(variants, repeats=max(3, repeats // 2), warmup=1)
    rows = []
    for name, fn in variants.items():
        logits = fn()
        top1 = float((logits.argmax(1) == reference.argmax(1)).float().mean())
        rows.append({
            "path": name, "ms_per_image": times[name] / pixels.shape[0],
            "max_abs_logit_diff": float((logits - reference).abs().max()), "top1_agree": top1,
        })
    flops = flops_per_image(plain, tower.image_size)
    return rows, flops


def bench_image_end_to_end(runtime: Any, repeats: int) -> dict[str, float]:
    """ms per photo to embed 32 JPEG photos in process (decode, preprocess, tower, head)."""
    import copy

    from withsense.model.towers import load_timm_efficientnet

    photos = photo_bytes()
    batch = [photos[i % len(photos)] for i in range(32)]
    onnx = runtime.with_image_backend("onnx")
    channels_last = runtime.with_image_backend("torch")
    plain = copy.copy(channels_last)
    plain.image_tower = copy.copy(channels_last.image_tower)
    plain.image_tower.model = load_timm_efficientnet(plain.image_tower.timm_name,
                                                     plain.image_tower.weights)
    plain.image_tower.companion_models = [
        load_timm_efficientnet(name, weights) for (name, _), weights
        in zip(plain.image_tower.companions, plain.image_tower.companion_weights, strict=True)]
    plain.image_tower.channels_last = False

    def embed(rt: Any) -> Callable[[], np.ndarray]:
        return lambda: rt.embed_images([Image.open(io.BytesIO(b)) for b in batch])

    times = interleaved({"eager timm, NCHW fp32 (baseline)": embed(plain),
                         "eager timm, channels_last fp32": embed(channels_last),
                         "ONNX Runtime fp32 (worker default)": embed(onnx)},
                        repeats=max(3, repeats // 3), warmup=1)
    return {name: ms / len(batch) for name, ms in times.items()}


def bench_against(runtime: Any, other_dir: str, repeats: int) -> dict[str, float]:
    """ms per photo at indexing (32 JPEG photos: decode, preprocess, every network of the image
    tower, the artifact's TTA, the head; ONNX Runtime as the worker runs it) of the served
    artifact against another one (e.g. the previous release), interleaved in one run."""
    from pathlib import Path

    from withsense.model.runtime import ModelRuntime

    photos = photo_bytes()
    batch = [photos[i % len(photos)] for i in range(32)]
    other = ModelRuntime(Path(other_dir), image_backend="auto")

    def embed(rt: Any) -> Callable[[], np.ndarray]:
        return lambda: rt.embed_images([Image.open(io.BytesIO(b)) for b in batch])

    times = interleaved({f"{other.version} (baseline)": embed(other),
                         f"{runtime.version} (served)": embed(runtime)},
                        repeats=max(3, repeats // 2), warmup=1)
    return {name: ms / len(batch) for name, ms in times.items()}


def int8_session(tower: Any, pixels: torch.Tensor) -> Callable[[], torch.Tensor]:
    """The worker's int8 graph (withsense.model.image_int8), calibrated on these pixels and
    their mirror images (the trainer calibrates on 128 of the customer's photos instead)."""
    from withsense.model.image_int8 import calibrate
    from withsense.model.towers import OnnxImageSession, export_image_graph

    both = torch.cat([pixels, pixels.flip(-1)]).numpy()
    table = calibrate(export_image_graph(tower.networks, tower.image_size),
                      [both[i:i + 4] for i in range(0, len(both), 4)])
    session = OnnxImageSession(tower.networks, tower.image_size, int8_table=table)
    return lambda: session(pixels).logits


def flops_per_image(model: torch.nn.Module, size: int) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        model(torch.zeros(1, 3, size, size))
    return float(counter.get_total_flops())


def bench_jpeg_decode(runtime: Any, repeats: int) -> dict[str, float]:
    from skimage import data
    from withsense.config import WorkerSettings
    from withsense.worker import protocol

    big = jpeg(Image.fromarray(data.astronaut()).resize((6000, 4000), Image.Resampling.BICUBIC), 92)
    draft = protocol.draft_size_for(runtime.image_tower.image_size,
                                    float(runtime.image_tower.data_config["crop_pct"]))
    full_settings, draft_settings = WorkerSettings(jpeg_draft=False), WorkerSettings()

    def decode(settings: WorkerSettings) -> torch.Tensor:
        return runtime.preprocess_image(protocol.decode_image(big, 0, settings, draft_size=draft))

    times = interleaved({"full": lambda: decode(full_settings),
                         "draft": lambda: decode(draft_settings)}, max(3, repeats // 2))
    with torch.inference_mode():
        vectors = runtime.embed_pixels(torch.stack([decode(full_settings), decode(draft_settings)]))
    times["cosine"] = float(vectors[0] @ vectors[1])
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per measurement")
    parser.add_argument("--extra", action="store_true",
                        help="also ONNX Runtime int8 and torch.compile (adds a minute or more)")
    parser.add_argument("--against", metavar="ARTIFACT_DIR",
                        help="only: cost per photo at indexing of the served artifact against this one")
    args = parser.parse_args()

    from withsense.model.runtime import ModelRuntime

    began = time.perf_counter()
    started = time.perf_counter()
    runtime = ModelRuntime(image_backend="auto")
    load_s = time.perf_counter() - started
    print(f"# Worker benchmark: torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} CPUs, image backend {runtime.image_tower.backend}, "
          f"model loaded in {load_s:.1f} s, load average {os.getloadavg()[0]:.1f}\n")
    if args.against:
        costs = bench_against(runtime, args.against, args.repeats)
        baseline_ms = next(iter(costs.values()))
        print("## Cost per photo at indexing (32 JPEG photos, decode to vector, ONNX Runtime)\n")
        print("| artifact | ms / photo | photos / s | cost vs baseline |\n|---|---:|---:|---:|")
        for name, ms in costs.items():
            print(f"| {name} | {ms:.1f} | {1000 / ms:.1f} | {ms / baseline_ms:.2f}x |")
        print(f"\n(total {time.perf_counter() - began:.0f} s, load average {os.getloadavg()[0]:.1f})")
        return

    rows = bench_grpc_overhead(runtime, args.repeats)
    print("## Embedding through the worker (gRPC on 127.0.0.1) vs in process\n")
    print("| input | batch | in process, ms | worker, ms | worker / in process | worker, items/s |")
    print("|---|---:|---:|---:|---:|---:|")
    for row in rows[:-1]:
        ratio = row["worker"] / row["in-process"]
        print(f"| {row['kind']} | {row['batch']} | {row['in-process']:.1f} | {row['worker']:.1f} | "
              f"{ratio:.2f} | {1000 * row['batch'] / row['worker']:.0f} |")

    print(f"\ngRPC round trip without model work (GetModelInfo): {rows[-1]['worker']:.2f} ms.")

    flop_rate = matmul_flops_per_second()
    paths, flops = bench_image_paths(runtime, args.repeats, args.extra)
    floor_ms = 1000 * flops / flop_rate
    baseline = paths[0]["ms_per_image"]
    print("\n## Image tower, 32 photos per batch (network only)\n")
    print("| path | ms / photo | photos / s | speed-up vs eager NCHW | x floor | "
          "max abs logit diff | top-1 agrees |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for row in paths:
        ms = row["ms_per_image"]
        print(f"| {row['path']} | {ms:.2f} | {1000 / ms:.0f} | {baseline / ms:.2f}x | "
              f"{ms / floor_ms:.1f} | {row['max_abs_logit_diff']:.1e} | {row['top1_agree']:.0%} |")
    print(f"\nFloor: {flops / 1e9:.2f} GFLOP per photo (FlopCounterMode) / "
          f"{flop_rate / 1e9:.0f} GFLOP/s (fp32 2048^3 matmul, this run) = {floor_ms:.2f} ms per photo.")

    end_to_end = bench_image_end_to_end(runtime, args.repeats)
    print("\n## Image embedding end to end in process, 32 JPEG photos (decode, preprocess, "
          "tower, head)\n")
    print("| path | ms / photo | photos / s | speed-up vs eager NCHW |\n|---|---:|---:|---:|")
    eager_ms = end_to_end["eager timm, NCHW fp32 (baseline)"]
    for name, ms in end_to_end.items():
        print(f"| {name} | {ms:.2f} | {1000 / ms:.0f} | {eager_ms / ms:.2f}x |")

    decode = bench_jpeg_decode(runtime, args.repeats)
    print("\n## Decoding + preprocessing one 6000x4000 JPEG (24 MP)\n")
    print("| decode | ms | speed-up |\n|---|---:|---:|")
    print(f"| full | {decode['full']:.1f} | 1.00x |")
    print(f"| draft (DCT scale, sides >= 512) | {decode['draft']:.1f} | "
          f"{decode['full'] / decode['draft']:.2f}x |")
    print(f"\nCosine between the two photos' vectors: {decode['cosine']:.4f}.")
    print(f"\n(total {time.perf_counter() - began:.0f} s, {load_note()})")


if __name__ == "__main__":
    main()
