"""The local control plane is a real Kubernetes: scheduling, Jobs, garbage collection, RBAC and CRD validation."""

from __future__ import annotations

import gc
import sys
import warnings
from typing import Any

import pytest

from e2e.localcluster import LocalCluster
from e2e.localcluster.nodes import load_pools
from tests.integration.kube import AdminApi, wait_for

pytestmark = pytest.mark.integration


def test_version_is_the_pinned_release(api: AdminApi) -> None:
    pins = dict(
        line.split("=", 1) for line in
        (api.cluster.paths.root.parent / "toolchain" / "versions.env").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert api.get("/version")["gitVersion"] == pins["K8S_VERSION"]


def test_every_pool_node_is_ready_with_gpu_labels(api: AdminApi, cluster: LocalCluster) -> None:
    nodes = {n["metadata"]["name"]: n for n in api.get("/api/v1/nodes")["items"]}
    for pool in load_pools(cluster.paths.pools_file):
        for name in pool.node_names():
            node = nodes[name]
            labels = node["metadata"]["labels"]
            assert labels["llmasos.io/pool"] == pool.name
            assert labels["nvidia.com/gpu.product"] == pool.gpu_product
            assert labels["llmasos.io/carbon-zone"] == pool.carbon_zone
            assert labels["topology.kubernetes.io/zone"] == pool.zone
            assert node["status"]["allocatable"]["nvidia.com/gpu"] == str(pool.gpus_per_node)
            ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
            assert ready
            assert ready[0]["status"] == "True"


def _gpu_job(name: str, pool: str, gpus: int, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"annotations": annotations or {"sim.llmasos.io/duration": "1s"}},
                "spec": {
                    "restartPolicy": "Never",
                    "nodeSelector": {"llmasos.io/pool": pool},
                    "containers": [{"name": "main", "image": "busybox", "command": ["true"],
                                    "resources": {"limits": {"nvidia.com/gpu": str(gpus)}}}],
                },
            },
        },
    }


def test_gpu_job_is_scheduled_on_requested_pool_and_succeeds(api: AdminApi) -> None:
    ns = api.namespace("sched")
    api.create(f"/apis/batch/v1/namespaces/{ns}/jobs", _gpu_job("four-gpus", "l4", 4))

    def pod() -> dict[str, Any] | None:
        items = api.get(f"/api/v1/namespaces/{ns}/pods?labelSelector=job-name=four-gpus")["items"]
        return items[0] if items and items[0]["spec"].get("nodeName") else None

    scheduled = wait_for(pod, what="pod scheduled")
    node = api.get(f"/api/v1/nodes/{scheduled['spec']['nodeName']}")
    assert node["metadata"]["labels"]["llmasos.io/pool"] == "l4"

    def succeeded() -> bool:
        status = api.get(f"/apis/batch/v1/namespaces/{ns}/jobs/four-gpus")["status"]
        return any(c["type"] == "Complete" and c["status"] == "True" for c in status.get("conditions", []))

    wait_for(succeeded, what="Job Complete")
    api.delete(f"/api/v1/namespaces/{ns}")


def test_oversized_gpu_request_stays_pending(api: AdminApi) -> None:
    ns = api.namespace("toobig")
    api.create(f"/apis/batch/v1/namespaces/{ns}/jobs", _gpu_job("nine-gpus", "l4", 9))

    def unschedulable() -> bool:
        items = api.get(f"/api/v1/namespaces/{ns}/pods?labelSelector=job-name=nine-gpus")["items"]
        conds = items[0]["status"].get("conditions", []) if items else []
        return any(c["type"] == "PodScheduled" and c.get("reason") == "Unschedulable" for c in conds)

    wait_for(unschedulable, what="Unschedulable condition")
    api.delete(f"/api/v1/namespaces/{ns}")


def test_failure_annotation_fails_the_pod_with_its_exit_code(api: AdminApi) -> None:
    ns = api.namespace("fail")
    job = _gpu_job("fails", "a100", 1, {"sim.llmasos.io/duration": "1s", "sim.llmasos.io/outcome": "Failed",
                                        "sim.llmasos.io/exit-code": "3"})
    api.create(f"/apis/batch/v1/namespaces/{ns}/jobs", job)

    def failed_pod() -> dict[str, Any] | None:
        items = api.get(f"/api/v1/namespaces/{ns}/pods?labelSelector=job-name=fails")["items"]
        return items[0] if items and items[0]["status"].get("phase") == "Failed" else None

    pod = wait_for(failed_pod, what="pod Failed")
    assert pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 3

    def job_failed() -> bool:
        status = api.get(f"/apis/batch/v1/namespaces/{ns}/jobs/fails")["status"]
        return any(c["type"] == "Failed" and c["status"] == "True" for c in status.get("conditions", []))

    wait_for(job_failed, what="Job Failed")
    api.delete(f"/api/v1/namespaces/{ns}")


def test_deleting_owner_garbage_collects_dependents(api: AdminApi) -> None:
    ns = api.namespace("gc")
    owner = api.create(f"/api/v1/namespaces/{ns}/configmaps",
                       {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owner"}})
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"]}
    api.create(f"/api/v1/namespaces/{ns}/configmaps",
               {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "dependent", "ownerReferences": [ref]}})
    api.request("DELETE", f"/api/v1/namespaces/{ns}/configmaps/owner", expect=200)
    wait_for(lambda: api.request("GET", f"/api/v1/namespaces/{ns}/configmaps/dependent").status_code == 404,
             what="dependent garbage-collected")
    api.delete(f"/api/v1/namespaces/{ns}")


def test_rbac_denies_missing_verb_and_allows_granted_one(api: AdminApi, cluster: LocalCluster) -> None:
    ns = api.namespace("rbac")
    api.create(f"/api/v1/namespaces/{ns}/serviceaccounts",
               {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "reader"}})
    api.create(f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "cm-reader"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}]})
    api.create(f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "reader"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "cm-reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": ns}]})
    token = api.create(f"/api/v1/namespaces/{ns}/serviceaccounts/reader/token",
                       {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                        "spec": {"expirationSeconds": 600}})["status"]["token"]
    reader = AdminApi(cluster, token=token)
    try:
        assert reader.request("GET", f"/api/v1/namespaces/{ns}/configmaps").status_code == 200
        denied = reader.request("POST", f"/api/v1/namespaces/{ns}/configmaps",
                                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "nope"}})
        assert denied.status_code == 403
        assert f"system:serviceaccount:{ns}:reader" in denied.json()["message"]
        assert reader.request("GET", "/api/v1/namespaces/default/configmaps").status_code == 403
    finally:
        reader.close()
    api.delete(f"/api/v1/namespaces/{ns}")


def test_crd_schema_rejects_invalid_object_naming_the_field(api: AdminApi) -> None:
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.test.llmasos.io"},
        "spec": {
            "group": "test.llmasos.io", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                "type": "object", "properties": {"spec": {"type": "object", "required": ["size"], "properties": {
                    "size": {"type": "integer", "minimum": 1, "maximum": 8}}}}}}}],
        },
    }
    api.request("DELETE", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.test.llmasos.io")
    wait_for(lambda: api.request("GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"
                                        "widgets.test.llmasos.io").status_code == 404, what="old CRD gone")
    api.create("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
    ns = api.namespace("crd")
    path = f"/apis/test.llmasos.io/v1/namespaces/{ns}/widgets"
    wait_for(lambda: api.request("GET", path).status_code == 200, what="CRD served")
    bad = api.request("POST", path, {"apiVersion": "test.llmasos.io/v1", "kind": "Widget",
                                     "metadata": {"name": "w"}, "spec": {"size": 99}})
    assert bad.status_code == 422
    assert "spec.size" in bad.json()["message"]
    good = api.request("POST", path, {"apiVersion": "test.llmasos.io/v1", "kind": "Widget",
                                      "metadata": {"name": "w"}, "spec": {"size": 4}})
    assert good.status_code == 201
    api.request("DELETE", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.test.llmasos.io")
    api.delete(f"/api/v1/namespaces/{ns}")


def test_a_component_restarted_through_a_second_handle_leaves_no_running_subprocess_behind(
        cluster: LocalCluster) -> None:
    """A cluster left up (`make demo`, `make cluster-up`) and adopted by another LocalCluster object, which restarts
    one of its components and is then dropped while that component keeps running: no "subprocess is still running"
    ResourceWarning may come out of the garbage collector (warnings are errors in the suite)."""
    adopted = LocalCluster(cluster.paths)
    adopted.restart("kwok")
    pid = adopted.pid("kwok")
    unraisable: list[str] = []
    previous_hook = sys.unraisablehook
    sys.unraisablehook = lambda u: unraisable.append(f"{u.exc_type.__name__}: {u.exc_value}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", ResourceWarning)
            del adopted
            gc.collect()
    finally:
        sys.unraisablehook = previous_hook
    assert unraisable == []
    assert pid is not None
    assert cluster.pid("kwok") == pid, "the restarted component runs on, adopted by the session's cluster"
