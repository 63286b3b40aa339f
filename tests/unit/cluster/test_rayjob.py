"""The RayJob rendering of a `strategy: ray` LLMJob (head and workers from parallelism, the driver as entrypoint,
shutdownAfterJobFinishes, suspend, the Indexed Job's pod template minus what KubeRay owns), and the reading of a
RayJob's status into the ObservedJob the decision takes."""

from __future__ import annotations

from typing import Any

import pytest

from llmasos.api import constants as c
from llmasos.cluster.builders import Owner
from llmasos.cluster.rayjob import (
    KUEUE_QUEUE_LABEL,
    build_rayjob,
    entrypoint,
    observe_rayjob,
    rayjob_fingerprint,
)
from llmasos.planning.lifecycle.decision import RAYJOB_KIND, decide
from tests.unit.builders import make_spec

OWNER = Owner("ray1", "ml", "uid-1")


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_head_and_workers_from_parallelism() -> None:
    job = build_rayjob(OWNER, make_spec(nodes=3, gpus=2, strategy="ray"), 0, "a100", "img:1")
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    spec = job["spec"]
    assert spec["shutdownAfterJobFinishes"] is True
    assert spec["suspend"] is False
    assert spec["submissionMode"] == "HTTPMode", "no submitter pod to place"
    head = spec["rayClusterSpec"]["headGroupSpec"]
    [workers] = spec["rayClusterSpec"]["workerGroupSpecs"]
    assert workers["replicas"] == workers["minReplicas"] == workers["maxReplicas"] == 2
    assert head["rayStartParams"]["num-gpus"] == workers["rayStartParams"]["num-gpus"] == "2"
    for group in (head, workers):
        pod = group["template"]["spec"]
        [container] = pod["containers"]
        assert "command" not in container, "KubeRay runs ray start"
        assert "restartPolicy" not in pod
        assert "subdomain" not in pod
        assert container["image"] == "img:1"
        assert container["resources"]["limits"][c.GPU_RESOURCE] == "2"
        assert container["readinessProbe"], "KubeRay's own probes need wget"
        assert container["livenessProbe"]
        assert env_of(container)["NODE_RANK"] == "0", "no completion index in a RayCluster's pods"
        terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
        assert terms[0]["matchExpressions"][0]["values"] == ["a100"]
        labels = group["template"]["metadata"]["labels"]
        assert (labels[c.LABEL_LLMJOB], labels[c.LABEL_ATTEMPT]) == ("ray1", "0"), "the agent attributes energy by"
    assert head["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["port"] == 8265
    assert job["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert job["metadata"]["labels"][c.LABEL_LLMJOB] == "ray1"


def test_single_node_has_no_worker_group_and_suspend_and_queue() -> None:
    job = build_rayjob(OWNER, make_spec(nodes=1, gpus=1, strategy="ray"), 2, "l4", "img", suspend=True)
    assert job["spec"]["rayClusterSpec"]["workerGroupSpecs"] == []
    assert job["spec"]["suspend"] is True
    assert job["metadata"]["labels"][c.LABEL_ATTEMPT] == "2"
    assert job["metadata"]["name"] == "ray1-a2"
    queued = build_rayjob(OWNER, make_spec(nodes=1, gpus=1, strategy="ray", queueName="gpu"), 0, "l4", "img")
    assert queued["metadata"]["labels"][KUEUE_QUEUE_LABEL] == "gpu"
    assert queued["spec"]["suspend"] is True, "created suspended: Kueue admits it"


def test_max_runtime_is_the_active_deadline() -> None:
    job = build_rayjob(OWNER, make_spec(nodes=1, gpus=1, strategy="ray", maxRuntime="30m"), 0, "l4", "img")
    assert job["spec"]["activeDeadlineSeconds"] == 1800


def test_entrypoint_is_the_driver_command() -> None:
    assert entrypoint(make_spec(strategy="ray")) == "llmasos-worker"
    spec = make_spec(strategy="ray", command=["python", "train.py"], args=["--lr", "3e-4 x"])
    assert entrypoint(spec) == "python train.py --lr '3e-4 x'"


# --- reading a RayJob back -------------------------------------------------------------------------------------------


def rayjob_with(status: dict[str, Any], suspend: bool = False, nodes: int = 3) -> dict[str, Any]:
    body = build_rayjob(OWNER, make_spec(nodes=nodes, gpus=2, strategy="ray"), 1, "a100", "img")
    body["metadata"]["uid"] = "rj-uid"
    body["spec"]["suspend"] = suspend
    body["status"] = status
    return body


def test_a_new_rayjob_is_an_attempt_with_nothing_running_yet() -> None:
    o = observe_rayjob(rayjob_with({}))
    assert (o.name, o.attempt, o.kind, o.uid, o.pool) == ("ray1-a1", 1, RAYJOB_KIND, "rj-uid", "a100")
    assert (o.active, o.ready, o.complete, o.is_failed, o.suspended) == (0, 0, False, False, False)
    assert o.gpus == 6, "head and two workers, two GPUs each"
    assert o.holds_gpus


def test_a_running_rayjob_counts_the_head_and_the_ready_workers() -> None:
    status = {"jobDeploymentStatus": "Running", "jobStatus": "RUNNING", "startTime": "2026-03-06T12:00:05Z",
              "rayClusterStatus": {"readyWorkerReplicas": 2, "conditions": [
                  {"type": "HeadPodReady", "status": "True"}]}}
    o = observe_rayjob(rayjob_with(status))
    assert (o.active, o.ready, o.start_time) == (3, 3, "2026-03-06T12:00:05Z")
    half = {**status, "rayClusterStatus": {"readyWorkerReplicas": 1, "conditions": [
        {"type": "HeadPodReady", "status": "False"}]}}
    assert observe_rayjob(rayjob_with(half)).ready == 1


@pytest.mark.parametrize(("status", "reason"), [
    ({"jobDeploymentStatus": "Failed", "jobStatus": "FAILED", "reason": "AppFailed", "message": "exit 1"},
     "AppFailed"),
    ({"jobDeploymentStatus": "Failed", "reason": "DeadlineExceeded", "message": "past activeDeadlineSeconds"},
     "DeadlineExceeded"),
    ({"jobDeploymentStatus": "ValidationFailed", "message": "bad spec"}, "ValidationFailed"),
    ({"jobDeploymentStatus": "Complete", "jobStatus": "STOPPED"}, "JobStopped"),
])
def test_a_failed_rayjob_carries_kuberays_reason(status: dict[str, Any], reason: str) -> None:
    o = observe_rayjob(rayjob_with(status))
    assert (o.is_failed, o.failed_reason, o.complete, o.active) == (True, reason, False, 0)
    assert o.failed_message


def test_a_succeeded_rayjob_is_complete_and_the_decision_says_succeeded() -> None:
    o = observe_rayjob(rayjob_with({"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED",
                                    "startTime": "2026-03-06T12:00:05Z", "endTime": "2026-03-06T12:03:00Z"}))
    assert (o.complete, o.is_failed, o.completion_time, o.holds_gpus) == (True, False, "2026-03-06T12:03:00Z", False)
    decision = decide(make_spec(nodes=3, gpus=2, strategy="ray"), "Running", [o], "2026-03-06T12:04:00Z", 1)
    assert (decision.phase, decision.completion_time) == ("Succeeded", "2026-03-06T12:03:00Z")


def test_a_suspended_rayjob_holds_nothing_and_a_deadline_failure_reads_as_a_jobs() -> None:
    o = observe_rayjob(rayjob_with({"jobDeploymentStatus": "Suspended"}, suspend=True))
    assert (o.suspended, o.active, o.holds_gpus) == (True, 0, False)
    late = observe_rayjob(rayjob_with({"jobDeploymentStatus": "Failed", "reason": "DeadlineExceeded"}))
    decision = decide(make_spec(nodes=3, gpus=2, strategy="ray"), "Running", [late], "2026-03-06T12:04:00Z", 1)
    assert (decision.phase, decision.conditions[1].reason) == ("Failed", "MaxRuntimeExceeded")


def test_the_fingerprint_ignores_kuberays_status_touches() -> None:
    running = {"jobDeploymentStatus": "Running", "jobStatus": "RUNNING",
               "rayClusterStatus": {"readyWorkerReplicas": 2, "state": "ready"}}
    touched = {**running, "rayClusterStatus": {**running["rayClusterStatus"], "lastUpdateTime": "x"},
               "rayJobInfo": {"startTime": 1}}
    assert rayjob_fingerprint(rayjob_with(running)) == rayjob_fingerprint(rayjob_with(touched))
    done = {**running, "jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED"}
    assert rayjob_fingerprint(rayjob_with(running)) != rayjob_fingerprint(rayjob_with(done))


def test_running_without_a_copied_cluster_status_means_the_cluster_was_provisioned() -> None:
    bare = {"jobDeploymentStatus": "Running", "rayClusterStatus": {"desiredCPU": "0", "head": {}}}
    assert observe_rayjob(rayjob_with(bare)).ready == 3
    assert observe_rayjob(rayjob_with({**bare, "jobDeploymentStatus": "Initializing"})).ready == 0
