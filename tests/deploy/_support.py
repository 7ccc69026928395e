"""Helpers of the deploy tests: paths, where the tools are, and how overlays are rendered.

Tools (kubectl or kustomize, checkov, hadolint) are looked up next to the test interpreter, in
.venv/tools/checkov (checkov needs its own virtualenv: it pins networkx<2.7, scikit-image needs
>=3), and on PATH. A missing tool skips its tests with the reason, unless
WITHSENSE_DEPLOY_TOOLS=required (set by `make test`), which turns the skip into a failure so CI
cannot pass by skipping.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
# name -> kustomization folder. "loadtest" is applied on its own, next to prod.
KUSTOMIZATIONS = {
    "dev": K8S / "overlays" / "dev",
    "prod": K8S / "overlays" / "prod",
    "loadtest": K8S / "loadtest",
}
OVERLAYS = ["dev", "prod"]
KUSTOMIZE_MIN = (5, 0)  # `labels:` with includeTemplates (kubectl >= 1.27 bundles v5)


def tool_missing(message: str) -> NoReturn:
    """Skips (or, with WITHSENSE_DEPLOY_TOOLS=required, fails) the calling test."""
    if os.environ.get("WITHSENSE_DEPLOY_TOOLS", "").lower() == "required":
        pytest.fail(f"{message} (WITHSENSE_DEPLOY_TOOLS=required)")
    pytest.skip(message)


def find_tool(name: str, *extra: Path) -> str | None:
    candidates = [Path(sys.executable).parent / name, *extra]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which(name)


@dataclass(frozen=True)
class Renderer:
    command: tuple[str, ...]
    version: str

    def render(self, folder: Path) -> str:
        done = subprocess.run(
            [*self.command, str(folder)], capture_output=True, text=True, timeout=120
        )
        if done.returncode != 0:
            raise AssertionError(f"{' '.join(self.command)} {folder} failed:\n{done.stderr}")
        return done.stdout


def version_tuple(text: str) -> tuple[int, ...]:
    match = re.search(r"v?(\d+)\.(\d+)", text)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)
