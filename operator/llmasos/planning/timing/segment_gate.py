"""The gate of a started interruptible job: follow its plan, and re-plan the run time it still owes (pure).

A started interruptible job's later segments were chosen on the forecast of the moment they were planned, up to days
ahead, and forecast error grows with lead time. So the operator re-plans the time still owed (`replan.py`,
model-predictive control) whenever a newer forecast arrives, and where the plan would suspend the running job (the
status changes there anyway, and the served time is then exact). Otherwise it follows the plan, so a pass that
changes nothing writes nothing: a resume, a gang still starting, or a job suspended by the user (spec.suspend, then
never re-planned) keeps the plan in force. The rules:

* run time owed = expected duration - run time served (`served.py`, from the child Job's runs, not the plan), or
  the workers' own remaining run time at their recent pace (`status.progress`) where that is longer: a job whose
  `expectedDuration` was too short is planned on what it really still needs, and one that runs faster than
  expected keeps the room its owner asked for. Once nothing is owed the job is never held again (it runs to
  completion);
* the workers' pace also re-plans: when it says more is owed than the plan in force still holds (by over a minute
  and a tenth), the time owed is planned again, so a later segment is not too short to finish by the deadline;
* `maxSegments` counts the runs made (`served.py`): a re-plan gets only the segments left (the open run, if the
  plan continues it, is one of them), and once every segment is used the job is never held again;
* the re-plan is `plan_start` on the time owed, from now to the deadline: it ends by `deadline - safetyMargin`
  whenever that is still possible, and otherwise says "run now", so re-planning never costs the deadline;
* a run younger than `minSegment` is not suspended (a checkpoint costs time; running longer never hurts the
  deadline), and the planner makes no segment shorter than `minSegment` unless it is the only one left;
* a hold says when the job resumes, and is announced (an Event) when it is new or moved, as before the start.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from llmasos.api.clock import format_instant
from llmasos.api.status import PlanStatus
from llmasos.planning.timing.carbon_gate import Gate, gate_after_start, keep_baseline, plan_status
from llmasos.planning.timing.carbon_window import CarbonJob, Plan
from llmasos.planning.timing.forecast import Forecast
from llmasos.planning.timing.replan import replan_remaining, replan_within_segments
from llmasos.planning.timing.served import RunLedger, RunState, ledger_from

PACE_SLACK = timedelta(minutes=1)  # how much longer than the plan in force the workers' pace must say, to re-plan


def is_newer(previous: Mapping[str, Any] | None, forecast: Forecast, source: str) -> bool:
    """The forecast (or the source answering) differs from the one the plan in force was made on."""
    issued = format_instant(forecast.issued_at) if forecast.issued_at else None
    plan = PlanStatus.read(previous)
    made_on: tuple[str | None, str | None] = (plan.forecast_issued_at, plan.source) if plan else (None, None)
    return made_on != (issued, source)


def gate_interruptible(
    previous: Mapping[str, Any] | None,
    job: CarbonJob,
    run: RunState,
    forecast: Forecast,
    source: tuple[str, bool, str],
    now: datetime,
    held_until: str = "",
    *,
    user_suspended: bool = False,
    paced: timedelta | None = None,
) -> Gate:
    """Hold or run a started interruptible job; the returned plan carries the served-time ledger.

    `source` is (name, degraded, message) of the forecast's answer; `held_until` is the resume time of the hold in
    force ("" when the job is not held), so that only a new or moved hold is announced. `user_suspended` is the
    LLMJob's spec.suspend: the lifecycle keeps the Job suspended whatever the gate says, so the plan in force is
    followed without re-planning (a re-plan from "now" on every pass would rewrite status.plan on every resync).
    `paced` is the run time the running workers still need at their recent pace (None: no live reading).
    """
    previous = PlanStatus.read(previous)  # read once: every rule below uses the typed plan
    ledger = ledger_from(previous).observe(run, now, paced)
    by_pace = ledger.paced_owed_at(now, paced if ledger.running else None)
    owed = max(job.duration - ledger.served_at(now), by_pace or timedelta(0))
    follow = gate_after_start(previous, True, now, held_until)
    limit_used = job.max_segments is not None and ledger.runs >= job.max_segments
    if owed <= timedelta(0) or limit_used or user_suspended:
        # Nothing owed, or maxSegments used: never held again (it runs to completion). Suspended by the user: the
        # plan in force stands until the user resumes the job.
        return _with(Gate(hold=False, plan=follow.plan), ledger)
    suspends = follow.hold and ledger.running  # the plan would suspend a running job: a boundary, re-plan there
    if not suspends and not is_newer(previous, forecast, source[0]) and not falls_short(previous, by_pace, now):
        return _with(follow, ledger)
    plan = _replan(job, ledger, owed, forecast, now)
    fresh = keep_baseline(plan_status(plan, *source), previous)
    start = fresh.start_at
    assert start is not None  # the planner always says when
    hold = now < start
    if hold and ledger.running and ledger.run_age(now) < job.min_segment:
        # Too young to suspend: keep running on the plan in force and re-plan at the next pass.
        return _with(Gate(hold=False, plan=previous or fresh), ledger)
    if not hold:
        return _with(Gate(hold=False, plan=fresh), ledger)
    resume = format_instant(start)
    return _with(Gate(hold=True, plan=fresh, announce=resume != held_until, resume_at=resume),
                 ledger.close(now, paced))


def falls_short(plan: PlanStatus | None, by_pace: timedelta | None, now: datetime) -> bool:
    """The workers' pace says more is owed than the plan's segments still hold from `now`, by more than
    `PACE_SLACK` and a tenth (so a pace that drifts a little does not re-plan, and rewrite status, every pass)."""
    if plan is None or not plan.segments or by_pace is None:
        return False
    left = sum((max(s.end - max(s.start, now), timedelta(0)) for s in plan.segments), timedelta(0))
    return by_pace > left + max(PACE_SLACK, left / 10)


def _replan(job: CarbonJob, ledger: RunLedger, owed: timedelta, forecast: Forecast, now: datetime) -> Plan:
    """The plan for the time `owed`, with no more segments than maxSegments leaves (the gate never re-plans once
    the limit is used); the job's duration is stretched where the workers' pace owes more than it."""
    served = ledger.served_at(now)
    job = replace(job, duration=max(job.duration, served + owed))
    if job.max_segments is None:
        plan = replan_remaining(job, served, forecast, now)
    else:
        plan = replan_within_segments(job, served, forecast, now, job.max_segments - ledger.runs, ledger.running)
    assert plan is not None  # something is owed
    return plan


def _with(gate: Gate, ledger: RunLedger) -> Gate:
    plan = gate.plan.updated(**ledger.to_fields()) if gate.plan is not None else PlanStatus(ledger.to_fields())
    return Gate(hold=gate.hold, plan=plan, announce=gate.announce, resume_at=gate.resume_at)
