"""`helm install` of charts/llmasos onto a local control plane, then the operator and node agents authenticated as
the chart's own ServiceAccounts (TokenRequest tokens): they must do their whole job with the chart's RBAC, and
that RBAC must not allow more than they need.

This module starts its own local control plane (state dir `<cluster dir>-chart`, ports shifted by 500): the session
operator of the other integration tests is cluster-wide and admin-authenticated, and would reconcile these LLMJobs
too, which would hide any permission the chart forgot. Here the only operator is the chart's.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from e2e.localcluster import LocalCluster
from e2e.localcluster.cluster import ClusterPaths
from tests.integration.agent_proc import AgentProcess
from tests.integration.kube import AdminApi, children, llmjob, llmjob_path, phase_of, wait_for, wait_phase
from tests.integration.operator_proc import OperatorProcess, free_port

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "llmasos"
RELEASE, NS = "llmasos", "llmasos-system"
OPERATOR_SA, AGENT_SA = f"system:serviceaccount:{NS}:llmasos-operator", f"system:serviceaccount:{NS}:llmasos-agent"
A100_NODES = ("gpu-a100-000", "gpu-a100-001")
DENIED = ("forbidden", " 403")


def chart_cluster_paths() -> ClusterPaths:
    """Beside the session cluster: same layout, its own state directory and ports."""
    base = ClusterPaths()
    return ClusterPaths(root=Path(f"{base.root}-chart"), port_offset=base.port_offset + 500, product_images=False)


@pytest.fixture(scope="module")
def chart_cluster() -> Iterator[LocalCluster]:
    local = LocalCluster(chart_cluster_paths())
    was_running = local.is_healthy()
    local.up()
    yield local
    if not was_running and os.environ.get("LLMASOS_KEEP_CLUSTER") != "1":
        local.down()


def helm(cluster: LocalCluster, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([cluster.binary("helm"), f"--kubeconfig={cluster.paths.kubeconfig}", *args],
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.fixture(scope="module")
def release(chart_cluster: LocalCluster) -> str:
    """The chart with its defaults: every object (Deployment, DaemonSet, PDB, NetworkPolicies, peering, RBAC) goes
    through the API server's validation. kwok 'runs' the Deployment's and DaemonSet's pods on fake nodes; they
    execute nothing, so the operator and agents under test are the processes started below."""
    helm(chart_cluster, "upgrade", "--install", RELEASE, str(CHART), "--namespace", NS, "--create-namespace",
         "--wait=false")
    chart_cluster.kubectl("wait", "--for=condition=Established", "crd/llmjobs.llmasos.io",
                          "crd/clusterkopfpeerings.kopf.dev", "--timeout=60s")
    return RELEASE


@pytest.fixture(scope="module")
def admin(chart_cluster: LocalCluster) -> Iterator[AdminApi]:
    client = AdminApi(chart_cluster)
    yield client
    client.close()


def token_kubeconfig(cluster: LocalCluster, service_account: str, path: Path, namespace: str = NS) -> Path:
    """A kubeconfig holding a TokenRequest token of the ServiceAccount (as its pods would mount)."""
    token = cluster.kubectl("create", "token", service_account, "-n", namespace, "--duration=2h").stdout.strip()
    doc = {
        "apiVersion": "v1", "kind": "Config", "current-context": "sa",
        "clusters": [{"name": "c", "cluster": {"server": cluster.paths.server,
                                              "certificate-authority": str(cluster.paths.pki / "ca.crt")}}],
        "users": [{"name": service_account, "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "c", "user": service_account}}],
    }
    path.write_text(yaml.safe_dump(doc))
    path.chmod(0o600)
    return path


def whoami(cluster: LocalCluster, kubeconfig: Path) -> str:
    out = subprocess.run([cluster.binary("kubectl"), f"--kubeconfig={kubeconfig}", "auth", "whoami", "-o", "json"],
                         capture_output=True, text=True, check=True).stdout
    return str(json.loads(out)["status"]["userInfo"]["username"])


def denials(log: str) -> list[str]:
    """403s in a log, except the API server refusing writes into a namespace being deleted (not an RBAC matter)."""
    return [line for line in log.splitlines()
            if any(d in line.lower() for d in DENIED) and "is being terminated" not in line]


@pytest.fixture(scope="module")
def chart_operator(chart_cluster: LocalCluster, release: str, artifacts: Path,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    kubeconfig = token_kubeconfig(chart_cluster, "llmasos-operator", tmp_path_factory.mktemp("op") / "kc")
    assert whoami(chart_cluster, kubeconfig) == OPERATOR_SA
    proc = OperatorProcess(chart_cluster, artifacts, "chart-operator", kubeconfig=kubeconfig,
                           extra_env={"LLMASOS_PEERING_NAME": release, "LLMASOS_CARBON_SOURCES": "trace,static"})
    proc.log_path.unlink(missing_ok=True)
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def chart_agents(chart_cluster: LocalCluster, release: str,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, AgentProcess]]:
    workdir = tmp_path_factory.mktemp("agents")
    kubeconfig = token_kubeconfig(chart_cluster, "llmasos-agent", workdir / "kc")
    assert whoami(chart_cluster, kubeconfig) == AGENT_SA
    procs = {n: AgentProcess(chart_cluster, n, "nvidia-a100-80gb", workdir, NS, kubeconfig=kubeconfig).start()
             for n in A100_NODES}
    yield procs
    for p in procs.values():
        p.stop()


def events_for(admin: AdminApi, ns: str, name: str) -> set[str]:
    items = admin.get(f"/api/v1/namespaces/{ns}/events?fieldSelector=involvedObject.name={name}")["items"]
    return {e["reason"] for e in items}


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
    (AGENT_SA, "create", "configmaps", "-n", NS),
    (AGENT_SA, "update", "configmaps", "-n", NS),
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
    # The agent: read pods, write its reports in its own namespace, nothing else.
    (AGENT_SA, "patch", "pods", "-n", "anywhere"),
    (AGENT_SA, "delete", "pods", "-n", "anywhere"),
    (AGENT_SA, "watch", "pods", "-A"),
    (AGENT_SA, "create", "configmaps", "-n", "default"),
    (AGENT_SA, "update", "configmaps", "-n", "kube-system"),
    (AGENT_SA, "delete", "configmaps", "-n", NS),
    (AGENT_SA, "list", "configmaps", "-n", NS),
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


def test_upgrade_in_place_keeps_the_release_working(chart_cluster: LocalCluster, release: str,
                                                     admin: AdminApi) -> None:
    helm(chart_cluster, "upgrade", release, str(CHART), "--namespace", NS, "--reuse-values",
         "--set", "operator.settings.resyncSeconds=20", "--wait=false")
    status = json.loads(helm(chart_cluster, "status", release, "--namespace", NS, "-o", "json").stdout)
    assert status["info"]["status"] == "deployed"
    assert status["version"] >= 2
    deploy = admin.get(f"/apis/apps/v1/namespaces/{NS}/deployments/{release}-operator")
    env = {e["name"]: e.get("value") for e in deploy["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["LLMASOS_RESYNC_SECONDS"] == "20"
    assert admin.get(f"/apis/kopf.dev/v1/clusterkopfpeerings/{release}")["metadata"]["name"] == release


def test_examples_are_valid_against_the_installed_crd(chart_cluster: LocalCluster, release: str) -> None:
    """Every examples/*.yaml passes the API server's schema and CEL validation (server-side dry run)."""
    files = sorted((REPO / "examples").glob("*.yaml"))
    assert len(files) >= 7
    namespaces = {d["metadata"].get("namespace") for f in files for d in yaml.safe_load_all(f.read_text())
                  if d and d.get("kind") == "LLMJob"} - {None}
    for ns in namespaces:
        chart_cluster.kubectl("create", "namespace", ns, check=False)
    for f in files:
        result = chart_cluster.kubectl("apply", "--dry-run=server", "-f", str(f), check=False)
        assert result.returncode == 0, f"{f.name}: {result.stderr}"
        assert "llmjob.llmasos.io/" in result.stdout, f"{f.name} holds no LLMJob"


# ------------------------------------------------------------------------- namespaced mode, own namespaces
NSMODE_RELEASE, NSMODE_NS, NSMODE_AGENTS = "llmasos-nsmode", "nsmode-system", "nsmode-agents"


def labelled_namespace(admin: AdminApi, name: str, level: str) -> None:
    """Create (or relabel) a namespace enforcing a Pod Security level."""
    labels = {"pod-security.kubernetes.io/enforce": level}
    if admin.request("GET", f"/api/v1/namespaces/{name}").status_code == 404:
        admin.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                            "metadata": {"name": name, "labels": labels}})
    else:
        admin.request("PATCH", f"/api/v1/namespaces/{name}", {"metadata": {"labels": labels}},
                      content_type="application/merge-patch+json", expect=200)


def test_namespaced_mode_reports_reach_status(chart_cluster: LocalCluster, release: str, admin: AdminApi,
                                              chart_operator: OperatorProcess,
                                              tmp_path_factory: pytest.TempPathFactory) -> None:
    """issue 21, point 2: with operator.watchNamespaces set and the agents in a namespace of their own, the agents'
    power reports still reach status.power and the energy reaches status.carbon, with only the chart's RBAC.

    Before the fix the operator served only the watched namespaces, so it never saw the reports (written to the
    agents' namespace) and status.power stayed empty without an error. The cluster-wide operator of this module is
    paused meanwhile, or it would reconcile these jobs itself."""
    team = admin.namespace("nsmode-team")
    labelled_namespace(admin, NSMODE_AGENTS, "privileged")
    helm(chart_cluster, "upgrade", "--install", NSMODE_RELEASE, str(CHART), "--namespace", NSMODE_NS,
         "--create-namespace", "--wait=false", "-f", str(CHART / "ci" / "local-values.yaml"),
         "--set", f"operator.watchNamespaces={{{team}}}", "--set", f"agent.namespace={NSMODE_AGENTS}")
    rendered = chart_cluster.kubectl("get", "role", "-n", NSMODE_AGENTS, "-o", "name").stdout.split()
    assert {"role.rbac.authorization.k8s.io/llmasos-nsmode-agent",
            "role.rbac.authorization.k8s.io/llmasos-nsmode-operator-reports"} <= set(rendered)
    work = tmp_path_factory.mktemp("nsmode")
    op_kc = token_kubeconfig(chart_cluster, "llmasos-nsmode-operator", work / "op-kc", namespace=NSMODE_NS)
    agent_kc = token_kubeconfig(chart_cluster, "llmasos-nsmode-agent", work / "agent-kc", namespace=NSMODE_AGENTS)
    chart_operator.stop()
    live_port = free_port()
    operator = OperatorProcess(chart_cluster, work, "nsmode-operator", kubeconfig=op_kc, extra_env={
        # What the chart's Deployment sets in this mode (tests/chart/test_chart_render.py checks the render).
        "LLMASOS_NAMESPACES": team, "LLMASOS_REPORT_NAMESPACE": NSMODE_AGENTS,
        "LLMASOS_PEERING_NAME": NSMODE_RELEASE, "LLMASOS_CARBON_SOURCES": "trace,static",
        "LLMASOS_LIVENESS_PORT": str(live_port)})
    agents = [AgentProcess(chart_cluster, n, "nvidia-a100-80gb", work, NSMODE_AGENTS, kubeconfig=agent_kc)
              for n in A100_NODES]
    try:
        operator.start()  # waits for readiness: kopf's /healthz
        # Liveness apart from readiness (issue 21, point 9): /livez answers from the event loop.
        live = httpx.get(f"http://127.0.0.1:{live_port}/livez", timeout=5)
        assert (live.status_code, live.text) == (200, "ok\n")
        assert "llmasos_operator_leader 1.0" in operator.metrics(), "the leader says so"
        for a in agents:
            a.start()
        admin.create(llmjob_path(team), llmjob(
            "metered", placement={"nodePools": ["a100"]},
            parallelism={"strategy": "ddp", "nodes": 2, "gpusPerNode": 4},
            power={"policy": "fraction", "fraction": 0.8}, annotations={"sim.llmasos.io/duration": "20s"}))

        def power_reported() -> dict[str, Any] | None:
            power = admin.get(llmjob_path(team, "metered")).get("status", {}).get("power")
            return power if power and len(power.get("pods", [])) == 2 else None

        power = wait_for(power_reported, timeout=90, what="status.power from the agents' reports in their namespace")
        assert {p["limitWatts"] for p in power["pods"]} == {320}
        for node in A100_NODES:
            report = admin.get(f"/api/v1/namespaces/{NSMODE_AGENTS}/configmaps/llmasos-power-{node}")
            assert report["metadata"]["labels"]["llmasos.io/node-power-report"] == "true"

        def energy() -> float | None:
            carbon = admin.get(llmjob_path(team, "metered")).get("status", {}).get("carbon") or {}
            return carbon["energyKWh"] if carbon.get("energyKWh", 0) > 0 else None

        assert wait_for(energy, timeout=90, what="status.carbon.energyKWh from the agents' metering") > 0
        peering = admin.get(f"/apis/kopf.dev/v1/namespaces/{NSMODE_AGENTS}/kopfpeerings/{NSMODE_RELEASE}")
        assert peering.get("status"), "the operator keeps its record in the report namespace's peering too"
        logs = [("operator", operator.log_tail(200_000)), *((f"agent {a.node}", a.log_tail()) for a in agents)]
        for name, log in logs:
            assert not denials(log), f"{name} was denied something:\n" + "\n".join(denials(log)[:5])
    finally:
        for a in agents:
            a.stop()
        operator.stop()
        chart_operator.start()
        admin.delete(f"/api/v1/namespaces/{team}")


def test_agent_and_operator_are_admitted_under_their_own_pod_security_levels(chart_cluster: LocalCluster,
                                                                             release: str, admin: AdminApi) -> None:
    """issue 21, point 1: the operator in a namespace enforcing `restricted`, the agent in one of its own enforcing
    `privileged`: the PodSecurity admission plugin of the API server admits both pods (kwok 'runs' them)."""
    psa_release, op_ns, agent_ns = "llmasos-psa", "psa-operator", "psa-agent"
    labelled_namespace(admin, op_ns, "restricted")
    labelled_namespace(admin, agent_ns, "privileged")
    # Warnings too in the operator's namespace (the plugin checks workload objects, e.g. the Deployment, only in
    # warn and audit modes): any warning would come from the operator's objects.
    admin.request("PATCH", f"/api/v1/namespaces/{op_ns}",
                  {"metadata": {"labels": {"pod-security.kubernetes.io/warn": "restricted"}}},
                  content_type="application/merge-patch+json", expect=200)
    result = helm(chart_cluster, "upgrade", "--install", psa_release, str(CHART), "--namespace", op_ns,
                  "--wait=false", "--set", f"agent.namespace={agent_ns}", "--set", "agent.gpuBackend=sim")
    warnings = [line for line in (result.stdout + result.stderr).splitlines() if "PodSecurity" in line]
    assert not warnings, warnings
    selector = f"labelSelector=app.kubernetes.io/instance={psa_release}"

    def pods(ns: str, component: str) -> list[Any]:
        items = admin.get(f"/api/v1/namespaces/{ns}/pods?{selector},app.kubernetes.io/component={component}")
        return list(items["items"])

    operators = wait_for(lambda: len(pods(op_ns, "operator")) == 2 and pods(op_ns, "operator"), timeout=60,
                         what="both operator replicas admitted in the restricted namespace")
    gpu_nodes = list(admin.get("/api/v1/nodes?labelSelector=nvidia.com/gpu.present=true")["items"])
    assert gpu_nodes
    agents = wait_for(lambda: len(pods(agent_ns, "agent")) == len(gpu_nodes) and pods(agent_ns, "agent"),
                      timeout=90, what="one agent per GPU node admitted in the privileged namespace")
    assert {p["spec"]["priorityClassName"] for p in agents} == {"system-node-critical"}
    assert all(p["metadata"]["namespace"] == op_ns for p in operators)
    # Nothing was refused: no FailedCreate on the ReplicaSet or the DaemonSet.
    for ns in (op_ns, agent_ns):
        events = admin.get(f"/api/v1/namespaces/{ns}/events")["items"]
        refused = [e["message"] for e in events if e["reason"] == "FailedCreate"]
        assert not refused, refused
    # The agent's pod template in the restricted namespace would be refused: the level is doing its work.
    template = admin.get(f"/apis/apps/v1/namespaces/{agent_ns}/daemonsets/{psa_release}-agent")["spec"]["template"]
    spec = {k: v for k, v in template["spec"].items() if k not in ("serviceAccountName", "serviceAccount")}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "agent-probe"},
           "spec": {**spec, "automountServiceAccountToken": False}}
    refused = admin.request("POST", f"/api/v1/namespaces/{op_ns}/pods?dryRun=All", pod)
    assert refused.status_code == 403, refused.text
    assert "violates PodSecurity" in refused.text
    helm(chart_cluster, "uninstall", psa_release, "--namespace", op_ns, "--wait=false")


def test_install_from_the_packaged_chart(chart_cluster: LocalCluster, release: str, admin: AdminApi,
                                         tmp_path: Path) -> None:
    """issue 20, item 1: what `make chart-package` writes (`helm package` + `helm repo index`) installs as a release
    of its own beside the first one, with the package's version, and the index names the package by digest."""
    pkg_release, pkg_ns = "llmasos-pkg", "llmasos-pkg"
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    helm(chart_cluster, "package", str(CHART), "--destination", str(tmp_path))
    tgz = tmp_path / f"llmasos-{chart['version']}.tgz"
    assert tgz.is_file()
    helm(chart_cluster, "repo", "index", str(tmp_path))
    entry = yaml.safe_load((tmp_path / "index.yaml").read_text())["entries"]["llmasos"][0]
    assert entry["version"] == chart["version"]
    assert entry["urls"] == [tgz.name]
    assert entry["digest"]
    helm(chart_cluster, "install", pkg_release, str(tgz), "--namespace", pkg_ns, "--create-namespace",
         "--wait=false", "--set", "agent.enabled=false")
    status = json.loads(helm(chart_cluster, "status", pkg_release, "--namespace", pkg_ns, "-o", "json").stdout)
    assert status["info"]["status"] == "deployed"
    listed = json.loads(helm(chart_cluster, "list", "--namespace", pkg_ns, "-o", "json").stdout)
    assert [r["chart"] for r in listed] == [f"llmasos-{chart['version']}"]
    deploy = admin.get(f"/apis/apps/v1/namespaces/{pkg_ns}/deployments/{pkg_release}-operator")
    assert deploy["metadata"]["labels"]["helm.sh/chart"] == f"llmasos-{chart['version']}"
    helm(chart_cluster, "uninstall", pkg_release, "--namespace", pkg_ns, "--wait=false")
