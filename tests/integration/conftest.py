"""Session fixtures for integration tests: the real local control plane, started once, stopped at the end.

The fixture uses the same code as `make cluster-up` (e2e.localcluster). A cluster that was already running before
the session (a developer's `make cluster-up`) is reused and left running; one the session started is stopped.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from e2e.localcluster import LocalCluster
from tests.integration.kube import AdminApi


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
def api(cluster: LocalCluster) -> Iterator[AdminApi]:
    client = AdminApi(cluster)
    yield client
    client.close()
