"""The agent's leader lookup on the local control plane: pods and report ConfigMaps written through the real API.

A follower's agent finds the first pod (index 0) of its job's attempt with a label-selected pod list, then reads the
report ConfigMap of that pod's node (written here with the agent's own sink and report builder). No agent process
runs: this pins the adapter's answers for each state a leader can be in, including index 0 recreated on another
node within the same attempt.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from e2e.localcluster import LocalCluster
from llmasos.agent.energy import PodRef
from llmasos.agent.kube_adapter import ApiLeaderSource, ConfigMapReportSink
from llmasos.agent.kube_sync import SyncKubeClient
from llmasos.agent.node_report import build_node_report
from llmasos.agent.pods import ATTEMPT_LABEL, INDEX_ANNOTATION, LLMJOB_LABEL, node_pod_from_object
from llmasos.agent.snapshot import PodStatus, Snapshot
from llmasos.kube.config import load_credentials
from tests.integration.kube import AdminApi, wait_for

pytestmark = pytest.mark.integration
NODE_A, NODE_B = "gpu-a100-000", "gpu-a100-001"
T0 = 1_800_000_000.0


@pytest.fixture
def client(cluster: LocalCluster) -> Iterator[SyncKubeClient]:
    c = SyncKubeClient(load_credentials(str(cluster.paths.kubeconfig)))
    yield c
    c.close()


def worker_pod(name: str, node: str, index: int, attempt: str = "0") -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {LLMJOB_LABEL: "big", ATTEMPT_LABEL: attempt},
                     "annotations": {INDEX_ANNOTATION: str(index)}},
        "spec": {"nodeName": node, "containers": [{"name": "worker", "image": "llmasos/none",
                                                   "env": [{"name": "NNODES", "value": "2"}]}]},
    }  # fmt: skip


def publish(sink: ConfigMapReportSink, node: str, ns: str, pod: str, limit_w: float | None, t: float) -> None:
    status = PodStatus(PodRef(ns, pod, f"uid-{pod}", "big"), (0, 1, 2, 3), "energyOptimal", limit_w,
                       "Profile" if limit_w is not None else "Ended", 1000.0,
                       ended_at=None if limit_w is not None else t)  # fmt: skip
    sink.publish(build_node_report(Snapshot(node=node, t=t, mapper="fallback", pods=(status,))))


def test_the_leader_is_index_0_of_the_same_attempt_read_from_its_nodes_report(
        api: AdminApi, client: SyncKubeClient) -> None:
    ns, agents_ns = api.namespace("leader"), api.namespace("agents")
    pods = f"/api/v1/namespaces/{ns}/pods"
    sink = ConfigMapReportSink(client, agents_ns)
    source = ApiLeaderSource(client, agents_ns)
    follower = node_pod_from_object(api.create(pods, worker_pod("big-a0-1", NODE_B, 1)))
    assert (follower.rank, follower.nnodes, follower.attempt) == (1, 2, "0")

    assert source.leader_of(follower) is None, "no leader pod yet"
    api.create(pods, worker_pod("big-a1-0", NODE_B, 0, attempt="1"))  # another attempt's first pod
    assert source.leader_of(follower) is None
    api.create(pods, worker_pod("big-a0-0", NODE_A, 0))
    assert source.leader_of(follower) is None, "its node has written no report yet"

    publish(sink, NODE_A, ns, "big-a0-0", 325.0, T0)
    view = source.leader_of(follower)
    assert view is not None
    assert (view.limit_w, view.default_w, view.state, view.reported_at) == (325.0, None, "Profile", T0)
    publish(sink, NODE_A, ns, "big-a0-0", 300.0, T0 + 5)
    view = source.leader_of(follower)
    assert view is not None
    assert (view.limit_w, view.reported_at) == (300.0, T0 + 5), "every read is a fresh GET of the report"

    # Index 0 ends on node A and the Job controller recreates it on node B, in the same attempt.
    publish(sink, NODE_A, ns, "big-a0-0", None, T0 + 10)
    api.request("DELETE", f"{pods}/big-a0-0?gracePeriodSeconds=0", expect=200)
    wait_for(lambda: api.request("GET", f"{pods}/big-a0-0").status_code == 404, timeout=30, what="leader deleted")
    view = source.leader_of(follower)
    assert view is not None
    assert view.limit_w is None, "the old leader's report says it ended"
    api.create(pods, worker_pod("big-a0-0-again", NODE_B, 0))
    publish(sink, NODE_B, ns, "big-a0-0-again", 275.0, T0 + 20)
    view = source.leader_of(follower)
    assert view is not None
    assert (view.limit_w, view.reported_at) == (275.0, T0 + 20), "the new index 0 on node B is followed"
    api.delete(f"/api/v1/namespaces/{ns}")
    api.delete(f"/api/v1/namespaces/{agents_ns}")
