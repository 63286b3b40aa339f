"""The last steps of a reconcile pass, after the decision and its children: account -> render -> write.

Kept apart from `handlers/steps.py` (the steps that read, place, time and decide) because these turn what the pass
found into what the user sees: status.carbon from the energy measured so far, the new status (pure), and the pass's
one status write with its Events and metrics. `handlers/llmjob.py` runs them in this order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from llmasos.api import conditions as cond
from llmasos.api.clock import parse_instant
from llmasos.api.conditions import Condition, Conditions
from llmasos.api.energy_status import CarbonStatus
from llmasos.api.phase import TERMINAL, Phase
from llmasos.api.status import PlanStatus
from llmasos.cluster.builders import job_name, service_name
from llmasos.handlers.context import OperatorContext
from llmasos.handlers.gate import job_for
from llmasos.handlers.steps import Pass, Placement, Timing, measured_carbon, write_status
from llmasos.planning.lifecycle.decision import RAYJOB_KIND, Decision, EnsureJob, ObservedJob
from llmasos.planning.lifecycle.status import build_status

# Conditions whose turning True is also a Warning Event (kubectl describe shows it among the job's events), as is a new
# reason while True (a job at risk whose deadline then passes: DeadlineTooClose, then DeadlineMissed).
WARN_WHEN_TRUE = (cond.CARBON_DATA_REPLAY, cond.DEADLINE_AT_RISK)


async def account(ctx: OperatorContext, job: Pass, placement: Placement, decision: Decision,
                  logger: Any) -> CarbonStatus | None:
    """status.carbon from the energy measured so far (None keeps the previous one)."""
    return await measured_carbon(ctx, job, placement.zone, final=decision.phase in TERMINAL, logger=logger,
                                 start_time=decision.start_time)


def render(job: Pass, placement: Placement, timing: Timing, decision: Decision, extra: tuple[Condition, ...],
           carbon: CarbonStatus | None) -> dict[str, Any]:
    """The new status (pure): the decision, the conditions, the placement, power, progress, plan, children and
    carbon; each typed section is rendered to its JSON here, once."""
    has_children = bool(job.observed) or any(isinstance(a, EnsureJob) for a in decision.actions)
    children = {"job": job_name(job.name, decision.attempt), "service": service_name(job.name)} if has_children \
        else None
    if children is not None and any(j.kind == RAYJOB_KIND for j in job.observed):
        del children["service"]  # a RayJob (cluster/rayjob.py): KubeRay names the Ray head's Service
    plan = timing.gate.plan.to_status() if timing.gate.plan is not None else None
    placed = {**placement.fields, "zone": placement.zone} if placement.fields or job.status.get("pool") else {}
    new = build_status(job.status, decision, job.generation, job.now, extra, conditions=job.conditions,
                       **placed, power=job.power.to_status() if job.power is not None else None,
                       plan=plan, children=children, carbon=carbon.to_status() if carbon is not None else None,
                       progress=job.progress.to_status() if job.progress is not None else None)
    if decision.phase == Phase.DEFERRED:
        new["scheduledStart"] = timing.gate.start_at or new.get("scheduledStart")
    return new


async def write(ctx: OperatorContext, job: Pass, placement: Placement, timing: Timing, decision: Decision,
                new: dict[str, Any], carbon: CarbonStatus | None = None) -> None:
    """The pass's one status write (skipped when nothing changed, or deferred to the next pass for a job whose first
    Job was just created), then its Events, then the phase metric. `carbon`: the status.carbon `account` found (None:
    the one read is kept)."""
    record_carbon_metrics(ctx, job, decision.phase, timing.gate.plan, new, carbon if carbon is not None else job.carbon)
    if first_write_can_wait(job.status, job.observed, decision.actions, timing.decided_before_start):
        # The new Job's watch event brings a pass within about a second (coalesced with its pods' first changes);
        # that pass reads the placement back from the Job and writes this status then. In a burst of new LLMJobs
        # the API server serves every other job's child creates first instead of one status write per job.
        ctx.metrics.record_phase(job.uid, decision.phase)
        return
    final = decision.phase in TERMINAL
    if await write_status(ctx, job.body, new):
        for ev in decision.events:
            await ctx.post_event(job.body, ev.type, ev.reason, ev.message, at_once=final)
        hold = timing.gate.deferral
        if timing.gate.announce and decision.phase == Phase.DEFERRED and hold is not None:
            await ctx.post_event(job.body, "Normal", cond.DEFERRED, hold.message)
        written = Conditions.read(new.get("conditions"))
        for kind in WARN_WHEN_TRUE:  # once, when the condition turns True or, True, changes its reason
            found, before = written.get(kind), job.conditions.get(kind)
            if found is not None and found.status == "True" and (
                    before is None or before.status != "True" or before.reason != found.reason):
                await ctx.post_event(job.body, "Warning", str(found.reason), str(found.message))
                if kind == cond.DEADLINE_AT_RISK:
                    ctx.metrics.record_deadline_warning(str(found.reason))
    if placement.fields:
        await ctx.post_event(job.body, "Normal", cond.POOL_SELECTED,
                             f"placed on node pool {placement.pool} ({placement.fields['gpuProduct']})")
    ctx.metrics.record_phase(job.uid, decision.phase)


# --- helpers ---------------------------------------------------------------------------------------------------------


def first_write_can_wait(status: Mapping[str, Any], observed: Sequence[ObservedJob], actions: Sequence[object],
                         decided_before_start: bool) -> bool:
    """A job never written before whose pass just created its first Job: everything its status would say is
    recorded in that Job (pool, attempt 0) or recomputed by the next pass, so nothing is lost if this process dies.
    Not for a job with a carbon plan, a data-quality or a budget condition: those are decided before the start
    only, and the next pass (started) would not write them."""
    return (not decided_before_start and not status.get("phase") and not observed
            and any(isinstance(a, EnsureJob) for a in actions))


def record_carbon_metrics(ctx: OperatorContext, job: Pass, phase: str, plan: PlanStatus | None,
                          new: Mapping[str, Any], carbon: CarbonStatus | None) -> None:
    """Deferral gauges while Deferred; deferral time at first start; intensities once finished (`carbon`: the
    status.carbon this pass wrote, else the one it read)."""
    old = job.status
    if phase == Phase.DEFERRED and plan is not None and plan.start_at and plan.latest_start:
        ctx.metrics.record_deferred(job.namespace, job.name, planned_start=plan.start_at,
                                    latest_start=plan.latest_start, deadline=job_for(job.spec, job.body).deadline)
        return
    ctx.metrics.clear_deferred(job.namespace, job.name)
    if new.get("startTime") and not old.get("startTime"):
        created = parse_instant(str(job.meta["creationTimestamp"]), "metadata.creationTimestamp")
        ctx.metrics.record_deferral((parse_instant(str(new["startTime"]), "status.startTime") - created)
                                    .total_seconds())
    if phase in TERMINAL and old.get("phase") not in TERMINAL:
        ctx.metrics.record_intensities(planned=plan.expected_intensity if plan else None,
                                       achieved=carbon.average_intensity if carbon is not None else None,
                                       run_now=plan.run_now_intensity if plan else None)
