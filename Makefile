# LLMasOS developer entry points. Every target installs what it needs: the virtualenv and pip packages
# (.venv, keyed on pyproject.toml), and the Go-built control-plane binaries (cached outside the repo, keyed by pins).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-12)
PYTEST_ARGS ?=
# pip's cache lives outside the repo so a fresh clone (CI) reuses the large worker wheels (torch, ray).
PIP_CACHE ?= $(HOME)/.cache/llmasos/pip
PIP := $(PY) -m pip install -q --disable-pip-version-check --cache-dir $(PIP_CACHE)
# Debian packages the tests use: a real Prometheus server and headless Chromium for the report screenshot.
# The real node: libseccomp-dev and pkg-config build runc; iptables for kube-proxy and the kubelet (inside the node's
# network namespace); socat forwards the API server's loopback port to the node; busybox-static fills the toolbox image.
APT_PACKAGES := prometheus chromium libcap2-bin util-linux libseccomp-dev pkg-config iptables socat busybox-static

.PHONY: help venv binaries system-deps lint test test-unit test-integration chaos cluster-up cluster-down ecosystem-up ecosystem-down demo crds bench clean

help:
	@echo "make demo        the whole story on the local cluster: the chart on the real node, real training, kwok pools, report"
	@echo "make test        lint, type-check and run every test (unit + integration on the local control plane)"
	@echo "make chaos       fault tests alone, heavy ones included (SIGKILL storms, control-plane restarts)"
	@echo "make cluster-up  start the local control plane (idempotent); cluster-down stops it"
	@echo "make chart-package  the chart as dist/charts/llmasos-<version>.tgz plus a chart repository index.yaml"
	@echo "make images      build the operator and worker images without a container engine (cached by input hash)"

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) -e '.[dev,worker,agent]'
	@rm -f $(VENV)/.installed-*
	@touch $@

venv: $(STAMP)

# Installs the Debian packages the tests need, once (root or sudo; skipped when already present).
system-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# The operator and worker images without a container engine: a base image from Debian packages (mmdebstrap), the
# two Dockerfiles built by buildah, OCI archives cached in ~/.cache/llmasos/images by the hash of their inputs (never
# rebuilt while it holds). See docs/development.md, "Images".
.PHONY: images
APT_PACKAGES += mmdebstrap buildah
images: venv system-deps
	$(PY) -m e2e.images build

# The chart as a Helm package and a chart repository index in dist/charts/ (llmasos-<version>.tgz and index.yaml,
# with the helm of the local toolchain): serve that folder as a chart repository, or `helm install` the .tgz.
.PHONY: chart-package
chart-package: venv binaries
	@helm=$$($(PY) -c 'from e2e.localcluster.cluster import find_binaries; print(find_binaries() / "helm")'); \
	mkdir -p dist/charts; $$helm package charts/llmasos --destination dist/charts; $$helm repo index dist/charts; \
	ls dist/charts

binaries: system-deps
	@e2e/toolchain/build.sh >/dev/null
	@e2e/toolchain/build-node.sh >/dev/null
	@e2e/toolchain/build-lint.sh >/dev/null
	@e2e/toolchain/build-ecosystem.sh >/dev/null

lint: venv
	$(VENV)/bin/ruff check operator tests e2e bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

# The test targets run on their own cluster (directory e2e/.cluster-test, ports offset by 100), so a cluster left up
# by `make demo` or `make cluster-up` is never adopted, restarted or stopped by a test run. LLMASOS_CLUSTER_DIR and
# LLMASOS_CLUSTER_PORT_OFFSET set in the environment still win.
TEST_CLUSTER := LLMASOS_CLUSTER_DIR="$${LLMASOS_CLUSTER_DIR:-$(CURDIR)/e2e/.cluster-test}" \
	LLMASOS_CLUSTER_PORT_OFFSET="$${LLMASOS_CLUSTER_PORT_OFFSET:-100}"

test: venv binaries system-deps images lint
	$(TEST_CLUSTER) $(PY) -m pytest -q $(PYTEST_ARGS) tests

test-unit: venv
	$(PY) -m pytest -q tests/unit

test-integration: venv binaries images
	$(TEST_CLUSTER) $(PY) -m pytest -q tests/integration

# The chaos suite alone, heavy tests included (200 jobs under SIGKILL, restarts under load; see docs/reliability.md).
# `make test` runs its fast tests only.
chaos: venv binaries
	$(TEST_CLUSTER) LLMASOS_CHAOS_HEAVY=1 $(PY) -m pytest -q -rxXs $(PYTEST_ARGS) tests/chaos

cluster-up: venv binaries
	$(PY) -m e2e.localcluster up

cluster-down: venv
	$(PY) -m e2e.localcluster down

# Kueue and KubeRay's ray-operator (built once by e2e/toolchain/build-ecosystem.sh) on the local cluster; docs/kueue.md.
ecosystem-up: venv binaries
	$(PY) -m e2e.localcluster ecosystem-up

ecosystem-down: venv
	$(PY) -m e2e.localcluster ecosystem-down

demo: venv binaries system-deps images
	$(PY) -m e2e.demo

crds: venv
	$(VENV)/bin/llmasos crd --write crds
	$(VENV)/bin/llmasos crd --policy charts/llmasos/admission/llmjob-workload-policy.yaml
	$(VENV)/bin/llmasos docs --write docs/reference/llmjob.md

clean: cluster-down
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
