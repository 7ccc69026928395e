"""`withsense`: one command, a subcommand per job. Every subcommand has --help; those that print
results have --json. Configuration comes from WITHSENSE_* variables; flags override them."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

DEFAULT_TARGET = "127.0.0.1:50051"


def _client_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", default=os.environ.get("WITHSENSE_TARGET", DEFAULT_TARGET),
                        help="gateway HOST:PORT (default %(default)s)")
    key = parser.add_mutually_exclusive_group()
    key.add_argument("--api-key", default=os.environ.get("WITHSENSE_API_KEY"),
                     help="API key sent as 'authorization: Bearer KEY' (or WITHSENSE_API_KEY)")
    key.add_argument("--api-key-file", type=Path,
                     help="read the API key from this file (a mounted secret)")
    parser.add_argument("--tls-ca", type=Path, help="CA certificate (PEM): connect with TLS")
    parser.add_argument("--json", action="store_true", help="print JSON for other programs")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="withsense", description=__doc__)
    parser.add_argument("--log-level", default="WARNING", help="DEBUG, INFO, WARNING (default)")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="start worker + gateway, index a gallery, run sample queries")
    demo.add_argument("--images", type=Path, help="index this folder instead of the built-in gallery")
    demo.add_argument("--descriptions", type=Path,
                      help="CSV image,description or Flickr captions.txt for --images")
    demo.add_argument("--query", action="append", help="a query to run (repeatable)")
    demo.add_argument("--region", default="", help="ISO 3166 region of the sample queries")
    demo.add_argument("--top-k", type=int, default=3)
    demo.add_argument("--data-dir", type=Path, help="store folder (default: a temporary one)")
    demo.add_argument("--serve", action="store_true", help="keep serving after the queries")
    demo.add_argument("--port", type=int, default=50051, help="gateway port with --serve")
    demo.add_argument("--http-port", type=int, default=8080,
                      help="web page and HTTP API port with --serve (default %(default)s)")
    demo.add_argument("--json", action="store_true")

    serve = sub.add_parser("serve", help="run the services")
    serve.add_argument("role", choices=["worker", "gateway", "all"])
    serve.add_argument("--host", help="listen address (WITHSENSE_HOST / WITHSENSE_WORKER_HOST)")
    serve.add_argument("--port", type=int, help="listen port (50051 gateway, 50052 worker)")
    serve.add_argument("--worker-port", type=int, help="with 'all': the worker's port")
    serve.add_argument("--http-port", type=int,
                       help="web page and HTTP API port (WITHSENSE_HTTP_PORT, default 8080; -1: off)")
    serve.add_argument("--data-dir", type=Path, help="store folder (WITHSENSE_DATA_DIR)")
    serve.add_argument("--model-dir", type=Path, help="model artifact (WITHSENSE_MODEL_DIR)")
    serve.add_argument("--worker-address", help="gateway -> worker HOST:PORT")

    index = sub.add_parser("index", help="index a folder of photos through the gateway")
    index.add_argument("folder", type=Path)
    index.add_argument("--descriptions", type=Path,
                       help="CSV image,description (several rows per photo allowed)")
    _client_flags(index)

    search = sub.add_parser("search", help="search the gateway")
    search.add_argument("query")
    search.add_argument("--top-k", type=int, default=10)
    search.add_argument("--region", default="", help="ISO 3166-1 alpha-2 code, e.g. DE")
    search.add_argument("--min-score", type=float, default=0.0)
    search.add_argument("--filter", action="append", default=[], metavar="KEY=VALUE",
                        help="exact-match payload filter (repeatable)")
    _client_flags(search)

    stats = sub.add_parser("stats", help="what the gateway holds")
    _client_flags(stats)

    _add_trainer_commands(sub)
    _add_loadtest_command(sub)
    return parser


def _add_trainer_commands(sub) -> None:
    from withsense_train import cli as train_cli

    train = sub.add_parser("train", help="train and export a model artifact")
    train_cli.add_train_arguments(train)
    evaluate = sub.add_parser("evaluate", help="retrieval and calibration metrics on a data set")
    train_cli.add_evaluate_arguments(evaluate)


def _add_loadtest_command(sub) -> None:
    loadtest = sub.add_parser("loadtest", help="load test of the gateway's Search")
    loadtest.add_argument("--target", default=DEFAULT_TARGET)
    rate = loadtest.add_mutually_exclusive_group()
    rate.add_argument("--qps", type=float, help="open loop: fixed arrival rate")
    rate.add_argument("--concurrency", type=int, help="closed loop: N clients")
    loadtest.add_argument("--duration", type=float, default=10.0, help="seconds (default 10)")
    loadtest.add_argument("--queries", type=Path, help="one query a line (default: shipped list)")
    loadtest.add_argument("--top-k", type=int, default=10)
    loadtest.add_argument("--region", default="")
    loadtest.add_argument("--api-key", default=os.environ.get("WITHSENSE_API_KEY"))
    loadtest.add_argument("--timeout", type=float, default=5.0, help="per-request deadline, s")
    loadtest.add_argument("--json", action="store_true")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from withsense.cli import commands

    handler = getattr(commands, f"cmd_{args.command}")
    try:
        return int(handler(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
