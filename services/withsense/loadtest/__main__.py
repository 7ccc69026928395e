"""`python -m withsense.loadtest --target HOST:PORT (--qps N | --concurrency N) ...`

The same options as `withsense loadtest`; `main()` may be reused by the CLI.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from withsense.client import read_api_key
from withsense.loadtest.engine import load_queries, run_loadtest
from withsense.loadtest.report import render_table


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(
        prog="python -m withsense.loadtest",
        description="Load test of the gateway's Search with latency percentiles.",
    )
    parser.add_argument("--target", default="127.0.0.1:50051", help="gateway HOST:PORT")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--qps", type=float, help="open loop: fixed arrival rate (requests/s)")
    mode.add_argument("--concurrency", type=int, help="closed loop: concurrent workers")
    parser.add_argument(
        "--max-in-flight", type=int, help="open loop: cap on requests in flight (default none)"
    )
    parser.add_argument("--duration", type=float, default=30.0, help="seconds (default 30)")
    parser.add_argument("--max-requests", type=int, help="stop after this many requests")
    parser.add_argument("--queries", type=Path, help="query file, one per line (default: built in)")
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--region", default="", help="ISO 3166 code sent with every request")
    parser.add_argument("--api-key", help="API key (Bearer token)")
    parser.add_argument("--api-key-file", type=Path, help="file whose first line is the API key")
    parser.add_argument("--timeout", type=float, default=5.0, help="deadline per call, seconds")
    parser.add_argument("--channels", type=int, default=4, help="gRPC connections to spread over")
    parser.add_argument("--warmup", type=int, default=0, help="uncounted requests sent first")
    parser.add_argument("--tls", action="store_true", help="connect with TLS")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    return parser


def _api_key(args: argparse.Namespace) -> str | None:
    if args.api_key:
        return str(args.api_key)
    return read_api_key(args.api_key_file) if args.api_key_file else None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    qps, concurrency = args.qps, args.concurrency
    if qps is None and concurrency is None:
        qps = 10.0
    if qps is not None and args.max_in_flight:
        concurrency = args.max_in_flight
    try:
        report = run_loadtest(
            args.target,
            qps=qps,
            concurrency=concurrency,
            duration_s=args.duration,
            queries=load_queries(args.queries),
            top_k=args.top_k,
            region=args.region,
            api_key=_api_key(args),
            timeout_s=args.timeout,
            max_requests=args.max_requests,
            channels=args.channels,
            tls=args.tls,
            warmup_requests=args.warmup,
        )
    except (ConnectionError, ValueError, OSError) as exc:
        print(f"loadtest: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report.to_dict(), indent=2) if args.json else render_table(report))
    return 0 if report.ok or not report.requests else 1


if __name__ == "__main__":
    sys.exit(main())
