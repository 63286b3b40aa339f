"""What an LLMJob may put into its worker pods (api/workload_policy.py), the admission policy generated from the same
lists (api/admission.py), and the worker pod template under Pod Security `restricted`.

The CEL itself runs on the real API server in tests/integration/test_tenancy.py; here the pure rules are pinned.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from llmasos.api.admission import build_policy_spec, render_policy_spec
from llmasos.api.crd import build_llmjob_crd
from llmasos.api.workload_policy import (
    ALLOWED_PROJECTED_SOURCES,
    ALLOWED_VOLUME_TYPES,
    MAX_VOLUMES,
    NamespacePolicy,
    check_workload,
    pool_violation,
    split_pools,
    volume_violations,
)
from llmasos.cluster.builders import Owner, build_job
from llmasos.errors import SpecError
from tests.unit.builders import make_spec

REPO = Path(__file__).resolve().parents[3]
POLICY_FILE = REPO / "charts" / "llmasos" / "admission" / "llmjob-workload-policy.yaml"
# Every volume source of core/v1 that can reach the node, a server on the node's behalf, or a Kubernetes identity.
HOST_REACHING = ["hostPath", "nfs", "iscsi", "rbd", "cephfs", "glusterfs", "flexVolume", "gitRepo", "fc",
                 "awsElasticBlockStore", "gcePersistentDisk", "azureDisk", "azureFile", "vsphereVolume", "quobyte",
                 "portworxVolume", "scaleIO", "storageos", "flocker", "cinder", "photonPersistentDisk", "image"]


def test_the_committed_policy_file_is_not_stale() -> None:
    assert POLICY_FILE.read_text() == render_policy_spec(), f"{POLICY_FILE} is stale: run `make crds`"


def test_allowed_volume_types_are_those_of_pod_security_restricted() -> None:
    restricted = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected",
                  "secret"}
    assert set(ALLOWED_VOLUME_TYPES) == restricted
    assert not {"serviceAccountToken", "podCertificate"} & set(ALLOWED_PROJECTED_SOURCES)


@pytest.mark.parametrize("kind", ALLOWED_VOLUME_TYPES)
def test_allowed_volume_types_pass(kind: str) -> None:
    assert volume_violations([{"name": "v", kind: {}}]) == []


@pytest.mark.parametrize("kind", HOST_REACHING)
def test_host_reaching_volume_types_are_named(kind: str) -> None:
    volumes = [{"name": "scratch", "emptyDir": {}}, {"name": "x", kind: {}}]
    assert volume_violations(volumes) == [f"spec.volumes[1].{kind}"]


@pytest.mark.parametrize("source", ["serviceAccountToken", "podCertificate", "somethingNew"])
def test_projected_sources_with_credentials_are_named(source: str) -> None:
    volumes = [{"name": "p", "projected": {"sources": [{"configMap": {"name": "c"}}, {source: {}}]}}]
    assert volume_violations(volumes) == [f"spec.volumes[0].projected.sources[1].{source}"]


def test_projected_sources_without_credentials_pass() -> None:
    sources: list[dict[str, Any]] = [{kind: {}} for kind in ALLOWED_PROJECTED_SOURCES]
    assert volume_violations([{"name": "p", "projected": {"sources": sources}}]) == []


@pytest.mark.parametrize(("pools", "allowed", "why"), [
    ((), None, ""),
    (("h100",), None, ""),
    (("a100",), ("a100", "l4"), ""),
    (("a100", "l4"), ("a100", "l4"), ""),
    ((), ("a100", "l4"), "may use only the node pools a100, l4; list one or more of them"),
    (("a100", "h100"), ("a100", "l4"), "node pool(s) h100 not allowed in this namespace (allowed: a100, l4)"),
    (("a100",), (), "node pool(s) a100 not allowed in this namespace (allowed: none)"),
])
def test_node_pools_stay_within_the_namespace_annotation(pools: tuple[str, ...], allowed: tuple[str, ...] | None,
                                                          why: str) -> None:
    assert why in pool_violation(pools, allowed)
    assert bool(why) == bool(pool_violation(pools, allowed))


@pytest.mark.parametrize(("labels", "annotations", "expected"), [
    (None, None, NamespacePolicy()),
    ({"llmasos.io/allow-host-volumes": "true"}, {}, NamespacePolicy(host_volumes=True)),
    ({"llmasos.io/allow-host-volumes": "yes"}, {}, NamespacePolicy()),
    ({}, {"llmasos.io/allowed-node-pools": " a100, ,l4 "}, NamespacePolicy(node_pools=("a100", "l4"))),
    ({}, {"llmasos.io/allowed-node-pools": ""}, NamespacePolicy(node_pools=())),
])
def test_namespace_policy_from_labels_and_annotations(labels: dict[str, str] | None,
                                                      annotations: dict[str, str] | None,
                                                      expected: NamespacePolicy) -> None:
    policy = NamespacePolicy.from_metadata(labels, annotations)
    assert policy == expected
    assert policy.is_default == (expected == NamespacePolicy())


def test_split_pools_ignores_blanks() -> None:
    assert split_pools("a100,l4") == ("a100", "l4")
    assert split_pools(" , ") == ()


def test_check_workload_names_the_field_and_respects_the_exemption() -> None:
    host = [{"name": "host", "hostPath": {"path": "/"}}]
    with pytest.raises(SpecError) as err:
        check_workload(host, (), NamespacePolicy())
    assert err.value.field == "spec.volumes[0].hostPath"
    assert "llmasos.io/allow-host-volumes=true" in str(err.value)
    check_workload(host, (), NamespacePolicy(host_volumes=True))
    with pytest.raises(SpecError) as err:
        check_workload(host, ("h100",), NamespacePolicy(host_volumes=True, node_pools=("a100",)))
    assert err.value.field == "spec.placement.nodePools"


def test_policy_matches_llmjob_writes_only_and_fails_closed() -> None:
    spec = build_policy_spec()
    assert spec["failurePolicy"] == "Fail"
    rule = spec["matchConstraints"]["resourceRules"][0]
    assert rule["resources"] == ["llmjobs"], "status writes (llmjobs/status) are not the author's"
    assert rule["operations"] == ["CREATE", "UPDATE"]
    names = [v["name"] for v in spec["variables"]]
    assert len(names) == len(set(names))
    for validation in spec["validations"]:
        assert "'" not in validation["message"]


def test_policy_cel_lists_the_same_types_as_the_operator() -> None:
    cel = " ".join(v["expression"] for v in build_policy_spec()["variables"])
    for kind in (*ALLOWED_VOLUME_TYPES, *ALLOWED_PROJECTED_SOURCES):
        assert f"'{kind}'" in cel
    assert f"[{', '.join(str(i) for i in range(MAX_VOLUMES))}]" in cel


def test_volume_slots_cover_the_schema_cap() -> None:
    spec = build_llmjob_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["properties"]["volumes"]["maxItems"] == MAX_VOLUMES


# ------------------------------------------------------------------------------- Pod Security `restricted`
def _restricted_violations(pod: dict[str, Any]) -> list[str]:
    """The checks of the Pod Security Standard `restricted` (v1.36) that a pod template can fail."""
    found = []
    sc = pod.get("securityContext") or {}
    if any(pod.get(k) for k in ("hostNetwork", "hostPID", "hostIPC")):
        found.append("host namespaces")
    for v in pod.get("volumes") or []:
        if set(v) - {"name"} - set(ALLOWED_VOLUME_TYPES):
            found.append(f"volume {v['name']}")
    if (sc.get("seccompProfile") or {}).get("type") not in ("RuntimeDefault", "Localhost"):
        found.append("seccompProfile")
    for c in [*pod.get("initContainers", []), *pod["containers"]]:
        csc = c.get("securityContext") or {}
        if csc.get("privileged"):
            found.append("privileged")
        if csc.get("allowPrivilegeEscalation") is not False:
            found.append("allowPrivilegeEscalation")
        if "ALL" not in (csc.get("capabilities") or {}).get("drop", []):
            found.append("capabilities.drop")
        if set((csc.get("capabilities") or {}).get("add", [])) - {"NET_BIND_SERVICE"}:
            found.append("capabilities.add")
        if not (csc.get("runAsNonRoot") or sc.get("runAsNonRoot")):
            found.append("runAsNonRoot")
        if csc.get("runAsUser", sc.get("runAsUser")) == 0:
            found.append("runAsUser")
        if any(p.get("hostPort") for p in c.get("ports", [])):
            found.append("hostPort")
    return found


@pytest.mark.parametrize("strategy", ["ddp", "ray"])
def test_worker_pods_meet_pod_security_restricted(strategy: str) -> None:
    volumes = [{"name": "data", "persistentVolumeClaim": {"claimName": "d"}}]
    spec = make_spec(nodes=2, gpus=1, strategy=strategy, volumes=volumes,
                     volumeMounts=[{"name": "data", "mountPath": "/data"}])
    pod = build_job(Owner("j", "tenant", "uid"), spec, 0, "a100", "img:1")["spec"]["template"]["spec"]
    assert _restricted_violations(pod) == []
    assert pod["automountServiceAccountToken"] is False
    assert "serviceAccountName" not in pod
