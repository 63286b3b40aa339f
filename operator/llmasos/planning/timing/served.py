"""How much run time a started interruptible job has served, from its child Job's runs (pure).

Re-planning a started job needs the run time it still owes, and that must come from what actually ran, not from the
plan: pods start late, a user may suspend the job, a segment may be extended. The ledger lives in `status.plan`
(`servedSeconds`, `runningSince`, `suspendedAt`) and changes only when a run opens or closes, so it costs no status
write of its own. A run opens at the pass that sees the child Job running: not suspended and its whole gang ready
(a gang stuck Pending, waiting for GPUs, a node scale-up or an image pull, serves nothing; the Job's `startTime` is
set when it is created or resumed, before any pod runs, so it is not used). That pass comes within seconds, since a
child Job's readiness is part of what triggers a pass. A run closes when the operator holds the job between
segments, or when the Job is seen suspended (spec.suspend), gone, or with fewer ready workers than the gang. Each
run opened counts towards `maxSegments` (`runs`; a readiness blip that closes and reopens a run counts too).
Errors lean towards counting too little served time and too many runs: a job that believes it owes more runs
more, never past its deadline, and one that believes it used more segments is suspended less.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from llmasos.api.clock import format_instant
from llmasos.api.status import PlanStatus


@dataclass(frozen=True)
class RunState:
    """The child Job as seen this pass: whether one exists, whether it is suspended, and whether its gang is ready."""

    exists: bool = False
    suspended: bool = False
    ready: bool = True  # every worker of the gang ready (only meaningful when not suspended)

    @property
    def running(self) -> bool:
        return self.exists and not self.suspended and self.ready


@dataclass(frozen=True)
class RunLedger:
    served: timedelta = timedelta(0)  # closed runs
    running_since: datetime | None = None  # the open run's start; None between runs
    suspended_at: datetime | None = None  # when the last run closed
    runs: int = 0  # runs opened so far, the open one included (segments, for maxSegments)

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

    def observe(self, job: RunState, now: datetime) -> RunLedger:
        """Open a run when the Job is seen running (gang ready), close it when it is not (suspended, gone, not
        ready)."""
        if not self.running and job.running:
            return RunLedger(self.served, now, self.suspended_at, self.runs + 1)
        if self.running and not job.running:
            return self.close(now)
        return self

    def close(self, now: datetime) -> RunLedger:
        """End the open run at `now` (the pass that suspends the job)."""
        if self.running_since is None:
            return self
        return RunLedger(self.served_at(now), None, now, self.runs)

    def to_fields(self) -> dict[str, Any]:
        """The status.plan fields (whole seconds for times, like the rest of status)."""
        return {
            "servedSeconds": round(self.served.total_seconds(), 1),
            "runningSince": format_instant(self.running_since) if self.running_since else None,
            "suspendedAt": format_instant(self.suspended_at) if self.suspended_at else None,
            "runs": self.runs,
        }


def ledger_from(plan: Mapping[str, Any] | None) -> RunLedger:
    """The ledger kept in status.plan (read once, `PlanStatus`); an empty one for a plan made before the job
    started."""
    read = PlanStatus.read(plan)
    if read is None:
        return RunLedger()
    since, served = read.running_since, read.served_seconds
    # A ledger written before runs were counted: at least the open run, or one closed run if any time was served.
    counted = read.runs if read.runs is not None else int(since is not None or served > 0)
    return RunLedger(timedelta(seconds=served), since, read.suspended_at, max(counted, 0))
