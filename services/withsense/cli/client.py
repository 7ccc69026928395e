"""The client commands: `withsense search`, `index` and `stats` against a running gateway
(gRPC only: no model code is imported)."""

from __future__ import annotations

import asyncio
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
from withsense.client import AsyncSearchClient, find_photos
from withsense.descriptions import DescriptionsError, read_descriptions


def fail(error: Exception) -> int:
    """Prints the error for a person; the exit code (2: bad input, 1: the service failed)."""
    if isinstance(error, grpc.aio.AioRpcError):
        err_console.print(f"[red]error[/red]: {error.code().name}: {error.details()}")
        return 2 if error.code() == grpc.StatusCode.INVALID_ARGUMENT else 1
    err_console.print(f"[red]error[/red]: {error}")
    return 2


def connect(args, target: str | None = None) -> AsyncSearchClient:
    """The client for --target, --tls-ca and the key: --api-key-file wins over --api-key (which
    defaults to WITHSENSE_API_KEY)."""
    key_file = getattr(args, "api_key_file", None)
    return AsyncSearchClient(target or args.target, api_key_file=key_file,
                             api_key=None if key_file else getattr(args, "api_key", None),
                             tls_ca=getattr(args, "tls_ca", None))


def _parse_filters(pairs: list[str]) -> dict[str, str]:
    filters = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"--filter {pair!r}: expected KEY=VALUE")
        filters[key] = value
    return filters


async def search(args) -> dict[str, Any]:
    async with connect(args) as client:
        result = await client.search(args.query, top_k=args.top_k, region=args.region,
                                     min_score=args.min_score, filters=_parse_filters(args.filter))
    return search_response_dict(args.query, args.region, result)


def cmd_search(args) -> int:
    try:
        result = asyncio.run(search(args))
    except (grpc.aio.AioRpcError, ValueError) as error:
        return fail(error)
    print_json(result) if args.json else print_search(result)
    return 0


async def index(args, stub_target: str | None = None) -> dict[str, Any]:
    descriptions = read_descriptions(args.descriptions) if args.descriptions else {}
    photos = find_photos(args.folder)
    async with connect(args, stub_target) as client:
        with Progress(console=console, transient=True, disable=args.json) as progress:
            task = progress.add_task(f"indexing {args.folder}", total=len(photos))
            report = await client.index_folder(args.folder, descriptions, photos=photos,
                                               progress=lambda n: progress.advance(task, n))
    return report.to_dict()


def cmd_index(args) -> int:
    try:
        report = asyncio.run(index(args))
    except (grpc.aio.AioRpcError, DescriptionsError, FileNotFoundError, ValueError) as error:
        return fail(error)
    print_json(report) if args.json else print_index(report)
    return 0


async def _stats(args) -> dict[str, Any]:
    async with connect(args) as client:
        return (await client.stats(timeout_s=10)).to_dict()


def cmd_stats(args) -> int:
    try:
        stats = asyncio.run(_stats(args))
    except (grpc.aio.AioRpcError, ValueError) as error:
        return fail(error)
    if args.json:
        print_json(stats)
    else:
        for key, value in stats.items():
            console.print(f"{key}: {value}")
    return 0
