"""Condition types, CamelCase reasons, and `status.conditions` as a typed value with metav1.Condition semantics.

One module for every reason string, so docs, tests and alerts can rely on them. A pass reads the conditions once
(`Conditions.read`), sets what it found (`Conditions.set` keeps lastTransitionTime when the status does not flip, the
Kubernetes convention) and renders them once (`Conditions.to_status`), as the same JSON list as before.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

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
DEADLINE_AT_RISK = "DeadlineAtRisk"  # a deadline the plan cannot keep (planning/timing/fleet_status.py)

# Reasons
POOL_SELECTED = "PoolSelected"
NO_CAPACITY_BEFORE_DEADLINE = "NoCapacityBeforeDeadline"
DEADLINE_ON_TRACK = "DeadlineOnTrack"
DEADLINE_TOO_CLOSE = "DeadlineTooClose"  # the run time alone does not fit before the deadline
DEADLINE_MET = "DeadlineMet"  # a job at risk finished in time after all
DEADLINE_MISSED = "DeadlineMissed"  # not finished by its deadline (still running, or finished late)
PROJECTED_LATE = "ProjectedLate"  # running at a pace that ends after its deadline (the workers' remaining run time)
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


@dataclass(frozen=True)
class ConditionStatus:
    """One entry of status.conditions as written (metav1.Condition). Fields an older writer left out are None and
    stay out; keys this version does not know are kept (`extra`), so `read(x).to_status() == x`."""

    type: str
    status: str | None = None
    reason: str | None = None
    message: str | None = None
    last_transition_time: str | None = None  # RFC 3339, as written; copied, never computed on
    observed_generation: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    KEYS: ClassVar[dict[str, str]] = {"type": "type", "status": "status", "reason": "reason", "message": "message",
                                      "last_transition_time": "lastTransitionTime",
                                      "observed_generation": "observedGeneration"}

    @classmethod
    def read(cls, raw: Mapping[str, Any]) -> ConditionStatus:
        def text(key: str) -> str | None:
            value = raw.get(key)
            return None if value is None else str(value)

        generation = raw.get("observedGeneration")
        return cls(str(raw.get("type", "")), text("status"), text("reason"), text("message"),
                   text("lastTransitionTime"), None if generation is None else int(generation),
                   {k: v for k, v in raw.items() if k not in cls.KEYS.values()})

    def to_status(self) -> dict[str, Any]:
        out = {key: getattr(self, name) for name, key in self.KEYS.items() if getattr(self, name) is not None}
        out.update(self.extra)
        return out


@dataclass(frozen=True)
class Conditions:
    """status.conditions, in the order they were first set."""

    items: tuple[ConditionStatus, ...] = ()

    @classmethod
    def read(cls, raw: object) -> Conditions:
        """The conditions of a status (none when missing); entries that are not objects are dropped."""
        if isinstance(raw, Conditions):
            return raw
        if not isinstance(raw, list | tuple):
            return cls()
        return cls(tuple(ConditionStatus.read(c) for c in raw if isinstance(c, Mapping)))

    def set(self, cond: Condition, now: str, generation: int) -> Conditions:
        """These conditions with `cond` set; lastTransitionTime changes only when its status flips."""
        found = False
        out: list[ConditionStatus] = []
        for old in self.items:
            if old.type != cond.type:
                out.append(old)
                continue
            found = True
            flipped = old.status != cond.status
            out.append(ConditionStatus(cond.type, cond.status, cond.reason, cond.message,
                                       now if flipped else old.last_transition_time or now, generation))
        if not found:
            out.append(ConditionStatus(cond.type, cond.status, cond.reason, cond.message, now, generation))
        return Conditions(tuple(out))

    def get(self, type_: str) -> ConditionStatus | None:
        return next((c for c in self.items if c.type == type_), None)

    def is_true(self, type_: str) -> bool:
        found = self.get(type_)
        return found is not None and found.status == "True"

    def to_status(self) -> list[dict[str, Any]]:
        """The JSON list to write to status.conditions."""
        return [c.to_status() for c in self.items]

    def __iter__(self) -> Iterator[ConditionStatus]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


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
