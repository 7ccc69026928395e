# syntax=docker/dockerfile:1.7
# With Sense inference worker, CUDA build. The torch wheels on PyPI bundle the CUDA runtime,
# cuDNN and Triton as nvidia-* wheels, so no nvidia/cuda base image is needed: the host only
# provides the driver (NVIDIA container toolkit / the Kubernetes device plugin).
# Build from the repository root:
#   docker build -f deploy/docker/worker-cuda.Dockerfile -t withsense/worker:0.1.0-cuda .
# The base image is pinned by tag; CI pins the digest at release (see worker-cpu.Dockerfile).
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# The default PyPI torch wheel for Linux x86_64 is the CUDA one; versions as in pyproject.toml.
ARG TORCH_INDEX_URL=https://pypi.org/simple
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
# Triton compiles a small C launcher for each kernel signature at first use, so the image needs
# a C compiler (the Python headers are already in the official python image).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 withsense \
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
    TRITON_CACHE_DIR=/tmp/triton \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    WITHSENSE_DATA_DIR=/var/lib/withsense \
    WITHSENSE_WORKER_HOST=0.0.0.0 \
    WITHSENSE_WORKER_PORT=50052 \
    WITHSENSE_WORKER_METRICS_PORT=9091
# No GPU at build time: preload() runs the CPU path, which still proves the weights are there.
RUN python -c "from withsense.model.runtime import preload; preload()"
COPY deploy/docker/healthcheck.py /opt/withsense/healthcheck.py
USER 10001:10001
EXPOSE 50052 9091
HEALTHCHECK --interval=30s --timeout=5s --start-period=180s --retries=3 \
  CMD ["python", "/opt/withsense/healthcheck.py", "127.0.0.1:50052"]
ENTRYPOINT ["withsense"]
CMD ["serve", "worker"]
