"""Kueue and KubeRay's ray-operator on the session's cluster, started once for the package, an Electricity Maps
server on loopback, and one operator serving the carbon AdmissionCheck and queued LLMJobs (`queues.py`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from e2e.localcluster import LocalCluster
from e2e.localcluster.ecosystem import Ecosystem
from llmasos.handlers.admission_check import CONTROLLER_NAME
from tests.integration.kube import AdminApi, delete_namespace
from tests.integration.kueue.queues import CHECK, FORECAST, KUEUE, OPERATOR_ENV, apply
from tests.integration.operator_proc import OperatorProcess
from tests.unit.carbon.fake_server import FakeElectricityMaps, Reply


@pytest.fixture(scope="package")
def kueue(cluster: LocalCluster, api: AdminApi) -> Iterator[Ecosystem]:
    """Kueue on the session's cluster, a flavour per kwok pool (4 GPUs of quota each, one l4 node's worth),
    ClusterQueues without (l4, a100) and with the carbon check (l4, a100)."""
    eco = Ecosystem(cluster)
    was_running = eco.is_healthy()
    eco.up()
    for pool in ("l4", "a100"):
        apply(api, f"{KUEUE}/resourceflavors", {"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ResourceFlavor",
                                                 "metadata": {"name": pool},
                                                 "spec": {"nodeLabels": {"llmasos.io/pool": pool}}})
    apply(api, f"{KUEUE}/admissionchecks", {"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "AdmissionCheck",
                                             "metadata": {"name": CHECK}, "spec": {"controllerName": CONTROLLER_NAME}})
    # carbon-pjm: the a100 flavour, whose nodes are in US-MIDA-PJM, a zone the fail-safe test never serves data for
    # (the carbon sources keep a zone's last good forecast when a refresh fails).
    for cq, flavour, checks in (("quota", "l4", []), ("quota-a100", "a100", []), ("carbon", "l4", [CHECK]),
                                ("carbon-pjm", "a100", [CHECK])):
        spec: dict[str, Any] = {
            "namespaceSelector": {},
            "resourceGroups": [{"coveredResources": ["cpu", "memory", "nvidia.com/gpu"], "flavors": [
                {"name": flavour, "resources": [{"name": "cpu", "nominalQuota": "96"},
                                                {"name": "memory", "nominalQuota": "1000Gi"},
                                                {"name": "nvidia.com/gpu", "nominalQuota": "4"}]}]}],
        }
        if checks:
            spec["admissionChecksStrategy"] = {"admissionChecks": [{"name": c} for c in checks]}
        apply(api, f"{KUEUE}/clusterqueues", {"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ClusterQueue",
                                               "metadata": {"name": f"llmasos-test-{cq}"}, "spec": spec})
    yield eco
    if not was_running:
        eco.down()


@pytest.fixture(scope="package")
def em() -> Iterator[FakeElectricityMaps]:
    with FakeElectricityMaps() as server:
        yield server


@pytest.fixture(scope="package")
def carbon_operator(cluster: LocalCluster, crds: None, kueue: Ecosystem, artifacts: Path,
                    em: FakeElectricityMaps) -> Iterator[OperatorProcess]:
    """One operator serving the check (and LLMJobs) for the package; each test scripts the Electricity Maps server
    first (answers are cached for 1 s)."""
    em.queue(FORECAST, Reply({"error": "unavailable"}, 503))
    op = OperatorProcess(cluster, artifacts, "kueue-admission-check", {
        **OPERATOR_ENV, "LLMASOS_ELECTRICITYMAPS_URL": em.url}).start()
    yield op
    op.stop()


@pytest.fixture
def ns(api: AdminApi, kueue: Ecosystem) -> Iterator[str]:
    name = api.namespace("kueue")
    for cq in ("quota", "quota-a100", "carbon", "carbon-pjm"):
        apply(api, f"{KUEUE}/namespaces/{name}/localqueues", {
            "apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "LocalQueue", "metadata": {"name": cq},
            "spec": {"clusterQueue": f"llmasos-test-{cq}"}})
    yield name
    delete_namespace(api, name)
