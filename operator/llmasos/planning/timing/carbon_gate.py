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

from llmasos.api.clock import format_instant, parse_instant
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
    plan: dict[str, Any] | None
    announce: bool = False  # a new or moved deferral worth an Event
    resume_at: str = ""  # a started job held between segments: when its next segment starts

    @property
    def start_at(self) -> str:
        """When a held job runs next: the planned start, or for a started job the next segment's start."""
        return self.resume_at or str((self.plan or {}).get("startAt", ""))

    @property
    def deferral(self) -> Hold | None:
        """The hold as a value (None when the job may run)."""
        if not self.hold:
            return None
        plan = self.plan or {}
        saving = plan.get("expectedSavingsPercent")
        reason = str(plan.get("reason") or "")
        return Hold(self.start_at, None if saving is None else float(saving),
                    reason if reason.startswith("moved:") else "")


def plan_status(plan: Plan, source: str, degraded: bool, message: str) -> dict[str, Any]:
    """status.plan: the planner's dict plus where the data came from."""
    out = plan.to_dict()
    out["source"] = source
    out["degraded"] = degraded
    out["sourceMessage"] = message
    return out


def keep_baseline(plan: dict[str, Any], previous: Mapping[str, Any] | None) -> dict[str, Any]:
    """Savings stay measured against running at submission: re-plans keep the first plan's run-now intensity
    (later re-plans would otherwise compare with "now", which drifts into the window)."""
    if previous and previous.get("runNowIntensity") is not None:
        run_now, expected = float(previous["runNowIntensity"]), plan.get("expectedIntensity")
        plan = {**plan, "runNowIntensity": run_now}
        if expected is not None and run_now:
            plan["expectedSavingsPercent"] = round(100.0 * (run_now - float(expected)) / run_now, 1)
    return plan


def gate_before_start(plan: dict[str, Any], previous: Mapping[str, Any] | None, now: datetime) -> Gate:
    """Hold while now < startAt, keeping the savings baseline of the first plan (`keep_baseline`)."""
    plan = keep_baseline(plan, previous)
    start = parse_instant(str(plan["startAt"]))
    hold = now < start
    moved = not previous or previous.get("startAt") != plan["startAt"]
    return Gate(hold=hold, plan=plan, announce=hold and moved)


def gate_after_start(previous: Mapping[str, Any] | None, interruptible: bool, now: datetime,
                     held_until: str = "") -> Gate:
    """Follow the plan the job started with: run inside a segment, hold between segments, never hold forever.

    A hold says when the next segment starts (`resume_at`); it is announced (an Event) when the job is newly held
    or its resume time moved, i.e. when it differs from `held_until`, the resume time of the hold in force ("" when
    the job was not held)."""
    if not previous or not interruptible:
        return Gate(hold=False, plan=dict(previous) if previous else None)
    segments = [(parse_instant(str(s["start"])), parse_instant(str(s["end"]))) for s in previous.get("segments", [])]
    inside = any(start <= now < end for start, end in segments)
    later = sorted(start for start, _ in segments if start > now)
    if inside or not later:
        return Gate(hold=False, plan=dict(previous))
    resume = format_instant(later[0])
    return Gate(hold=True, plan=dict(previous), announce=resume != held_until, resume_at=resume)

