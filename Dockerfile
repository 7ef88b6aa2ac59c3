# syntax=docker/dockerfile:1
# Minsheng Gateway (民声网关): the same service as `make run`, in a container.
#
#   docker build -t minsheng-gateway .
#   docker run --rm -p 127.0.0.1:8080:8080 -e MINSHENG_API_TOKEN=change-me \
#       -v minsheng-var:/app/var minsheng-gateway
#
# config/gateway.yaml listens on 127.0.0.1, which is unreachable from outside a
# container, so the image carries scripts/docker-gateway.yaml as its default
# /app/config/gateway.yaml: `listen: 0.0.0.0:8080`, JSON logs, SQLite and cases.jsonl
# under /app/var. To use another config, mount a directory holding gateway.yaml on
# /app/config (-v "$PWD/my-config:/app/config:ro"); for another file name in it, add
# `run --config /app/config/NAME.yaml` after the image name. Keep `listen: 0.0.0.0:8080`.

# Build stage: a wheel of the project (gateway, adapters, normalizers).
FROM python:3.11-slim AS build
WORKDIR /src
COPY . .
RUN pip wheel --no-cache-dir --disable-pip-version-check --no-deps --wheel-dir /wheels .

# Runtime stage: the wheel and its dependencies, run as an unprivileged user.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY --from=build /wheels /tmp/wheels
RUN pip install /tmp/wheels/*.whl && rm -rf /tmp/wheels \
    && useradd --system --uid 10001 --user-group --home-dir /app --no-create-home minsheng \
    && mkdir -p /app/config /app/var \
    && chown minsheng:minsheng /app/var

WORKDIR /app
COPY scripts/docker-gateway.yaml /app/config/gateway.yaml
VOLUME ["/app/config", "/app/var"]
USER minsheng
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]
ENTRYPOINT ["minsheng"]
CMD ["run", "--config", "/app/config/gateway.yaml"]
