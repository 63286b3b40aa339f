"""LLMJob `status.progress` from the workers' step counts (pure): how far along a training job is, for kubectl.

The built-in worker exports its optimizer step and the step its run ends at (`llmasos_worker_step`,
`llmasos_worker_planned_steps`); the node agents put both in their reports and the operator in `status.power.pods`.
Every rank of a job counts the same global steps (cumulative across resumes from a checkpoint), so the job's step is
the largest any of its pods reported, as for tokens; a pod restarted from an older checkpoint does not take it back.
Tasks without a planned step count (inference, compress, a `spec.command` of one's own) get no progress.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from llmasos.api.energy_status import PodPower


@dataclass(frozen=True)
class JobProgress:
    step: int
    planned_steps: int

    @property
    def percent(self) -> int:
        """Whole percent done, rounded down (100 only once the last step is done)."""
        return min(100, 100 * self.step // self.planned_steps)

    def to_status(self) -> dict[str, Any]:
        return {"step": self.step, "plannedSteps": self.planned_steps, "percent": self.percent,
                "display": f"{self.step}/{self.planned_steps} ({self.percent}%)"}


def build_progress(pods: Iterable[PodPower]) -> JobProgress | None:
    """The job's progress from its pods' last counts; None while no pod reported a planned step count."""
    counted = [(p.step, p.planned_steps) for p in pods
               if p.step is not None and p.planned_steps is not None and p.planned_steps >= 1]
    if not counted:
        return None
    step, planned = max(counted)
    return JobProgress(max(int(step), 0), int(planned))
