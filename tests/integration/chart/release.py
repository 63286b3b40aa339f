"""The chart's release under test, shared by the modules of this package: names, helm, ServiceAccount tokens.

The package runs on a local control plane of its own (`conftest.py`): the session operator of the other integration
tests is cluster-wide and admin-authenticated, and would reconcile these LLMJobs too, which would hide any permission
the chart forgot. Here the only operator is the chart's, authenticated as the chart's ServiceAccount.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

from e2e.localcluster import LocalCluster
from e2e.localcluster.cluster import ClusterPaths
from tests.integration.kube import AdminApi

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "charts" / "llmasos"
RELEASE, NS = "llmasos", "llmasos-system"
OPERATOR_SA, AGENT_SA = f"system:serviceaccount:{NS}:llmasos-operator", f"system:serviceaccount:{NS}:llmasos-agent"
A100_NODES = ("gpu-a100-000", "gpu-a100-001")
DENIED = ("forbidden", " 403")


def chart_cluster_paths() -> ClusterPaths:
    """Beside the session cluster: same layout, its own state directory and ports."""
    base = ClusterPaths()
    return ClusterPaths(root=Path(f"{base.root}-chart"), port_offset=base.port_offset + 500, product_images=False)


def helm(cluster: LocalCluster, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([cluster.binary("helm"), f"--kubeconfig={cluster.paths.kubeconfig}", *args],
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


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


def events_for(admin: AdminApi, ns: str, name: str) -> set[str]:
    items = admin.get(f"/api/v1/namespaces/{ns}/events?fieldSelector=involvedObject.name={name}")["items"]
    return {e["reason"] for e in items}


def labelled_namespace(admin: AdminApi, name: str, level: str) -> None:
    """Create (or relabel) a namespace enforcing a Pod Security level."""
    labels = {"pod-security.kubernetes.io/enforce": level}
    if admin.request("GET", f"/api/v1/namespaces/{name}").status_code == 404:
        admin.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                            "metadata": {"name": name, "labels": labels}})
    else:
        admin.request("PATCH", f"/api/v1/namespaces/{name}", {"metadata": {"labels": labels}},
                      content_type="application/merge-patch+json", expect=200)
