# syntax=docker/dockerfile:1.7
# Load generators for the gateway: locust (deploy/locust/locustfile.py) and the open/closed-loop
# engine `python -m withsense.loadtest`. Only the gRPC stubs and the load test package are needed,
# so the project is installed without its (torch) dependencies. Build from the repository root:
#   docker build -f deploy/docker/loadtest.Dockerfile -t withsense/loadtest:0.1.0 .
# The base image is pinned by tag; CI pins the digest at release (see worker-cpu.Dockerfile).
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
RUN pip install locust==2.47.0 grpcio==1.85.3 protobuf==7.36.2 rich==15.0.0
WORKDIR /src
COPY pyproject.toml README.md ./
COPY services/ services/
COPY trainer/ trainer/
RUN pip install --no-deps .

FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 withsense \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin withsense
COPY --from=build /opt/venv /opt/venv
COPY deploy/locust/locustfile.py /opt/locust/locustfile.py
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp
USER 10001:10001
WORKDIR /tmp
ENTRYPOINT ["locust", "-f", "/opt/locust/locustfile.py"]
CMD ["--headless", "--users", "50", "--spawn-rate", "10", "--run-time", "2m", "--host", "gateway:50051"]
