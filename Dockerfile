# LLMasOS operator and node agent: one image, entry point `llmasos` (`llmasos operator`, `llmasos node-agent`).
# Build from the repository root:  docker build -t ghcr.io/llmasos/llmasos:0.1.0 .
# The worker runtime (torch, Ray) is a separate, much larger image: worker_image/Dockerfile.
#
# The base is pinned to an exact patch release; pin its digest too when you build (`--build-arg
# BASE=python:3.11.11-slim-bookworm@sha256:...`). Same base as the worker image, so layers are shared.
ARG BASE=python:3.11.11-slim-bookworm

FROM ${BASE} AS build
WORKDIR /src
# The tested dependency set of `llmasos[agent,fleet]` (kopf, httpx, PyYAML, prometheus-client, nvidia-ml-py, grpcio,
# highspy (HiGHS, with numpy) for the fleet planner's capacity prices, and what they pull in), so a rebuild never
# picks up an untested release.
RUN printf '%s\n' \
        aiohappyeyeballs==2.7.1 aiohttp==3.14.5 aiosignal==1.4.0 anyio==4.16.0 attrs==26.1.0 \
        certifi==2026.10.19.post1 click==8.5.1 frozenlist==1.8.0 grpcio==1.85.3 h11==0.16.0 highspy==1.12.0 \
        httpcore==1.0.9 httpx==0.28.1 idna==3.20 iso8601==2.1.0 jsonpatch==1.48 jsonpointer==3.12 kopf==1.45.2 \
        multidict==7.2.1 numpy==2.4.6 nvidia-ml-py==13.615.71 prometheus-client==0.26.0 propcache==0.5.4 \
        python-json-logger==4.2.0 pyyaml==6.0.4 typing-extensions==4.16.0 yarl==1.25.1 \
        > /tmp/constraints.txt
COPY pyproject.toml README.md LICENSE NOTICE ./
COPY operator ./operator
# setuptools finds packages under both source roots; the worker package is small and harmless without torch.
COPY worker_image/llmasos_worker ./worker_image/llmasos_worker
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . \
 && python -m venv /opt/llmasos \
 && /opt/llmasos/bin/pip install --no-cache-dir --constraint /tmp/constraints.txt \
        "$(ls /wheels/llmasos-*.whl)[agent,fleet]" \
 && /opt/llmasos/bin/llmasos version

FROM ${BASE}
# 65532: the conventional non-root uid of distroless images; the chart runs the operator and the node agent as this
# user.
RUN groupadd --gid 65532 llmasos \
 && useradd --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin llmasos
COPY --from=build /opt/llmasos /opt/llmasos
# The node agent's interpreter, /opt/llmasos/bin/python-agent: a real copy of the venv's Python (next to
# /opt/llmasos/pyvenv.cfg, so it runs the same venv) with file capabilities, because Kubernetes gives a non-root
# container's added capabilities to no process unless the executable carries them (no ambient capabilities).
#   cap_sys_admin     NVML power limits (the NVIDIA driver tests capable(CAP_SYS_ADMIN))
#   cap_dac_override  the kubelet's PodResources socket (root's, in a 0750 directory) and the root-owned state
#                     hostPath, as uid 65532
# Permitted only (+p), not effective: the agent makes effective what its configuration needs at start
# (llmasos/agent/privileges.py). With the effective bit, a pod whose bounding set lacks one of them would fail
# execve with EPERM instead of starting and saying what is missing. Any other process of the image, the operator
# included, runs the plain `python` and gets nothing. The setcap runs here, in the final stage: a COPY --from of a
# file with capabilities is not guaranteed to keep its security.capability xattr.
# libcap2-bin (setcap) is purged in this same layer, so nothing of it reaches the image; it is not pinned because a
# pin would break the build at each Debian security update of libcap2, while the image content does not depend on it.
# The base's OS packages are brought current at build time (`apt-get upgrade`: the Debian security updates of the
# day), so a pinned base older than its last patch does not ship known-fixed vulnerabilities.
# hadolint ignore=DL3008,DL3005
RUN apt-get update \
 && apt-get upgrade -y --no-install-recommends \
 && apt-get install -y --no-install-recommends libcap2-bin \
 && cp "$(readlink -f /opt/llmasos/bin/python)" /opt/llmasos/bin/python-agent \
 && setcap cap_sys_admin,cap_dac_override+p /opt/llmasos/bin/python-agent \
 && test "$(getcap /opt/llmasos/bin/python-agent)" = "/opt/llmasos/bin/python-agent cap_dac_override,cap_sys_admin=p" \
 && apt-get purge -y --auto-remove libcap2-bin \
 && rm -rf /var/lib/apt/lists/*
ENV PATH=/opt/llmasos/bin:${PATH} \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER 65532:65532
# The agent's interpreter starts as in the pod (uid 65532; the dynamic loader is in secure-execution mode whenever the
# file capabilities grant something, which ignores LD_* and $ORIGIN and finds libpython through ld.so.cache), imports
# the agent and NVML from the venv, and the next build step still sees its security.capability xattr. Whether a
# registry or an unpacker keeps the xattr is for the agent's start-up message to tell (see docs/reliability.md).
RUN ["/opt/llmasos/bin/python-agent", "-c", "import os, pynvml, llmasos.agent.main; os.getxattr('/opt/llmasos/bin/python-agent', 'security.capability')"]
WORKDIR /tmp
# Operator: metrics 8080, health 8081. Agent: metrics 9400.
EXPOSE 8080 8081 9400
ENTRYPOINT ["llmasos"]
CMD ["--help"]
