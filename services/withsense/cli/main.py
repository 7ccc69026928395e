"""`withsense`: one command, a subcommand per job. Every subcommand has --help; those that print
results have --json. Configuration comes from WITHSENSE_* variables; flags override them.

Building the parser imports no model code: each subcommand names its handler as
"module:function", imported only when that subcommand runs (`withsense --help` stays fast, and
`withsense search` never loads torch)."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

from withsense.config.logging import LOG_LEVELS

DEFAULT_TARGET = "127.0.0.1:50051"

Handler = Callable[[argparse.Namespace], int]


def _lazy(target: str) -> Handler:
    """The handler "module:function", imported when it is called."""
    module, _, name = target.partition(":")

    def run(args: argparse.Namespace) -> int:
        return int(getattr(importlib.import_module(module), name)(args) or 0)

    run.__qualname__ = target
    return run


def _log_level(value: str) -> str:
    level = value.upper()
    if level not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"{value!r} is not one of {', '.join(LOG_LEVELS)}")
    return level


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


def _add_demo(sub: argparse._SubParsersAction) -> None:
    demo = sub.add_parser("demo", help="start worker + gateway, index a gallery, run sample queries")
    demo.add_argument("--images", type=Path, help="index this folder instead of the built-in gallery")
    demo.add_argument("--descriptions", type=Path,
                      help="CSV image,description or Flickr captions.txt for --images")
    demo.add_argument("--query", action="append", help="a query to run (repeatable)")
    demo.add_argument("--region", default="", help="ISO 3166 region of the sample queries")
    demo.add_argument("--top-k", type=int, default=3, help="hits per query (default %(default)s)")
    demo.add_argument("--data-dir", type=Path, help="store folder (default: a temporary one)")
    demo.add_argument("--serve", action="store_true", help="keep serving after the queries")
    demo.add_argument("--port", type=int, default=50051, help="gateway port with --serve")
    demo.add_argument("--http-port", type=int, default=8080,
                      help="web page and HTTP API port with --serve (default %(default)s)")
    demo.add_argument("--json", action="store_true", help="print the index report and hits as JSON")
    demo.set_defaults(func=_lazy("withsense.cli.demo:cmd_demo"))


def _add_serve(sub: argparse._SubParsersAction) -> None:
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
    serve.add_argument("--worker-over-grpc", action="store_true",
                       help="with 'all': the gateway calls the worker over loopback gRPC, as "
                       "separate processes do (default: in process, one hop less a search)")
    serve.set_defaults(func=_lazy("withsense.cli.serve:cmd_serve"))


def _add_client_commands(sub: argparse._SubParsersAction) -> None:
    index = sub.add_parser("index", help="index a folder of photos through the gateway")
    index.add_argument("folder", type=Path)
    index.add_argument("--descriptions", type=Path,
                       help="CSV image,description (several rows per photo allowed)")
    _client_flags(index)
    index.set_defaults(func=_lazy("withsense.cli.client:cmd_index"))

    search = sub.add_parser("search", help="search the gateway")
    search.add_argument("query")
    search.add_argument("--top-k", type=int, default=10, help="most hits (default %(default)s)")
    search.add_argument("--region", default="", help="ISO 3166-1 alpha-2 code, e.g. DE")
    search.add_argument("--min-score", type=float, default=0.0,
                        help="leave out hits whose match probability is lower (default %(default)s)")
    search.add_argument("--filter", action="append", default=[], metavar="KEY=VALUE",
                        help="exact-match payload filter (repeatable)")
    _client_flags(search)
    search.set_defaults(func=_lazy("withsense.cli.client:cmd_search"))

    stats = sub.add_parser("stats", help="what the gateway holds")
    _client_flags(stats)
    stats.set_defaults(func=_lazy("withsense.cli.client:cmd_stats"))


def _add_trainer_commands(sub: argparse._SubParsersAction) -> None:
    from withsense_train import cli as train_cli  # torch-free: the parser only needs TrainConfig

    train = sub.add_parser("train", help="train and export a model artifact")
    train_cli.add_train_arguments(train)
    train.set_defaults(func=_lazy("withsense_train.cli:train_command"))
    evaluate = sub.add_parser("evaluate", help="retrieval and calibration metrics on a data set")
    train_cli.add_evaluate_arguments(evaluate)
    evaluate.set_defaults(func=_lazy("withsense_train.cli:evaluate_command"))


def _add_loadtest(sub: argparse._SubParsersAction) -> None:
    from withsense.loadtest.cli import add_arguments

    loadtest = sub.add_parser("loadtest", help="load test of the gateway's Search")
    add_arguments(loadtest)
    loadtest.set_defaults(func=_lazy("withsense.loadtest.cli:run"))


def _add_store(sub: argparse._SubParsersAction) -> None:
    from withsense.cli.store_cmd import add_parser

    add_parser(sub).set_defaults(func=_lazy("withsense.cli.store_cmd:run"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="withsense", description=__doc__.split("\n\n")[0])
    parser.add_argument("--log-level", type=_log_level,
                        help=f"{', '.join(LOG_LEVELS)} (WITHSENSE_LOG_LEVEL; default INFO for "
                        "`serve`, WARNING otherwise); the compliance audit log is written at "
                        "every level")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_demo(sub)
    _add_serve(sub)
    _add_client_commands(sub)
    _add_trainer_commands(sub)
    _add_loadtest(sub)
    _add_store(sub)
    return parser


def log_level(args: argparse.Namespace) -> str:
    """--log-level, else WITHSENSE_LOG_LEVEL, else INFO for servers and WARNING for clients."""
    from withsense.config.logging import CLIENT_LOG_LEVEL, SERVER_LOG_LEVEL, LoggingSettings

    if args.log_level:
        return args.log_level
    configured = LoggingSettings().log_level
    if configured:
        return configured
    return SERVER_LOG_LEVEL if args.command == "serve" else CLIENT_LOG_LEVEL


def main(argv: list[str] | None = None) -> int:
    from pydantic import ValidationError

    args = build_parser().parse_args(argv)
    try:
        level = log_level(args)
    except ValidationError as error:
        print(f"withsense: error: WITHSENSE_LOG_LEVEL: {error.errors()[0]['msg']}", file=sys.stderr)
        return 2
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
