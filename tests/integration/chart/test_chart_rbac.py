"""The chart's RBAC, proven on a real API server: the operator and node agents, authenticated as the chart's own
ServiceAccounts, do their whole job with it (placement, children, status, Events, power reports, restarts,
suspension, leader election), and it allows them nothing more (`kubectl auth can-i --as`, no wildcards, no Secrets).
"""

from __future__ import annotations

from typing import Any

import pytest

from e2e.localcluster import LocalCluster
from tests.integration.agent_proc import AgentProcess
from tests.integration.chart.release import AGENT_SA, NS, OPERATOR_SA, RELEASE, denials, events_for
from tests.integration.kube import AdminApi, children, llmjob, llmjob_path, phase_of, wait_for, wait_phase
from tests.integration.operator_proc import OperatorProcess

pytestmark = pytest.mark.integration


# ------------------------------------------------------------------------------------------------ the proofs
def test_operator_and_agents_do_everything_with_the_chart_rbac(
        chart_cluster: LocalCluster, admin: AdminApi, chart_operator: OperatorProcess,
        chart_agents: dict[str, AgentProcess]) -> None:
    """Placement, children, status, Events, agents' reports into status.power, TTL deletion, leader election."""
    ns = admin.namespace("chart")
    admin.create(llmjob_path(ns), llmjob(
        "capped", placement={"nodePools": ["a100"]}, parallelism={"strategy": "ddp", "nodes": 2, "gpusPerNode": 4},
        power={"policy": "fraction", "fraction": 0.8}, ttlSecondsAfterFinished=5,
        annotations={"sim.llmasos.io/duration": "12s"}))
    job = wait_phase(admin, ns, "capped", "Running", timeout=60)
    assert job["status"]["pool"] == "a100"
    jobs, services, _ = children(admin, ns, "capped")
    assert [j["metadata"]["name"] for j in jobs] == ["capped-a0"]
    assert [s["metadata"]["name"] for s in services] == ["capped"]
    assert jobs[0]["metadata"]["ownerReferences"][0]["uid"] == job["metadata"]["uid"]

    def power_reported() -> dict[str, Any] | None:
        power = admin.get(llmjob_path(ns, "capped")).get("status", {}).get("power")
        return power if power and len(power.get("pods", [])) == 2 else None

    power = wait_for(power_reported, timeout=60, what="status.power from both agents' ConfigMaps")
    assert {p["limitWatts"] for p in power["pods"]} == {320}
    for node, agent in chart_agents.items():
        report = admin.get(f"/api/v1/namespaces/{NS}/configmaps/llmasos-power-{node}")
        assert report["metadata"]["labels"]["llmasos.io/node-power-report"] == "true"
        assert sorted(agent.limits_mw().values()).count(320_000) == 4, "exactly the job's 4 GPUs capped"

    wait_phase(admin, ns, "capped", "Succeeded", timeout=90)
    # Events follow the status write, so they may land a moment after the phase.
    wait_for(lambda: {"PoolSelected", "JobCompleted"} <= events_for(admin, ns, "capped"), timeout=30,
             what="PoolSelected and JobCompleted Events posted by the chart's operator")
    wait_for(lambda: admin.request("GET", llmjob_path(ns, "capped")).status_code == 404, timeout=60,
             what="ttlSecondsAfterFinished deletes the LLMJob")

    peering = admin.get(f"/apis/kopf.dev/v1/clusterkopfpeerings/{RELEASE}")
    assert peering.get("status"), "the operator renewed its record in the chart's ClusterKopfPeering"
    for name, log in [("operator", chart_operator.log_tail(200_000)),
                      *((f"agent {n}", a.log_path.read_text(errors="replace")) for n, a in chart_agents.items())]:
        assert not denials(log), f"{name} was denied something:\n" + "\n".join(denials(log)[:5])
    admin.delete(f"/api/v1/namespaces/{ns}")


def test_restart_and_suspend_with_the_chart_rbac(admin: AdminApi, chart_operator: OperatorProcess) -> None:
    """A failing worker group is restarted (delete the failed Job, create the next attempt); suspend/resume patches
    the Job."""
    ns = admin.namespace("chart")
    admin.create(llmjob_path(ns), llmjob("flaky", backoffLimit=1, annotations={
        "sim.llmasos.io/duration": "1s", "sim.llmasos.io/outcome": "Failed", "sim.llmasos.io/exit-code": "7"}))
    admin.create(llmjob_path(ns), llmjob("pausable", annotations={"sim.llmasos.io/duration": "120s"}))

    failed = wait_phase(admin, ns, "flaky", "Failed", timeout=90)
    assert failed["status"]["attempt"] == 1
    assert [j["metadata"]["name"] for j in children(admin, ns, "flaky")[0]] == ["flaky-a1"], "a0 was deleted"

    wait_phase(admin, ns, "pausable", "Running", timeout=60)
    patch = admin.request("PATCH", llmjob_path(ns, "pausable"), {"spec": {"suspend": True}},
                          content_type="application/merge-patch+json")
    assert patch.status_code == 200, patch.text
    wait_phase(admin, ns, "pausable", "Suspended", timeout=60)
    assert children(admin, ns, "pausable")[0][0]["spec"]["suspend"] is True
    admin.request("PATCH", llmjob_path(ns, "pausable"), {"spec": {"suspend": False}},
                  content_type="application/merge-patch+json")
    wait_phase(admin, ns, "pausable", "Running", timeout=60)
    log = chart_operator.log_tail(200_000)
    assert not denials(log), "\n".join(denials(log)[:5])
    admin.delete(f"/api/v1/namespaces/{ns}")
    wait_for(lambda: phase_of(admin, ns, "pausable") == "", timeout=60, what="namespace cleanup")


# ------------------------------------------------------------------------------------ and not a bit more
def can_i(cluster: LocalCluster, user: str, verb: str, resource: str, *scope: str) -> bool:
    result = cluster.kubectl("auth", "can-i", verb, resource, f"--as={user}", *scope, check=False)
    assert result.stdout.strip() in ("yes", "no"), result.stdout + result.stderr
    return result.stdout.strip() == "yes"


MUST = [
    (OPERATOR_SA, "list", "llmjobs.llmasos.io", "-A"),
    (OPERATOR_SA, "patch", "llmjobs.llmasos.io", "--subresource=status", "-n", "anywhere"),
    (OPERATOR_SA, "create", "jobs.batch", "-n", "anywhere"),
    (OPERATOR_SA, "delete", "jobs.batch", "-n", "anywhere"),
    (OPERATOR_SA, "create", "services", "-n", "anywhere"),
    (OPERATOR_SA, "create", "events", "-n", "anywhere"),
    (OPERATOR_SA, "list", "events", "-n", "anywhere"),  # a worker's FailedMount (planning/worker_faults.py)
    (OPERATOR_SA, "list", "nodes"),
    (OPERATOR_SA, "list", "pods", "-A"),
    (OPERATOR_SA, "watch", "configmaps", "-A"),
    (OPERATOR_SA, "patch", f"clusterkopfpeerings.kopf.dev/{RELEASE}"),
    (AGENT_SA, "list", "pods", "-A"),
    (AGENT_SA, "watch", "pods", "-A"),  # the last status of a pod deleted between two lists
    (AGENT_SA, "create", "configmaps", "-n", NS),
    (AGENT_SA, "update", "configmaps", "-n", NS),
    (AGENT_SA, "get", "configmaps", "-n", NS),  # another node's report: the leader of a multi-node job
]
MUST_NOT = [
    # Secrets: nowhere, not even the operator's own namespace (the Electricity Maps token arrives as env).
    (OPERATOR_SA, "get", "secrets", "-A"),
    (OPERATOR_SA, "get", "secrets", "-n", NS),
    (OPERATOR_SA, "list", "secrets", "-n", NS),
    (AGENT_SA, "get", "secrets", "-n", NS),
    (AGENT_SA, "list", "secrets", "-A"),
    # No writes beyond its children.
    (OPERATOR_SA, "create", "pods", "-n", "anywhere"),
    (OPERATOR_SA, "delete", "pods", "-n", "anywhere"),
    (OPERATOR_SA, "create", "pods/exec", "-n", "anywhere"),
    (OPERATOR_SA, "patch", "nodes"),
    (OPERATOR_SA, "delete", "services", "-n", "anywhere"),
    (OPERATOR_SA, "create", "configmaps", "-n", NS),
    (OPERATOR_SA, "get", "configmaps", "-n", "kube-system"),
    (OPERATOR_SA, "create", "llmjobs.llmasos.io", "-n", "anywhere"),
    (OPERATOR_SA, "update", "customresourcedefinitions.apiextensions.k8s.io"),
    (OPERATOR_SA, "create", "customresourcedefinitions.apiextensions.k8s.io"),
    (OPERATOR_SA, "create", "clusterrolebindings.rbac.authorization.k8s.io"),
    (OPERATOR_SA, "escalate", "clusterroles.rbac.authorization.k8s.io"),
    (OPERATOR_SA, "impersonate", "serviceaccounts", "-A"),
    (OPERATOR_SA, "create", "serviceaccounts/token", "-n", NS),
    (OPERATOR_SA, "create", "clusterkopfpeerings.kopf.dev"),
    (OPERATOR_SA, "delete", f"clusterkopfpeerings.kopf.dev/{RELEASE}"),
    (OPERATOR_SA, "patch", "clusterkopfpeerings.kopf.dev/someone-elses"),
    (OPERATOR_SA, "deletecollection", "jobs.batch", "-n", "anywhere"),
    # The agent: read pods, write and read reports in its own namespace, nothing else.
    (AGENT_SA, "patch", "pods", "-n", "anywhere"),
    (AGENT_SA, "delete", "pods", "-n", "anywhere"),
    (AGENT_SA, "create", "configmaps", "-n", "default"),
    (AGENT_SA, "update", "configmaps", "-n", "kube-system"),
    (AGENT_SA, "delete", "configmaps", "-n", NS),
    (AGENT_SA, "list", "configmaps", "-n", NS),
    (AGENT_SA, "get", "configmaps", "-n", "kube-system"),
    (AGENT_SA, "patch", "nodes"),
    (AGENT_SA, "list", "llmjobs.llmasos.io", "-A"),
    (AGENT_SA, "create", "events", "-n", NS),
]


@pytest.mark.parametrize("check", MUST, ids=lambda c: " ".join(c[1:]) + " @" + c[0].rsplit(":", 1)[1])
def test_rbac_allows_what_they_need(chart_cluster: LocalCluster, release: str, check: tuple[str, ...]) -> None:
    user, verb, resource, *scope = check
    assert can_i(chart_cluster, user, verb, resource, *scope)


@pytest.mark.parametrize("check", MUST_NOT, ids=lambda c: " ".join(c[1:]) + " @" + c[0].rsplit(":", 1)[1])
def test_rbac_denies_what_they_do_not_need(chart_cluster: LocalCluster, release: str, check: tuple[str, ...]) -> None:
    user, verb, resource, *scope = check
    assert not can_i(chart_cluster, user, verb, resource, *scope)


def test_installed_roles_have_no_wildcards_or_secrets(admin: AdminApi, release: str) -> None:
    selector = f"labelSelector=app.kubernetes.io/instance={release}"
    roles = (admin.get(f"/apis/rbac.authorization.k8s.io/v1/clusterroles?{selector}")["items"]
             + admin.get(f"/apis/rbac.authorization.k8s.io/v1/roles?{selector}")["items"])
    assert sorted(r["metadata"]["name"] for r in roles) == ["llmasos-agent", "llmasos-agent", "llmasos-operator"]
    for role in roles:
        for rule in role["rules"]:
            for key in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule.get(key, []), (role["metadata"]["name"], rule)
            assert "secrets" not in rule["resources"]
    bindings = admin.get(f"/apis/rbac.authorization.k8s.io/v1/clusterrolebindings?{selector}")["items"]
    for b in bindings:
        assert b["roleRef"]["name"].startswith("llmasos-"), "bound only to the chart's own roles"
