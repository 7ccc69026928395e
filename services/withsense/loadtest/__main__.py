"""`python -m withsense.loadtest --target HOST:PORT (--qps N | --concurrency N) ...`: the same
command line as `withsense loadtest` (``withsense.loadtest.cli``)."""

from __future__ import annotations

import argparse
import sys

from withsense.loadtest.cli import add_arguments, run


def build_parser() -> argparse.ArgumentParser:
    return add_arguments(argparse.ArgumentParser(
        prog="python -m withsense.loadtest",
        description="Load test of the gateway's Search with latency percentiles.",
    ))


def main(argv: list[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
