"""Starting and stopping the worker: grpc.aio server, health, reflection, metrics, signals.

Order at start: bind and start the server with health NOT_SERVING (so probes get an answer and
InferenceService calls get UNAVAILABLE while the model loads), load and warm up the model, then
health SERVING for "" and "withsense.v1.InferenceService". Order at stop: health NOT_SERVING,
stop taking calls, let those in flight finish within the grace period, stop the model thread.

    server = await start_worker(WorkerSettings(port=0), runtime)   # runtime: optional
    ... server.port ...
    await server.stop(grace=5)

`serve_worker(settings, model_settings)` is the blocking entry point of `withsense serve worker`.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import grpc
from grpc_health.v1.health import aio as health_aio

from withsense.config.model import ModelSettings
from withsense.config.worker import WorkerSettings
from withsense.rpc import add_health_and_reflection, bind, server_options, set_serving
from withsense.v1 import inference_pb2_grpc
from withsense.worker.metrics import Metrics
from withsense.worker.servicer import InferenceServicer
from withsense.worker.serving import SERVICE_NAME, WorkerServing

if TYPE_CHECKING:
    from withsense.model.runtime import ModelRuntime

log = logging.getLogger(__name__)



class WorkerServer:
    """A running worker. Use `start_worker` (or `create` + `load`) to get one."""

    def __init__(self, settings: WorkerSettings, server: grpc.aio.Server, port: int,
                 serving: WorkerServing, health: health_aio.HealthServicer) -> None:
        self.settings = settings
        self.server = server
        self.port = port
        self.serving = serving
        self.health = health
        self.metrics: Metrics = serving.metrics
        self.metrics_port: int | None = None
        self._metrics_http: Any = None
        self._stopped = False

    @property
    def address(self) -> str:
        return f"{self.settings.host}:{self.port}"

    @property
    def runtime(self) -> ModelRuntime | None:
        return self.serving.runtime

    @property
    def dim(self) -> int:
        """The joint space's dimension (the model must be loaded)."""
        return self.serving.require_runtime().dim

    @property
    def model_version(self) -> str:
        return self.serving.require_runtime().version

    @classmethod
    async def create(cls, settings: WorkerSettings) -> WorkerServer:
        """Binds and starts the gRPC server: health NOT_SERVING, inference UNAVAILABLE."""
        serving = WorkerServing(settings)
        server = grpc.aio.server(options=server_options(settings.max_message_mb))
        inference_pb2_grpc.add_InferenceServiceServicer_to_server(InferenceServicer(serving), server)
        health = add_health_and_reflection(server, [SERVICE_NAME])
        await set_serving(health, [SERVICE_NAME], False)
        port = bind(server, settings.host, settings.port)
        await server.start()
        worker = cls(settings, server, port, serving, health)
        if settings.metrics_port:
            worker._start_metrics_http()
        log.info("worker listening on %s:%d (model not loaded yet)", settings.host, port)
        return worker

    async def load(
        self, runtime: ModelRuntime | None = None, model_settings: ModelSettings | None = None
    ) -> None:
        """Loads the model (unless given), then reports SERVING."""
        await self.serving.load(runtime, model_settings)
        await set_serving(self.health, [SERVICE_NAME], True)
        log.info("worker serving model %s on %s", self.serving.runtime.version, self.address)  # type: ignore[union-attr]

    def _start_metrics_http(self) -> None:
        from prometheus_client import start_http_server

        self._metrics_http, _thread = start_http_server(
            self.settings.metrics_port, addr=self.settings.host, registry=self.metrics.registry
        )
        self.metrics_port = int(self._metrics_http.server_address[1])
        log.info("worker metrics on http://%s:%d/metrics", self.settings.host, self.metrics_port)

    async def stop(self, grace: float | None = None) -> None:
        """Graceful stop: NOT_SERVING, no new calls, calls in flight get `grace` seconds
        (default: settings.grace_seconds) to finish, then the model thread stops."""
        if self._stopped:
            return
        self._stopped = True
        grace = self.settings.grace_seconds if grace is None else grace
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
        await self.serving.close()
        if self._metrics_http is not None:
            self._metrics_http.shutdown()
            self._metrics_http.server_close()
        log.info("worker on %s stopped", self.address)

    async def wait_for_termination(self) -> None:
        await self.server.wait_for_termination()


async def start_worker(
    settings: WorkerSettings,
    runtime: ModelRuntime | ModelSettings | None = None,
    *,
    model_settings: ModelSettings | None = None,
) -> WorkerServer:
    """Starts a worker and returns once it is SERVING. With a `runtime` given (tests, demo), that
    model is served; else it is loaded from `model_settings` (default: from the environment).
    A ModelSettings passed in runtime's place is taken as model_settings."""
    if isinstance(runtime, ModelSettings):
        runtime, model_settings = None, runtime
    worker = await WorkerServer.create(settings)
    try:
        await worker.load(runtime, model_settings)
    except BaseException:
        await worker.stop(0)
        raise
    return worker


async def run_worker(
    settings: WorkerSettings,
    model_settings: ModelSettings | None = None,
    *,
    runtime: ModelRuntime | None = None,
    stop: asyncio.Event | None = None,
    on_serving: Callable[[WorkerServer], object] | None = None,
) -> None:
    """Serves until `stop` is set or SIGTERM/SIGINT arrives, then stops gracefully (calls in
    flight get settings.grace_seconds). A signal during the model load stops without ever
    reporting SERVING (once the loading thread returns). `on_serving(worker)` is called when
    the worker is SERVING (tests, supervisors)."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: dict[signal.Signals, Any] = {}  # signal -> the handler before ours, restored
    for signum in (signal.SIGTERM, signal.SIGINT):
        try:
            previous = signal.getsignal(signum)
            loop.add_signal_handler(signum, stop.set)
            installed[signum] = previous
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, Windows
            pass
    worker: WorkerServer | None = None
    stopped = asyncio.ensure_future(stop.wait())
    try:
        worker = await WorkerServer.create(settings)
        load = asyncio.ensure_future(worker.load(runtime, model_settings))
        await asyncio.wait({load, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if load.done():
            load.result()  # a failed load raises here
            if on_serving is not None:
                on_serving(worker)
            await stopped
        else:
            load.cancel()
        log.info("worker stopping (grace %.1f s)", settings.grace_seconds)
    finally:
        stopped.cancel()
        if worker is not None:
            await worker.stop(settings.grace_seconds)
        for signum, previous in installed.items():
            loop.remove_signal_handler(signum)
            if previous is not None:
                signal.signal(signum, previous)


def serve_worker(settings: WorkerSettings | None = None, model_settings: ModelSettings | None = None) -> None:
    """Blocking entry point of `withsense serve worker`: serves until SIGTERM or SIGINT."""
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
    asyncio.run(run_worker(settings or WorkerSettings(), model_settings or ModelSettings()))


__all__ = ["WorkerServer", "run_worker", "serve_worker", "start_worker"]
