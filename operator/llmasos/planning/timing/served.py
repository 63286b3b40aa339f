"""How much run time a started interruptible job has served, from its child Job's runs (pure).

Re-planning a started job needs the run time it still owes, and that must come from what actually ran, not from the
plan: pods start late, a user may suspend the job, a segment may be extended. The ledger lives in `status.plan`
(`servedSeconds`, `runningSince`, `suspendedAt`) and changes only when a run opens or closes, so it costs no status
write of its own. A run opens at the pass that sees the child Job running: not suspended and its whole gang ready
(a gang stuck Pending, waiting for GPUs, a node scale-up or an image pull, serves nothing; the Job's `startTime` is
set when it is created or resumed, before any pod runs, so it is not used). The run is dated from the pods, not from
that pass: the instant the gang's last worker became Ready (`gang_ready_since`, the pods' Ready conditions), never
before the last suspension. A pass can come late: the Job's `status.ready` lags behind the pods when the Job
controller is busy, a watch reconnects, or the operator is starved of CPU; dated from the pass, a run that began
25 s earlier once counted 1.7 s. A run closes when the operator holds the job between
segments, or when the Job is seen suspended (spec.suspend), gone, or with fewer ready workers than the gang. Each
run opened counts towards `maxSegments` (`runs`; a readiness blip that closes and reopens a run counts too).
Errors lean towards counting too little served time and too many runs: a job that believes it owes more runs
more, never past its deadline, and one that believes it used more segments is suspended less.

The ledger also keeps what the workers said when the last run closed (`pacedOwedSeconds`): the run time they still
needed at their recent pace (`status.progress`). While the job is suspended its pods are gone and nothing reports,
so a re-plan on a newer forecast reads it there; while a run is open, the live reading is used instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from llmasos.api.clock import format_instant, parse_instant_or_none
from llmasos.api.status import PlanStatus


@dataclass(frozen=True)
class RunState:
    """The child Job as seen this pass: whether one exists, whether it is suspended, and whether its gang is ready."""

    exists: bool = False
    suspended: bool = False
    ready: bool = True  # every worker of the gang ready (only meaningful when not suspended)
    ready_since: datetime | None = None  # when the gang's last worker became Ready (from the pods); None: unknown

    @property
    def running(self) -> bool:
        return self.exists and not self.suspended and self.ready


@dataclass(frozen=True)
class RunLedger:
    served: timedelta = timedelta(0)  # closed runs
    running_since: datetime | None = None  # the open run's start; None between runs
    suspended_at: datetime | None = None  # when the last run closed
    runs: int = 0  # runs opened so far, the open one included (segments, for maxSegments)
    paced_owed: timedelta | None = None  # the workers' remaining run time when the last run closed (None: unknown)

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

    def paced_owed_at(self, now: datetime, live: timedelta | None = None) -> timedelta | None:
        """The run time the workers still need at their pace: the `live` reading of a running job when there is
        one, else what they said when the last run closed, less the open run's age (a resumed run reports only
        once its workers have stepped). None when the workers never said (no progress exported, or not yet)."""
        if live is not None:
            return max(live, timedelta(0))
        if self.paced_owed is None:
            return None
        return max(self.paced_owed - self.run_age(now), timedelta(0))

    def observe(self, job: RunState, now: datetime, paced: timedelta | None = None) -> RunLedger:
        """Open a run when the Job is seen running (gang ready), close it when it is not (suspended, gone, not
        ready); `paced` is the workers' live remaining run time, kept when the run closes."""
        if not self.running and job.running:
            return replace(self, running_since=self._opened_at(job.ready_since, now), runs=self.runs + 1)
        if self.running and not job.running:
            return self.close(now, paced)
        return self

    def _opened_at(self, ready_since: datetime | None, now: datetime) -> datetime:
        """The open run's start: when the gang became ready, not before the last run closed, not after now."""
        if ready_since is None:
            return now
        floor = self.suspended_at or ready_since
        return min(max(ready_since, floor), now)

    def close(self, now: datetime, paced: timedelta | None = None) -> RunLedger:
        """End the open run at `now` (the pass that suspends the job), keeping the workers' remaining run time
        (`paced`, their live reading; without one, the last kept, less this run)."""
        if self.running_since is None:
            return self
        return RunLedger(self.served_at(now), None, now, self.runs, self.paced_owed_at(now, paced))

    def to_fields(self) -> dict[str, Any]:
        """The status.plan fields (whole seconds for times, like the rest of status)."""
        return {
            "servedSeconds": round(self.served.total_seconds(), 1),
            "runningSince": format_instant(self.running_since) if self.running_since else None,
            "suspendedAt": format_instant(self.suspended_at) if self.suspended_at else None,
            "runs": self.runs,
            "pacedOwedSeconds": round(self.paced_owed.total_seconds()) if self.paced_owed is not None else None,
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
    paced = timedelta(seconds=read.paced_owed_seconds) if read.paced_owed_seconds is not None else None
    return RunLedger(timedelta(seconds=served), since, read.suspended_at, max(counted, 0), paced)


def gang_ready_since(pods: Iterable[Mapping[str, Any]], gang: int) -> datetime | None:
    """When `gang` workers of these pods (one Job's) were first all Ready: the gang-th earliest Ready transition
    among the pods Ready now and not being deleted. None while fewer than `gang` are Ready, or when a Ready pod
    does not say since when."""
    since: list[datetime] = []
    for pod in pods:
        if (pod.get("metadata") or {}).get("deletionTimestamp"):
            continue
        ready = next((c for c in (pod.get("status") or {}).get("conditions") or () if c.get("type") == "Ready"), None)
        if ready is None or ready.get("status") != "True":
            continue
        at = parse_instant_or_none(ready.get("lastTransitionTime"))
        if at is None:
            return None
        since.append(at)
    if gang < 1 or len(since) < gang:
        return None
    return sorted(since)[gang - 1]
