# syntax=docker/dockerfile:1
# The operator image: `scaleset-operator run` as user 65532 on a read-only root filesystem.
# Build: docker build -t scaleset-operator:0.1.0 .

FROM python:3.11-slim AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# The wheel includes crds/ and tests/kwok/ (see pyproject.toml), so both are in the context.
COPY pyproject.toml README.md ./
COPY operator ./operator
COPY crds ./crds
COPY tests/kwok ./tests/kwok
RUN python -m pip wheel --no-deps --wheel-dir /wheels . \
 && python -m venv /opt/venv \
 && /opt/venv/bin/pip install /wheels/scaleset_operator-*.whl

FROM python:3.11-slim
LABEL org.opencontainers.image.title="scaleset-operator" \
      org.opencontainers.image.description="Automatic OS image upgrades, the way Azure VM scale sets do them, for pods" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
RUN groupadd --system --gid 65532 operator \
 && useradd --system --uid 65532 --gid 65532 --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin operator
COPY --from=builder /opt/venv /opt/venv
USER 65532:65532
EXPOSE 8080 8081
ENTRYPOINT ["scaleset-operator", "run"]
