"""Fixtures for the chaos suite: the integration suite's cluster fixtures (imported, not copied), extra fake nodes.

`make chaos` runs this directory alone with LLMASOS_CHAOS_HEAVY=1. `make test` runs it too, but tests marked
`heavy` (minutes each on two cores: 200 jobs under repeated SIGKILL, control-plane restarts under load) are
skipped there; the fast variants of the same faults still run.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest

from e2e.localcluster import LocalCluster
from e2e.localcluster.nodes import NodePool, build_node
from tests.integration.conftest import api, artifacts, cluster, crds  # noqa: F401 - fixtures shared with integration
from tests.integration.kube import AdminApi, wait_for

HEAVY_ENV = "LLMASOS_CHAOS_HEAVY"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "heavy: chaos test of minutes; runs only with LLMASOS_CHAOS_HEAVY=1 "
                                       "(make chaos)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get(HEAVY_ENV) == "1":
        return
    skip = pytest.mark.skip(reason="heavy chaos test: make chaos (LLMASOS_CHAOS_HEAVY=1) runs it")
    for item in items:
        if "heavy" in item.keywords and "tests/chaos/" in item.nodeid:
            item.add_marker(skip)


def heavy() -> bool:
    return os.environ.get(HEAVY_ENV) == "1"


class ExtraNodes:
    """Fake GPU nodes added to the running cluster for one test (pool name chosen by the test), removed after."""

    def __init__(self, local: LocalCluster, client: AdminApi) -> None:
        self.cluster, self.api = local, client
        self.names: list[str] = []

    def add(self, pool: str, count: int, gpus: int = 8, carbon_zone: str = "SE",
            product: str = "nvidia-h100-80gb") -> list[str]:
        spec = NodePool(name=pool, count=count, gpu_product=product, gpus_per_node=gpus, cpu="96", memory="1024Gi",
                        instance_type="", region="chaos-1", zone="chaos-1a", carbon_zone=carbon_zone)
        nodes = [build_node(spec, name) for name in spec.node_names()]
        self.cluster.kubectl("apply", "--server-side", "--field-manager=llmasos-chaos", "-f", "-",
                             input=json.dumps({"apiVersion": "v1", "kind": "List", "items": nodes}))
        names = [n["metadata"]["name"] for n in nodes]
        self.names.extend(names)

        def ready() -> bool:
            items = self.api.get(f"/api/v1/nodes?labelSelector=llmasos.io/pool={pool}")["items"]
            ok = [n for n in items if any(c["type"] == "Ready" and c["status"] == "True"
                                          for c in n.get("status", {}).get("conditions", []))]
            return len(ok) >= count

        wait_for(ready, timeout=60, what=f"{count} chaos nodes of pool {pool} Ready")
        return names

    def delete(self, name: str) -> None:
        self.api.request("DELETE", f"/api/v1/nodes/{name}")

    def remove_all(self) -> None:
        for name in self.names:
            self.delete(name)
        self.names.clear()


@pytest.fixture
def extra_nodes(cluster: LocalCluster, api: AdminApi) -> Iterator[ExtraNodes]:  # noqa: F811 - fixture args
    nodes = ExtraNodes(cluster, api)
    yield nodes
    nodes.remove_all()
