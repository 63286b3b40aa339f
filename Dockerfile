# LLMasOS operator and node agent: one image, entry point `llmasos` (`llmasos operator`, `llmasos node-agent`).
# Build from the repository root:  docker build -t ghcr.io/llmasos/llmasos:0.1.0 .
# The worker runtime (torch, Ray) is a separate, much larger image: worker_image/Dockerfile.
#
# The base is pinned to an exact patch release; pin its digest too when you build (`--build-arg
# PYTHON_IMAGE=python:3.11.11-slim-bookworm@sha256:...`). Same base as the worker image, so layers are shared.
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
# The tested dependency set of `llmasos[agent]` (kopf, httpx, PyYAML, prometheus-client, nvidia-ml-py, grpcio and
# what they pull in), so a rebuild never picks up an untested release.
RUN printf '%s\n' \
        aiohappyeyeballs==2.7.1 aiohttp==3.14.5 aiosignal==1.4.0 anyio==4.16.0 attrs==26.1.0 \
        certifi==2026.10.19.post1 click==8.5.1 frozenlist==1.8.0 grpcio==1.85.3 h11==0.16.0 httpcore==1.0.9 \
        httpx==0.28.1 idna==3.20 iso8601==2.1.0 jsonpatch==1.48 jsonpointer==3.12 kopf==1.45.2 multidict==7.2.1 \
        nvidia-ml-py==13.615.71 prometheus-client==0.26.0 propcache==0.5.4 python-json-logger==4.2.0 \
        pyyaml==6.0.4 typing-extensions==4.16.0 yarl==1.25.1 \
        > /tmp/constraints.txt
COPY pyproject.toml README.md LICENSE NOTICE ./
COPY operator ./operator
# setuptools finds packages under both source roots; the worker package is small and harmless without torch.
COPY worker_image/llmasos_worker ./worker_image/llmasos_worker
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . \
 && python -m venv /opt/llmasos \
 && /opt/llmasos/bin/pip install --no-cache-dir --constraint /tmp/constraints.txt \
        "$(ls /wheels/llmasos-*.whl)[agent]" \
 && /opt/llmasos/bin/llmasos version

FROM ${PYTHON_IMAGE}
# 65532: the conventional non-root uid of distroless images; the chart runs the operator as this user. The node
# agent's pod overrides it with uid 0 plus CAP_SYS_ADMIN only (NVML power limits need root; see the chart).
RUN groupadd --gid 65532 llmasos \
 && useradd --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin llmasos
COPY --from=build /opt/llmasos /opt/llmasos
ENV PATH=/opt/llmasos/bin:${PATH} \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER 65532:65532
WORKDIR /tmp
# Operator: metrics 8080, health 8081. Agent: metrics 9400.
EXPOSE 8080 8081 9400
ENTRYPOINT ["llmasos"]
CMD ["--help"]
