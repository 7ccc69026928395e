# syntax=docker/dockerfile:1.7
# With Sense trainer: `withsense train --data DIR --out DIR` (and `withsense evaluate`).
# Towers are frozen and their features cached, so CPU is the default; for a GPU build pass
#   --build-arg TORCH_INDEX_URL=https://pypi.org/simple   (the CUDA wheels).
# Build from the repository root:
#   docker build -f deploy/docker/trainer.Dockerfile -t withsense/trainer:0.1.0 .
# The base image is pinned by tag; CI pins the digest at release (see worker-cpu.Dockerfile).
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN pip install --index-url "${TORCH_INDEX_URL}" torch==2.14.1 torchvision==0.29.1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY services/ services/
COPY trainer/ trainer/
# This folder with its `train` extra (pyproject.toml pins what it needs); hadolint
# takes the local path for an unpinned index package.
# hadolint ignore=DL3013
RUN pip install '.[train]'

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
    TRITON_CACHE_DIR=/tmp/triton \
    WITHSENSE_DATA_DIR=/var/lib/withsense
RUN python -c "from withsense.model.runtime import preload; preload()"
USER 10001:10001
# Mount the data set read-only at /data and a writable folder at /out.
WORKDIR /tmp
ENTRYPOINT ["withsense"]
CMD ["train", "--data", "/data", "--out", "/out"]
