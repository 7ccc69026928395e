"""Fault tests with real processes (`withsense serve worker|gateway`), bounded in time.

* kill -9 the worker under load: errors only while it is down, recovery within seconds of its
  restart; with two workers behind the gateway's round-robin channel, no error at all;
* kill -9 the gateway during indexing: nothing acknowledged is lost, the store still starts,
  and a rerun completes the work idempotently;
* a corrupt store refuses to start, saying what to do;
* a read-only data folder refuses to start with a clear error.
"""

from __future__ import annotations

import io
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from PIL import Image
from withsense.v1 import search_pb2 as pb
from withsense.v1 import search_pb2_grpc

from .processes import Service, free_port

pytestmark = [pytest.mark.slow, pytest.mark.faults]
RECOVERY_S = 5.0  # after the worker is SERVING again, searches succeed within this


def _photos(n: int, seed: int) -> dict[str, bytes]:
    rng = np.random.default_rng(seed)
    out = {}
    for i in range(n):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)).save(buffer, "JPEG")
        out[f"s{seed}/p{i:03d}.jpg"] = buffer.getvalue()
    return out


def _stream(photos: dict[str, bytes]) -> Iterator[pb.IndexImagesRequest]:
    for uri, data in photos.items():
        yield pb.IndexImagesRequest(image=data, uri=uri, descriptions=["a photo of noise"])


def _stub(address: str):
    return search_pb2_grpc.SearchServiceStub(grpc.insecure_channel(address))


class Load:
    """Searches in a loop from two threads, recording (time, status code name)."""

    def __init__(self, address: str) -> None:
        self.stub = _stub(address)
        self.results: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(2)]

    def _run(self) -> None:
        request = pb.SearchRequest(query="a photo of noise", top_k=3, region="US")
        while not self._stop.is_set():
            try:
                self.stub.Search(request, timeout=5)
                code = "OK"
            except grpc.RpcError as error:
                code = error.code().name
            self.results.append((time.monotonic(), code))

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def wait_successes(self, n: int, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if sum(code == "OK" for _, code in self.results) >= n:
                return
            time.sleep(0.05)
        raise AssertionError(f"fewer than {n} searches succeeded: {self.results[-5:]}")

    def errors(self) -> list[tuple[float, str]]:
        return [(t, code) for t, code in self.results if code != "OK"]


class Workers:
    """Two worker processes, started together once for the module, restarted when killed."""

    def __init__(self, folder: Path) -> None:
        self.services = [Service("worker", free_port(), folder / f"worker{i}.log") for i in range(2)]

    def ensure(self, *which: int) -> list[Service]:
        chosen = [self.services[i] for i in which]
        for service in chosen:
            if service.process is None or service.process.poll() is not None:
                service.start()
        for service in chosen:
            service.wait_serving()
        return chosen

    def stop(self) -> None:
        for service in self.services:
            service.kill9()


@pytest.fixture(scope="module")
def workers(tmp_path_factory) -> Iterator[Workers]:
    pool = Workers(tmp_path_factory.mktemp("workers"))
    yield pool
    pool.stop()


@pytest.fixture
def gateways(tmp_path) -> Iterator[callable]:
    started: list[Service] = []

    def start(worker_address: str, data_dir: Path, *, wait: bool = True) -> Service:
        # The query cache off: the load repeats one query, and with the cache and the scoring
        # in the gateway a repeated query needs no worker at all, so a dead worker would go
        # unnoticed by the very searches these tests watch.
        service = Service("gateway", free_port(), tmp_path / f"gateway{len(started)}.log",
                          args=["--worker-address", worker_address, "--data-dir", str(data_dir)],
                          env={"WITHSENSE_QUERY_CACHE_SIZE": "0"})
        started.append(service.start())
        return service.wait_serving() if wait else service

    yield start
    for service in started:
        service.kill9()


# --------------------------------------------------------------------------- store at start-up


def test_a_corrupt_store_refuses_to_start(gateways, workers, tmp_path):
    (worker,) = workers.ensure(0)
    data_dir = tmp_path / "data"
    gateway = gateways(worker.address, data_dir)
    for part in (_photos(20, 1), _photos(20, 2)):  # two streams, as in use
        assert _stub(gateway.address).IndexImages(_stream(part), timeout=300).failed == 0
    gateway.kill9()
    for tracker in (data_dir / "store").rglob("mutable_id_tracker.mappings"):
        tracker.write_bytes(b"")
    refused = gateways(worker.address, data_dir, wait=False)
    assert refused.wait_exit() != 0
    assert "disagrees with its catalogue" in refused.tail()
    assert "withsense store restore" in refused.tail()


def test_a_read_only_data_folder_is_a_clear_error(gateways, tmp_path):
    data_dir = tmp_path / "read-only"
    data_dir.mkdir()
    if os.geteuid() == 0:  # root writes through permissions: mount the folder read-only
        if subprocess.run(["mount", "--bind", "-o", "ro", str(data_dir), str(data_dir)]).returncode:
            pytest.skip("cannot mount a read-only folder here")
    else:
        data_dir.chmod(0o555)
    try:
        gateway = gateways("127.0.0.1:9", data_dir, wait=False)
        assert gateway.wait_exit() != 0
        log = gateway.tail()
        assert str(data_dir) in log and ("cannot create" in log or "not writable" in log), log
        assert "Traceback" not in log
    finally:
        if os.geteuid() == 0:
            subprocess.run(["umount", str(data_dir)], check=False)
        data_dir.chmod(0o755)


# --------------------------------------------------------------------------- killed processes


def test_kill_the_gateway_during_indexing(gateways, workers, tmp_path):
    (worker,) = workers.ensure(0)
    data_dir = tmp_path / "data"
    acknowledged, interrupted = _photos(16, 3), _photos(64, 4)
    gateway = gateways(worker.address, data_dir)
    assert _stub(gateway.address).IndexImages(_stream(acknowledged), timeout=300).indexed == 16

    stub = _stub(gateway.address)
    stream = stub.IndexImages.future(_stream(interrupted), timeout=300)
    deadline = time.monotonic() + 120
    while stub.GetStats(pb.GetStatsRequest(), timeout=10).images < 32:  # a chunk is written
        assert time.monotonic() < deadline and not stream.done(), "indexing did not progress"
        time.sleep(0.05)
    gateway.kill9()
    with pytest.raises(grpc.RpcError):
        stream.result(30)

    restarted = _stub(gateways(worker.address, data_dir).address)  # the store passes its check
    assert restarted.IndexImages(_stream(acknowledged), timeout=300).unchanged == 16  # not lost
    everything = {**acknowledged, **interrupted}
    rerun = restarted.IndexImages(_stream(everything), timeout=300)
    assert rerun.failed == 0 and rerun.indexed + rerun.unchanged == len(everything)
    assert restarted.GetStats(pb.GetStatsRequest(), timeout=10).images == len(everything)
    again = restarted.IndexImages(_stream(everything), timeout=300)
    assert (again.indexed, again.unchanged) == (0, len(everything))


def test_kill_the_only_worker_under_load(gateways, workers, tmp_path):
    (worker,) = workers.ensure(0)
    gateway = gateways(worker.address, tmp_path / "data")
    _stub(gateway.address).IndexImages(_stream(_photos(8, 5)), timeout=300)
    with Load(gateway.address) as load:
        load.wait_successes(10)
        killed_at = time.monotonic()
        worker.kill9()
        time.sleep(1.0)
        (worker,) = workers.ensure(0)
        back_at = time.monotonic()
        load.wait_successes(sum(code == "OK" for _, code in load.results) + 10)
    errors = load.errors()
    assert errors, "searches did not notice the worker was gone"
    assert all(killed_at <= t for t, _ in errors), "errors before the worker was killed"
    assert all(code in ("UNAVAILABLE", "DEADLINE_EXCEEDED") for _, code in errors), errors
    assert max(t for t, _ in errors) <= back_at + RECOVERY_S, "no recovery within seconds"


def test_kill_one_of_two_workers_under_load(gateways, workers, tmp_path):
    first, second = workers.ensure(0, 1)
    both = f"ipv4:{first.address},{second.address}"
    gateway = gateways(both, tmp_path / "data")
    _stub(gateway.address).IndexImages(_stream(_photos(8, 6)), timeout=300)
    with Load(gateway.address) as load:
        load.wait_successes(10)
        second.kill9()
        load.wait_successes(sum(code == "OK" for _, code in load.results) + 20)
    assert load.errors() == []
