"""Why workers are not running, from what their pods say (planning/lifecycle/worker_health.py)."""

from __future__ import annotations

from typing import Any

import pytest

from llmasos.api import conditions as cond
from llmasos.planning.lifecycle.worker_health import observe_worker_problem, workers_ready_condition


def pod(name: str, waiting: str = "", message: str = "", last_exit: int | None = None,
        unschedulable: str = "") -> dict[str, Any]:
    status: dict[str, Any] = {"containerStatuses": [], "conditions": []}
    if waiting:
        cs: dict[str, Any] = {"name": "worker", "state": {"waiting": {"reason": waiting, "message": message}}}
        if last_exit is not None:
            cs["lastState"] = {"terminated": {"exitCode": last_exit}}
        status["containerStatuses"].append(cs)
    if unschedulable:
        status["conditions"].append({"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                     "message": unschedulable})
    return {"metadata": {"name": name}, "status": status}


@pytest.mark.parametrize(("reason", "fix"), [
    ("ErrImageNeverPull", "load the image onto the node"),
    ("ImagePullBackOff", "check spec.image"),
    ("ErrImagePull", "check spec.image"),
    ("CreateContainerConfigError", "Secret or ConfigMap"),
    ("CrashLoopBackOff", "kubectl logs"),
])
def test_a_container_reason_becomes_the_condition_with_what_to_fix(reason: str, fix: str) -> None:
    problem = observe_worker_problem([pod("w-0", waiting=reason, message="details from the kubelet")])
    assert problem is not None
    c = workers_ready_condition(problem, all_ready=False)
    assert c is not None
    assert (c.type, c.status, c.reason) == (cond.WORKERS_READY, "False", reason)
    assert "pod w-0" in c.message
    assert "details from the kubelet" in c.message
    assert fix in c.message


def test_the_exit_code_of_a_crash_is_in_the_message() -> None:
    problem = observe_worker_problem([pod("w-1", waiting="CrashLoopBackOff", last_exit=3)])
    assert problem is not None
    assert "last exit code 3" in problem.condition().message


def test_an_unschedulable_pod_names_the_scheduler_message() -> None:
    msg = 'persistentvolumeclaim "ckpt" not found'
    problem = observe_worker_problem([pod("w-0", unschedulable=msg)])
    assert problem is not None
    c = problem.condition()
    assert c.reason == cond.WORKER_UNSCHEDULABLE
    assert msg in c.message
    assert "volume claim" in c.message


def test_image_problems_win_over_a_crash_and_starting_pods_are_no_problem() -> None:
    pods = [pod("a", waiting="ContainerCreating"), pod("b", waiting="CrashLoopBackOff"),
            pod("c", waiting="ErrImageNeverPull")]
    problem = observe_worker_problem(pods)
    assert problem is not None
    assert problem.pod == "c"
    assert observe_worker_problem([pod("a", waiting="ContainerCreating"), pod("b")]) is None


def test_ready_and_starting() -> None:
    ready = workers_ready_condition(None, all_ready=True)
    assert ready is not None
    assert ready.status == "True"
    assert workers_ready_condition(None, all_ready=False) is None
