"""Whether an LLMJob may run now, from its carbon plan (pure): the gate between planning and the lifecycle.

Before a job starts, every pass re-plans on the freshest forecast (so a newer forecast moves the window) and holds
the job while `now < plan.startAt`; the planner never puts the start after the latest start, so a job starts in
time even on a flat fallback forecast. Once a job has started, a non-interruptible job runs to the end; an
interruptible one follows the segments of its plan (suspended between them, `gate_after_start`), re-planned on the
run time it still owes when a newer forecast arrives or a boundary is reached (`segment_gate.py`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from llmasos.api.clock import format_instant
from llmasos.api.conditions import Condition
from llmasos.api.status import PlanStatus
from llmasos.planning.timing.carbon_window import Plan


@dataclass(frozen=True)
class Hold:
    """The carbon plan says "not now": until when, the saving it expects, and the fleet planner's reason when it moved
    the job. A value the lifecycle decides on; `message` renders it for status and the Deferred Event."""

    until: str
    saving_percent: float | None = None
    moved: str = ""  # "moved: ..." when the pool's plan moved the job from its own best window

    @property
    def message(self) -> str:
        text = f"deferred until {self.until}"
        if self.saving_percent is not None:
            text += f", expected to save {self.saving_percent:.0f}%"
        return text + (f" ({self.moved})" if self.moved else "")


@dataclass(frozen=True)
class Gate:
    hold: bool
    plan: PlanStatus | None  # status.plan as this pass leaves it
    announce: bool = False  # a new or moved deferral worth an Event
    resume_at: str = ""  # a started job held between segments: when its next segment starts
    at_risk: Condition | None = None  # DeadlineAtRisk, for a job planned with the other jobs of its pool

    @property
    def start_at(self) -> str:
        """When a held job runs next: the planned start, or for a started job the next segment's start."""
        return self.resume_at or (str(self.plan.get("startAt", "")) if self.plan is not None else "")

    @property
    def deferral(self) -> Hold | None:
        """The hold as a value (None when the job may run)."""
        if not self.hold:
            return None
        saving = self.plan.expected_savings_percent if self.plan is not None else None
        reason = self.plan.reason if self.plan is not None else ""
        return Hold(self.start_at, saving, reason if reason.startswith("moved:") else "")


def plan_status(plan: Plan, source: str, degraded: bool, message: str) -> PlanStatus:
    """status.plan: the planner's plan plus where the data came from."""
    return PlanStatus({**plan.to_dict(), "source": source, "degraded": degraded, "sourceMessage": message})


def keep_baseline(plan: PlanStatus, previous: PlanStatus | None) -> PlanStatus:
    """Savings stay measured against running at submission: re-plans keep the first plan's run-now intensity
    (later re-plans would otherwise compare with "now", which drifts into the window)."""
    if previous is None or previous.run_now_intensity is None:
        return plan
    run_now, expected = previous.run_now_intensity, plan.expected_intensity
    if expected is not None and run_now:
        return plan.updated(runNowIntensity=run_now,
                            expectedSavingsPercent=round(100.0 * (run_now - expected) / run_now, 1))
    return plan.updated(runNowIntensity=run_now)


def gate_before_start(plan: PlanStatus, previous: Mapping[str, Any] | None, now: datetime) -> Gate:
    """Hold while now < startAt, keeping the savings baseline of the first plan (`keep_baseline`). `previous` is the
    plan in force (status.plan, read once: a PlanStatus or its JSON)."""
    before = PlanStatus.read(previous)
    plan = keep_baseline(plan, before)
    if plan.start_at is None:
        raise ValueError("a plan without startAt")
    hold = now < plan.start_at
    moved = before is None or before.start_at != plan.start_at
    return Gate(hold=hold, plan=plan, announce=hold and moved)


def gate_after_start(previous: Mapping[str, Any] | None, interruptible: bool, now: datetime,
                     held_until: str = "") -> Gate:
    """Follow the plan the job started with: run inside a segment, hold between segments, never hold forever.

    A hold says when the next segment starts (`resume_at`); it is announced (an Event) when the job is newly held
    or its resume time moved, i.e. when it differs from `held_until`, the resume time of the hold in force ("" when
    the job was not held)."""
    plan = PlanStatus.read(previous)
    if plan is None or not interruptible:
        return Gate(hold=False, plan=plan)
    inside = any(seg.start <= now < seg.end for seg in plan.segments)
    later = sorted(seg.start for seg in plan.segments if seg.start > now)
    if inside or not later:
        return Gate(hold=False, plan=plan)
    resume = format_instant(later[0])
    return Gate(hold=True, plan=plan, announce=resume != held_until, resume_at=resume)
