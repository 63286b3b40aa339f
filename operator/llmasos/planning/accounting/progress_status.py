"""LLMJob `status.progress` from the workers' step counts (pure): how far along a training job is, for kubectl.

The built-in worker exports its optimizer step, the step its run ends at and the run time it still needs at the pace
of its last steps (`llmasos_worker_step`, `llmasos_worker_planned_steps`, `llmasos_worker_remaining_seconds`); the
node agents put them in their reports and the operator in `status.power.pods`. Every rank of a job counts the same
global steps (cumulative across resumes from a checkpoint), so the job's step is the largest any of its pods
reported, as for tokens; a pod restarted from an older checkpoint does not take it back. The estimated end is that
pod's report time plus the run time it still needed, while it runs. Inference counts the job's new tokens as its
steps, of prompts x max_new_tokens, the same on every pod; compress counts the steps it trains (pre-training,
distillation); runs without a planned count (a compress job that trains nothing, a `spec.command` of one's own)
get no progress. A task that writes no checkpoint (inference) starts its count again in
a rerun (after a user's `spec.suspend`), so its progress is that of the pods still running once one of them has
reported: the ended pods of the earlier run keep their larger count in `status.power.pods`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from llmasos.api.clock import parse_instant
from llmasos.api.energy_status import ENDED, PodPower
from llmasos.planning.timing.forecast import format_instant


@dataclass(frozen=True)
class JobProgress:
    step: int
    planned_steps: int
    remaining_seconds: float | None = None  # run time still needed at the recent pace (None: not measured, or done)
    estimated_end: datetime | None = None  # when that run time ends, counted from the reading

    @property
    def percent(self) -> int:
        """Whole percent done, rounded down (100 only once the last step is done)."""
        return min(100, 100 * self.step // self.planned_steps)

    def to_status(self) -> dict[str, Any]:
        out: dict[str, Any] = {"step": self.step, "plannedSteps": self.planned_steps, "percent": self.percent,
                               "display": f"{self.step}/{self.planned_steps} ({self.percent}%)"}
        if self.remaining_seconds is not None and self.estimated_end is not None:
            out["remainingSeconds"] = round(self.remaining_seconds)
            out["estimatedEnd"] = format_instant(self.estimated_end)
        return out


def build_progress(pods: Iterable[PodPower], counts_from_checkpoint: bool = True) -> JobProgress | None:
    """The job's progress from its pods' last counts; None while no pod reported a planned step count.
    `counts_from_checkpoint` False (a task that starts over when rerun): the running pods' count, once they have one."""
    counted = [p for p in pods if p.step is not None and p.planned_steps is not None and p.planned_steps >= 1]
    if not counted:
        return None
    running = [p for p in counted if p.state != ENDED]
    if not counts_from_checkpoint and running:
        counted = running
    lead = max(counted, key=lambda p: (p.step, p.planned_steps, p.read_at or ""))
    step, planned = max(int(lead.step or 0), 0), int(lead.planned_steps or 1)
    remaining = lead.remaining_seconds
    if remaining is None or lead.state == ENDED or step >= planned or not lead.read_at:
        return JobProgress(step, planned)
    end = parse_instant(lead.read_at, "status.power.pods[].readAt") + timedelta(seconds=remaining)
    return JobProgress(step, planned, remaining, end.replace(microsecond=0))
