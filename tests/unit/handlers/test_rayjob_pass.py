"""Whole passes of a `strategy: ray` LLMJob against the fake API server: a RayJob where KubeRay's API is served (no
Indexed Job, no Service), the Indexed Job where it is not, its status mirrored, suspend, and the discovery cache."""

from __future__ import annotations

from typing import Any

from llmasos.cluster.kube import JOBS, SERVICES
from llmasos.cluster.rayjob import RAYJOBS, observe_rayjob
from llmasos.cluster.rayjob_api import DISCOVERY_PATH
from llmasos.handlers.llmjob import reconcile
from llmasos.handlers.worker_health import pod_selector
from tests.unit.builders import make_raw
from tests.unit.handlers.fake_kube import FakeKube
from tests.unit.handlers.steps_world import JOB_PATH, LOG, run, stored_status, world

RAYJOB_PATH = RAYJOBS.path("ns", "j-a0")
RAY_SPEC = {**make_raw(nodes=2, gpus=4, strategy="ray"), "task": "inference"}


def serve_kuberay(kube: FakeKube) -> None:
    kube.put(DISCOVERY_PATH, {"kind": "APIResourceList", "groupVersion": "ray.io/v1",
                              "resources": [{"name": "rayclusters"}, {"name": "rayjobs"}]})


def kuberay_writes(kube: FakeKube, status: dict[str, Any]) -> dict[str, Any]:
    """KubeRay's status of the RayJob, and kopf's index entry of it."""
    kube.objects[RAYJOB_PATH]["status"] = status
    return {("ns", "j"): [(observe_rayjob(kube.objects[RAYJOB_PATH]), ("u1",))]}


def test_with_kuberay_a_ray_job_gets_a_rayjob_and_its_status_is_mirrored() -> None:
    ctx, kube, body, indexes = world(spec=RAY_SPEC)
    serve_kuberay(kube)
    run(reconcile(ctx, body, indexes, LOG))
    assert RAYJOB_PATH in kube.objects
    assert JOBS.path("ns", "j-a0") not in kube.objects
    assert SERVICES.path("ns", "j") not in kube.objects
    rayjob = kube.objects[RAYJOB_PATH]
    assert (rayjob["spec"]["entrypoint"], rayjob["spec"]["suspend"]) == ("llmasos-worker", False)
    indexes["child_rayjobs"] = kuberay_writes(kube, {
        "jobDeploymentStatus": "Running", "jobStatus": "RUNNING", "startTime": "2026-03-06T12:00:05Z",
        "rayClusterStatus": {"readyWorkerReplicas": 1, "conditions": [{"type": "HeadPodReady", "status": "True"}]}})
    run(reconcile(ctx, kube.objects[JOB_PATH], indexes, LOG))
    status = stored_status(kube)
    assert (status["phase"], status["pool"], status["startTime"], status["children"]) == \
        ("Running", "a100", "2026-03-06T12:00:05Z", {"job": "j-a0"})
    indexes["child_rayjobs"] = kuberay_writes(kube, {
        "jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED", "startTime": "2026-03-06T12:00:05Z",
        "endTime": "2026-03-06T12:09:00Z"})
    run(reconcile(ctx, kube.objects[JOB_PATH], indexes, LOG))
    status = stored_status(kube)
    assert (status["phase"], status["completionTime"]) == ("Succeeded", "2026-03-06T12:09:00Z")
    discovery = [call for call in kube.calls if call == ("GET", DISCOVERY_PATH)]
    assert len(discovery) == 1, "asked once, then remembered"


def test_suspending_a_ray_job_suspends_its_rayjob_and_a_failed_attempt_restarts_as_a_rayjob() -> None:
    ctx, kube, body, indexes = world(spec={**RAY_SPEC, "backoffLimit": 1})
    serve_kuberay(kube)
    run(reconcile(ctx, body, indexes, LOG))
    indexes["child_rayjobs"] = kuberay_writes(kube, {"jobDeploymentStatus": "Running"})
    kube.objects[JOB_PATH]["spec"]["suspend"] = True
    run(reconcile(ctx, kube.objects[JOB_PATH], indexes, LOG))
    assert kube.objects[RAYJOB_PATH]["spec"]["suspend"] is True
    assert ("PATCH", RAYJOB_PATH) in kube.calls
    assert stored_status(kube)["phase"] == "Suspended"
    kube.objects[JOB_PATH]["spec"]["suspend"] = False
    indexes["child_rayjobs"] = kuberay_writes(kube, {"jobDeploymentStatus": "Failed", "reason": "AppFailed",
                                                     "message": "the driver exited 1"})
    run(reconcile(ctx, kube.objects[JOB_PATH], indexes, LOG))
    assert RAYJOBS.path("ns", "j-a1") in kube.objects, "the next attempt is a RayJob too"
    assert ("DELETE", RAYJOB_PATH) in kube.calls, "the failed attempt's RayJob is deleted, not a Job of its name"
    assert "AppFailed" in stored_status(kube)["message"]


def test_without_kuberay_a_ray_job_keeps_the_indexed_job() -> None:
    ctx, kube, body, indexes = world(spec=RAY_SPEC)
    run(reconcile(ctx, body, indexes, LOG))
    assert JOBS.path("ns", "j-a0") in kube.objects
    assert SERVICES.path("ns", "j") in kube.objects
    assert RAYJOB_PATH not in kube.objects
    assert ("GET", DISCOVERY_PATH) in kube.calls


def test_a_torch_job_never_asks_for_kuberay() -> None:
    ctx, kube, body, indexes = world()
    serve_kuberay(kube)
    run(reconcile(ctx, body, indexes, LOG))
    assert JOBS.path("ns", "j-a0") in kube.objects
    assert ("GET", DISCOVERY_PATH) not in kube.calls


def test_the_pods_of_an_attempt_are_found_by_their_job_or_by_the_llmjob_labels() -> None:
    ctx, kube, body, indexes = world(spec=RAY_SPEC)
    serve_kuberay(kube)
    run(reconcile(ctx, body, indexes, LOG))
    rayjob = observe_rayjob(kube.objects[RAYJOB_PATH])
    assert pod_selector(rayjob) == "llmasos.io/llmjob=j,llmasos.io/attempt=0"
    head_labels = kube.objects[RAYJOB_PATH]["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["metadata"]
    assert all(head_labels["labels"][k] == v for k, v in (("llmasos.io/llmjob", "j"), ("llmasos.io/attempt", "0")))
