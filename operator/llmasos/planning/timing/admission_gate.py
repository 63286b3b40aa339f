"""The carbon AdmissionCheck's decision for one Kueue workload: hold it (check Pending) or let it through (Ready).

Pure: the handler (handlers/admission_check.py) reads the job's annotations (api/kueue_timing.py), the zone of the
flavour Kueue assigned and that zone's forecast, and writes back what this returns. The planner is the LLMJobs'
one (`plan_start` with the ``deadline`` policy), so a Job behind the check starts in the same window an LLMJob with
the same deadline would.

The order of the rules, each a guarantee:

1. no timing asked for, or annotations that cannot be read: Ready now (a typo never blocks a queue; the message
   names the annotation);
2. the latest start has come (or the deadline cannot be met at all): Ready now; nothing is ever held past it;
3. no carbon data: Pending until the latest start, saying so (the fail-safe);
4. otherwise the lowest-carbon window before the deadline: Pending until it opens, then Ready.

A verdict carries when to look again (`recheck_at`): the window's start or the latest start, whichever is first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from llmasos.api.kueue_timing import AnnotationError, TimingRequest
from llmasos.planning.timing.carbon_window import CarbonJob, Plan, plan_start
from llmasos.planning.timing.forecast import Forecast, ensure_utc, format_instant

CheckState = Literal["Pending", "Ready"]

# Reasons (CamelCase, stable: tests, Events and metrics labels use them).
NOT_TIMED = "NotCarbonTimed"
INVALID_ANNOTATIONS = "InvalidAnnotations"
LATEST_START = "LatestStartReached"
DEADLINE_UNREACHABLE = "DeadlineUnreachable"
NO_CARBON_DATA = "CarbonDataUnavailable"
WAITING = "WaitingForLowCarbonWindow"
WINDOW_OPEN = "LowCarbonWindowOpen"


@dataclass(frozen=True)
class Verdict:
    """The check's state for the workload, the message users read on it, and when to decide again."""

    state: CheckState
    reason: str
    message: str
    recheck_at: datetime | None = None
    plan: Plan | None = None

    @property
    def expected_savings_percent(self) -> float | None:
        return self.plan.expected_savings_percent if self.plan is not None else None


def decide(request: TimingRequest | AnnotationError | None, forecast: Forecast | None, now: datetime,
           *, data_message: str = "") -> Verdict:
    """The verdict for a workload whose job asked for `request` (None: nothing; an AnnotationError: unreadable),
    given the zone's `forecast` (None when no source answered; `data_message` then says why)."""
    now = ensure_utc(now)
    if request is None:
        return Verdict("Ready", NOT_TIMED, "no llmasos.io/deadline or llmasos.io/max-delay: not carbon-timed")
    if isinstance(request, AnnotationError):
        return Verdict("Ready", INVALID_ANNOTATIONS, f"admitted without carbon timing: {request}")
    latest = request.latest_start
    if request.deadline <= now or latest < request.submitted_at:
        return Verdict("Ready", DEADLINE_UNREACHABLE,
                       f"deadline {format_instant(request.deadline)} cannot be met (expected duration "
                       f"{_hours(request.expected_duration)}): admitted now without carbon timing")
    if latest <= now:
        return Verdict("Ready", LATEST_START, f"latest start {format_instant(latest)} reached: admitted")
    if forecast is None or not forecast.points:
        why = f" ({data_message})" if data_message else ""
        return Verdict("Pending", NO_CARBON_DATA,
                       f"carbon data unavailable{why}: held until the latest start {format_instant(latest)} at most",
                       recheck_at=latest)
    job = CarbonJob(duration=request.expected_duration, earliest_start=request.submitted_at,
                    deadline=request.deadline, policy="deadline")
    plan = plan_start(job, forecast, now)
    start = plan.start_at
    savings = plan.expected_savings_percent
    saving = f"{savings:.0f}% below starting now" if savings is not None else "saving unknown"
    intensity = f"{plan.expected_intensity:.0f} g/kWh" if plan.expected_intensity is not None else "unknown intensity"
    if start <= now:
        return Verdict("Ready", WINDOW_OPEN, f"lowest-carbon window open ({intensity} in {forecast.zone}): admitted",
                       plan=plan)
    return Verdict("Pending", WAITING,
                   f"waiting for the lowest-carbon window at {format_instant(start)} in {forecast.zone} "
                   f"({intensity}, {saving}); latest start {format_instant(latest)}",
                   recheck_at=min(start, latest), plan=plan)


def _hours(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 3600:g}h"
