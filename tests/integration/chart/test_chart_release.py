"""Releasing the chart in other ways than the default install, on a real API server: an upgrade in place, every
example against the installed CRD, the namespaced mode with the agents in a namespace of their own, Pod Security
levels per namespace, and the packaged chart (`make chart-package`) as a release of its own.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from e2e.localcluster import LocalCluster
from tests.integration.agent_proc import AgentProcess
from tests.integration.chart.release import (
    A100_NODES,
    CHART,
    NS,
    REPO,
    denials,
    helm,
    labelled_namespace,
    token_kubeconfig,
)
from tests.integration.kube import AdminApi, llmjob, llmjob_path, wait_for
from tests.integration.operator_proc import OperatorProcess, free_port

pytestmark = pytest.mark.integration


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
    probe = admin.request("POST", f"/api/v1/namespaces/{op_ns}/pods?dryRun=All", pod)
    assert probe.status_code == 403, probe.text
    assert "violates PodSecurity" in probe.text
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
