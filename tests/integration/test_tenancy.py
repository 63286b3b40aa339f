"""No confused deputy: a user who may create LLMJobs, and nothing else, gets no pod through the operator that a Pod of
their own could not be (issue 23).

The user is a real ServiceAccount (`tenant:llmjob-author`) whose only RBAC is `create llmjobs`, acting with its own
TokenRequest token through kubectl, so every refusal asserted is the message that user sees. The policy is the
chart's own template (templates/admission/llmjob-workload.yaml) rendered with the built helm and applied as is; it is
removed again when the module ends. The operator is the module's (admin-authenticated: its RBAC is the chart
install test's concern).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e.localcluster import LocalCluster
from tests.integration.kube import AdminApi, children, delete_namespace, llmjob, llmjob_path, wait_for, wait_phase
from tests.integration.operator_proc import OperatorProcess

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
POLICY_TEMPLATE = "templates/admission/llmjob-workload.yaml"
AUTHOR = "llmjob-author"
TENANT, HOSTVOL, RESTRICTED = "tenant", "tenant-hostvol", "tenant-restricted"
# One volume per type that reaches the node, a server on the node's behalf, or a Kubernetes identity.
HOST_REACHING: dict[str, dict[str, Any]] = {
    "hostPath": {"hostPath": {"path": "/", "type": "Directory"}},
    "nfs": {"nfs": {"server": "10.0.0.1", "path": "/exports"}},
    "iscsi": {"iscsi": {"targetPortal": "10.0.0.1:3260", "iqn": "iqn.2001-04.com.example:disk", "lun": 0}},
    "rbd": {"rbd": {"monitors": ["10.0.0.1:6789"], "image": "disk"}},
    "cephfs": {"cephfs": {"monitors": ["10.0.0.1:6789"]}},
    "glusterfs": {"glusterfs": {"endpoints": "gluster", "path": "vol"}},
    "flexVolume": {"flexVolume": {"driver": "example.com/driver"}},
    "gitRepo": {"gitRepo": {"repository": "https://example.com/repo.git"}},
    "fc": {"fc": {"wwids": ["3600508b400105e210000900000490000"]}},
    "image": {"image": {"reference": "registry.example.com/weights:1"}},
}
TOKEN_PROJECTION = {"projected": {"sources": [{"configMap": {"name": "settings"}},
                                              {"serviceAccountToken": {"path": "token"}}]}}
# What an ordinary job may mount (no PVC: it would keep kwok's pods waiting for a bound volume).
ORDINARY_VOLUMES = [
    {"name": "scratch", "emptyDir": {}},
    {"name": "settings", "configMap": {"name": "settings", "optional": True}},
    {"name": "creds", "secret": {"secretName": "creds", "optional": True}},
    {"name": "info", "projected": {"sources": [{"downwardAPI": {"items": [
        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}}]}},
]


def with_volumes(name: str, volumes: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    mounts = [{"name": v["name"], "mountPath": f"/mnt/{v['name']}"} for v in volumes]
    return llmjob(name, volumes=volumes, volumeMounts=mounts, **spec)


class Author:
    """kubectl as the ServiceAccount, with a kubeconfig that holds its token and nothing else (no client cert)."""

    def __init__(self, cluster: LocalCluster, kubeconfig: Path) -> None:
        self.cluster, self.kubeconfig = cluster, kubeconfig

    def kubectl(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([self.cluster.binary("kubectl"), f"--kubeconfig={self.kubeconfig}", *args],
                              input=input, capture_output=True, text=True, timeout=60)

    def create(self, namespace: str, doc: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        return self.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(doc))


def namespace(api: AdminApi, name: str, labels: dict[str, str] | None = None) -> str:
    if api.request("GET", f"/api/v1/namespaces/{name}").status_code == 200:  # a leftover of an interrupted run
        delete_namespace(api, name)
    api.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                      "metadata": {"name": name, "labels": labels or {}}})
    return name


def may_create_llmjobs(api: AdminApi, ns: str) -> None:
    """A Role that allows creating LLMJobs (not reading, not pods, not Jobs), bound to the author."""
    rbac = "/apis/rbac.authorization.k8s.io/v1"
    api.create(f"{rbac}/namespaces/{ns}/roles", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": AUTHOR},
        "rules": [{"apiGroups": ["llmasos.io"], "resources": ["llmjobs"], "verbs": ["create"]}]})
    api.create(f"{rbac}/namespaces/{ns}/rolebindings", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": AUTHOR},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": AUTHOR},
        "subjects": [{"kind": "ServiceAccount", "name": AUTHOR, "namespace": TENANT}]})


@pytest.fixture(scope="module")
def policy(cluster: LocalCluster, api: AdminApi, crds: None,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The chart's policy and binding, rendered by the pinned helm, applied as a user's `helm install` would."""
    rendered = subprocess.run([cluster.binary("helm"), "template", "llmasos", str(REPO / "charts" / "llmasos"),
                               "--namespace", "llmasos-system", "--kube-version", "1.36.3",
                               "--show-only", POLICY_TEMPLATE], capture_output=True, text=True, check=True).stdout
    kinds = [d["kind"] for d in yaml.safe_load_all(rendered) if d]
    assert kinds == ["ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"]
    path = tmp_path_factory.mktemp("policy") / "policy.yaml"
    path.write_text(rendered)
    cluster.kubectl("apply", "-f", str(path))
    probe = with_volumes("probe", [{"name": "host", **HOST_REACHING["hostPath"]}])
    probe["metadata"]["namespace"] = "default"
    # The API server picks a new policy up from its informer within moments: wait until it refuses.
    wait_for(lambda: api.request("POST", llmjob_path("default") + "?dryRun=All", probe).status_code == 403,
             timeout=30, what="the admission policy in force")
    yield
    cluster.kubectl("delete", "-f", str(path), "--ignore-not-found")


@pytest.fixture(scope="module")
def author(cluster: LocalCluster, api: AdminApi, policy: None,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Author]:
    namespace(api, TENANT)
    namespace(api, HOSTVOL, {"llmasos.io/allow-host-volumes": "true"})
    namespace(api, RESTRICTED, {"pod-security.kubernetes.io/enforce": "restricted",
                                "pod-security.kubernetes.io/enforce-version": "latest"})
    api.create(f"/api/v1/namespaces/{TENANT}/serviceaccounts",
               {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": AUTHOR}})
    for ns in (TENANT, HOSTVOL, RESTRICTED):
        may_create_llmjobs(api, ns)
    token = cluster.kubectl("create", "token", AUTHOR, "-n", TENANT, "--duration=1h").stdout.strip()  # TokenRequest
    kubeconfig = tmp_path_factory.mktemp("author") / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "author",
        "clusters": [{"name": "local", "cluster": {"server": cluster.paths.server,
                                                   "certificate-authority": str(cluster.paths.pki / "ca.crt")}}],
        "users": [{"name": AUTHOR, "user": {"token": token}}],
        "contexts": [{"name": "author", "context": {"cluster": "local", "user": AUTHOR}}],
    }))
    yield Author(cluster, kubeconfig)
    for ns in (TENANT, HOSTVOL, RESTRICTED):
        api.delete(f"/api/v1/namespaces/{ns}")


def test_the_author_may_create_llmjobs_and_nothing_else(author: Author) -> None:
    whoami = json.loads(author.kubectl("auth", "whoami", "-o", "json").stdout)
    assert whoami["status"]["userInfo"]["username"] == f"system:serviceaccount:{TENANT}:{AUTHOR}"
    for verb, resource, allowed in [("create", "llmjobs.llmasos.io", "yes"), ("create", "pods", "no"),
                                    ("create", "jobs.batch", "no"), ("get", "secrets", "no"),
                                    ("get", "llmjobs.llmasos.io", "no")]:
        out = author.kubectl("auth", "can-i", verb, resource, "-n", TENANT).stdout.strip()
        assert out == allowed, f"{verb} {resource}: {out}"


@pytest.mark.parametrize("kind", [*HOST_REACHING, "projected serviceAccountToken"])
def test_host_reaching_volumes_are_refused_naming_the_field(author: Author, api: AdminApi, kind: str) -> None:
    volume = TOKEN_PROJECTION if kind.startswith("projected") else HOST_REACHING[kind]
    field = ("spec.volumes[1].projected.sources[1].serviceAccountToken" if kind.startswith("projected")
             else f"spec.volumes[1].{kind}")
    name = f"grab-{kind.split()[0].lower()}"
    out = author.create(TENANT, with_volumes(name, [{"name": "scratch", "emptyDir": {}}, {"name": "x", **volume}]))
    assert out.returncode != 0, f"{kind}: accepted"
    assert "denied request" in out.stderr, out.stderr
    assert field in out.stderr, out.stderr
    assert api.request("GET", llmjob_path(TENANT, name)).status_code == 404


def test_an_ordinary_ddp_job_still_runs(author: Author, api: AdminApi, operator: OperatorProcess) -> None:
    out = author.create(TENANT, with_volumes("ordinary", ORDINARY_VOLUMES))
    assert out.returncode == 0, out.stderr
    wait_phase(api, TENANT, "ordinary", "Succeeded", timeout=90)
    jobs, _, _ = children(api, TENANT, "ordinary")
    template = jobs[0]["spec"]["template"]["spec"]
    assert {v["name"] for v in template["volumes"]} >= {v["name"] for v in ORDINARY_VOLUMES}
    assert all(set(v) - {"name"} <= {"emptyDir", "configMap", "secret", "projected"} for v in template["volumes"])


def test_a_namespace_an_admin_allowed_takes_host_volumes(author: Author, api: AdminApi,
                                                         operator: OperatorProcess) -> None:
    host = {"name": "host", **HOST_REACHING["hostPath"]}
    out = author.create(HOSTVOL, with_volumes("host-ok", [host]))
    assert out.returncode == 0, out.stderr
    wait_for(lambda: children(api, HOSTVOL, "host-ok")[0], timeout=60, what="the child Job")
    template = children(api, HOSTVOL, "host-ok")[0][0]["spec"]["template"]["spec"]
    assert host in template["volumes"]


def test_a_restricted_namespace_admits_the_worker_pods(author: Author, api: AdminApi,
                                                       operator: OperatorProcess) -> None:
    root = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "root"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    refused = api.request("POST", f"/api/v1/namespaces/{RESTRICTED}/pods?dryRun=All", root)
    assert refused.status_code == 403, "Pod Security must be enforcing here"
    assert "PodSecurity" in refused.text
    out = author.create(RESTRICTED, with_volumes("restricted", ORDINARY_VOLUMES))
    assert out.returncode == 0, out.stderr
    pods = wait_for(lambda: (p := children(api, RESTRICTED, "restricted")[2]) and len(p) == 2 and p,
                    timeout=60, what="both worker pods created by the Job controller")
    assert all(p["spec"]["securityContext"]["runAsNonRoot"] for p in pods)
    wait_phase(api, RESTRICTED, "restricted", "Succeeded", timeout=90)


def test_node_pools_outside_the_namespace_annotation_are_refused(author: Author, api: AdminApi) -> None:
    ns = namespace(api, "tenant-pools")
    try:
        api.request("PATCH", f"/api/v1/namespaces/{ns}", {"metadata": {"annotations": {
            "llmasos.io/allowed-node-pools": "l4"}}}, content_type="application/merge-patch+json")
        may_create_llmjobs(api, ns)
        for pools, why in [([], "may use only the node pools l4"), (["l4", "h100"], "node pool(s) h100 not allowed")]:
            out = author.create(ns, llmjob("pools", suspend=True, placement={"nodePools": pools}))
            assert out.returncode != 0, f"{pools}: accepted"
            assert "spec.placement.nodePools" in out.stderr, out.stderr
            assert why in out.stderr, out.stderr
        assert author.create(ns, llmjob("pools", suspend=True, placement={"nodePools": ["l4"]})).returncode == 0
    finally:
        api.delete(f"/api/v1/namespaces/{ns}")


def test_the_operator_refuses_to_start_what_the_namespace_no_longer_allows(api: AdminApi,
                                                                           operator: OperatorProcess) -> None:
    """Defense in depth, and the ratchet: an admitted job that has not started (here: no pool has room) is failed by
    the operator once its namespace loses the label; the API server still lets it be changed otherwise."""
    ns = namespace(api, "tenant-unlabel", {"llmasos.io/allow-host-volumes": "true"})
    try:
        too_big = {"strategy": "ddp", "nodes": 3, "gpusPerNode": 8}
        api.create(llmjob_path(ns), with_volumes("waiting", [{"name": "host", **HOST_REACHING["hostPath"]}],
                                                 parallelism=too_big, placement={"nodePools": ["a100"]},
                                                 taskConfig={"batch_size": 24}))
        wait_for(lambda: "no allowed pool" in str(api.get(llmjob_path(ns, "waiting")).get("status", {})),
                 timeout=60, what="Pending for lack of GPUs")
        api.request("PATCH", f"/api/v1/namespaces/{ns}", {"metadata": {"labels": {
            "llmasos.io/allow-host-volumes": None}}}, content_type="application/merge-patch+json")
        unchanged = api.request("PATCH", llmjob_path(ns, "waiting"), {"spec": {"backoffLimit": 1}},
                                content_type="application/merge-patch+json")
        assert unchanged.status_code == 200, "an unchanged volume list is not re-judged (ratchet)"
        failed = wait_phase(api, ns, "waiting", "Failed", timeout=60)
        reason = next(c for c in failed["status"]["conditions"] if c["type"] == "Failed")
        assert reason["reason"] == "InvalidSpec"
        assert "spec.volumes[0].hostPath" in reason["message"]
        assert not children(api, ns, "waiting")[0], "no Job was created"
    finally:
        api.delete(f"/api/v1/namespaces/{ns}")


def test_a_job_starts_only_on_pools_it_lists_now(api: AdminApi, operator: OperatorProcess) -> None:
    """Placed while suspended on a100, then told l4 only: it starts on l4, never on the pool it no longer lists."""
    ns = namespace(api, "tenant-move")
    try:
        api.create(llmjob_path(ns), llmjob("move", suspend=True, placement={"nodePools": ["a100"]}))
        wait_for(lambda: api.get(llmjob_path(ns, "move")).get("status", {}).get("pool") == "a100", timeout=60,
                 what="placed on a100")
        api.request("PATCH", llmjob_path(ns, "move"), {"spec": {"suspend": False, "placement": {"nodePools": ["l4"]}}},
                    content_type="application/merge-patch+json", expect=200)
        jobs = wait_for(lambda: children(api, ns, "move")[0], timeout=60, what="the child Job")
        terms = jobs[0]["spec"]["template"]["spec"]["affinity"]["nodeAffinity"][
            "requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
        assert terms[0]["matchExpressions"][0]["values"] == ["l4"]
        assert api.get(llmjob_path(ns, "move"))["status"]["pool"] == "l4"
    finally:
        api.delete(f"/api/v1/namespaces/{ns}")
