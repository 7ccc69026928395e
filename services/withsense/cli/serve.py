"""`withsense serve worker|gateway|all`."""

from __future__ import annotations

import asyncio
from typing import Any

from withsense.cli.client import fail
from withsense.cli.output import console


def _drop_none(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def cmd_serve(args) -> int:
    from withsense.config import GatewaySettings, ModelSettings, WorkerSettings

    model = ModelSettings(**_drop_none(model_dir=args.model_dir, data_dir=args.data_dir))
    if args.role == "worker":
        from withsense.worker.server import serve_worker

        serve_worker(WorkerSettings(**_drop_none(host=args.host, port=args.port)), model)
        return 0
    if args.role == "gateway":
        from withsense.gateway.server import serve_gateway

        gateway = GatewaySettings(**_drop_none(host=args.host, port=args.port, data_dir=args.data_dir,
                                               worker_address=args.worker_address,
                                               http_port=args.http_port))
        return run_or_explain(serve_gateway(gateway))
    return run_or_explain(_serve_all(args, model))


async def _serve_all(args, model) -> None:
    from withsense.cli.stack import start_stack
    from withsense.rpc import wait_for_signal

    stack = await start_stack(data_dir=model.data_dir, model_dir=model.model_dir,
                              gateway_port=args.port or 50051, worker_port=args.worker_port or 0,
                              worker_over_grpc=args.worker_over_grpc,
                              **_drop_none(host=args.host, http_port=args.http_port))
    console.print(f"serving: gateway on {stack.target}, web page on {stack.gateway.http_url or 'off'}/; "
                  "Ctrl-C stops")
    await wait_for_signal()
    await stack.stop()


def run_or_explain(coroutine) -> int:
    from withsense.store import StoreError

    try:
        asyncio.run(coroutine)
    except (StoreError, ValueError, OSError) as error:
        return fail(error)
    return 0
