"""Carbon-aware timing and pool choice inside a reconcile pass: fetch forecasts (adapter), plan (pure), gate.

Interruptible jobs are gated on every pass, before and after their start: once started, the run time they still
owe is re-planned on a newer forecast (planning/timing/segment_gate.py), from the runs their child Job has served.

Forecasts come from the configured fallback chain (Electricity Maps > shipped traces > static annual values);
when the chain degrades, the LLMJob gets a `CarbonDataDegraded` condition naming the source used. When every
source fails, the plan is made on an empty forecast, which the planner treats as unknown and schedules no later
than the latest start: a job is never held past the time it needs to meet its deadline.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from llmasos.api import conditions as cond
from llmasos.api.clock import parse_instant
from llmasos.api.conditions import Condition
from llmasos.api.spec import LLMJobSpec
from llmasos.errors import CarbonSourceError, PlacementError
from llmasos.handlers.context import OperatorContext
from llmasos.handlers.fleet import member_of, planned_starts
from llmasos.handlers.pod_lists import PodLists
from llmasos.planning.lifecycle.decision import ObservedJob
from llmasos.planning.placement.feasible import PoolInventory, feasible_pools
from llmasos.planning.placement.pool_choice import PoolOption, choose_pool
from llmasos.planning.timing.carbon_gate import Gate, gate_after_start, gate_before_start, plan_status
from llmasos.planning.timing.carbon_spec import carbon_job
from llmasos.planning.timing.carbon_window import CarbonJob, Plan, plan_start
from llmasos.planning.timing.fleet_gate import apply_assignment
from llmasos.planning.timing.fleet_status import deadline_condition, lone_deadline_condition
from llmasos.planning.timing.forecast import Forecast
from llmasos.planning.timing.segment_gate import gate_interruptible
from llmasos.planning.timing.served import RunState, gang_ready_since, ledger_from

log = logging.getLogger("llmasos.carbon")


@dataclass(frozen=True)
class ForecastAnswer:
    forecast: Forecast
    source: str
    degraded: bool
    message: str


def job_for(spec: LLMJobSpec, body: dict[str, Any]) -> CarbonJob:
    created = parse_instant(str(body["metadata"]["creationTimestamp"]), "metadata.creationTimestamp")
    return carbon_job(spec.carbon, created, default_duration=spec.planned_duration)


async def fetch_forecast(ctx: OperatorContext, zone: str) -> ForecastAnswer:
    try:
        sourced = await ctx.carbon.forecast(zone)
    except CarbonSourceError as exc:
        ctx.metrics.record_error("carbon")
        ctx.metrics.record_carbon_error(exc.source)
        ctx.metrics.zone_in_use(zone)  # its last data keeps ageing on the dashboard (and in the stale alert)
        log.debug("carbon forecast for %s: every source failed: %s", zone, "; ".join(f.for_log() for f in exc.failures))
        return ForecastAnswer(Forecast((), zone=zone), "none", True,
                              "every carbon source failed: " + "; ".join(map(str, exc.failures)))
    for failure in sourced.failures:  # a degraded answer: each source that failed before the one that answered
        ctx.metrics.record_carbon_error(failure.source)
    points = sourced.value.points
    ctx.metrics.record_carbon_data(sourced.source, zone, updated_at=sourced.value.issued_at or ctx.clock(),
                                   intensity=points[0].intensity if points else None, degraded=sourced.degraded)
    if sourced.degraded:
        log.debug("carbon forecast for %s: %s", zone, sourced.log_message)
    return ForecastAnswer(sourced.value, sourced.source, sourced.degraded, sourced.message)


def degraded_condition(answer: ForecastAnswer) -> Condition:
    if answer.degraded:
        reason = cond.CARBON_SOURCES_DOWN if answer.source == "none" else cond.CARBON_SOURCE_FALLBACK
        return Condition(cond.CARBON_DATA_DEGRADED, "True", reason, answer.message)
    return Condition(cond.CARBON_DATA_DEGRADED, "False", cond.CARBON_SOURCE_OK, answer.message)


async def choose_carbon_pool(ctx: OperatorContext, spec: LLMJobSpec, body: dict[str, Any],
                             inventory: dict[str, PoolInventory],
                             now: datetime) -> tuple[PoolInventory, dict[str, ForecastAnswer]]:
    """Among pools that can host the gang, the one with the lowest expected gCO2e that finishes in time, and the
    forecasts fetched for it (the gate reuses them instead of fetching the chosen zone again)."""
    fitting = feasible_pools(spec, inventory)
    p = spec.parallelism
    gpus = max(p.nodes * p.gpus_per_node, 1)
    options = [PoolOption(pool.name, pool.gpu_product,
                          pool.pod_slots(p.gpus_per_node) * max(p.gpus_per_node, 1),
                          spec.carbon.zone or pool.carbon_zone or ctx.settings.default_zone,
                          spec.pue or ctx.settings.default_pue)
               for pool in fitting]
    answers = {zone: await fetch_forecast(ctx, zone) for zone in sorted({o.zone for o in options})}
    forecasts = {zone: a.forecast for zone, a in answers.items() if a.forecast.points}
    try:
        choice = choose_pool(job_for(spec, body), gpus, options, forecasts, now, ctx.catalog)
    except PlacementError:
        return fitting[0], answers  # nothing finishes in time by the planner's estimate: placement alone decides
    return next(pool for pool in fitting if pool.name == choice.pool.name), answers


def run_state(observed: Sequence[ObservedJob], gang: int) -> RunState:
    """The current attempt's Job as the served-time ledger needs it: running only once all `gang` workers are
    ready (pods Pending for GPUs, a node scale-up or an image pull serve nothing)."""
    if not observed:
        return RunState()
    current = max(observed, key=lambda j: j.attempt)
    return RunState(exists=True, suspended=current.suspended, ready=current.ready >= gang)


async def observe_run(ctx: OperatorContext, namespace: str, observed: Sequence[ObservedJob], gang: int,
                      run_open: bool, pods: PodLists | None = None) -> RunState:
    """`run_state`, and the Job's pods while it is not suspended and either no run is open or the Job says its gang
    is not ready: one list per such pass, shared with WorkersReady through `pods`. The pods say when the gang became
    ready, and that it is ready before the Job's `status.ready` catches up (served.py), so a lagging Job neither
    delays the run's start nor closes an open run."""
    state = run_state(observed, gang)
    if not state.exists or state.suspended or (run_open and state.ready):
        return state
    current = max(observed, key=lambda j: j.attempt)
    listed = await (pods or PodLists()).list(ctx.kube, namespace, f"job-name={current.name}")
    since = gang_ready_since(listed, gang)
    return replace(state, ready=state.ready or since is not None, ready_since=since)


async def carbon_gate(ctx: OperatorContext, spec: LLMJobSpec, body: dict[str, Any], zone: str, started: bool,
                      now: datetime, fetched: dict[str, ForecastAnswer] | None = None,
                      observed: Sequence[ObservedJob] = (), seat: Seat | None = None,
                      pods: PodLists | None = None, paced: timedelta | None = None) -> tuple[Gate, Condition | None]:
    """Hold or run, with the plan for status.plan and the data-quality condition (None for immediate jobs and
    started jobs that are not interruptible, which are never held). A job that has not started and has a `seat`
    is planned with the other jobs of its pool (`plan_in_pool`); the gate then carries its DeadlineAtRisk, as it
    does for any job whose run time does not fit before its deadline. `paced` is the run time the workers still
    need at their recent pace (status.progress), which a started interruptible job is re-planned on."""
    status = body.get("status") or {}
    previous = status.get("plan")
    if spec.carbon.policy == "immediate":
        return Gate(hold=False, plan=None), None
    if started and not spec.carbon.interruptible:
        return gate_after_start(previous, False, now), None
    if started:
        held_until = str(status.get("scheduledStart") or "") if status.get("phase") == "Deferred" else ""
        answer = await fetch_forecast(ctx, zone)
        run = await observe_run(ctx, str(body["metadata"]["namespace"]), observed, spec.parallelism.nodes,
                                ledger_from(previous).running, pods)
        gate = gate_interruptible(previous, job_for(spec, body), run,
                                  answer.forecast, (answer.source, answer.degraded, answer.message), now, held_until,
                                  user_suspended=spec.suspend, paced=paced)
        return gate, degraded_condition(answer)
    answer = (fetched or {}).get(zone) or await fetch_forecast(ctx, zone)
    plan = plan_start(job_for(spec, body), answer.forecast, now)
    at_risk = lone_deadline_condition(plan)  # too close even alone: the pool is not the cause
    if seat is not None and spec.carbon.policy != "immediate":
        plan, in_pool = plan_in_pool(ctx, plan, seat, body, zone, answer.forecast, now)
        at_risk = at_risk or in_pool
    gate = gate_before_start(plan_status(plan, answer.source, answer.degraded, answer.message), previous, now)
    return replace(gate, at_risk=at_risk), degraded_condition(answer)


@dataclass(frozen=True)
class Seat:
    """The pool a job waits in, as the fleet step needs it: its name, its GPUs, and every LLMJob the operator knows
    (kopf's `llmjob_bodies` index: namespace/name -> bodies)."""

    pool: str
    gpus: int
    bodies: Mapping[tuple[str, str], Iterable[dict[str, Any]]]


def plan_in_pool(ctx: OperatorContext, plan: Plan, seat: Seat, body: dict[str, Any], zone: str,
                 forecast: Forecast, now: datetime) -> tuple[Plan, Condition | None]:
    """The job's lone plan under its pool's plan (handlers/fleet.py): unchanged when nothing competes; moved to the
    cleanest window the others leave; DeadlineAtRisk when the pool cannot keep the deadline."""
    bodies = [b for store in seat.bodies.values() for b in store]
    members = ctx.pool_plans.members(bodies, seat.pool, job_for)
    meta = body["metadata"]
    key = f"{meta['namespace']}/{meta['name']}"
    if not any(m.key == key for m in members):  # not yet in the index with its pool: plan it as it will be
        own = member_of({**body, "status": {**(body.get("status") or {}), "pool": seat.pool}}, job_for)
        members = [*members, *((own,) if own else ())]
    pool_plan, moved = ctx.pool_plans.plan(members, seat.pool, seat.gpus, zone, forecast, now, planned_starts(bodies),
                                           key)
    for other in moved:
        ctx.wakeups.soon(other)
    assignment = pool_plan.assignment(key)
    if assignment is None:
        return plan, None
    return apply_assignment(plan, assignment, seat.pool), deadline_condition(assignment)
