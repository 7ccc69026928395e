"""The client commands: `withsense search`, `index` and `stats` against a running gateway
(gRPC only: no model code is imported)."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
from rich.progress import Progress

from withsense.channel import bearer, client_channel, read_api_key
from withsense.cli.output import (
    console,
    err_console,
    print_index,
    print_json,
    print_search,
    search_response_dict,
)
from withsense.descriptions import DescriptionsError, read_descriptions
from withsense.indexer import find_photos, index_folder
from withsense.v1 import search_pb2 as pb
from withsense.v1 import search_pb2_grpc as pb_grpc


def fail(error: Exception) -> int:
    """Prints the error for a person; the exit code (2: bad input, 1: the service failed)."""
    if isinstance(error, grpc.aio.AioRpcError):
        err_console.print(f"[red]error[/red]: {error.code().name}: {error.details()}")
        return 2 if error.code() == grpc.StatusCode.INVALID_ARGUMENT else 1
    err_console.print(f"[red]error[/red]: {error}")
    return 2


def api_key(args) -> str | None:
    """--api-key, or the key in --api-key-file."""
    if getattr(args, "api_key_file", None) is not None:
        return read_api_key(args.api_key_file)
    return getattr(args, "api_key", None)


def _parse_filters(pairs: list[str]) -> dict[str, str]:
    filters = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"--filter {pair!r}: expected KEY=VALUE")
        filters[key] = value
    return filters


async def search(args) -> dict[str, Any]:
    async with client_channel(args.target, args.tls_ca) as channel:
        stub = pb_grpc.SearchServiceStub(channel)
        request = pb.SearchRequest(query=args.query, top_k=args.top_k, region=args.region,
                                   min_score=args.min_score, filters=_parse_filters(args.filter))
        response = await stub.Search(request, metadata=bearer(args.api_key), timeout=30)
    return search_response_dict(args.query, args.region, response)


def cmd_search(args) -> int:
    args.api_key = api_key(args)
    try:
        result = asyncio.run(search(args))
    except (grpc.aio.AioRpcError, ValueError) as error:
        return fail(error)
    print_json(result) if args.json else print_search(result)
    return 0


async def index(args, stub_target: str | None = None) -> dict[str, Any]:
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
    args.api_key = api_key(args)
    try:
        report = asyncio.run(index(args))
    except (grpc.aio.AioRpcError, DescriptionsError, FileNotFoundError) as error:
        return fail(error)
    print_json(report) if args.json else print_index(report)
    return 0


async def _stats(args) -> dict[str, Any]:
    async with client_channel(args.target, args.tls_ca) as channel:
        reply = await pb_grpc.SearchServiceStub(channel).GetStats(
            pb.GetStatsRequest(), metadata=bearer(args.api_key), timeout=10)
    return {"images": reply.images, "flagged": reply.flagged, "store_backend": reply.store_backend,
            "model_version": reply.model_version, "restricted_regions": list(reply.restricted_regions)}


def cmd_stats(args) -> int:
    args.api_key = api_key(args)
    try:
        stats = asyncio.run(_stats(args))
    except grpc.aio.AioRpcError as error:
        return fail(error)
    if args.json:
        print_json(stats)
    else:
        for key, value in stats.items():
            console.print(f"{key}: {value}")
    return 0
