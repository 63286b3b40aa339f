"""How much run time a started interruptible job has served, from its child Job's runs (pure).

Re-planning a started job needs the run time it still owes, and that must come from what actually ran, not from the
plan: pods start late, a user may suspend the job, a segment may be extended. The ledger lives in `status.plan`
(`servedSeconds`, `runningSince`, `suspendedAt`) and changes only when a run opens or closes, so it costs no status
write of its own. A run opens when the child Job is seen running (not suspended), at the Job's `startTime` (which
Kubernetes sets when the Job starts or resumes) unless that predates the last suspension, then at the pass's time;
it closes when the operator holds the job between segments, or when the Job is seen suspended (spec.suspend).
Errors lean towards counting too little: a job that believes it owes more runs more, never past its deadline.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from llmasos.planning.forecast import format_instant, parse_instant


@dataclass(frozen=True)
class RunState:
    """The child Job as seen this pass: whether one exists, whether it is suspended, and its startTime."""

    exists: bool = False
    suspended: bool = False
    start_time: datetime | None = None


@dataclass(frozen=True)
class Ledger:
    served: timedelta = timedelta(0)  # closed runs
    running_since: datetime | None = None  # the open run's start; None between runs
    suspended_at: datetime | None = None  # when the last run closed

    @property
    def running(self) -> bool:
        return self.running_since is not None

    def served_at(self, now: datetime) -> timedelta:
        """Closed runs plus the open run up to `now`."""
        open_run = max(now - self.running_since, timedelta(0)) if self.running_since is not None else timedelta(0)
        return self.served + open_run

    def run_age(self, now: datetime) -> timedelta:
        """How long the open run has lasted (zero when none is open)."""
        return max(now - self.running_since, timedelta(0)) if self.running_since is not None else timedelta(0)

    def observe(self, job: RunState, now: datetime) -> Ledger:
        """Open a run when the Job is seen running, close it when the Job is seen suspended (or gone)."""
        if not self.running and job.exists and not job.suspended:
            since = job.start_time
            if since is None or since > now or (self.suspended_at is not None and since < self.suspended_at):
                since = now  # not (yet) reset by the Job controller for this run: count from now, never before
            return Ledger(self.served, since, self.suspended_at)
        if self.running and (not job.exists or job.suspended):
            return self.close(now)
        return self

    def close(self, now: datetime) -> Ledger:
        """End the open run at `now` (the pass that suspends the job)."""
        if self.running_since is None:
            return self
        return Ledger(self.served_at(now), None, now)

    def to_fields(self) -> dict[str, Any]:
        """The status.plan fields (whole seconds for times, like the rest of status)."""
        return {
            "servedSeconds": round(self.served.total_seconds(), 1),
            "runningSince": format_instant(self.running_since) if self.running_since else None,
            "suspendedAt": format_instant(self.suspended_at) if self.suspended_at else None,
        }


def ledger_from(plan: Mapping[str, Any] | None) -> Ledger:
    """The ledger kept in status.plan; an empty one for a plan made before the job started."""
    plan = plan or {}

    def instant(key: str) -> datetime | None:
        text = plan.get(key)
        return parse_instant(str(text), f"status.plan.{key}") if text else None

    served = float(plan.get("servedSeconds") or 0.0)
    return Ledger(timedelta(seconds=max(served, 0.0)), instant("runningSince"), instant("suspendedAt"))
