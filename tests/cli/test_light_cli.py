"""The command line stays light: its parser and the client commands import no model code, so
`withsense --help` is quick and `withsense search` runs where torch is not installed."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

HEAVY = ("torch", "timm", "sentence_transformers", "onnxruntime", "transformers", "withsense_train.train")

PROBE = """
import json, sys
from withsense.cli.main import main
codes = []
for argv in {argvs!r}:
    try:
        codes.append(main(argv))
    except SystemExit as exit:
        codes.append(exit.code)
heavy = sorted(m for m in {heavy!r} if m in sys.modules)
print(json.dumps({{"codes": codes, "heavy": heavy}}))
"""


def run_probe(*argvs: list[str]) -> dict:
    code = PROBE.format(argvs=list(argvs), heavy=HEAVY)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_help_of_every_subcommand_imports_no_model_code() -> None:
    commands = ["demo", "serve", "index", "search", "stats", "train", "evaluate", "loadtest"]
    probe = run_probe(["--help"], *([command, "--help"] for command in commands))
    assert probe["codes"] == [0] * (len(commands) + 1)
    assert probe["heavy"] == []


def test_search_client_path_imports_no_torch() -> None:
    """`withsense search` runs its whole client path (channel, request, error) without torch."""
    target = f"127.0.0.1:{closed_port()}"
    probe = run_probe(["search", "a cat", "--target", target, "--json"],
                      ["stats", "--target", target])
    assert probe["codes"] == [1, 1]  # UNAVAILABLE: nothing listens there
    assert probe["heavy"] == []


def test_a_bad_log_level_is_a_usage_error_not_a_traceback() -> None:
    done = subprocess.run([sys.executable, "-m", "withsense.cli.main", "--log-level", "foo", "stats"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "--log-level: 'foo' is not one of DEBUG" in done.stderr
    assert "Traceback" not in done.stderr
