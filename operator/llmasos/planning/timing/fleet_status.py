"""The fleet an LLMJob competes with, read from the LLMJobs' own spec and status: restart-safe, no new store.

The operator keeps no ledger of who holds which GPUs: after a restart it must rebuild the fleet from what the API
server already holds. Each LLMJob's status says which pool it was given (`status.pool`), whether it started, and how
much run time it served (`status.plan`'s ledger, `served.py`); its spec says its gang and its carbon window. From
those, `fleet_inputs` derives what `plan_fleet` needs for one pool:

* not started (deferred, or not yet planned): a pending job, free to move within its own deadline;
* started, not interruptible: a reservation of its gang from now until the run time it still owes is served;
* started, interruptible: a pending job owing the rest of its run time (it may yield at the next boundary),
  except the open run's first `minSegment`, which is reserved (the gate never suspends a younger run);
* an `immediate` job that has not finished: a reservation from now for its expected duration (it never waits).

`deadline_condition` renders an assignment as the `DeadlineAtRisk` condition the issue asks for; a job planned
alone (nothing else in its pool) gets it from its own plan (`lone_deadline_condition`) when even a start at once
misses the deadline, so no job is silently late. `deadline_outcome` settles it from what happened, whatever was
planned: a job still unfinished at its deadline (it overran its expectedDuration, or waited for GPUs) is `True` /
`DeadlineMissed` from that instant, and a job that succeeds after its deadline says how late; before that, a
running job whose workers' remaining run time ends after its deadline is `True` / `ProjectedLate`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from llmasos.api import conditions as cond
from llmasos.api.conditions import Condition
from llmasos.planning.timing.carbon_window import CarbonJob, Plan
from llmasos.planning.timing.fleet_types import Assignment, FleetJob, Reservation
from llmasos.planning.timing.forecast import ensure_utc, format_instant
from llmasos.planning.timing.served import RunLedger

DEADLINE_AT_RISK = cond.DEADLINE_AT_RISK
REASON_NO_CAPACITY = cond.NO_CAPACITY_BEFORE_DEADLINE
REASON_ON_TRACK = cond.DEADLINE_ON_TRACK
REASON_TOO_CLOSE = cond.DEADLINE_TOO_CLOSE
REASON_MET = cond.DEADLINE_MET
REASON_MISSED = cond.DEADLINE_MISSED
REASON_PROJECTED_LATE = cond.PROJECTED_LATE
# A job projected late is on track again only when its projected end comes this much before the deadline.
PROJECTION_SLACK = timedelta(minutes=1)
# A started job past its expected duration still holds its GPUs: reserve them at least this long ahead.
OVERRUN_HOLD = timedelta(minutes=15)


@dataclass(frozen=True)
class Member:
    """One LLMJob of a pool as the fleet planner sees it; `key` is "namespace/name"."""

    key: str
    pool: str
    gpus: int
    job: CarbonJob
    started: bool
    ledger: RunLedger = field(default_factory=RunLedger)


def fleet_inputs(members: Iterable[Member], pool: str, now: datetime) -> tuple[list[FleetJob], list[Reservation]]:
    """(pending jobs, reservations) of `pool` at `now` (module docstring)."""
    now = ensure_utc(now)
    pending: list[FleetJob] = []
    reserved: list[Reservation] = []
    for m in members:
        if m.pool != pool:
            continue
        job = m.job
        left = job.duration - m.ledger.served_at(now)
        if job.policy == "immediate" or job.deadline is None:
            hold = job.duration if not m.started else max(left, OVERRUN_HOLD)
            reserved.append(Reservation(pool, now, now + hold, m.gpus))
        elif not m.started:
            deadline = job.deadline - job.safety_margin
            pending.append(_pending(m, job.duration, job.earliest_start, deadline))
        elif not job.interruptible:
            reserved.append(Reservation(pool, now, now + max(left, OVERRUN_HOLD), m.gpus))
        elif left > timedelta(0):
            young = job.min_segment - m.ledger.run_age(now) if m.ledger.running else timedelta(0)
            young = min(max(young, timedelta(0)), left)
            if young > timedelta(0):
                reserved.append(Reservation(pool, now, now + young, m.gpus))
            if left > young:
                pending.append(_pending(m, left - young, now + young, job.deadline - job.safety_margin))
    return pending, reserved


def _pending(m: Member, duration: timedelta, earliest: datetime, deadline: datetime) -> FleetJob:
    return FleetJob(
        m.key,
        m.gpus,
        (m.pool,),
        duration,
        earliest,
        deadline,
        interruptible=m.job.interruptible,
        min_segment=m.job.min_segment,
        max_segments=m.job.max_segments,
    )


def deadline_condition(assignment: Assignment) -> Condition:
    """`DeadlineAtRisk`: True with the reason and the earliest feasible end when no plan keeps the deadline."""
    if assignment.feasible:
        return Condition(DEADLINE_AT_RISK, "False", REASON_ON_TRACK, "planned to finish by its deadline")
    return Condition(DEADLINE_AT_RISK, "True", REASON_NO_CAPACITY, assignment.reason)


def lone_deadline_condition(plan: Plan) -> Condition | None:
    """`DeadlineAtRisk` from a job's own plan: True, with the earliest end, when its run time does not fit before its
    deadline even started at once (the plan then starts it at once); None when it fits."""
    if plan.feasible or not plan.segments:
        return None
    return Condition(DEADLINE_AT_RISK, "True", REASON_TOO_CLOSE,
                     f"{plan.reason}; earliest end {format_instant(plan.segments[-1].end)}")


def finished_deadline_condition(deadline: datetime | None, completed: datetime) -> Condition | None:
    """`DeadlineAtRisk` settled when a job succeeds: `False` / `DeadlineMet`, or `True` / `DeadlineMissed` with how
    late; None without a deadline."""
    if deadline is None:
        return None
    if completed <= deadline:
        return Condition(DEADLINE_AT_RISK, "False", REASON_MET,
                         f"finished at {format_instant(completed)}, by its deadline {format_instant(deadline)}")
    late = int((completed - deadline).total_seconds())
    return Condition(DEADLINE_AT_RISK, "True", REASON_MISSED,
                     f"finished at {format_instant(completed)}, {late} s after its deadline {format_instant(deadline)}")


def deadline_outcome(planned: Condition | None, deadline: datetime | None, now: datetime, *,
                     finished_at: datetime | None, flagged: bool, ended: bool,
                     projected_end: datetime | None = None, flagged_late: bool = False,
                     pauses: bool = False) -> Condition | None:
    """The `DeadlineAtRisk` to write this pass, from the plan's (`planned`, None: leave it as it is) and what
    happened: succeeded at `finished_at` -> met or missed (met written only when the job had the condition,
    `flagged`, so a job that was never at risk gains no condition); any other job that `ended` (failed, or no
    completion time known) keeps what it had; a job not finished after its deadline -> missed, whatever its plan
    said. Before the deadline, a running job whose workers' remaining run time ends after it (`projected_end`) is
    projected late unless its plan already says it is at risk; once projected late (`flagged_late`) it is on
    track again only when the projection ends `PROJECTION_SLACK` before the deadline, so a pace near the line does
    not flip the condition (and its Warning) at every reading. `pauses`: an interruptible job, whose projection is
    its earliest end (running without a pause), and the messages say so."""
    if deadline is None:
        return planned
    if finished_at is not None:
        settled = finished_deadline_condition(deadline, finished_at)
        return settled if flagged or (settled is not None and settled.status == "True") else planned
    if ended:
        return planned
    if ensure_utc(now) > deadline:
        return Condition(DEADLINE_AT_RISK, "True", REASON_MISSED,
                         f"not finished by its deadline {format_instant(deadline)}")
    if projected_end is None or (planned is not None and planned.status == "True"):
        return planned
    late = int((projected_end - deadline).total_seconds())
    pace = "at its workers' recent pace" + (" and without a pause" if pauses else "")
    if late > 0 or (flagged_late and projected_end > deadline - PROJECTION_SLACK):
        return Condition(DEADLINE_AT_RISK, "True", REASON_PROJECTED_LATE,
                         f"{pace} it finishes around {format_instant(projected_end)}, "
                         + (f"{late} s after its deadline " if late > 0 else "close to its deadline ")
                         + format_instant(deadline))
    if flagged_late:
        return Condition(DEADLINE_AT_RISK, "False", REASON_ON_TRACK,
                         f"{pace} it finishes around {format_instant(projected_end)}, by its "
                         f"deadline {format_instant(deadline)}")
    return planned
