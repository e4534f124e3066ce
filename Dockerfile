# syntax=docker/dockerfile:1
# The gateway as a small, non-root image.
#
#   docker build -t gateway .
#   docker run -p 8080:8080 -v "$PWD/config:/etc/gateway:ro" -e OPENAI_API_KEY gateway
#
# The config is read from /etc/gateway/routes.yaml and /etc/gateway/providers.yaml
# (the shipped echo config is baked in as a default). Mount a directory there, not
# single files, so edits and Kubernetes ConfigMap updates reach the running process.

ARG PYTHON_VERSION=3.12

# --- build: install the package and its dependencies into a virtual environment ---------
FROM python:${PYTHON_VERSION}-slim AS build
ARG EXTRAS=otel
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gateway ./gateway
# Every dependency ships binary wheels, so no compiler is installed in either stage.
RUN python -m venv /opt/gateway \
 && /opt/gateway/bin/pip install --no-compile ".${EXTRAS:+[$EXTRAS]}" \
 && /opt/gateway/bin/python -m compileall -q /opt/gateway/lib

# --- final: the virtual environment, the default config and nothing else -----------------
FROM python:${PYTHON_VERSION}-slim
RUN groupadd --system --gid 10001 gateway \
 && useradd --system --uid 10001 --gid gateway --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin gateway \
 && install -d -o gateway -g gateway /var/lib/gateway
COPY --from=build /opt/gateway /opt/gateway
COPY routes.yaml providers.yaml /etc/gateway/
ENV PATH=/opt/gateway/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    GATEWAY_LOG_FORMAT=json \
    GATEWAY_DATA_DIR=/var/lib/gateway
# Without DATABASE_URL the request ledger is a SQLite file here: mount a volume to keep it.
VOLUME ["/var/lib/gateway"]
USER 10001:10001
WORKDIR /etc/gateway
EXPOSE 8080
# Liveness only: /health answers while the process serves. Orchestrators use /ready for traffic.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=2).status != 200)"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["gateway", "serve", "--host", "0.0.0.0", "--port", "8080", "--routes", "/etc/gateway/routes.yaml", "--providers", "/etc/gateway/providers.yaml"]
CMD ["--workers", "1"]
