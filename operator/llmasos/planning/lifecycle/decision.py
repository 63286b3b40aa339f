"""Decide an LLMJob's phase, conditions and the actions that bring its children in line. Pure and level-based.

The same decision runs for create, update, resume, timers and child events: given the spec, the previous status
and what the child Jobs look like now, it says which children must exist (and suspended or not), which must go,
and what the status should read. Terminal phases never regress. Restarts of the whole worker group are counted
by the attempt number in the child Job's name, so an operator restart cannot lose or repeat one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from llmasos.api import conditions as cond
from llmasos.api.conditions import Condition
from llmasos.api.phase import TERMINAL, Phase
from llmasos.api.spec import LLMJobSpec
from llmasos.planning.timing.carbon_gate import Hold

JOB_KIND, RAYJOB_KIND = "Job", "RayJob"  # the kinds of child an attempt can be (cluster/builders.py, rayjob.py)


@dataclass(frozen=True)
class ObservedJob:
    """A child of one attempt as seen in the cluster: a batch/v1 Job, or a ray.io/v1 RayJob (`kind`)."""

    name: str
    attempt: int
    suspended: bool = False
    active: int = 0
    ready: int = 0
    succeeded: int = 0
    failed: int = 0
    complete: bool = False
    failed_reason: str = ""
    failed_message: str = ""
    start_time: str = ""
    completion_time: str = ""
    pool: str = ""  # the node pool its pods are bound to (node affinity)
    gpus: int = 0  # GPUs its running pods hold together (parallelism x the pod template's GPU request)
    uid: str = ""  # its metadata.uid (Kueue labels the Workload of a queued Job with it)
    kind: str = JOB_KIND

    @property
    def holds_gpus(self) -> bool:
        """Its pods hold, or are about to hold, GPUs: not suspended and not finished."""
        return not self.suspended and not self.complete and not self.is_failed

    @property
    def is_failed(self) -> bool:
        return bool(self.failed_reason)


def placed_pool(observed: Sequence[ObservedJob]) -> str:
    """The pool the newest attempt's Job is bound to: the record of a placement whose status write never happened
    (an operator killed between creating the children and writing status must not place the job anew)."""
    newest = max(observed, key=lambda j: j.attempt, default=None)
    return newest.pool if newest is not None else ""


@dataclass(frozen=True)
class EnsureService:
    pass


@dataclass(frozen=True)
class EnsureJob:
    attempt: int
    suspend: bool


@dataclass(frozen=True)
class DeleteJob:
    name: str


Action = EnsureService | EnsureJob | DeleteJob


@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass(frozen=True, kw_only=True)
class Decision:
    phase: Phase
    conditions: tuple[Condition, ...] = ()
    message: str = ""
    actions: tuple[Action, ...] = ()
    workers_ready: int = 0
    workers_total: int = 0
    attempt: int = 0
    job_name: str = ""
    start_time: str = ""
    completion_time: str = ""
    events: tuple[Event, ...] = field(default=())


def _finished(phase: Phase, reason: str, message: str, ok: bool) -> tuple[Condition, ...]:
    return (
        Condition(
            cond.SUCCEEDED,
            "True" if ok else "False",
            reason if ok else cond.NOT_FINISHED,
            message if ok else "the job failed",
        ),
        Condition(cond.FAILED, "False" if ok else "True", cond.JOB_COMPLETED if ok else reason, "" if ok else message),
        Condition(cond.RUNNING, "False", reason, f"the job is {phase.lower()}"),
    )


def _restart(current: ObservedJob, nxt: int, suspend: bool, stale: tuple[Action, ...], total: int, start: str,
             msg: str, reason: str) -> Decision:
    """A new attempt of the whole group. It is created before the current one is deleted: the highest attempt
    always exists. It is created suspended when the user suspended the job or the carbon plan holds it (an
    interruptible job between segments): its pods start only when the job may run."""
    restart: tuple[Action, ...] = (EnsureService(), EnsureJob(nxt, suspend), DeleteJob(current.name), *stale)
    return Decision(phase=Phase.PENDING, conditions=(Condition(cond.RUNNING, "False", cond.RESTARTING, msg),),
                    message=msg, actions=restart, workers_total=total, attempt=nxt, start_time=start,
                    events=(Event("Warning", reason, msg),))


def decide(
    spec: LLMJobSpec,
    previous_phase: str,
    jobs: list[ObservedJob],
    now: str,
    previous_attempt: int = 0,
    previous_start: str = "",
    hold: Hold | None = None,
    pool_lost: str = "",
) -> Decision:
    """What the LLMJob's status should be and which child actions are needed, from what is observed now.

    `hold` (a value; `Hold.message` renders it) means the carbon plan says "not now": no children are created, and an
    existing Job (an interruptible one between segments) is suspended, with phase Deferred. `pool_lost` names the
    node pool the current Job is bound to when that pool no longer has nodes (and the job was placed on another one):
    the whole group restarts there as a new attempt, within backoffLimit, like a failed worker.
    """
    total = spec.parallelism.nodes
    current = max(jobs, key=lambda j: j.attempt) if jobs else None
    attempt = max(previous_attempt, current.attempt if current else 0)
    stale: tuple[Action, ...] = tuple(DeleteJob(j.name) for j in jobs if current and j.attempt < current.attempt)
    start = previous_start or (current.start_time if current else "")

    current_name = current.name if current else ""
    paused = spec.suspend or hold is not None  # a new attempt is created suspended
    if previous_phase in TERMINAL:
        return Decision(phase=Phase(previous_phase), actions=stale, workers_total=total, attempt=attempt,
                        job_name=current_name, start_time=start)

    if current and current.complete:
        msg = f"all {total} worker(s) finished"
        return Decision(
            phase=Phase.SUCCEEDED,
            conditions=_finished(Phase.SUCCEEDED, cond.JOB_COMPLETED, msg, True),
            message=msg,
            actions=stale,
            workers_total=total,
            attempt=attempt,
            job_name=current.name,
            start_time=start,
            completion_time=current.completion_time or now,
            events=(Event("Normal", cond.JOB_COMPLETED, msg),),
        )

    if current and (current.is_failed or pool_lost):
        failed_job = current.name

        def failed(reason: str, msg: str) -> Decision:
            return Decision(phase=Phase.FAILED, conditions=_finished(Phase.FAILED, reason, msg, False), message=msg,
                            actions=stale, workers_total=total, attempt=attempt, job_name=failed_job,
                            start_time=start, completion_time=now, events=(Event("Warning", reason, msg),))

        if not current.is_failed:
            lost = f"node pool {pool_lost} has no nodes left"
            if current.attempt >= spec.backoff_limit:
                return failed(cond.NODE_POOL_LOST, f"{lost} after {current.attempt + 1} attempt(s)")
            nxt = current.attempt + 1
            msg = f"{lost}; restarting the whole worker group on another pool, attempt {nxt} of {spec.backoff_limit}"
            return _restart(current, nxt, paused, stale, total, start, msg, cond.NODE_POOL_LOST)

        if current.failed_reason == "DeadlineExceeded":
            msg = f"attempt {current.attempt} exceeded maxRuntime: {current.failed_message}".rstrip(": ")
            return failed(cond.MAX_RUNTIME_EXCEEDED, msg)
        if current.attempt < spec.backoff_limit:
            nxt = current.attempt + 1
            msg = (
                f"a worker failed ({current.failed_reason}: {current.failed_message}); restarting the whole "
                f"worker group, attempt {nxt} of {spec.backoff_limit}"
            )
            return _restart(current, nxt, paused, stale, total, start, msg, cond.WORKER_FAILED)
        msg = (
            f"a worker failed ({current.failed_reason}: {current.failed_message}) after "
            f"{current.attempt + 1} attempt(s)"
        )
        return failed(cond.WORKER_FAILED, msg)

    if spec.suspend:
        pause: tuple[Action, ...] = (*((EnsureJob(attempt, True),) if current else ()), *stale)
        msg = "suspended by spec.suspend; its pods are removed until it is resumed"
        events = () if previous_phase == Phase.SUSPENDED else (Event("Normal", cond.SUSPENDED_BY_USER, msg),)
        return Decision(
            phase=Phase.SUSPENDED,
            conditions=(
                Condition(cond.SUSPENDED, "True", cond.SUSPENDED_BY_USER, msg),
                Condition(cond.RUNNING, "False", cond.SUSPENDED_BY_USER, msg),
            ),
            message=msg,
            actions=pause,
            workers_total=total,
            attempt=attempt,
            job_name=current_name,
            start_time=start,
            events=events,
        )

    if hold is not None:
        why = hold.message
        deferred = (Condition(cond.DEFERRED, "True", cond.WAITING_FOR_WINDOW, why),
                    Condition(cond.RUNNING, "False", cond.WAITING_FOR_WINDOW, why))
        held: tuple[Action, ...] = (*((EnsureJob(attempt, True),) if current else ()), *stale)
        return Decision(phase=Phase.DEFERRED, conditions=deferred, message=why, actions=held, workers_total=total,
                        attempt=attempt, job_name=current_name, start_time=start)

    ready = current.ready if current and not current.suspended else 0
    actions: tuple[Action, ...] = (EnsureService(), EnsureJob(attempt, False), *stale)
    carbon_window = (
        (Condition(cond.DEFERRED, "False", cond.WINDOW_REACHED, "running in its planned window"),)
        if spec.carbon.policy != "immediate"
        else ()
    )
    not_suspended = Condition(cond.SUSPENDED, "False", cond.NOT_SUSPENDED, "")
    # Workers that already finished successfully while the Job is not yet Complete: the group ran, it is finishing.
    # So is a running group whose pods are all still active but no longer Ready: a Job's pods restart nothing and have
    # no readiness probe, so their containers have ended, and the Job counts them as succeeded or failed a moment
    # later (seen on the real node: active 2, ready 0, succeeded 0, then succeeded 2). Not "waiting to start".
    ended = bool(current and current.kind == JOB_KIND and current.active >= total)
    finishing = bool(current and not current.suspended and (current.succeeded > 0 or ended))
    running = ready >= total or (finishing and previous_phase == Phase.RUNNING)
    if running:
        msg = f"{ready}/{total} worker(s) " + ("running" if ready >= total else "still running; the others have ended")
        events = () if previous_phase == Phase.RUNNING else (Event("Normal", cond.WORKERS_RUNNING, msg),)
    else:
        msg = f"{ready}/{total} worker(s) ready; waiting for the whole group to start"
        events = () if previous_phase in (Phase.PENDING, "") else (Event("Normal", cond.WORKERS_STARTING, msg),)
    # startTime is "when the first worker started": it is reported with the move to Running (from the Job's own
    # startTime), not while the gang is still being scheduled (which would also cost a status write of its own).
    return Decision(
        phase=Phase.RUNNING if running else Phase.PENDING,
        conditions=(Condition(cond.RUNNING, "True" if running else "False",
                              cond.WORKERS_RUNNING if running else cond.WORKERS_STARTING, msg),
                    not_suspended, *carbon_window),
        message=msg,
        actions=actions,
        workers_ready=ready,
        workers_total=total,
        attempt=attempt,
        job_name=current_name,
        start_time=(start or now) if running else previous_start,
        events=events,
    )
