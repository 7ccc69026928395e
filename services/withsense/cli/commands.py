"""The subcommands' bodies (argument parsing lives in main.py)."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

import grpc
from rich.progress import Progress

from withsense.cli.output import (
    console,
    err_console,
    print_index,
    print_json,
    print_search,
    search_response_dict,
)
from withsense.descriptions import DescriptionsError, read_descriptions
from withsense.indexer import bearer, client_channel, find_photos, index_folder
from withsense.v1 import search_pb2 as pb
from withsense.v1 import search_pb2_grpc as pb_grpc

DEMO_QUERIES = [
    "A man is crossing a mountain pass on a metal bridge",
    "a cup of coffee on a table",
    "a rocket before launch",
    "a cat",
    "the starry night sky",
    "a man filming with a camera on a tripod",  # withheld by its description ("my son")
    "an astronaut in front of the flag",  # withheld by sight: no description
    "a little girl playing in the park",
]


def _fail(error: Exception) -> int:
    if isinstance(error, grpc.aio.AioRpcError):
        err_console.print(f"[red]error[/red]: {error.code().name}: {error.details()}")
        return 2 if error.code() == grpc.StatusCode.INVALID_ARGUMENT else 1
    err_console.print(f"[red]error[/red]: {error}")
    return 2


# --- client commands --------------------------------------------------------------------------

def _parse_filters(pairs: list[str]) -> dict[str, str]:
    filters = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"--filter {pair!r}: expected KEY=VALUE")
        filters[key] = value
    return filters


async def _search(args) -> dict[str, Any]:
    async with client_channel(args.target, args.tls_ca) as channel:
        stub = pb_grpc.SearchServiceStub(channel)
        request = pb.SearchRequest(query=args.query, top_k=args.top_k, region=args.region,
                                   min_score=args.min_score, filters=_parse_filters(args.filter))
        response = await stub.Search(request, metadata=bearer(args.api_key), timeout=30)
    return search_response_dict(args.query, args.region, response)


def cmd_search(args) -> int:
    try:
        result = asyncio.run(_search(args))
    except (grpc.aio.AioRpcError, ValueError) as error:
        return _fail(error)
    print_json(result) if args.json else print_search(result)
    return 0


async def _index(args, stub_target: str | None = None) -> dict[str, Any]:
    descriptions = read_descriptions(args.descriptions) if args.descriptions else {}
    photos = find_photos(args.folder)
    async with client_channel(stub_target or args.target, getattr(args, "tls_ca", None)) as channel:
        stub = pb_grpc.SearchServiceStub(channel)
        with Progress(console=console, transient=True, disable=args.json) as progress:
            task = progress.add_task(f"indexing {args.folder}", total=len(photos))
            report = await index_folder(stub, args.folder, descriptions, photos=photos,
                                        metadata=bearer(getattr(args, "api_key", None)),
                                        progress=lambda n: progress.advance(task, n))
    return report.to_dict()


def cmd_index(args) -> int:
    try:
        report = asyncio.run(_index(args))
    except (grpc.aio.AioRpcError, DescriptionsError, FileNotFoundError) as error:
        return _fail(error)
    print_json(report) if args.json else print_index(report)
    return 0


async def _stats(args) -> dict[str, Any]:
    async with client_channel(args.target, args.tls_ca) as channel:
        reply = await pb_grpc.SearchServiceStub(channel).GetStats(
            pb.GetStatsRequest(), metadata=bearer(args.api_key), timeout=10)
    return {"images": reply.images, "flagged": reply.flagged, "store_backend": reply.store_backend,
            "model_version": reply.model_version, "restricted_regions": list(reply.restricted_regions)}


def cmd_stats(args) -> int:
    try:
        stats = asyncio.run(_stats(args))
    except grpc.aio.AioRpcError as error:
        return _fail(error)
    if args.json:
        print_json(stats)
    else:
        for key, value in stats.items():
            console.print(f"{key}: {value}")
    return 0


# --- services --------------------------------------------------------------------------------

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
                                               worker_address=args.worker_address))
        return _run_or_explain(serve_gateway(gateway))
    return _run_or_explain(_serve_all(args, model))


async def _serve_all(args, model) -> None:
    from withsense.cli.stack import start_stack
    from withsense.rpc import wait_for_signal

    stack = await start_stack(data_dir=model.data_dir, model_dir=model.model_dir,
                              gateway_port=args.port or 50051, worker_port=args.worker_port or 0,
                              **_drop_none(host=args.host))
    console.print(f"serving: gateway on {stack.target}; Ctrl-C stops")
    await wait_for_signal()
    await stack.stop()


def _run_or_explain(coroutine) -> int:
    from withsense.store import StoreError

    try:
        asyncio.run(coroutine)
    except (StoreError, ValueError, OSError) as error:
        return _fail(error)
    return 0


# --- demo ------------------------------------------------------------------------------------

def cmd_demo(args) -> int:
    return _run_or_explain(_demo(args))


async def _demo(args) -> None:
    from withsense.cli.stack import start_stack
    from withsense.gallery import write_gallery
    from withsense.rpc import wait_for_signal

    with tempfile.TemporaryDirectory(prefix="withsense-demo-") as tmp:
        data_dir = args.data_dir or Path(tmp) / "data"
        folder, descriptions_file = args.images, args.descriptions
        if folder is None:
            folder = Path(tmp) / "gallery"
            _write_descriptions_csv(write_gallery(folder), Path(tmp) / "descriptions.csv")
            descriptions_file = Path(tmp) / "descriptions.csv"
        if not args.json:
            console.print("[bold]With Sense search demo[/bold]: loading the model …")
        stack = await start_stack(data_dir=data_dir, gateway_port=args.port if args.serve else 0)
        try:
            index_args = _Namespace(folder=folder, descriptions=descriptions_file, json=args.json)
            report = await _index(index_args, stack.target)
            if not args.json:
                console.print(f"model {stack.gateway.engine.model_version}; gallery {folder}")
                print_index(report)
            results = []
            for query in args.query or DEMO_QUERIES:
                search_args = _Namespace(target=stack.target, tls_ca=None, query=query,
                                         top_k=args.top_k, region=args.region, min_score=0.0,
                                         filter=[], api_key=None)
                result = await _search(search_args)
                results.append(result)
                if not args.json:
                    print_search(result)
            if args.json:
                print_json({"index": report, "searches": results})
            if args.serve:
                console.print(f"serving on {stack.target}: try `withsense search 'a cat' "
                              f"--target {stack.target}`; Ctrl-C stops")
                await wait_for_signal()
        finally:
            await stack.stop()


class _Namespace:
    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)


def _write_descriptions_csv(descriptions: dict[str, list[str]], path: Path) -> None:
    import csv

    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "description"])
        for image, texts in descriptions.items():
            for text in texts:
                writer.writerow([image, text])


# --- trainer and load test -------------------------------------------------------------------

def cmd_train(args) -> int:
    from withsense_train import cli as train_cli

    return int(train_cli.train_command(args) or 0)


def cmd_evaluate(args) -> int:
    from withsense_train import cli as train_cli

    return int(train_cli.evaluate_command(args) or 0)


def cmd_loadtest(args) -> int:
    from withsense.loadtest import load_queries, render_table, run_loadtest

    if args.qps is None and args.concurrency is None:
        args.concurrency = 1
    try:
        report = run_loadtest(args.target, qps=args.qps, concurrency=args.concurrency,
                              duration_s=args.duration, queries=load_queries(args.queries),
                              top_k=args.top_k, region=args.region, api_key=args.api_key,
                              timeout_s=args.timeout)
    except (ValueError, OSError, grpc.aio.AioRpcError) as error:
        return _fail(error)
    print_json(report.to_dict()) if args.json else console.print(render_table(report))
    return 0
