"""The chart installed on a control plane of its own, started once for the package (state dir `<cluster dir>-chart`,
ports shifted by 500), and the operator and node agents authenticated as the chart's own ServiceAccounts
(TokenRequest tokens). Why a cluster of its own: `release.py`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.localcluster import LocalCluster
from tests.integration.agent_proc import AgentProcess
from tests.integration.chart.release import (
    A100_NODES,
    AGENT_SA,
    CHART,
    NS,
    OPERATOR_SA,
    RELEASE,
    chart_cluster_paths,
    helm,
    token_kubeconfig,
    whoami,
)
from tests.integration.kube import AdminApi
from tests.integration.operator_proc import OperatorProcess


@pytest.fixture(scope="package")
def chart_cluster() -> Iterator[LocalCluster]:
    local = LocalCluster(chart_cluster_paths())
    was_running = local.is_healthy()
    local.up()
    yield local
    if not was_running and os.environ.get("LLMASOS_KEEP_CLUSTER") != "1":
        local.down()


@pytest.fixture(scope="package")
def release(chart_cluster: LocalCluster) -> str:
    """The chart with its defaults: every object (Deployment, DaemonSet, PDB, NetworkPolicies, peering, RBAC) goes
    through the API server's validation. kwok 'runs' the Deployment's and DaemonSet's pods on fake nodes; they
    execute nothing, so the operator and agents under test are the processes started below."""
    helm(chart_cluster, "upgrade", "--install", RELEASE, str(CHART), "--namespace", NS, "--create-namespace",
         "--wait=false")
    chart_cluster.kubectl("wait", "--for=condition=Established", "crd/llmjobs.llmasos.io",
                          "crd/clusterkopfpeerings.kopf.dev", "--timeout=60s")
    return RELEASE


@pytest.fixture(scope="package")
def admin(chart_cluster: LocalCluster) -> Iterator[AdminApi]:
    client = AdminApi(chart_cluster)
    yield client
    client.close()


@pytest.fixture(scope="package")
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


@pytest.fixture(scope="package")
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
