# syntax=docker/dockerfile:1.7
# With Sense gateway (SearchService). It runs no model: the base install (no `worker` extra)
# has no torch.
# The image also carries the client commands (`withsense index`, `withsense search`) and
# qdrant-client, so the indexing and collection Jobs use it too. Build from the repository root:
#   docker build -f deploy/docker/gateway.Dockerfile -t withsense/gateway:0.1.0 .
# The base image is pinned by tag; CI pins the digest at release (see worker-cpu.Dockerfile).
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY services/ services/
COPY trainer/ trainer/
RUN pip install .

FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 withsense \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin withsense
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    WITHSENSE_DATA_DIR=/var/lib/withsense \
    WITHSENSE_HOST=0.0.0.0 \
    WITHSENSE_PORT=50051 \
    WITHSENSE_METRICS_PORT=9090
COPY deploy/docker/healthcheck.py /opt/withsense/healthcheck.py
USER 10001:10001
EXPOSE 50051 9090
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "/opt/withsense/healthcheck.py", "127.0.0.1:50051"]
ENTRYPOINT ["withsense"]
CMD ["serve", "gateway"]
