"""Session fixtures for integration tests: the real local control plane, started once, stopped at the end.

The fixture uses the same code as `make cluster-up` (e2e.localcluster). A cluster that was already running before
the session (a developer's `make cluster-up`) is reused and left running; one the session started is stopped.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.localcluster import LocalCluster
from tests.integration.kube import AdminApi
from tests.integration.operator_proc import OperatorProcess

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def cluster() -> Iterator[LocalCluster]:
    local = LocalCluster()
    was_running = local.is_healthy()
    local.up()
    os.environ.setdefault("KUBECONFIG", str(local.paths.kubeconfig))
    yield local
    if not was_running and os.environ.get("LLMASOS_KEEP_CLUSTER") != "1":
        local.down()


@pytest.fixture(scope="session")
def crds(cluster: LocalCluster) -> None:
    """The CRDs from crds/ (generated from the API package), applied like a user would."""
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    cluster.kubectl("wait", "--for=condition=Established", "crd/llmjobs.llmasos.io", "--timeout=60s")


@pytest.fixture(scope="session")
def artifacts() -> Path:
    out = REPO / "test-artifacts"
    out.mkdir(exist_ok=True)
    return out


@pytest.fixture(scope="module")
def operator(cluster: LocalCluster, crds: None, artifacts: Path) -> Iterator[OperatorProcess]:
    """One operator process per test module, stopped when the module ends, so that modules which run operators
    with other settings (or kill them) never share the cluster with a second, unrelated operator."""
    proc = OperatorProcess(cluster, artifacts, "operator-module").start()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def api(cluster: LocalCluster) -> Iterator[AdminApi]:
    client = AdminApi(cluster)
    yield client
    client.close()
