"""The leading operator container SIGKILLed on the real node: another replica takes over, no child is duplicated.

The chart runs on the real node (e2e/realchart.py) with 2 operator replicas and kopf peering, its lifetime shortened
to 20 s for the test. With an LLMJob in flight (its Job and Service exist), the leader's container is killed with
crictl (SIGKILL, no grace: its peering record is not withdrawn), and a second LLMJob is created at once. A live
replica leads once the dead record expires: the surviving one, or the killed pod's restarted container when its
new random priority is higher (the record's identity is new either way). Both jobs must finish with exactly one
Job (attempt 0) and one Service each: no replica created a child twice, and no attempt was restarted.
"""

from __future__ import annotations

import functools
import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from e2e.localcluster import LocalCluster
from e2e.realchart import helm, install
from tests.integration.kube import AdminApi, llmjob_path, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.heavy]
RELEASE = SYSTEM_NS = "llmasos-leader"
JOBS_NS = f"leader-jobs-{uuid.uuid4().hex[:6]}"
LIFETIME = 20


@pytest.fixture(scope="module")
def chart(cluster: LocalCluster, crds: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    try:
        install(cluster, RELEASE, SYSTEM_NS, tmp_path_factory.mktemp("chart") / "values.yaml",
                {"operator": {"leaderElection": {"lifetimeSeconds": LIFETIME}}})
    except RuntimeError as exc:
        pytest.fail(str(exc))
    cluster.kubectl("create", "namespace", JOBS_NS)
    yield RELEASE
    cluster.kubectl("delete", "namespace", JOBS_NS, "--wait=false", check=False)
    helm(cluster, "uninstall", RELEASE, "--namespace", SYSTEM_NS, "--wait", "--timeout=120s")
    cluster.kubectl("delete", "namespace", SYSTEM_NS, "--wait=false", check=False)


def job_doc(name: str, steps: int) -> dict[str, Any]:
    return {"apiVersion": "llmasos.io/v1alpha1", "kind": "LLMJob", "metadata": {"name": name, "namespace": JOBS_NS},
            "spec": {"task": "train", "model": {"builtin": "gpt-tiny"},
                     "parallelism": {"strategy": "ddp", "nodes": 2, "gpusPerNode": 1},
                     "resources": {"cpu": "250m", "memory": "2Gi"}, "placement": {"nodePools": ["real"]},
                     "carbon": {"policy": "immediate"}, "backoffLimit": 1,
                     "taskConfig": {"steps": steps, "batch_size": 8, "log_every": 10, "seed": 4}}}


def live_peers(cluster: LocalCluster) -> dict[str, dict[str, Any]]:
    out = cluster.kubectl("get", "clusterkopfpeering", RELEASE, "-o", "json").stdout
    peers: dict[str, dict[str, Any]] = json.loads(out).get("status") or {}
    return {k: v for k, v in peers.items() if isinstance(v, dict)}


def operator_pods(cluster: LocalCluster) -> list[dict[str, Any]]:
    out = cluster.kubectl("get", "pods", "-n", SYSTEM_NS, "-l", "app.kubernetes.io/component=operator",
                          "-o", "json").stdout
    items: list[dict[str, Any]] = json.loads(out)["items"]
    return items


def leader(cluster: LocalCluster) -> tuple[str, str] | None:
    """(identity, pod name) of the highest-priority peer whose identity names one of the operator pods."""
    pods = [p["metadata"]["name"] for p in operator_pods(cluster)]
    peers = live_peers(cluster)
    if len(peers) < 2:
        return None
    identity = max(peers, key=lambda k: int(peers[k].get("priority", 0)))
    pod = next((p for p in pods if p in identity), "")
    return (identity, pod) if pod else None


def children(cluster: LocalCluster, kind: str, job: str) -> list[str]:
    out = cluster.kubectl("get", kind, "-n", JOBS_NS, "-l", f"llmasos.io/llmjob={job}", "-o", "name").stdout
    return sorted(out.split())


def test_the_other_replica_takes_over_and_no_child_is_duplicated(cluster: LocalCluster, chart: str,
                                                                  api: AdminApi) -> None:
    before = wait_for(lambda: leader(cluster), timeout=90, what="both replicas in the peering record")
    cluster.kubectl("apply", "-f", "-", input=json.dumps(job_doc("inflight", 150)))
    wait_for(lambda: api.get(llmjob_path(JOBS_NS, "inflight")).get("status", {}).get("phase") == "Running",
             timeout=240, what="the in-flight job running")
    identity, pod = before
    status = next(p for p in operator_pods(cluster) if p["metadata"]["name"] == pod)["status"]
    container = status["containerStatuses"][0]["containerID"].split("://", 1)[1]
    node = cluster.node.n
    subprocess.run([str(node.node_bin / "crictl"), f"--runtime-endpoint=unix://{node.containerd_socket}",
                    "stop", "--timeout=0", container], check=True, capture_output=True, timeout=60)
    killed = time.monotonic()
    cluster.kubectl("apply", "-f", "-", input=json.dumps(job_doc("after", 40)))
    wait_for(lambda: children(cluster, "jobs.batch", "after"), timeout=LIFETIME * 4,
             what="the new leader to create the second job's Job")
    takeover = time.monotonic() - killed
    now = leader(cluster)
    assert now is not None
    assert now[0] != identity, "the killed process's record does not lead"
    def finished(name: str) -> dict[str, Any] | None:
        job = api.get(llmjob_path(JOBS_NS, name))
        return job if job.get("status", {}).get("phase") in ("Succeeded", "Failed") else None

    for name in ("inflight", "after"):
        job = wait_for(functools.partial(finished, name), timeout=300, what=f"{name} to finish")
        assert job["status"]["phase"] == "Succeeded", job["status"]
        assert job["status"].get("attempt", 0) == 0, "no attempt was restarted"
        assert children(cluster, "jobs.batch", name) == [f"job.batch/{name}-a0"]
        assert children(cluster, "services", name) == [f"service/{name}"]
    print(f"takeover after {takeover:.1f} s (peering lifetime {LIFETIME} s) by {now[1]} "
          f"({'the other replica' if now[1] != pod else 'the killed pod, restarted'})")
