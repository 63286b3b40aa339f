"""`strategy: ray` through KubeRay: the operator creates a RayJob where the RayJob CRD is served, and the real
KubeRay ray-operator (e2e/localcluster/ecosystem.py) runs it.

- **Finished, on the real node**: a two-node Ray inference LLMJob becomes a RayJob (no Indexed Job, no Service)
  whose head and worker run on the real node from the worker image, both ready (Running, 2/2); KubeRay submits the
  entrypoint (`llmasos-worker`) through the head's dashboard, reports `SUCCEEDED`, removes the Ray cluster
  (`shutdownAfterJobFinishes`), and the LLMJob mirrors it: Succeeded with KubeRay's end time. KubeRay on the host
  reaches the dashboard through the API server's services/proxy (`-use-kubernetes-proxy`: the host cannot resolve
  cluster DNS names).
- **Queued by Kueue, on a kwok pool**: with spec.queueName the RayJob carries the queue label and is created
  suspended; Kueue admits it on its flavour (one Workload for the head and the worker pod sets), KubeRay starts it,
  and the LLMJob reads Admitted/Scheduled by Kueue and Running on the flavour's pool.
- **Energy, on a kwok pool**: node agents (simulated GPUs) meter the RayJob's head and worker pods by the LLMJob
  label the operator put on KubeRay's pod templates; the LLMJob's status.power lists both pods with their energy,
  and status.carbon turns it into kWh and gCO2e.
- **Suspend, on a kwok pool**: spec.suspend sets the RayJob's spec.suspend, KubeRay tears its cluster down
  (`Suspended`), the LLMJob reads Suspended; resuming starts a new Ray cluster.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from e2e.images.build import cached_images
from e2e.localcluster import LocalCluster
from e2e.localcluster.ecosystem import Ecosystem
from tests.integration.agent_proc import AgentProcess
from tests.integration.kube import AdminApi, delete_namespace, llmjob_path, wait_for
from tests.integration.operator_proc import OperatorProcess

pytestmark = pytest.mark.integration
RAY = "/apis/ray.io/v1"
KUEUE = "/apis/kueue.x-k8s.io/v1beta2"
WORKER_DEV = "localhost/llmasos/worker:dev"


def worker_image(cluster: LocalCluster) -> str:
    """The worker image on the real node: the one `make images` built for these sources (imported), else a
    `:dev` image already in the node's containerd; fails saying what to run when there is none."""
    built = {i.name: i for i in cached_images(("worker",))}
    if "worker" in built:
        cluster.node.import_images([built["worker"].archive])
        return built["worker"].ref
    n = cluster.node.n
    listed = subprocess.run([str(n.node_bin / "ctr"), f"--address={n.containerd_socket}", "--namespace=k8s.io",
                             "images", "list", "-q"], capture_output=True, text=True, check=False).stdout.split()
    if WORKER_DEV not in listed:
        pytest.fail("the worker image is not built for these sources: run `make images`")
    return WORKER_DEV


@pytest.fixture(scope="module")
def kuberay(cluster: LocalCluster) -> Iterator[Ecosystem]:
    eco = Ecosystem(cluster)
    was_running = eco.is_healthy()
    eco.up()
    yield eco
    if not was_running:
        eco.down()


@pytest.fixture(scope="module")
def ray_operator(cluster: LocalCluster, crds: None, kuberay: Ecosystem, artifacts: Any) -> Iterator[OperatorProcess]:
    if not cluster.paths.real_node:
        pytest.fail("the local cluster runs without its real node (LLMASOS_REAL_NODE=0)")
    op = OperatorProcess(cluster, artifacts, "operator-kuberay",
                         {"LLMASOS_WORKER_IMAGE": worker_image(cluster)}).start()
    yield op
    op.stop()


@pytest.fixture
def ns(api: AdminApi) -> Iterator[str]:
    name = api.namespace("kuberay")
    yield name
    api.request("DELETE", llmjob_path(name), None)  # every LLMJob: its RayJob and Ray cluster go with it
    delete_namespace(api, name, timeout=120)


def get_or_none(api: AdminApi, path: str) -> Any:
    r = api.request("GET", path)
    return r.json() if r.status_code == 200 else None


def ray_llmjob(name: str, ns: str, pool: str, nodes: int = 1, **extra: Any) -> dict[str, Any]:
    return {"apiVersion": "llmasos.io/v1alpha1", "kind": "LLMJob", "metadata": {"name": name, "namespace": ns},
            "spec": {"task": "inference", "model": {"builtin": "gpt-tiny"},
                     "parallelism": {"strategy": "ray", "nodes": nodes, "gpusPerNode": 1},
                     "resources": {"cpu": "250m", "memory": "3Gi"}, "placement": {"nodePools": [pool]},
                     "carbon": {"policy": "immediate"}, "backoffLimit": 0,
                     "taskConfig": {"prompts": ["The grid is cleanest when"], "max_new_tokens": 8,
                                    "temperature": 0.0, "ray_actors": 1}, **extra}}


def status(api: AdminApi, ns: str, name: str) -> dict[str, Any]:
    return api.get(llmjob_path(ns, name)).get("status") or {}


def status_in(api: AdminApi, ns: str, name: str, *phases: str) -> dict[str, Any] | None:
    now = status(api, ns, name)
    return now if now.get("phase") in phases else None


def test_a_ray_llmjob_runs_as_a_rayjob_on_the_real_node_and_finishes(
        cluster: LocalCluster, api: AdminApi, ns: str, ray_operator: OperatorProcess) -> None:
    started = time.monotonic()
    api.create(f"/apis/llmasos.io/v1alpha1/namespaces/{ns}/llmjobs", ray_llmjob("ray-done", ns, "real", nodes=2))
    rayjob = wait_for(lambda: get_or_none(api, f"{RAY}/namespaces/{ns}/rayjobs/ray-done-a0"), timeout=30,
                      what="the operator creates the RayJob")
    spec = rayjob["spec"]
    assert (spec["entrypoint"], spec["shutdownAfterJobFinishes"], spec.get("suspend", False)) == \
        ("llmasos-worker", True, False)
    [workers] = spec["rayClusterSpec"]["workerGroupSpecs"]
    assert workers["replicas"] == 1, "nodes: 2 is the head and one worker"
    head = spec["rayClusterSpec"]["headGroupSpec"]["template"]
    assert head["metadata"]["labels"]["llmasos.io/llmjob"] == "ray-done"
    assert api.get(f"/apis/batch/v1/namespaces/{ns}/jobs")["items"] == [], "no Indexed Job"
    assert get_or_none(api, f"/api/v1/namespaces/{ns}/services/ray-done") is None, "no headless Service"
    head_pod = wait_for(lambda: next((p for p in api.get(f"/api/v1/namespaces/{ns}/pods?labelSelector="
                                                         "llmasos.io/llmjob=ray-done")["items"]
                                      if p["spec"].get("nodeName")), None),
                        timeout=60, what="KubeRay's head pod, scheduled")
    assert head_pod["spec"]["nodeName"] == cluster.node.n.name, "the real node: its pool is `real`"
    running = wait_for(lambda: status_in(api, ns, "ray-done", "Running", "Succeeded", "Failed"), timeout=180,
                       what="the LLMJob runs")
    assert running["phase"] == "Running", "seen Running before it finished"
    assert running["workers"]["ready"] == 2, "the head and the worker joined (KubeRay's readiness, our probes)"
    done = wait_for(lambda: status_in(api, ns, "ray-done", "Succeeded", "Failed"), timeout=180,
                    what="the LLMJob finishes")
    final = api.get(f"{RAY}/namespaces/{ns}/rayjobs/ray-done-a0")["status"]
    assert (final["jobDeploymentStatus"], final["jobStatus"]) == ("Complete", "SUCCEEDED"), json.dumps(final)[:800]
    assert done["phase"] == "Succeeded", done
    assert done["completionTime"] == final["endTime"]
    assert done["children"] == {"job": "ray-done-a0"}
    assert done["pool"] == "real"
    wait_for(lambda: not api.get(f"{RAY}/namespaces/{ns}/rayclusters")["items"], timeout=60,
             what="shutdownAfterJobFinishes removes the Ray cluster")
    print(f"RayJob finished: LLMJob Succeeded {time.monotonic() - started:.0f} s after its create")


def test_suspend_and_resume_a_ray_llmjob_through_its_rayjob(api: AdminApi, ns: str,
                                                            ray_operator: OperatorProcess) -> None:
    path = llmjob_path(ns, "ray-pause")
    api.create(f"/apis/llmasos.io/v1alpha1/namespaces/{ns}/llmjobs", ray_llmjob("ray-pause", ns, "l4"))
    rayjob_path = f"{RAY}/namespaces/{ns}/rayjobs/ray-pause-a0"
    wait_for(lambda: get_or_none(api, rayjob_path), timeout=30, what="the RayJob")
    wait_for(lambda: api.get(f"{RAY}/namespaces/{ns}/rayclusters")["items"], timeout=30, what="its Ray cluster")
    api.request("PATCH", path, {"spec": {"suspend": True}}, content_type="application/merge-patch+json")
    wait_for(lambda: api.get(rayjob_path)["spec"].get("suspend") is True, timeout=30,
             what="the operator suspends the RayJob")
    wait_for(lambda: (api.get(rayjob_path).get("status") or {}).get("jobDeploymentStatus") == "Suspended",
             timeout=60, what="KubeRay suspends it")
    wait_for(lambda: not api.get(f"{RAY}/namespaces/{ns}/rayclusters")["items"], timeout=60,
             what="KubeRay deletes the suspended job's Ray cluster")
    wait_for(lambda: status(api, ns, "ray-pause").get("phase") == "Suspended", timeout=30, what="LLMJob Suspended")
    api.request("PATCH", path, {"spec": {"suspend": False}}, content_type="application/merge-patch+json")
    wait_for(lambda: not api.get(rayjob_path)["spec"].get("suspend"), timeout=30, what="resumed")
    wait_for(lambda: api.get(f"{RAY}/namespaces/{ns}/rayclusters")["items"], timeout=60,
             what="a new Ray cluster for the resumed job")
    wait_for(lambda: status(api, ns, "ray-pause").get("phase") in ("Pending", "Running"), timeout=30,
             what="the LLMJob is no longer Suspended")


def apply(api: AdminApi, path: str, body: dict[str, Any]) -> None:
    name = body["metadata"]["name"]
    r = api.request("PATCH", f"{path}/{name}?fieldManager=llmasos-test&force=true", body,
                    content_type="application/apply-patch+yaml")
    assert r.status_code in (200, 201), f"apply {path}/{name}: {r.status_code} {r.text[:500]}"


def test_a_queued_ray_llmjob_is_a_rayjob_admitted_by_kueue(api: AdminApi, ns: str,
                                                           ray_operator: OperatorProcess) -> None:
    apply(api, f"{KUEUE}/resourceflavors", {"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ResourceFlavor",
                                             "metadata": {"name": "l4"},
                                             "spec": {"nodeLabels": {"llmasos.io/pool": "l4"}}})
    apply(api, f"{KUEUE}/clusterqueues", {
        "apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ClusterQueue", "metadata": {"name": "llmasos-test-kuberay"},
        "spec": {"namespaceSelector": {}, "resourceGroups": [{
            "coveredResources": ["cpu", "memory", "nvidia.com/gpu"], "flavors": [{"name": "l4", "resources": [
                {"name": "cpu", "nominalQuota": "96"}, {"name": "memory", "nominalQuota": "1000Gi"},
                {"name": "nvidia.com/gpu", "nominalQuota": "4"}]}]}]}})
    apply(api, f"{KUEUE}/namespaces/{ns}/localqueues", {
        "apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "LocalQueue", "metadata": {"name": "rq"},
        "spec": {"clusterQueue": "llmasos-test-kuberay"}})
    api.create(f"/apis/llmasos.io/v1alpha1/namespaces/{ns}/llmjobs",
               ray_llmjob("ray-queued", ns, "l4", nodes=2, queueName="rq"))
    rayjob = wait_for(lambda: get_or_none(api, f"{RAY}/namespaces/{ns}/rayjobs/ray-queued-a0"), timeout=30,
                      what="the RayJob")
    assert rayjob["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "rq"
    running = wait_for(lambda: status_in(api, ns, "ray-queued", "Running"), timeout=60,
                       what="Kueue admits it, KubeRay starts it, the LLMJob runs")
    kinds = {c["type"]: c["reason"] for c in running["conditions"]}
    assert (kinds["Admitted"], kinds["Scheduled"], running["pool"]) == ("AdmittedByKueue", "AdmittedByKueue", "l4")
    [workload] = api.get(f"{KUEUE}/namespaces/{ns}/workloads")["items"]
    assert workload["metadata"]["ownerReferences"][0]["kind"] == "RayJob"
    assert len(workload["spec"]["podSets"]) == 2, "the head and the worker group"


def test_the_rayjobs_pods_are_metered_into_the_llmjobs_energy_and_carbon(
        api: AdminApi, ns: str, ray_operator: OperatorProcess, cluster: LocalCluster, tmp_path: Path) -> None:
    agent_ns = "llmasos-system"
    if api.request("GET", f"/api/v1/namespaces/{agent_ns}").status_code == 404:
        api.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": agent_ns}})
    agents = [AgentProcess(cluster, f"gpu-l4-00{i}", "nvidia-l4", tmp_path, agent_ns, gpus=4).start()
              for i in range(3)]
    try:
        api.create(f"/apis/llmasos.io/v1alpha1/namespaces/{ns}/llmjobs", ray_llmjob("ray-metered", ns, "l4", nodes=2))

        def metered() -> dict[str, Any] | None:
            power = status(api, ns, "ray-metered").get("power") or {}
            pods = power.get("pods") or []
            return power if len(pods) == 2 and all(p["energyJoules"] > 0 for p in pods) else None

        power = wait_for(metered, timeout=60, what="status.power with the head's and the worker's energy")
        ray_pods = {p["metadata"]["name"] for p in api.get(
            f"/api/v1/namespaces/{ns}/pods?labelSelector=llmasos.io/llmjob=ray-metered")["items"]}
        assert {p["pod"] for p in power["pods"]} <= ray_pods, (power["pods"], ray_pods)
        assert any("-head-" in p["pod"] for p in power["pods"]), "KubeRay's head pod is metered"
        carbon = wait_for(lambda: (status(api, ns, "ray-metered").get("carbon") or {}).get("energyKWh"),
                          timeout=30, what="status.carbon from the metered energy")
        assert carbon > 0
    finally:
        for agent in agents:
            agent.stop()
