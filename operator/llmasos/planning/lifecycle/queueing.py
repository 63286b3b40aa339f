"""An LLMJob queued by Kueue (spec.queueName): its Workload's state as the LLMJob's phase, conditions and pool. Pure.

Kueue owns the `suspend` flag of a Job that carries its queue label: its webhook suspends the Job, its scheduler
reserves quota in the ClusterQueue and picks a flavour, its admission checks run, and only then does it unsuspend
the Job (and add the flavour's node labels to the pod template). An operator that flipped the flag itself would
fight Kueue's quota, so for a queued job the operator creates each attempt's Job suspended and never writes the
flag again (`queued_actions`). What it reports comes from the Workload Kueue made for the Job (`read_workload`):

  no Workload yet                   Pending, Running=False, reason Queued
  quota not reserved                Pending, WaitingForQuota (Kueue's own message: which resource, how much more)
  quota reserved, checks pending    Pending, WaitingForAdmissionChecks (each check's state and message)
  evicted / preempted, re-queued    Pending, EvictedByKueue
  deactivated by Kueue              Pending, WorkloadDeactivated
  admitted                          the ordinary decision (Pending until the gang runs, then Running), plus
                                    Admitted=True naming the flavour, and the pool of that flavour

The pool is the value of `llmasos.io/pool` in the nodeLabels of the ResourceFlavor Kueue assigned (the adapter,
handlers/queueing.py, reads the flavours; this module only maps). Terminal, Suspended and Deferred decisions are
left as they are: the Job's outcome, the user's suspend and the carbon hold before the queue come first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from llmasos.api import conditions as cond
from llmasos.api.conditions import Condition
from llmasos.api.phase import TERMINAL, Phase
from llmasos.planning.lifecycle.decision import Action, Decision, EnsureJob, Event

NOT_MIRRORED = (*TERMINAL, Phase.SUSPENDED, Phase.DEFERRED)
JOB_UID_LABEL = "kueue.x-k8s.io/job-uid"  # on a Workload: the uid of the job it stands for


@dataclass(frozen=True)
class QueueState:
    """What the Workload of the newest child Job says, for the LLMJob's status."""

    queue: str
    reason: str  # a reason of api/conditions.py: QUEUED, WAITING_FOR_QUOTA, ..., ADMITTED_BY_KUEUE
    message: str
    flavors: tuple[str, ...] = ()  # the flavours Kueue assigned (admitted, or quota reserved)
    pool: str = ""  # the node pool of the assigned flavour ("" when none, or its nodeLabels name no pool)
    active: bool = True  # the Workload's spec.active

    @property
    def admitted(self) -> bool:
        return self.reason == cond.ADMITTED_BY_KUEUE


def _condition(workload: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    found = ((workload.get("status") or {}).get("conditions")) or ()
    return next((c for c in found if c.get("type") == kind), {})


def _is_true(workload: Mapping[str, Any], kind: str) -> bool:
    return _condition(workload, kind).get("status") == "True"


def flavors_of(workload: Mapping[str, Any] | None) -> tuple[str, ...]:
    """The flavours of the Workload's admission (status.admission.podSetAssignments[].flavors), in order, once each."""
    admission = ((workload or {}).get("status") or {}).get("admission") or {}
    names: list[str] = []
    for assignment in admission.get("podSetAssignments") or ():
        for flavor in (assignment.get("flavors") or {}).values():
            if flavor and flavor not in names:
                names.append(str(flavor))
    return tuple(names)


def pool_of_flavor(node_labels: Mapping[str, str], pool_label: str) -> str:
    """The node pool a ResourceFlavor stands for: its nodeLabels' pool label ("" when it names none)."""
    return str(node_labels.get(pool_label, "") or "")


def _checks(workload: Mapping[str, Any]) -> str:
    found = ((workload.get("status") or {}).get("admissionChecks")) or ()
    parts = [f"{c.get('name')}: {c.get('state')}" + (f" ({c['message']})" if c.get("message") else "") for c in found
             if c.get("state") != "Ready"]
    return "; ".join(parts)


def read_workload(queue: str, workload: Mapping[str, Any] | None, flavor_pools: Mapping[str, str]) -> QueueState:
    """The state of a queued job from its Workload (None: Kueue has not made it yet) and the pools of the flavours
    (flavour name -> pool, for the flavours `flavors_of` named)."""
    if workload is None:
        return QueueState(queue, cond.QUEUED, f"queued in LocalQueue {queue}; waiting for Kueue to create its Workload")
    flavors = flavors_of(workload)
    pools = [flavor_pools.get(f, "") for f in flavors]
    pool = next((p for p in pools if p), "")
    active = (workload.get("spec") or {}).get("active", True) is not False
    on = ", ".join(f"flavour {f}" + (f" (node pool {p})" if p else "") for f, p in zip(flavors, pools, strict=True))
    if _is_true(workload, "Admitted"):
        return QueueState(queue, cond.ADMITTED_BY_KUEUE, f"admitted by Kueue from LocalQueue {queue} on {on}",
                          flavors, pool, active)
    if not active:
        why = _condition(workload, "Evicted").get("message") or "spec.active is false"
        return QueueState(queue, cond.WORKLOAD_DEACTIVATED, f"its Workload is deactivated: {why}", flavors, pool,
                          active)
    if _is_true(workload, "QuotaReserved"):
        pending = _checks(workload)
        return QueueState(queue, cond.WAITING_FOR_ADMISSION_CHECKS,
                          f"quota reserved on {on}; waiting for admission checks" + (f": {pending}" if pending else ""),
                          flavors, pool, active)
    evicted = _condition(workload, "Evicted")
    if evicted.get("status") == "True":
        return QueueState(queue, cond.EVICTED_BY_KUEUE,
                          f"evicted by Kueue ({evicted.get('reason', '')}: {evicted.get('message', '')}); "
                          f"waiting for quota in LocalQueue {queue} again", (), "", active)
    reserved = _condition(workload, "QuotaReserved")
    why = str(reserved.get("message") or "") if reserved.get("status") == "False" else ""
    return QueueState(queue, cond.WAITING_FOR_QUOTA,
                      f"waiting for quota in LocalQueue {queue}" + (f": {why}" if why else ""), (), "", active)


def workload_fingerprint(workload: Mapping[str, Any]) -> tuple[object, ...]:
    """What about a Workload can change its LLMJob's status (the state `read_workload` maps); Kueue's other updates
    (requeue counters, resource versions) are noise and start no pass."""
    state = read_workload("", workload, {})
    return (state.reason, state.message, state.flavors, state.active)


def wanted_active(suspend: bool, active: bool, previous_phase: str) -> bool | None:
    """The Workload's spec.active to write for the LLMJob's spec.suspend, or None to leave it: False when the user
    suspends the job; True only when resuming a job that was Suspended, so a Workload that Kueue itself deactivated
    (its re-queue limit, waitForPodsReady) stays deactivated and is reported as such."""
    if suspend:
        return False if active else None
    return True if not active and previous_phase == Phase.SUSPENDED else None


def queued_actions(actions: Iterable[Action], existing_attempts: Iterable[int]) -> tuple[Action, ...]:
    """The decision's child actions for a queued job: a new attempt's Job is created suspended (Kueue unsuspends it
    on admission), an existing Job's `suspend` is never written (Kueue's to set)."""
    existing = set(existing_attempts)
    out: list[Action] = []
    for action in actions:
        if isinstance(action, EnsureJob):
            if action.attempt in existing:
                continue
            action = EnsureJob(action.attempt, suspend=True)
        out.append(action)
    return tuple(out)


def mirror(state: QueueState, decision: Decision, previous_reason: str = "") -> Decision:
    """The decision as the LLMJob reports it while queued: Pending with the Workload's reason until Kueue admits it;
    once admitted, the decision itself plus Admitted=True. An Event when the reason changes (`previous_reason`: the
    reason of the Admitted condition the status has now)."""
    if decision.phase in NOT_MIRRORED:
        return decision
    event: tuple[Event, ...] = () if previous_reason == state.reason else (
        Event("Normal", state.reason, state.message),)
    admitted = Condition(cond.QUEUE_ADMITTED, "True" if state.admitted else "False", state.reason, state.message)
    if state.admitted:
        return replace(decision, conditions=(*decision.conditions, admitted), events=(*decision.events, *event))
    kept: Sequence[Condition] = [c for c in decision.conditions if c.type != cond.RUNNING]
    return replace(decision, phase=Phase.PENDING, message=state.message, workers_ready=0, events=event,
                   conditions=(Condition(cond.RUNNING, "False", state.reason, state.message), *kept, admitted))
