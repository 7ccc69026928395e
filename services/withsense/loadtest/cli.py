"""The load test's command line, one for both `withsense loadtest` and `python -m
withsense.loadtest`: ``add_arguments(parser)`` registers the flags, ``run(args)`` runs it.

Without --qps or --concurrency it runs the open loop at DEFAULT_QPS.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

DEFAULT_TARGET = "127.0.0.1:50051"
DEFAULT_QPS = 10.0
DEFAULT_DURATION_S = 30.0


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--target", default=DEFAULT_TARGET, help="gateway HOST:PORT (default %(default)s)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--qps", type=float,
                      help=f"open loop: fixed arrival rate, requests/s (default {DEFAULT_QPS:g})")
    mode.add_argument("--concurrency", type=int, help="closed loop: concurrent clients")
    parser.add_argument(
        "--max-in-flight", type=int, help="open loop: cap on requests in flight (default none)"
    )
    parser.add_argument("--duration", type=float, default=DEFAULT_DURATION_S,
                        help="seconds (default %(default)g)")
    parser.add_argument("--max-requests", type=int, help="stop after this many requests")
    parser.add_argument("--queries", type=Path, help="query file, one per line (default: built in)")
    parser.add_argument("--top-k", type=int, default=10, help="hits asked per query (default %(default)s)")
    parser.add_argument("--region", default="", help="ISO 3166 code sent with every request")
    key = parser.add_mutually_exclusive_group()
    key.add_argument("--api-key", default=os.environ.get("WITHSENSE_API_KEY"),
                     help="API key (Bearer token; default WITHSENSE_API_KEY)")
    key.add_argument("--api-key-file", type=Path, help="file whose first line is the API key")
    parser.add_argument("--timeout", type=float, default=5.0, help="deadline per call, seconds")
    parser.add_argument("--channels", type=int, default=4, help="gRPC connections to spread over")
    parser.add_argument("--warmup", type=int, default=0, help="uncounted requests sent first")
    parser.add_argument("--tls", action="store_true", help="connect with TLS")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    return parser


def run(args: argparse.Namespace) -> int:
    """Runs the load test the flags describe; prints the report. 0 when some calls succeeded (or
    none were made), 1 when every call failed, 2 on bad flags or an unreachable target."""
    import grpc

    from withsense.channel import read_api_key
    from withsense.loadtest.engine import load_queries, run_loadtest
    from withsense.loadtest.report import render_table

    qps, concurrency = args.qps, args.concurrency
    if qps is None and concurrency is None:
        qps = DEFAULT_QPS
    if qps is not None and args.max_in_flight:
        concurrency = args.max_in_flight
    try:
        api_key = read_api_key(args.api_key_file) if args.api_key_file else args.api_key
        report = run_loadtest(
            args.target, qps=qps, concurrency=concurrency, duration_s=args.duration,
            queries=load_queries(args.queries), top_k=args.top_k, region=args.region,
            api_key=api_key, timeout_s=args.timeout, max_requests=args.max_requests,
            channels=args.channels, tls=args.tls, warmup_requests=args.warmup,
        )
    except (ConnectionError, ValueError, OSError, grpc.aio.AioRpcError) as exc:
        print(f"loadtest: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report.to_dict(), indent=2) if args.json else render_table(report))
    return 0 if report.ok or not report.requests else 1
