"""Helpers for the chart tests: the helm binary of the local control plane's toolchain, and `helm template` as data.

These tests need no cluster: they render the chart and inspect the objects (the install test that proves the RBAC
on a real API server is tests/integration/chart/test_chart_rbac.py).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e.localcluster.cluster import find_binaries

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "llmasos"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
KUBE_VERSION = "1.36.3"
MONITORING_APIS = ("monitoring.coreos.com/v1/ServiceMonitor", "monitoring.coreos.com/v1/PodMonitor",
                   "monitoring.coreos.com/v1/PrometheusRule")

Render = Callable[..., list[dict[str, Any]]]


@pytest.fixture(scope="session")
def helm() -> str:
    """The pinned helm built with the control-plane binaries (e2e/toolchain/versions.env), never a system one."""
    return str(find_binaries() / "helm")


def run_helm(helm: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([helm, *args], capture_output=True, text=True, check=check, timeout=120)


@pytest.fixture(scope="session")
def render(helm: str) -> Render:
    """render(values_files=(), set_values=(), api_versions=(), chart=CHART) -> the rendered objects."""

    def _render(values_files: Iterable[Path] = (), set_values: Iterable[str] = (),
                api_versions: Iterable[str] = (), chart: Path = CHART, namespace: str = "llmasos-system",
                expect_error: bool = False) -> list[dict[str, Any]]:
        args = ["template", "llmasos", str(chart), "--namespace", namespace, "--kube-version", KUBE_VERSION]
        for f in values_files:
            args += ["-f", str(f)]
        for s in set_values:
            args += ["--set", s]
        for a in api_versions:
            args += ["--api-versions", a]
        result = run_helm(helm, *args, check=False)
        if expect_error:
            assert result.returncode != 0, "helm template should have failed"
            raise HelmError(result.stderr)
        assert result.returncode == 0, result.stderr
        return [d for d in yaml.safe_load_all(result.stdout) if d]

    return _render


class HelmError(Exception):
    """helm template failed as expected; the message is its stderr."""


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o.get("kind") == kind]


def one(objects: list[dict[str, Any]], kind: str, name_suffix: str = "") -> dict[str, Any]:
    found = [o for o in by_kind(objects, kind) if o["metadata"]["name"].endswith(name_suffix)]
    assert len(found) == 1, f"expected one {kind} *{name_suffix}, got {[o['metadata']['name'] for o in found]}"
    return found[0]


def containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    spec = workload["spec"]["template"]["spec"]
    return list(spec.get("initContainers", [])) + list(spec["containers"])


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}
