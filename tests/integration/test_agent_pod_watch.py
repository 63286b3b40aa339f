"""The agent's pod list on the local control plane keeps the last status of a pod deleted between two lists.

A suspended worker group's pods are deleted by the Job controller moments after their containers end, with the
worker's last count in the termination message. Here a pod is bound to a node that no kubelet serves, its status
is written through the API as the kubelet writes it (a terminated container whose message is the worker's final
count), and it is deleted at once: the next list returns it once, ended, with that count; a lister without its
watch does not.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from e2e.localcluster import LocalCluster
from llmasos.agent.kube_adapter import ApiPodLister
from llmasos.agent.kube_sync import SyncKubeClient
from llmasos.api.phase import POD_TERMINAL
from llmasos.api.worker_contract import FinalProgress, final_progress_message
from llmasos.kube.config import load_credentials
from tests.integration.kube import AdminApi, wait_for

pytestmark = pytest.mark.integration
NODE = "no-kubelet-here"


@pytest.fixture
def client(cluster: LocalCluster) -> Iterator[SyncKubeClient]:
    c = SyncKubeClient(load_credentials(str(cluster.paths.kubeconfig)))
    yield c
    c.close()


def test_a_deleted_pods_final_count_reaches_the_next_list_once(api: AdminApi, client: SyncKubeClient) -> None:
    ns = api.namespace("podwatch")
    watched, unwatched = ApiPodLister(client, NODE), ApiPodLister(client, NODE, watch=False)
    try:
        pods = f"/api/v1/namespaces/{ns}/pods"
        pod = api.create(pods, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "w0"},
                                "spec": {"nodeName": NODE, "containers": [{"name": "worker", "image": "none"}]}})
        assert [p.name for p in watched.list_node_pods()] == ["w0"]
        terminated = {"exitCode": 75, "reason": "Error", "message": final_progress_message(812, 415744, 6000),
                      "startedAt": "2026-12-07T06:00:00Z", "finishedAt": "2026-12-07T06:01:00Z"}
        status = {"phase": "Running", "containerStatuses": [
            {"name": "worker", "ready": False, "restartCount": 0, "image": "none", "imageID": "",
             "state": {"terminated": terminated}}]}
        api.request("PATCH", f"{pods}/w0/status", {"status": status}, expect=200,
                    content_type="application/merge-patch+json")
        api.request("DELETE", f"{pods}/w0", {"gracePeriodSeconds": 0}, expect=200)
        wait_for(lambda: api.request("GET", f"{pods}/w0").status_code == 404, timeout=30, what="w0 deleted")

        assert unwatched.list_node_pods() == [], "a list alone never sees it"
        seen = wait_for(lambda: watched.list_node_pods(), timeout=30, what="the deleted pod in the next list")
        [view] = seen
        assert (view.name, view.uid) == ("w0", pod["metadata"]["uid"])
        assert view.phase in POD_TERMINAL, "deleted: ended, whatever its last phase said"
        assert view.final_progress == FinalProgress(415744, 812, 6000)
        assert watched.list_node_pods() == [], "returned once"
    finally:
        watched.close()
        api.delete(f"/api/v1/namespaces/{ns}")
