"""Condition types, CamelCase reasons and pure helpers that keep metav1.Condition semantics.

One module for every reason string, so docs, tests and alerts can rely on them. `set_condition` keeps
lastTransitionTime when the status does not flip (the Kubernetes convention).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Condition types
SCHEDULED = "Scheduled"
DEFERRED = "Deferred"
RUNNING = "Running"
SUSPENDED = "Suspended"
SUCCEEDED = "Succeeded"
FAILED = "Failed"
CARBON_DATA_DEGRADED = "CarbonDataDegraded"
CARBON_BUDGET = "CarbonBudget"
WORKERS_READY = "WorkersReady"
CARBON_DATA_REPLAY = "CarbonDataReplay"
QUEUE_ADMITTED = "Admitted"  # an LLMJob queued by Kueue: its Workload's admission (planning/lifecycle/queueing.py)
DEADLINE_AT_RISK = "DeadlineAtRisk"  # a deferred job in a shared pool (planning/timing/fleet_status.py)

# Reasons
POOL_SELECTED = "PoolSelected"
NO_CAPACITY_BEFORE_DEADLINE = "NoCapacityBeforeDeadline"
DEADLINE_ON_TRACK = "DeadlineOnTrack"
UNKNOWN_NODE_POOL = "UnknownNodePool"
INSUFFICIENT_GPUS = "InsufficientGPUs"
INVALID_SPEC = "InvalidSpec"
WAITING_FOR_WINDOW = "WaitingForLowCarbonWindow"
WINDOW_REACHED = "PlannedWindowReached"
CARBON_SOURCES_DOWN = "CarbonSourcesUnavailable"
BUDGET_EXCEEDED = "CarbonBudgetExceeded"
BUDGET_REJECTED = "CarbonBudgetExceededRejected"
BUDGET_OK = "WithinCarbonBudget"
WORKERS_STARTING = "WorkersStarting"
WORKERS_RUNNING = "WorkersRunning"
SUSPENDED_BY_USER = "SuspendedByUser"
SUSPENDED_FOR_CARBON = "SuspendedForCarbon"
NOT_SUSPENDED = "NotSuspended"
JOB_COMPLETED = "JobCompleted"
WORKER_FAILED = "WorkerFailed"
MAX_RUNTIME_EXCEEDED = "MaxRuntimeExceeded"
RESTARTING = "RestartingWorkerGroup"
NODE_POOL_LOST = "NodePoolLost"
NOT_FINISHED = "NotFinished"
CARBON_SOURCE_FALLBACK = "CarbonSourceFallback"
CARBON_SOURCE_OK = "CarbonSourceOK"
CARBON_DATA_IS_REPLAY = "CarbonDataIsReplay"
CARBON_DATA_IS_FORECAST = "CarbonDataIsForecast"
# WorkersReady=False also carries the kubelet's own container reasons (ErrImageNeverPull, ImagePullBackOff,
# CreateContainerConfigError, CrashLoopBackOff, ...): see planning/lifecycle/worker_health.py.
WORKER_UNSCHEDULABLE = "WorkersUnschedulable"
# An LLMJob queued by Kueue (spec.queueName), from its child Job's Workload (planning/lifecycle/queueing.py).
NOT_QUEUED_YET = "NotQueuedYet"  # no child Job yet (held for its carbon window, or about to be created)
QUEUED = "Queued"  # the child Job exists; Kueue has not made its Workload yet
WAITING_FOR_QUOTA = "WaitingForQuota"
WAITING_FOR_ADMISSION_CHECKS = "WaitingForAdmissionChecks"
EVICTED_BY_KUEUE = "EvictedByKueue"
WORKLOAD_DEACTIVATED = "WorkloadDeactivated"
ADMITTED_BY_KUEUE = "AdmittedByKueue"


@dataclass(frozen=True)
class Condition:
    type: str
    status: str  # "True" | "False" | "Unknown"
    reason: str
    message: str = ""


def set_condition(existing: list[dict[str, Any]], cond: Condition, now: str, generation: int) -> list[dict[str, Any]]:
    """Return a new condition list with `cond` set; lastTransitionTime changes only when status flips."""
    out: list[dict[str, Any]] = []
    found = False
    for old in existing:
        if old.get("type") != cond.type:
            out.append(old)
            continue
        found = True
        flipped = old.get("status") != cond.status
        out.append({
            "type": cond.type, "status": cond.status, "reason": cond.reason, "message": cond.message,
            "lastTransitionTime": now if flipped else old.get("lastTransitionTime", now),
            "observedGeneration": generation,
        })
    if not found:
        out.append({"type": cond.type, "status": cond.status, "reason": cond.reason, "message": cond.message,
                    "lastTransitionTime": now, "observedGeneration": generation})
    return out


def get_condition(conditions: list[dict[str, Any]], type_: str) -> dict[str, Any] | None:
    return next((c for c in conditions if c.get("type") == type_), None)


def is_true(conditions: list[dict[str, Any]], type_: str) -> bool:
    cond = get_condition(conditions, type_)
    return cond is not None and cond.get("status") == "True"


def carbon_replay_condition(replay: bool, source: str, zone: str) -> Condition:
    """CarbonDataReplay: True (a Warning: post an Event of type Warning with this reason and message) when the plan
    was made on the shipped trace, i.e. 2020-21 history replayed as today (`Plan.replay`, status.plan.dataKind ==
    "replay"); False once a real forecast (Electricity Maps) or the static average is used."""
    if replay:
        return Condition(CARBON_DATA_REPLAY, "True", CARBON_DATA_IS_REPLAY,
                         f"carbon intensity for {zone or 'the zone'} is a historical replay, not a forecast: the "
                         f"{source} source shifts 2020-21 hourly data to today, so the chosen window and the expected "
                         "savings are illustrative. Set an Electricity Maps token (docs/carbon.md) for real forecasts")
    return Condition(CARBON_DATA_REPLAY, "False", CARBON_DATA_IS_FORECAST,
                     f"carbon intensity for {zone or 'the zone'} comes from {source}, not a replay")
