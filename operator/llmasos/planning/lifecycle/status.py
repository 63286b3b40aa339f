"""Render an LLMJob's status from a lifecycle decision (pure). The handler writes it once per pass, if changed."""

from __future__ import annotations

from typing import Any

from llmasos.api import conditions as cond
from llmasos.api.conditions import Condition, Conditions
from llmasos.api.phase import TERMINAL, Phase
from llmasos.planning.lifecycle.decision import Decision


def build_status(
    previous: dict[str, Any],
    decision: Decision,
    generation: int,
    now: str,
    extra_conditions: tuple[Condition, ...] = (),
    conditions: Conditions | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """The new status: previous fields kept unless this pass knows better; conditions merged metav1-style
    (`conditions`: the previous ones as the pass read them; read from `previous` when not given)."""
    status = {k: v for k, v in previous.items() if k not in ("kopf",)}
    if decision.phase in TERMINAL and previous.get("phase") == decision.phase:
        status["observedGeneration"] = generation
        return status
    merged = conditions if conditions is not None else Conditions.read(previous.get("conditions"))
    for c in (*decision.conditions, *extra_conditions):
        merged = merged.set(c, now, generation)
    status.update(
        {
            "phase": str(decision.phase),  # the plain string: status is JSON
            "conditions": merged.to_status(),
            "observedGeneration": generation,
            "message": decision.message,
            "attempt": decision.attempt,
            "workers": {
                "ready": decision.workers_ready,
                "total": decision.workers_total,
                "summary": f"{decision.workers_ready}/{decision.workers_total}",
            },
        }
    )
    if decision.start_time:
        status["startTime"] = decision.start_time
        if decision.phase == Phase.RUNNING or decision.phase in TERMINAL:
            status["scheduledStart"] = decision.start_time
    if decision.completion_time:
        status["completionTime"] = decision.completion_time
    status.update({k: v for k, v in fields.items() if v is not None})
    return status


def placement_status(
    previous: dict[str, Any], reason: str, message: str, generation: int, now: str, phase: Phase = Phase.PENDING
) -> dict[str, Any]:
    """Status of a job that no pool can host (yet): Pending with Scheduled=False and the reason."""
    status = {k: v for k, v in previous.items() if k not in ("kopf",)}
    conditions = Conditions.read(previous.get("conditions")).set(
        Condition(cond.SCHEDULED, "False", reason, message), now, generation)
    if phase == Phase.FAILED:
        conditions = conditions.set(Condition(cond.FAILED, "True", reason, message), now, generation)
        conditions = conditions.set(Condition(cond.SUCCEEDED, "False", cond.NOT_FINISHED, message), now, generation)
    status.update({"phase": str(phase), "conditions": conditions.to_status(), "observedGeneration": generation,
                   "message": message})
    if phase == Phase.FAILED:
        status.setdefault("completionTime", now)
    return status
