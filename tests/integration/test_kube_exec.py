"""`llmasos report` with a kubeconfig whose user is an exec credential plugin (as EKS, GKE and AKS kubeconfigs are),
against the real local control plane: a token plugin, a client-certificate plugin, a failing plugin; and no
credential file is left behind in the temporary directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e.localcluster import LocalCluster
from tests.integration.kube import AdminApi, llmjob, llmjob_path

API = "client.authentication.k8s.io/v1"


def exec_kubeconfig(cluster: LocalCluster, tmp: Path, status: dict[str, Any] | None, exit_code: int = 0) -> Path:
    """A kubeconfig whose only credential is a plugin script that prints `status` as an ExecCredential."""
    script = tmp / "plugin.sh"
    answer = json.dumps({"apiVersion": API, "kind": "ExecCredential", "status": status or {}})
    script.write_text(f"#!/bin/sh\necho called >> {tmp}/calls.log\ncat <<'EOF'\n{answer}\nEOF\nexit {exit_code}\n")
    script.chmod(0o755)
    doc = {"apiVersion": "v1", "kind": "Config", "current-context": "cloud",
           "clusters": [{"name": "local", "cluster": {"server": cluster.paths.server,
                                                      "certificate-authority": str(cluster.paths.pki / "ca.crt")}}],
           "users": [{"name": "cloud-user", "user": {"exec": {"apiVersion": API, "command": str(script),
                                                              "interactiveMode": "Never"}}}],
           "contexts": [{"name": "cloud", "context": {"cluster": "local", "user": "cloud-user"}}]}
    path = tmp / "kubeconfig"
    path.write_text(yaml.safe_dump(doc))
    return path


def report(kubeconfig: Path, namespace: str, out: Path, scratch: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"} | {"TMPDIR": str(scratch)}
    return subprocess.run([sys.executable, "-m", "llmasos.cli", "report", "--kubeconfig", str(kubeconfig),
                           "-n", namespace, "--out", str(out)], env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture
def namespace_with_a_job(api: AdminApi, crds: None) -> str:
    ns = api.namespace("exec")
    api.create(llmjob_path(ns), llmjob("reported"))
    return ns


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    path = tmp_path / "tmpdir"
    path.mkdir()
    return path


def test_report_with_an_exec_plugin_token(cluster: LocalCluster, api: AdminApi, namespace_with_a_job: str,
                                          tmp_path: Path, scratch: Path) -> None:
    ns = namespace_with_a_job
    rules = [{"apiGroups": ["llmasos.io"], "resources": ["llmjobs"], "verbs": ["list"]}]
    api.create(f"/api/v1/namespaces/{ns}/serviceaccounts", {"metadata": {"name": "reader"}})
    api.create(f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles", {"metadata": {"name": "reader"},
                                                                           "rules": rules})
    api.create(f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings", {
        "metadata": {"name": "reader"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                                    "name": "reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": ns}]})
    token = cluster.kubectl("create", "token", "reader", "-n", ns, "--duration=10m").stdout.strip()
    done = report(exec_kubeconfig(cluster, tmp_path, {"token": token}), ns, tmp_path / "out", scratch)
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "out" / "report.json").read_text())["jobsWithoutAccounting"] == [f"{ns}/reported"]
    assert (tmp_path / "calls.log").read_text().splitlines() == ["called"]  # one list call, one plugin run
    assert list(scratch.iterdir()) == []


def test_report_with_an_exec_plugin_client_certificate(cluster: LocalCluster, namespace_with_a_job: str,
                                                       tmp_path: Path, scratch: Path) -> None:
    status = {"clientCertificateData": (cluster.paths.pki / "admin.crt").read_text(),
              "clientKeyData": (cluster.paths.pki / "admin.key").read_text()}
    done = report(exec_kubeconfig(cluster, tmp_path, status), namespace_with_a_job, tmp_path / "out", scratch)
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "out" / "report.json").read_text())["totals"]["jobs"] == 0
    assert list(scratch.iterdir()) == []  # the key from the plugin went through a directory that is gone


def test_a_failing_plugin_is_one_line_not_a_traceback(cluster: LocalCluster, namespace_with_a_job: str,
                                                      tmp_path: Path, scratch: Path) -> None:
    done = report(exec_kubeconfig(cluster, tmp_path, None, exit_code=1), namespace_with_a_job, tmp_path / "out",
                  scratch)
    assert done.returncode == 2
    assert done.stderr.startswith("error: kubeconfig exec:"), done.stderr
    assert "Traceback" not in done.stderr
