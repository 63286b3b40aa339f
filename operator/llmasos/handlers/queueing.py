"""The Kueue step of a pass, for an LLMJob with spec.queueName (docs/kueue.md): the handler's I/O around the pure
mapping in planning/lifecycle/queueing.py.

It runs between `exits` and `decide` (handlers/llmjob.py), and only for a queued job that has a child Job: it reads
the Workload Kueue made for the newest Job (a list of the namespace's Workloads, matched by owner) and the
ResourceFlavors it was assigned, turns the user's spec.suspend into the Workload's spec.active (the way to suspend a
job under Kueue: Kueue evicts it and suspends the Job itself; resuming reactivates it, while a Workload Kueue
deactivated on its own stays so), and reports the assigned flavour's pool as the job's
pool. The carbon hold and the budget act before this step, while the job has no child Job: a job is held out of the
queue until its window and enters it then; once queued, a carbon plan never suspends it again (Kueue owns the Job's
suspend flag, and may preempt it itself). `decided` then rewrites the decision: child Jobs created suspended, never
flipped, and the Workload's state mirrored into phase and conditions.

With `settings.kueue_llm_jobs` the operator also watches Workloads (handlers/llmjob.py): `owning_llmjob` finds the
LLMJob whose child a Workload stands for, in the child indexes, so a change of admission state starts that LLMJob's
pass at once instead of at the next resync.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from llmasos.api import conditions as cond
from llmasos.api.conditions import Condition
from llmasos.api.constants import NODE_POOL_LABEL
from llmasos.api.phase import TERMINAL
from llmasos.handlers.admission_check import RESOURCE_FLAVORS, WORKLOADS
from llmasos.handlers.context import OperatorContext
from llmasos.handlers.steps import Pass, Placement, Timing
from llmasos.planning.lifecycle.decision import Decision
from llmasos.planning.lifecycle.queueing import (
    JOB_UID_LABEL,
    QueueState,
    flavors_of,
    mirror,
    pool_of_flavor,
    queued_actions,
    read_workload,
    wanted_active,
)


@dataclass(frozen=True)
class Queued:
    """A queued job's pass: its Workload's state (None before it has a child Job), and the placement and timing
    the decision reads (the assigned flavour's pool; no carbon hold once queued)."""

    state: QueueState | None
    placement: Placement
    timing: Timing


async def observe(ctx: OperatorContext, job: Pass, placement: Placement, timing: Timing) -> Queued | None:
    """None for a job without spec.queueName. A queued job's Workload read, its spec.active set from spec.suspend."""
    if not job.spec.queue_name:
        return None
    if not job.observed or job.previous_phase in TERMINAL:
        return Queued(None, replace(placement, fields={}), timing)
    newest = max(job.observed, key=lambda j: j.attempt)
    workload = await _workload(ctx, job.namespace, newest.name, newest.uid, newest.kind)
    pools = {f: await _flavor_pool(ctx, f) for f in flavors_of(workload)}
    state = read_workload(job.spec.queue_name, workload, pools)
    active = wanted_active(job.spec.suspend, state.active, job.previous_phase) if workload is not None else None
    if workload is not None and active is not None:
        await ctx.kube.patch(WORKLOADS, workload["metadata"]["name"], {"spec": {"active": active}}, job.namespace)
        workload = {**workload, "spec": {**(workload.get("spec") or {}), "active": active}}
        state = read_workload(job.spec.queue_name, workload, pools)
    return Queued(state, _placed(job, placement, state), replace(timing, gate=replace(timing.gate, hold=False)))


def decided(queued: Queued | None, job: Pass, decision: Decision) -> Decision:
    """The decision of a queued job: Kueue's suspend flag left alone, the Workload's state mirrored."""
    if queued is None:
        return decision
    decision = replace(decision, actions=queued_actions(decision.actions, (j.attempt for j in job.observed)))
    if queued.state is None:
        return decision
    previous = next((str(c.get("reason", "")) for c in job.status.get("conditions") or ()
                     if c.get("type") == cond.QUEUE_ADMITTED), "")
    return mirror(queued.state, decision, previous)


def scheduled(queued: Queued | None, found: tuple[Condition, ...]) -> tuple[Condition, ...]:
    """The pass's conditions with Scheduled saying where Kueue placed a queued job (False until it admitted it)."""
    if queued is None:
        return found
    state = queued.state
    if state is not None and state.admitted and state.pool:
        placed = Condition(cond.SCHEDULED, "True", cond.ADMITTED_BY_KUEUE,
                           f"node pool {state.pool} (flavour {', '.join(state.flavors)}, assigned by Kueue)")
    else:
        placed = Condition(cond.SCHEDULED, "False", state.reason if state is not None else cond.NOT_QUEUED_YET,
                           "Kueue assigns the node pool (a ResourceFlavor) when it admits the job")
    return tuple(placed if c.type == cond.SCHEDULED else c for c in found)


def _placed(job: Pass, placement: Placement, state: QueueState) -> Placement:
    """The pool of the flavour Kueue assigned, once it assigned one; before that, the pool the operator would pick
    only serves to plan (its zone), and is not recorded. Never re-placed by the operator (placed_on = pool): Kueue
    moves a queued job, by evicting and re-admitting it."""
    pool = state.pool
    if not pool:
        return replace(placement, placed_on=placement.pool, fields={})
    if pool == str(job.status.get("pool", "") or ""):
        return replace(placement, pool=pool, placed_on=pool, fields={})
    node = next((n for store in job.indexes["node_inventory"].values() for n in store if n.pool == pool), None)
    node_zone = node.carbon_zone if node is not None else ""
    fields = {"pool": pool, "zone": node_zone, "gpuProduct": node.gpu_product if node is not None else ""}
    return replace(placement, pool=pool, zone=job.spec.carbon.zone or node_zone or placement.zone, placed_on=pool,
                   fields=fields)


async def _workload(ctx: OperatorContext, namespace: str, job_name: str, job_uid: str,
                    kind: str = "Job") -> dict[str, Any] | None:
    """The Workload Kueue made for the Job (or RayJob, `kind`): selected server-side by Kueue's job-uid label, then
    matched by owner."""
    selector = f"{JOB_UID_LABEL}={job_uid}" if job_uid else None
    for workload in await ctx.kube.list(WORKLOADS, namespace, label_selector=selector):
        owners = workload.get("metadata", {}).get("ownerReferences") or ()
        if any(o.get("kind") == kind and o.get("name") == job_name for o in owners):
            return workload
    return None


async def _flavor_pool(ctx: OperatorContext, name: str) -> str:
    flavor = await ctx.kube.get_or_none(RESOURCE_FLAVORS, name)
    return pool_of_flavor(((flavor or {}).get("spec") or {}).get("nodeLabels") or {}, NODE_POOL_LABEL)


def owning_llmjob(workload: Mapping[str, Any], namespace: str,
                  children: Iterable[Mapping[tuple[str, str], Iterable[Any]]]) -> str | None:
    """The name of the LLMJob whose child Job or RayJob the Workload stands for; None for a Workload of anything else
    (a plain Job queued by hand). The owner reference names the child (`<llmjob>-a<attempt>`, cluster/builders.py
    `job_name`), which gives the key in the child indexes `child_jobs` / `child_rayjobs` (values: ObservedJob, owner
    uids); the child's uid there must match, so a namesake is never taken for it. One lookup, not a scan."""
    for ref in (workload.get("metadata") or {}).get("ownerReferences") or ():
        base, sep, attempt = str(ref.get("name", "")).rpartition("-a")
        uid = str(ref.get("uid", ""))
        if ref.get("kind") not in ("Job", "RayJob") or not (sep and attempt.isdigit() and uid):
            continue
        for index in children:
            if any(observed.uid == uid for observed, _ in index.get((namespace, base), ())):
                return base
    return None
