"""Fixtures of the deploy tests: the rendered kustomizations (see _support.py for the tools)."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest
import yaml

from ._support import KUSTOMIZATIONS, KUSTOMIZE_MIN, Renderer, find_tool, tool_missing, version_tuple


@pytest.fixture(scope="session")
def renderer() -> Renderer:
    kubectl = find_tool("kubectl")
    if kubectl:
        done = subprocess.run(
            [kubectl, "version", "--client", "-o", "json"], capture_output=True, text=True,
            timeout=60,
        )
        if done.returncode == 0:
            version = json.loads(done.stdout).get("kustomizeVersion", "")
            if version_tuple(version) >= KUSTOMIZE_MIN:
                return Renderer((kubectl, "kustomize"), version)
    kustomize = find_tool("kustomize")
    if kustomize:
        done = subprocess.run([kustomize, "version"], capture_output=True, text=True, timeout=60)
        if done.returncode == 0 and version_tuple(done.stdout) >= KUSTOMIZE_MIN:
            return Renderer((kustomize, "build"), done.stdout.strip())
    tool_missing(
        "no kubectl with kustomize >= v5.0 (nor a kustomize binary) found: install kubectl "
        ">= 1.27 (see docs/deploy.md; Debian's kubernetes-client 1.20 bundles kustomize v2, "
        "too old)"
    )


@pytest.fixture(scope="session")
def rendered_text(renderer: Renderer) -> dict[str, str]:
    return {name: renderer.render(folder) for name, folder in KUSTOMIZATIONS.items()}


@pytest.fixture(scope="session")
def rendered(rendered_text: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
    return {
        name: [doc for doc in yaml.safe_load_all(text) if doc]
        for name, text in rendered_text.items()
    }
