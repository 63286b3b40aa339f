"""docs/getting-started.md, "On a real cluster, with Helm": every kubectl and helm command of its steps, run as
written and in order against the session's local control plane, so that the steps cannot rot (#20).

The commands are read from the doc's bash blocks at test time, never copied here. They run through bash from the
repository root, with the local control plane's kubectl and helm first on PATH and KUBECONFIG set to the session
cluster. Only what cannot run offline or on kwok's fake nodes is changed, through SUBSTITUTIONS below; a variant the
doc offers in a comment is run when the table says how (OPTIONAL_FLAGS) or listed in NOT_RUN with the reason. A new
command or a commented variant the tables do not cover fails the test, so the doc and this test change together.

Two runs, each from a clean slate: every step, then every optional step skipped (the case where a skipped step
once left a later one without its namespace). Set-up the doc takes for granted: the node it labels, `gpu-node-1`,
is created here as a kwok node without GPUs (nothing is placed on it) and deleted afterwards. Step 5 waits for the
example LLMJob to succeed: the session's operator process runs it on the fake GPU nodes (the chart's own operator
Deployment is scheduled onto kwok nodes, which run no container).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from e2e.localcluster import LocalCluster
from tests.integration.kube import AdminApi, delete_namespace
from tests.integration.operator_proc import OperatorProcess

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "getting-started.md"
SECTION = "## On a real cluster, with Helm"
NODE, NS, RELEASE, JOB_NS = "gpu-node-1", "llmasos-system", "llmasos", "ml"


@dataclass(frozen=True)
class Substitution:
    written: str
    run: str
    why: str


# Everything the test changes in a command before running it; nothing else is changed.
SUBSTITUTIONS = (
    Substitution("YOUR_TOKEN", "not-a-real-token", "the placeholder for the user's Electricity Maps token"),
    Substitution("ghcr.io/llmasos/worker:0.1.0", "localhost/llmasos/worker:dev",
                 "the published image cannot be pulled offline; `make images` names its local build :dev (kwok's "
                 "fake nodes never pull it either way)"),
    Substitution("kubectl get llmjobs -n ml -w", "kubectl get llmjobs -n ml",
                 "-w watches until Ctrl-C; the next command (kubectl wait) follows the job to its end instead"),
)
# The chart reference `charts/llmasos` is the chart in this repository: it runs as written. (The packaged chart of
# `make chart-package`, named in the doc's prose, is installed by
# tests/integration/chart/test_chart_release.py::test_install_from_the_packaged_chart.)

# Flags the doc adds in a comment to a command when an earlier (optional) step ran: step -> how the comment begins.
OPTIONAL_FLAGS = {2: "with the token of step 2: add"}

# Commented variants the test does not run, and why.
NOT_RUN = {
    "-f charts/llmasos/ci/monitoring-values.yaml":
        "needs the Prometheus Operator's CRDs (ServiceMonitor, PodMonitor) and Grafana, which the local control "
        "plane does not install; tests/chart renders these templates",
}


@dataclass(frozen=True)
class Step:
    number: int
    title: str
    optional: bool
    commands: tuple[str, ...]
    flags: tuple[tuple[int, str], ...]  # (step whose flag it is, the flag) for the commands of this step


def doc_steps(text: str) -> list[Step]:
    """The numbered steps of the Helm section with their bash commands (continuation lines joined)."""
    section = text[text.index(SECTION) + len(SECTION):]
    section = section[:section.index("\n## ")] if "\n## " in section else section
    parts = re.split(r"^(\d+)\. \*\*(.+?)\*\*", section, flags=re.M)
    steps = []
    for number, title, body in zip(parts[1::3], parts[2::3], parts[3::3], strict=True):
        commands: list[str] = []
        flags: list[tuple[int, str]] = []
        for block in re.findall(r"```bash\n(.*?)```", body, flags=re.S):
            for line in textwrap.dedent(block).replace("\\\n", " ").splitlines():
                line = line.strip()
                if line.startswith("#"):
                    flags += commented_variant(line)
                elif line:
                    commands.append(re.sub(r"\s+", " ", line))
        steps.append(Step(int(number), title, title.lower().startswith("optional"), tuple(commands), tuple(flags)))
    return steps


def commented_variant(comment: str) -> list[tuple[int, str]]:
    """A flag the comment offers, as (step, flag) when OPTIONAL_FLAGS covers it; [] for prose or a NOT_RUN variant;
    a failure for a variant neither table knows."""
    body = comment.lstrip("# ").strip()
    for step, lead in OPTIONAL_FLAGS.items():
        if body.startswith(lead):
            return [(step, body[len(lead):].strip())]
    if any(body.startswith(variant) for variant in NOT_RUN) or not re.search(r"(^|\s)(--set|-f)\s", body):
        return []
    raise AssertionError(f"getting-started offers a variant this test neither runs nor lists in NOT_RUN: {comment}")


def substituted(command: str) -> str:
    for s in SUBSTITUTIONS:
        command = command.replace(s.written, s.run)
    return command


def runnable(steps: list[Step], skip: set[int]) -> list[str]:
    """The commands of the steps not skipped, in order, each with the flags of the optional steps that ran."""
    out = []
    for step in steps:
        if step.number in skip:
            continue
        for command in step.commands:
            if command.startswith("helm "):
                command += "".join(f" {flag}" for s, flag in step.flags if s not in skip)
            out.append(substituted(command))
    return out


def sh(cluster: LocalCluster, command: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{cluster.bin_dir}{os.pathsep}{os.environ['PATH']}",
           "KUBECONFIG": str(cluster.paths.kubeconfig)}
    return subprocess.run(["bash", "-o", "pipefail", "-c", command], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)


def fake_node() -> dict[str, Any]:
    """The node the doc labels: a kwok node with CPU and memory but no GPU, so no other test's pod lands there."""
    resources = {"cpu": "8", "memory": "32Gi", "pods": "110"}
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": NODE, "labels": {"type": "kwok", "kubernetes.io/hostname": NODE},
                         "annotations": {"kwok.x-k8s.io/node": "fake"}},
            "spec": {"taints": [{"key": "llmasos.io/getting-started-test", "effect": "NoSchedule"}]},
            "status": {"allocatable": resources, "capacity": resources}}


def clean_slate(cluster: LocalCluster, api: AdminApi) -> None:
    """No release, no llmasos-system, no ml, no gpu-node-1 (what a previous run or another test may have left)."""
    if sh(cluster, f"helm status {RELEASE} -n {NS}").returncode == 0:
        uninstall = sh(cluster, f"helm uninstall {RELEASE} -n {NS} --wait --timeout 60s")
        assert uninstall.returncode == 0, uninstall.stderr
    present = [ns for ns in (JOB_NS, NS) if api.request("GET", f"/api/v1/namespaces/{ns}").status_code == 200]
    for ns in present:  # both at once: each waits about 10 s for the namespace controller's second look
        api.delete(f"/api/v1/namespaces/{ns}")
    for ns in present:
        delete_namespace(api, ns)  # gone already, or deleted again and waited for, with a report on a timeout
    api.request("DELETE", f"/api/v1/nodes/{NODE}")


@pytest.fixture
def slate(cluster: LocalCluster, crds: None, api: AdminApi, operator: OperatorProcess) -> Iterator[None]:
    clean_slate(cluster, api)
    api.create("/api/v1/nodes", fake_node())
    yield
    clean_slate(cluster, api)


def test_the_doc_and_the_tables_agree() -> None:
    """The section has the steps this test knows, every command is kubectl or helm, and each table entry is used."""
    text = DOC.read_text()
    steps = doc_steps(text)
    assert [s.number for s in steps] == list(range(1, len(steps) + 1))
    assert len(steps) >= 5
    assert [s.number for s in steps if s.optional] == [2]
    commands = [c for s in steps for c in s.commands]
    assert all(c.split()[0] in ("kubectl", "helm") for c in commands), commands
    for s in SUBSTITUTIONS:
        assert any(s.written in c for c in commands), f"unused substitution {s.written!r}: update the table"
    assert all(variant in text for variant in NOT_RUN)
    assert {step for s in steps for step, _ in s.flags} == set(OPTIONAL_FLAGS)


@pytest.mark.parametrize("skip_optional", [False, True], ids=["every-step", "optional-steps-skipped"])
def test_getting_started_steps_run_in_order(cluster: LocalCluster, api: AdminApi, slate: None,
                                            skip_optional: bool) -> None:
    steps = doc_steps(DOC.read_text())
    skip = {s.number for s in steps if s.optional} if skip_optional else set()
    started = time.monotonic()
    for command in runnable(steps, skip):
        result = sh(cluster, command)
        assert result.returncode == 0, f"{command}\nexit {result.returncode}\n{result.stdout}{result.stderr}"

    node = api.get(f"/api/v1/nodes/{NODE}")["metadata"]["labels"]
    assert (node["llmasos.io/pool"], node["llmasos.io/carbon-zone"]) == ("a100", "DE")
    ns = api.get(f"/api/v1/namespaces/{NS}")["metadata"]["labels"]
    assert ns["pod-security.kubernetes.io/enforce"] == "privileged"
    status = sh(cluster, f"helm status {RELEASE} -n {NS} -o json")
    assert json.loads(status.stdout)["info"]["status"] == "deployed", status.stdout + status.stderr
    deployment = api.get(f"/apis/apps/v1/namespaces/{NS}/deployments/llmasos-operator")["spec"]["template"]["spec"]
    secrets = [v["secret"]["secretName"] for v in deployment["volumes"] if "secret" in v]
    token = api.request("GET", f"/api/v1/namespaces/{NS}/secrets/electricitymaps-token")
    if skip_optional:
        assert token.status_code == 404
        assert "electricitymaps-token" not in secrets
    else:
        assert token.status_code == 200
        assert "electricitymaps-token" in secrets
    job = api.get(f"/apis/llmasos.io/v1alpha1/namespaces/{JOB_NS}/llmjobs/gpt-small-ddp")
    assert job["status"]["phase"] == "Succeeded"
    print(f"getting-started ({'optional steps skipped' if skip_optional else 'every step'}): "
          f"{time.monotonic() - started:.1f} s for {len(runnable(steps, skip))} commands")
