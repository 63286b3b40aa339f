"""A crashed worker and a volume that cannot be mounted, from what the pods and events say
(planning/worker_faults.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from llmasos.api import conditions as cond
from llmasos.api.worker_contract import EXIT_PEER_LOST, EXIT_SUSPENDED
from llmasos.planning.lifecycle.decision import ObservedJob
from llmasos.planning.lifecycle.worker_faults import (
    observe_mount_failure,
    observe_worker_exit,
    stuck_creating,
    with_worker_exit,
)

NOW = datetime(2026, 12, 4, 12, 0, 30, tzinfo=UTC)


def exited(name: str, code: int, reason: str = "Error", finished: str = "2026-12-04T12:00:10Z",
           message: str = "", last: bool = False) -> dict[str, Any]:
    term = {"exitCode": code, "reason": reason, "finishedAt": finished, "message": message}
    cs = {"name": "worker", "state": {"waiting": {"reason": "x"}}, "lastState": {"terminated": term}} if last \
        else {"name": "worker", "state": {"terminated": term}}
    return {"metadata": {"name": name, "namespace": "ns"}, "status": {"phase": "Failed", "containerStatuses": [cs]}}


def test_the_first_non_zero_exit_is_the_culprit_with_its_log_tail() -> None:
    pods = [exited("w-1", 1, finished="2026-12-04T12:00:12Z", message="gloo: connection closed by peer"),
            exited("w-0", 3, finished="2026-12-04T12:00:10Z",
                   message="Traceback (most recent call last):\n  File x\nValueError: unknown model 'gpt-huge'\n"),
            exited("w-2", 0)]
    ex = observe_worker_exit(pods)
    assert ex is not None
    assert (ex.pod, ex.reason, ex.exit_code) == ("w-0", "Error", 3)
    c = ex.condition()
    assert (c.type, c.status, c.reason) == (cond.WORKERS_READY, "False", "Error")
    assert "exit code 3" in c.message
    assert "ValueError: unknown model 'gpt-huge'" in c.message
    assert "To fix:" in c.message
    assert "kubectl logs -n ns w-0" in c.message


@pytest.mark.parametrize("victim_finished", ["2026-12-04T12:00:09Z", "2026-12-04T12:00:10Z"])
def test_a_worker_that_lost_its_group_yields_to_the_one_that_failed(victim_finished: str) -> None:
    """Rank 1 was killed; rank 0's collective then broke (EXIT_PEER_LOST). Exit times have one-second steps, so the
    victim may carry the same second as the culprit or, listed first, an earlier one: the culprit is still named."""
    pods = [exited("w-0", EXIT_PEER_LOST, finished=victim_finished, message="gloo/transport: Connection reset"),
            exited("w-1", 137, finished="2026-12-04T12:00:10Z")]
    ex = observe_worker_exit(pods)
    assert ex is not None
    assert (ex.pod, ex.exit_code) == ("w-1", 137)


def test_when_every_worker_lost_its_group_the_hint_says_to_look_at_the_nodes() -> None:
    pods = [exited("w-1", EXIT_PEER_LOST, finished="2026-12-04T12:00:11Z"),
            exited("w-0", EXIT_PEER_LOST, finished="2026-12-04T12:00:10Z")]
    ex = observe_worker_exit(pods)
    assert ex is not None
    assert ex.pod == "w-0"
    assert "network between them" in ex.condition().message


def test_a_checkpointed_exit_and_success_are_no_failure() -> None:
    assert observe_worker_exit([exited("w-0", EXIT_SUSPENDED), exited("w-1", 0)]) is None


@pytest.mark.parametrize(("reason", "code", "fix"), [
    ("OOMKilled", 137, "spec.resources.memory"),
    ("Error", 137, "SIGKILL"),
    ("StartError", 128, "spec.command"),
    ("Error", 127, "spec.command"),
    ("Error", 2, "spec.taskConfig"),
])
def test_the_hint_follows_the_reason_and_the_exit_code(reason: str, code: int, fix: str) -> None:
    ex = observe_worker_exit([exited("w-0", code, reason=reason, last=True)])
    assert ex is not None
    assert ex.reason == reason
    assert fix in ex.condition().message


def test_a_long_log_tail_is_cut_to_its_last_lines() -> None:
    ex = observe_worker_exit([exited("w-0", 1, message="\n".join(f"line {i} " + "x" * 300 for i in range(50)))])
    assert ex is not None
    assert "line 49" in ex.tail
    assert "line 40" not in ex.tail
    assert len(ex.tail) <= 403


def test_the_failed_attempt_message_gains_the_container_reason() -> None:
    jobs = [ObservedJob("j-a0", 0, failed_reason="X"),
            ObservedJob("j-a1", 1, failed_reason="PodFailurePolicy", failed_message="exit code 3 matching FailJob")]
    ex = observe_worker_exit([exited("j-a1-0", 3)])
    out = with_worker_exit(jobs, ex)
    assert out[0] == jobs[0]
    assert out[1].failed_message == "exit code 3 matching FailJob; pod j-a1-0: container Error, exit code 3"
    assert with_worker_exit(jobs, None) == jobs
    running = [ObservedJob("j-a0", 0, active=2)]
    assert with_worker_exit(running, ex) == running


def creating(name: str, scheduled: str, waiting: str | None = "ContainerCreating",
             phase: str = "Pending") -> dict[str, Any]:
    statuses = [{"name": "worker", "state": {"waiting": {"reason": waiting}}}] if waiting else []
    return {"metadata": {"name": name}, "status": {
        "phase": phase, "containerStatuses": statuses,
        "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": scheduled}]}}


def test_only_pods_creating_past_the_grace_are_stuck() -> None:
    pods = [creating("old", "2026-12-04T12:00:00Z"), creating("new", "2026-12-04T12:00:25Z"),
            creating("no-status", "2026-12-04T12:00:00Z", waiting=None),
            creating("pulling", "2026-12-04T12:00:00Z", waiting="ErrImagePull"),
            creating("running", "2026-12-04T12:00:00Z", phase="Running")]
    assert stuck_creating(pods, NOW) == ["old", "no-status"]


def test_the_newest_failed_mount_event_becomes_the_condition() -> None:
    events = [
        {"reason": "Scheduled", "involvedObject": {"name": "w-0"}, "message": "assigned"},
        {"reason": "FailedMount", "involvedObject": {"name": "w-0"}, "lastTimestamp": "2026-12-04T12:00:05Z",
         "message": 'MountVolume.SetUp failed for volume "cfg" : configmap "old" not found'},
        {"reason": "FailedMount", "involvedObject": {"name": "w-0"}, "lastTimestamp": "2026-12-04T12:00:20Z",
         "message": 'MountVolume.SetUp failed for volume "cfg" : configmap "settings" not found'},
    ]
    failure = observe_mount_failure("w-0", events)
    assert failure is not None
    c = failure.condition()
    assert (c.type, c.status, c.reason) == (cond.WORKERS_READY, "False", "FailedMount")
    assert 'configmap "settings" not found' in c.message
    assert "spec.volumes" in c.message
    assert observe_mount_failure("w-0", events[:1]) is None
    assert observe_mount_failure("w-1", events) is None
