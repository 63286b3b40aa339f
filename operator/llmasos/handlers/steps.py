"""The named steps of a reconcile pass (ARCHITECTURE habit 13), run in this order by `handlers/llmjob.py`:

read -> (finish, for a job already over) -> admit -> place -> budget -> gate -> exits -> decide -> apply ->
conditions -> account -> render -> write (the last three, which turn the pass into its status, in
`handlers/pass_output.py`).

Each step is a function of the OperatorContext and what the steps before it found (a `Pass`, a `Placement`, a
`Timing`), and does one thing. A step that ends the pass early (an invalid spec, no pool can host the job, a budget
that rejects it) writes the status that says so itself and returns None. Only `write` writes the status of a pass that
ran to the end, once, and posts its Events after that write succeeded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

import kopf

from llmasos.api import conditions as cond
from llmasos.api.clock import parse_instant
from llmasos.api.conditions import Condition, Conditions, carbon_replay_condition
from llmasos.api.energy_status import CarbonStatus, PowerStatus
from llmasos.api.phase import TERMINAL, Phase
from llmasos.api.spec import LLMJobSpec, check_builtin_worker, check_deadline, parse_spec
from llmasos.api.worker_contract import CHECKPOINTING_TASKS
from llmasos.api.workload_policy import check_workload
from llmasos.cluster.builders import Owner
from llmasos.cluster.kube import LLMJOBS
from llmasos.cluster.priority import request_priority
from llmasos.errors import AccountingInputError, PlacementError, SpecError
from llmasos.handlers.account import apply_budget, carbon_accounting
from llmasos.handlers.children import apply_actions, expire_if_due
from llmasos.handlers.context import PRIORITY_EVENT, OperatorContext
from llmasos.handlers.gate import ForecastAnswer, Seat, carbon_gate, choose_carbon_pool, job_for
from llmasos.handlers.indexes import (
    children_from,
    gpus_held_by_pool,
    has_service,
    inventory_from,
    namespace_policy,
    reports_for,
    slim_body,
)
from llmasos.handlers.pod_lists import PodLists
from llmasos.handlers.worker_health import worker_exit, workers_ready
from llmasos.planning.accounting.power_status import build_power_status
from llmasos.planning.accounting.progress_status import JobProgress, build_progress
from llmasos.planning.lifecycle.decision import Decision, ObservedJob, decide, placed_pool
from llmasos.planning.lifecycle.status import placement_status
from llmasos.planning.lifecycle.status_patch import status_patch
from llmasos.planning.lifecycle.worker_faults import WorkerExit, with_worker_exit
from llmasos.planning.placement.feasible import select_pool, with_pending
from llmasos.planning.timing.carbon_gate import Gate
from llmasos.planning.timing.fleet_status import deadline_outcome


@dataclass(frozen=True)
class Pass:
    """What a pass knows of its LLMJob before it decides: the body as read, the spec parsed once (with the operator's
    defaults applied), the power status from the node reports, the status.carbon and conditions read once, the child
    Jobs, kopf's indexes and the pass's instant."""

    body: dict[str, Any]
    spec: LLMJobSpec
    indexes: Mapping[str, Any]
    now: str
    power: PowerStatus | None = None
    carbon: CarbonStatus | None = None
    conditions: Conditions = field(default_factory=Conditions)
    observed: list[ObservedJob] = field(default_factory=list)
    pods: PodLists = field(default_factory=PodLists, compare=False)  # the pass's pod lists (handlers/pod_lists.py)

    @property
    def meta(self) -> dict[str, Any]:
        return self.body["metadata"]  # type: ignore[no-any-return]

    @property
    def status(self) -> dict[str, Any]:
        return self.body.get("status") or {}

    @property
    def uid(self) -> str:
        return str(self.meta["uid"])

    @property
    def name(self) -> str:
        return str(self.meta["name"])

    @property
    def namespace(self) -> str:
        return str(self.meta["namespace"])

    @property
    def generation(self) -> int:
        return int(self.meta.get("generation", 1))

    @property
    def previous_phase(self) -> str:
        return str(self.status.get("phase", "") or "")

    @cached_property
    def progress(self) -> JobProgress | None:
        """status.progress from the node reports (read by the conditions and the render of one pass)."""
        if self.power is None:
            return None
        return build_progress(self.power.pods, counts_from_checkpoint=self.spec.task in CHECKPOINTING_TASKS)

    @property
    def started(self) -> bool:
        """The job ran (startTime recorded) or has a child Job: never re-placed, never held before its start again."""
        return has_started(self.status, self.observed)

    @property
    def owner(self) -> Owner:
        return Owner(self.name, self.namespace, self.uid, tuple(sorted((self.meta.get("annotations") or {}).items())),
                     tuple(sorted((self.meta.get("labels") or {}).items())))


@dataclass(frozen=True)
class Placement:
    """The pool the job runs on, the pool its current Job is bound to (`placed_on`, "" if none), the status fields a
    new placement records (empty when nothing changed), the carbon zone, and forecasts fetched while choosing."""

    pool: str
    zone: str
    placed_on: str = ""
    fields: Mapping[str, str] = field(default_factory=dict)
    fetched: Mapping[str, ForecastAnswer] = field(default_factory=dict)


@dataclass(frozen=True)
class Timing:
    """What the steps before the start decided: the carbon gate, the data-quality and the budget conditions."""

    gate: Gate
    data_quality: Condition | None = None
    budget: Condition | None = None

    @property
    def decided_before_start(self) -> bool:
        return bool(self.gate.plan or self.data_quality or self.budget)


# --- writing status (the one write of a pass, and the early ends) ---------------------------------------------------


async def write_status(ctx: OperatorContext, body: dict[str, Any], new: dict[str, Any]) -> bool:
    """PATCH status/ when it changed (`status_patch`: None deletes, as does a field gone from an object); True when
    written."""
    changed = status_patch(body.get("status") or {}, new)
    if changed is None:
        return False
    meta = body["metadata"]
    # The resourceVersion the pass decided from is a precondition: if the LLMJob changed since (or the pass read a
    # stale copy, e.g. after an etcd restart), the API server answers 409 and the pass is redone from the newer
    # object instead of writing an older phase over a newer one.
    patch: dict[str, Any] = {"status": changed}
    if meta.get("resourceVersion"):
        patch["metadata"] = {"resourceVersion": meta["resourceVersion"]}
    # Bookkeeping after work: a first pass's status write queues behind other new jobs' child creations.
    token = request_priority.set(max(request_priority.get(), PRIORITY_EVENT))
    try:
        written = await ctx.kube.patch(LLMJOBS, meta["name"], patch, meta["namespace"], subresource="status")
    finally:
        request_priority.reset(token)
    ctx.saw_version(meta["uid"], written.get("metadata", {}).get("resourceVersion"), own_write=True)
    ctx.remember_written(slim_body(written))
    return True


def has_started(status: Mapping[str, Any], observed: Sequence[ObservedJob]) -> bool:
    """`Pass.started`, for the read step that builds the Pass."""
    return bool(status.get("startTime")) or bool(observed)


async def fail_invalid(ctx: OperatorContext, body: dict[str, Any], exc: SpecError) -> kopf.PermanentError:
    """Write Failed with InvalidSpec (and its Event); the PermanentError for the caller to raise."""
    meta, status = body["metadata"], body.get("status") or {}
    msg = f"invalid spec: {exc.field}: {exc}"
    new = placement_status(status, cond.INVALID_SPEC, msg, meta.get("generation", 1), ctx.now_iso(), Phase.FAILED)
    if await write_status(ctx, body, new):
        await ctx.post_event(body, "Warning", cond.INVALID_SPEC, msg, at_once=True)
    ctx.metrics.record_phase(meta["uid"], Phase.FAILED)
    return kopf.PermanentError(msg)


# --- the steps -------------------------------------------------------------------------------------------------------


async def read(ctx: OperatorContext, body: dict[str, Any], indexes: Mapping[str, Any]) -> Pass:
    """Parse the spec once (an invalid one ends the job: Failed, PermanentError), apply the operator's default power
    policy, fold the node reports into status.power, and find the child Jobs."""
    meta, status = body["metadata"], body.get("status") or {}
    ns, name = meta["namespace"], meta["name"]
    observed = children_from(indexes["child_jobs"], ns, name, meta["uid"], indexes["child_rayjobs"])
    try:
        spec = parse_spec(dict(body.get("spec") or {}))
        if status.get("phase") not in TERMINAL:  # never fail a finished job retroactively
            check_deadline(spec.carbon, parse_instant(str(meta["creationTimestamp"]), "metadata.creationTimestamp"))
            if not has_started(status, observed):  # a running job's pods keep the config they started with
                check_builtin_worker(spec)
    except SpecError as exc:
        raise await fail_invalid(ctx, body, exc) from exc
    if "power" not in (body.get("spec") or {}):
        spec = replace(spec, power=ctx.settings.default_power())
    power = build_power_status(reports_for(indexes["power_reports"], ns, name), PowerStatus.read(status.get("power")))
    return Pass(body=body, spec=spec, indexes=indexes, now=ctx.now_iso(), power=power,
                carbon=CarbonStatus.read(status.get("carbon")), conditions=Conditions.read(status.get("conditions")),
                observed=observed)


async def finish(ctx: OperatorContext, job: Pass, logger: Any) -> None:
    """A job already Succeeded or Failed: only its final energy and step count (agents report at a low rate, so they
    may arrive after the end) and its expiry (ttlSecondsAfterFinished) are left."""
    status = job.status
    zone = job.spec.carbon.zone or str(status.get("zone") or "") or ctx.settings.default_zone
    carbon = await measured_carbon(ctx, job, zone, final=True, logger=logger)
    power = job.power.to_status() if job.power is not None else None
    found = {"power": power, "progress": job.progress.to_status() if job.progress is not None else None,
             "carbon": carbon.to_status() if carbon is not None else None,
             "zone": zone if status.get("pool") else None}  # the zone its carbon is valued in, as while it ran
    changed = {key: value for key, value in found.items() if value and value != status.get(key)}
    if changed:
        await write_status(ctx, job.body, {**status, **changed})
    await expire_if_due(ctx, job.body, job.spec)
    ctx.metrics.record_phase(job.uid, job.previous_phase)


async def admit(ctx: OperatorContext, job: Pass) -> None:
    """The namespace's workload policy, for a job that has not started (the admission policy refused it already
    where the chart installed it; this covers the rest). A refused job ends Failed (PermanentError)."""
    if not ctx.settings.workload_policy or job.started:
        return
    try:
        check_workload(job.spec.volumes, job.spec.node_pools,
                       namespace_policy(job.indexes["namespace_policies"], job.namespace))
    except SpecError as exc:
        raise await fail_invalid(ctx, job.body, exc) from exc


async def place(ctx: OperatorContext, job: Pass, logger: Any) -> Placement | None:
    """The node pool: kept once chosen (recorded in status, or, when the operator died before that write, in the
    child Job itself); chosen anew when there is none, its pool lost every node, or a job without workers yet no
    longer lists it in spec.placement.nodePools. None when no pool can host the job: Pending with Scheduled=False is
    written, and the next periodic resync tries again."""
    spec, status, node_index = job.spec, job.status, job.indexes["node_inventory"]
    placed_on = str(status.get("pool", "") or "") or placed_pool(job.observed)
    pool = placed_on
    fetched: dict[str, ForecastAnswer] = {}
    pools_now = {n.pool: n for store in node_index.values() for n in store}
    outside = bool(pool) and not job.observed and bool(spec.node_pools) and pool not in spec.node_pools
    fields: dict[str, str] = {}
    if not pool or pool not in pools_now or outside:
        inventory = with_pending(inventory_from(node_index, await ctx.gpu_usage.requested_by_node(ctx.kube)),
                                 gpus_held_by_pool(job.indexes["child_jobs"], job.indexes["child_rayjobs"]))
        try:
            if spec.carbon.policy != "immediate" and spec.prefer_efficient:
                chosen, fetched = await choose_carbon_pool(ctx, spec, job.body, inventory, ctx.clock())
            else:
                chosen = select_pool(spec, inventory)
        except PlacementError as exc:
            ctx.metrics.record_error("placement")
            new = placement_status(status, exc.reason, str(exc), job.generation, job.now)
            if await write_status(ctx, job.body, new) and status.get("message") != str(exc):
                await ctx.post_event(job.body, "Warning", exc.reason, str(exc))
            ctx.metrics.record_phase(job.uid, Phase.PENDING)
            logger.info(f"not placed: {exc}; the next resync tries again")
            return None
        fields = {"pool": chosen.name, "zone": chosen.carbon_zone, "gpuProduct": chosen.gpu_product}
        if not pool:
            logger.info(f"placing on pool {chosen.name} ({chosen.gpu_product}, zone {chosen.carbon_zone})")
        pool = chosen.name
    elif not status.get("pool"):  # recovered from the child Job: record it now
        node = pools_now[pool]
        fields = {"pool": pool, "zone": node.carbon_zone, "gpuProduct": node.gpu_product}
    # status.zone is the zone the job is planned and accounted in, so a pool kept from an earlier pass gives its own
    # label here: a spec.carbon.zone removed since then falls back to the pool's zone, not to the override written.
    pool_zone = fields["zone"] if fields else pools_now[pool].carbon_zone
    zone = spec.carbon.zone or pool_zone or ctx.settings.default_zone
    return Placement(pool=pool, zone=zone, placed_on=placed_on, fields=fields, fetched=fetched)


async def budget(ctx: OperatorContext, job: Pass) -> tuple[Pass, Condition | None] | None:
    """The namespace's monthly carbon budget, before the start: the job as it may run (held to its lowest-carbon
    window when over budget) and the CarbonBudget condition. None when the budget rejects the job: Failed is written."""
    if job.started:
        return job, None
    spec, condition = apply_budget(ctx, job.spec, job.namespace, job.indexes["carbon_usage"])
    if condition is not None and condition.reason == cond.BUDGET_REJECTED:
        new = placement_status(job.status, cond.BUDGET_EXCEEDED, condition.message, job.generation, job.now,
                               Phase.FAILED)
        if await write_status(ctx, job.body, new):
            await ctx.post_event(job.body, "Warning", cond.BUDGET_EXCEEDED, condition.message, at_once=True)
        ctx.metrics.record_phase(job.uid, Phase.FAILED)
        return None
    return replace(job, spec=spec), condition


async def gate(ctx: OperatorContext, job: Pass, placement: Placement, budget_condition: Condition | None) -> Timing:
    """The carbon gate: hold or run now, with the plan for status.plan; a job not yet started is planned with the
    other jobs waiting in its pool (`Seat`)."""
    seat = None
    if placement.pool and not job.started:
        gpus = sum(n.allocatable_gpus for store in job.indexes["node_inventory"].values() for n in store
                   if n.pool == placement.pool)
        seat = Seat(placement.pool, gpus, job.indexes["llmjob_bodies"])
    now = ctx.clock()
    end = job.progress.estimated_end if job.progress is not None else None
    verdict, data_quality = await carbon_gate(ctx, job.spec, job.body, placement.zone, job.started, now,
                                              dict(placement.fetched), job.observed, seat, job.pods,
                                              paced=end - now if end is not None else None)
    return Timing(gate=verdict, data_quality=data_quality, budget=budget_condition)


async def exits(ctx: OperatorContext, job: Pass) -> tuple[Pass, WorkerExit | None]:
    """What the failed container of the newest attempt said (reason, exit code, log tail), folded into the child
    Jobs the decision reads, so the Restarting and Failed conditions and their Events carry it. One pod list, only
    in a pass whose newest Job has failed."""
    exited = await worker_exit(ctx, job.namespace, job.observed, job.pods)
    return replace(job, observed=with_worker_exit(job.observed, exited)), exited


def decide_pass(job: Pass, placement: Placement, timing: Timing) -> Decision:
    """The lifecycle decision (pure). The current Job is bound (node affinity) to the pool it was created for; if that
    pool lost its nodes and the job was placed anew, the group restarts there instead of waiting for nodes that are
    gone."""
    pool_lost = placement.placed_on if placement.placed_on and placement.placed_on != placement.pool \
        and job.observed else ""
    return decide(job.spec, job.previous_phase, job.observed, job.now, int(job.status.get("attempt", 0) or 0),
                  str(job.status.get("startTime", "") or ""), hold=timing.gate.deferral, pool_lost=pool_lost)


async def apply(ctx: OperatorContext, job: Pass, placement: Placement, decision: Decision) -> None:
    """Bring the children in line with the decision (idempotent creates, suspend flips, deletes)."""
    await apply_actions(ctx, job.owner, job.spec, placement.pool, decision.actions, observed=job.observed,
                        service_known=has_service(job.indexes["child_services"], job.namespace, job.name, job.uid))


async def conditions(ctx: OperatorContext, job: Pass, placement: Placement, timing: Timing,
                     decision: Decision, exited: WorkerExit | None = None) -> tuple[Condition, ...]:
    """The conditions of this pass besides the decision's: Scheduled, data quality, budget, workers' readiness (one
    pod list while some are not ready; else the failed worker's exit, from `exits`) and the pool's DeadlineAtRisk."""
    workers = await workers_ready(ctx, job.namespace, job.observed, decision.attempt, job.pods)
    plan = timing.gate.plan
    replay = carbon_replay_condition(plan.get("dataKind") == "replay", plan.source or "", placement.zone) \
        if plan is not None and plan.source else None
    finished = decision.phase == Phase.SUCCEEDED and decision.completion_time
    before = job.conditions.get(cond.DEADLINE_AT_RISK)
    # While it runs; for an interruptible job the earliest end, since its carbon pauses come on top.
    paced = decision.phase == Phase.RUNNING
    projected = job.progress.estimated_end if paced and job.progress is not None else None
    at_risk = deadline_outcome(timing.gate.at_risk, job_for(job.spec, job.body).deadline, parse_instant(job.now),
                               finished_at=parse_instant(decision.completion_time) if finished else None,
                               flagged=before is not None, ended=decision.phase in TERMINAL,
                               projected_end=projected, pauses=job.spec.carbon.interruptible,
                               flagged_late=before is not None and before.status == "True"
                               and before.reason == cond.PROJECTED_LATE)
    found = (Condition(cond.SCHEDULED, "True", cond.POOL_SELECTED, f"node pool {placement.pool}"),
             timing.data_quality, timing.budget, workers, at_risk, replay,
             exited.condition() if exited is not None and workers is None else None)
    return tuple(c for c in found if c is not None)


# --- helpers of the steps --------------------------------------------------------------------------------------------


async def measured_carbon(ctx: OperatorContext, job: Pass, zone: str, final: bool, logger: Any,
                          start_time: str = "") -> CarbonStatus | None:
    """status.carbon from the energy measured so far (None keeps the one read); bad accounting input is logged and
    skips this pass's accounting, never the pass."""
    try:
        return await carbon_accounting(ctx, job.spec, job.body, job.power, job.carbon, zone, final, start_time)
    except AccountingInputError as exc:
        logger.warning(f"energy accounting skipped this pass: {exc}")
        return None
