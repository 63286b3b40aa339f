"""The pure mapping of a queued LLMJob's Workload to its phase, conditions and pool, and the child actions that
leave Kueue's suspend flag alone."""

from __future__ import annotations

from typing import Any

import pytest

from llmasos.api import conditions as cond
from llmasos.planning.lifecycle.decision import DeleteJob, EnsureJob, EnsureService, decide
from llmasos.planning.lifecycle.queueing import (
    flavors_of,
    mirror,
    pool_of_flavor,
    queued_actions,
    read_workload,
    wanted_active,
    workload_fingerprint,
)
from tests.unit.builders import make_job, make_spec

NOW = "2026-11-25T12:00:00Z"
POOLS = {"l4-flavour": "l4", "bare": ""}


def workload(*conditions: tuple[str, str, str], flavors: dict[str, str] | None = None, active: bool = True,
             checks: list[dict[str, str]] | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {"conditions": [{"type": t, "status": s, "reason": "R", "message": m}
                                             for t, s, m in conditions]}
    if flavors is not None:
        status["admission"] = {"clusterQueue": "cq", "podSetAssignments": [
            {"name": "main", "flavors": flavors, "count": 1}]}
    if checks is not None:
        status["admissionChecks"] = checks
    return {"metadata": {"name": "job-x-a0-1"}, "spec": {"active": active, "queueName": "gpu"}, "status": status}


QUOTA_MSG = "couldn't assign flavors to pod set main: insufficient unused quota for nvidia.com/gpu in flavor l4-flavour"


@pytest.mark.parametrize(("wl", "reason", "says", "pool"), [
    (None, cond.QUEUED, "queued in LocalQueue gpu; waiting for Kueue to create its Workload", ""),
    (workload(), cond.WAITING_FOR_QUOTA, "waiting for quota in LocalQueue gpu", ""),
    (workload(("QuotaReserved", "False", QUOTA_MSG)), cond.WAITING_FOR_QUOTA,
     f"waiting for quota in LocalQueue gpu: {QUOTA_MSG}", ""),
    (workload(("QuotaReserved", "True", ""), flavors={"nvidia.com/gpu": "l4-flavour", "cpu": "l4-flavour"},
              checks=[{"name": "llmasos-carbon", "state": "Pending", "message": "waiting for the window"}]),
     cond.WAITING_FOR_ADMISSION_CHECKS, "quota reserved on flavour l4-flavour (node pool l4); waiting for admission "
     "checks: llmasos-carbon: Pending (waiting for the window)", "l4"),
    (workload(("QuotaReserved", "True", ""), ("Admitted", "True", ""), flavors={"nvidia.com/gpu": "l4-flavour"}),
     cond.ADMITTED_BY_KUEUE, "admitted by Kueue from LocalQueue gpu on flavour l4-flavour (node pool l4)", "l4"),
    (workload(("QuotaReserved", "True", ""), ("Admitted", "True", ""), flavors={"nvidia.com/gpu": "bare"}),
     cond.ADMITTED_BY_KUEUE, "admitted by Kueue from LocalQueue gpu on flavour bare", ""),
    (workload(("QuotaReserved", "False", "pending"), ("Evicted", "True", "Preempted to accommodate a workload")),
     cond.EVICTED_BY_KUEUE, "evicted by Kueue (R: Preempted to accommodate a workload); waiting for quota in "
     "LocalQueue gpu again", ""),
    (workload(("Evicted", "True", "The workload is deactivated"), active=False), cond.WORKLOAD_DEACTIVATED,
     "its Workload is deactivated: The workload is deactivated", ""),
])
def test_workload_to_reason_message_and_pool(wl: dict[str, Any] | None, reason: str, says: str, pool: str) -> None:
    state = read_workload("gpu", wl, {f: POOLS[f] for f in flavors_of(wl)})
    assert (state.reason, state.message, state.pool) == (reason, says, pool)
    assert state.admitted == (reason == cond.ADMITTED_BY_KUEUE)


def test_flavours_in_order_once_each_and_their_pool_label() -> None:
    wl = workload(flavors={"cpu": "a", "nvidia.com/gpu": "b", "memory": "a"})
    assert flavors_of(wl) == ("a", "b")
    assert flavors_of(None) == flavors_of(workload()) == ()
    assert pool_of_flavor({"llmasos.io/pool": "l4", "other": "x"}, "llmasos.io/pool") == "l4"
    assert pool_of_flavor({}, "llmasos.io/pool") == ""


def test_waiting_for_quota_is_pending_whatever_the_suspended_job_says() -> None:
    decision = decide(make_spec(nodes=1), "Pending", [make_job(suspended=True)], NOW)
    state = read_workload("gpu", workload(("QuotaReserved", "False", QUOTA_MSG)), {})
    shown = mirror(state, decision, previous_reason="")
    assert shown.phase == "Pending"
    running = next(c for c in shown.conditions if c.type == cond.RUNNING)
    assert (running.status, running.reason) == ("False", cond.WAITING_FOR_QUOTA)
    admitted = next(c for c in shown.conditions if c.type == cond.QUEUE_ADMITTED)
    assert (admitted.status, admitted.reason) == ("False", cond.WAITING_FOR_QUOTA)
    assert [e.reason for e in shown.events] == [cond.WAITING_FOR_QUOTA]
    assert mirror(state, decision, previous_reason=cond.WAITING_FOR_QUOTA).events == (), "one Event per change"


def test_admitted_job_runs_as_decided_with_admitted_true() -> None:
    decision = decide(make_spec(nodes=1), "Pending", [make_job(ready=1, active=1)], NOW)
    state = read_workload("gpu", workload(("Admitted", "True", ""), flavors={"nvidia.com/gpu": "l4-flavour"}), POOLS)
    shown = mirror(state, decision, previous_reason=cond.WAITING_FOR_QUOTA)
    assert shown.phase == "Running"
    assert shown.start_time == NOW
    assert any(c.type == cond.QUEUE_ADMITTED and c.status == "True" for c in shown.conditions)
    assert cond.ADMITTED_BY_KUEUE in [e.reason for e in shown.events]


@pytest.mark.parametrize("previous", ["Succeeded", "Failed"])
def test_terminal_suspended_and_deferred_are_not_mirrored(previous: str) -> None:
    state = read_workload("gpu", workload(), {})
    finished = decide(make_spec(nodes=1), previous, [make_job(complete=True)], NOW)
    assert mirror(state, finished) == finished
    suspended = decide(make_spec(nodes=1, suspend=True), "Running", [make_job(ready=1)], NOW)
    assert mirror(state, suspended) == suspended


def test_kueue_owns_the_suspend_flag() -> None:
    """A new attempt's Job is created suspended; an existing Job's flag is never written, either way."""
    actions = (EnsureService(), EnsureJob(1, False), DeleteJob("j-a0"))
    assert queued_actions(actions, []) == (EnsureService(), EnsureJob(1, True), DeleteJob("j-a0"))
    assert queued_actions(actions, [0, 1]) == (EnsureService(), DeleteJob("j-a0"))
    assert queued_actions((EnsureJob(0, True),), [0]) == ()


@pytest.mark.parametrize(("suspend", "active", "previous", "write"), [
    (True, True, "Running", False),  # the user suspends: deactivate
    (True, False, "Suspended", None),  # already done
    (False, False, "Suspended", True),  # the user resumes: reactivate
    (False, False, "Pending", None),  # Kueue deactivated it on its own: leave it so, report WorkloadDeactivated
    (False, True, "Running", None),
])
def test_spec_suspend_is_the_workloads_spec_active(suspend: bool, active: bool, previous: str,
                                                   write: bool | None) -> None:
    assert wanted_active(suspend, active, previous) is write


def test_a_workloads_fingerprint_changes_with_its_state_only() -> None:
    """The Workload watch starts a pass only when what the LLMJob reports would change: Kueue's bookkeeping (resource
    versions, requeue counters) starts none."""
    waiting = workload(("QuotaReserved", "False", QUOTA_MSG))
    noisy = {**waiting, "metadata": {"name": "job-x-a0-1", "resourceVersion": "42"},
             "status": {**waiting["status"], "requeueState": {"count": 3}}}
    assert workload_fingerprint(noisy) == workload_fingerprint(waiting)
    reserved = workload(("QuotaReserved", "True", ""), flavors={"nvidia.com/gpu": "l4-flavour"})
    admitted = workload(("QuotaReserved", "True", ""), ("Admitted", "True", ""),
                        flavors={"nvidia.com/gpu": "l4-flavour"})
    prints = {workload_fingerprint(w) for w in (waiting, reserved, admitted, workload(active=False))}
    assert len(prints) == 4
