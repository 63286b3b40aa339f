"""kopf handlers for LLMJobs and their child Jobs: every cause runs the same level-based reconcile pass.

A pass: parse the spec, pick (once) a node pool, decide (pure) the phase and child actions, apply the actions
idempotently, write the status once if it changed, then post Events. Errors map onto kopf's taxonomy:
an invalid spec -> PermanentError plus a Failed condition; no pool yet -> a Scheduled=False condition and the
next periodic resync tries again (no retry storm); API trouble -> TemporaryError with the error's delay.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import kopf

from llmasos.agent.report import REPORT_LABEL, parse_node_report
from llmasos.api import conditions as cond
from llmasos.api import constants as c
from llmasos.api.conditions import Condition
from llmasos.api.spec import LLMJobSpec, parse_spec, parse_time
from llmasos.api.workload_policy import check_workload
from llmasos.cluster.builders import Owner, job_name, service_name
from llmasos.cluster.kube import LLMJOBS
from llmasos.cluster.observe import job_fingerprint
from llmasos.cluster.priority import request_priority
from llmasos.errors import AccountingInputError, KubeApiError, PlacementError, SpecError
from llmasos.handlers.accounting import apply_budget, carbon_accounting
from llmasos.handlers.carbon import carbon_gate, choose_carbon_pool, job_for
from llmasos.handlers.children import apply_actions, expire_if_due
from llmasos.handlers.context import NEW_PASS_QUIET_SECONDS, PRIORITY_EVENT, PRIORITY_NEW, OperatorContext
from llmasos.handlers.indexes import (
    children_from,
    gpus_held_by_pool,
    has_service,
    inventory_from,
    namespace_policy,
    reports_for,
    slim_body,
)
from llmasos.handlers.worker_health import worker_exit, workers_ready
from llmasos.planning.lifecycle import EnsureJob, decide, placed_pool
from llmasos.planning.placement import select_pool, with_pending
from llmasos.planning.power_status import build_power_status
from llmasos.planning.status import build_status, placement_status
from llmasos.planning.worker_faults import with_worker_exit

TERMINAL = ("Succeeded", "Failed")
# How long a pass triggered by a child Job's change waits, so that the changes of one gang's pods share a pass.
CHILD_EVENT_COALESCE_SECONDS = 1.0
# The longest such a pass waits while new LLMJobs' children are being created (see _coalesced_pass).
CHILD_PASS_MAX_HOLD_SECONDS = 10.0
# Every kopf index a pass reads (handlers/indexes.py); a test checks this list against the registered indexes.
INDEX_NAMES = ("node_inventory", "child_jobs", "child_services", "power_reports", "carbon_usage", "llmjob_bodies",
               "namespace_policies")


def _owner(body: dict[str, Any]) -> Owner:
    meta = body["metadata"]
    return Owner(meta["name"], meta["namespace"], meta["uid"],
                 tuple(sorted((meta.get("annotations") or {}).items())),
                 tuple(sorted((meta.get("labels") or {}).items())))


async def _write_status(ctx: OperatorContext, body: dict[str, Any], new: dict[str, Any]) -> bool:
    old = body.get("status") or {}
    if new == old:
        return False
    meta = body["metadata"]
    # The resourceVersion the pass decided from is a precondition: if the LLMJob changed since (or the pass read a
    # stale copy, e.g. after an etcd restart), the API server answers 409 and the pass is redone from the newer
    # object instead of writing an older phase over a newer one.
    patch: dict[str, Any] = {"status": new}
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


async def _fail_invalid(ctx: OperatorContext, body: dict[str, Any], exc: SpecError) -> None:
    meta, status = body["metadata"], body.get("status") or {}
    msg = f"invalid spec: {exc.field}: {exc}"
    new = placement_status(status, cond.INVALID_SPEC, msg, meta.get("generation", 1), ctx.now_iso(), "Failed")
    if await _write_status(ctx, body, new):
        await ctx.post_event(body, "Warning", cond.INVALID_SPEC, msg, at_once=True)
    ctx.metrics.record_phase(meta["uid"], "Failed")


async def reconcile(ctx: OperatorContext, body: dict[str, Any], indexes: dict[str, Any],
                    logger: Any, priority: int = PRIORITY_EVENT) -> None:
    """One pass over one LLMJob. Safe to run at any time, any number of times. A job's first pass (no children
    yet, not deferred) outranks other event-driven passes for a slot; `priority` orders the rest."""
    meta = body["metadata"]
    uid, name, ns = meta["uid"], meta["name"], meta["namespace"]
    if meta.get("deletionTimestamp"):
        return
    status = body.get("status") or {}
    if priority == PRIORITY_EVENT and not status.get("children") and status.get("phase") in (None, "", "Pending"):
        priority = PRIORITY_NEW
    request_priority.set(priority)  # this handler's own task: its API requests queue at the pass's priority
    async with ctx.lock(uid), ctx.passes.slot(priority):
        # A body older than one this process already handled or wrote (a late watch event) would re-decide from
        # stale status (repeat events, flip fields); the newer state has been or will be handled instead.
        if ctx.is_stale(uid, meta.get("resourceVersion")):
            return
        ctx.saw_version(uid, meta.get("resourceVersion"))
        started = time.monotonic()
        try:
            await _reconcile_locked(ctx, body, indexes, logger)
        except KubeApiError as exc:
            ctx.metrics.record_error("api")
            if exc.retryable or exc.not_found:
                raise kopf.TemporaryError(str(exc), delay=exc.delay) from exc
            raise kopf.PermanentError(f"{name}.{ns}: {exc}") from exc
        finally:
            ctx.metrics.record_reconcile(time.monotonic() - started)


async def _reconcile_locked(ctx: OperatorContext, body: dict[str, Any], indexes: dict[str, Any],
                            logger: Any) -> None:
    meta, status = body["metadata"], body.get("status") or {}
    uid, name, ns, generation = meta["uid"], meta["name"], meta["namespace"], meta.get("generation", 1)
    now = ctx.now_iso()
    previous_phase = status.get("phase", "")
    try:
        spec = parse_spec(dict(body.get("spec") or {}))
    except SpecError as exc:
        await _fail_invalid(ctx, body, exc)
        raise kopf.PermanentError(f"invalid spec: {exc.field}: {exc}") from exc
    if "power" not in (body.get("spec") or {}):
        spec = replace(spec, power=ctx.settings.default_power())

    power = build_power_status(reports_for(indexes["power_reports"], ns, name), status.get("power"))
    if previous_phase in TERMINAL:
        # Agents report at a low rate: the final energy of a finished job may arrive after it finished.
        zone = spec.carbon.zone or str(status.get("zone") or "") or ctx.settings.default_zone
        carbon = await _account(ctx, spec, body, power, zone, final=True, logger=logger)
        if (power is not None and power != status.get("power")) or carbon is not None:
            update = {**status, **({"power": power} if power else {}), **({"carbon": carbon} if carbon else {})}
            await _write_status(ctx, body, update)
        await expire_if_due(ctx, body, spec)
        ctx.metrics.record_phase(uid, previous_phase)
        return

    owner = _owner(body)
    observed = children_from(indexes["child_jobs"], ns, name, uid)
    if ctx.settings.workload_policy and not (status.get("startTime") or observed):
        try:  # the admission policy refused it already where the chart installed it; this covers the rest
            check_workload(spec.volumes, spec.node_pools, namespace_policy(indexes["namespace_policies"], ns))
        except SpecError as exc:
            await _fail_invalid(ctx, body, exc)
            raise kopf.PermanentError(f"invalid spec: {exc.field}: {exc}") from exc
    # A placement is recorded in status, or, when the operator died before that write, in the child Job itself.
    placed_on = str(status.get("pool", "") or "") or placed_pool(observed)
    pool = placed_on
    fetched: dict[str, Any] = {}
    pools_now = {n.pool: n for store in indexes["node_inventory"].values() for n in store}
    # A job without workers yet follows a change of spec.placement.nodePools (never starting outside the pools it
    # lists now); one whose Job exists stays on its pool.
    outside = bool(pool) and not observed and bool(spec.node_pools) and pool not in spec.node_pools
    if not pool or pool not in pools_now or outside:
        inventory = with_pending(inventory_from(indexes["node_inventory"],
                                                await ctx.gpu_usage.requested_by_node(ctx.kube)),
                                 gpus_held_by_pool(indexes["child_jobs"]))
        try:
            if spec.carbon.policy != "immediate" and spec.prefer_efficient:
                chosen, fetched = await choose_carbon_pool(ctx, spec, body, inventory, ctx.clock())
            else:
                chosen = select_pool(spec, inventory)
        except PlacementError as exc:
            ctx.metrics.record_error("placement")
            new = placement_status(status, exc.reason, str(exc), generation, now)
            if await _write_status(ctx, body, new) and status.get("message") != str(exc):
                await ctx.post_event(body, "Warning", exc.reason, str(exc))
            ctx.metrics.record_phase(uid, "Pending")
            logger.info(f"not placed: {exc}; the next resync tries again")
            return
        pool_fields = {"pool": chosen.name, "zone": chosen.carbon_zone, "gpuProduct": chosen.gpu_product}
        if not pool:
            logger.info(f"placing on pool {chosen.name} ({chosen.gpu_product}, zone {chosen.carbon_zone})")
        pool = chosen.name
    elif not status.get("pool"):  # recovered from the child Job: record it now
        node = pools_now[pool]
        pool_fields = {"pool": pool, "zone": node.carbon_zone, "gpuProduct": node.gpu_product}
    else:
        pool_fields = {}

    zone = spec.carbon.zone or str(pool_fields.get("zone") or status.get("zone") or "") or ctx.settings.default_zone
    started = bool(status.get("startTime")) or bool(observed)
    budget_condition = None
    if not started:
        spec, budget_condition = apply_budget(ctx, spec, ns, indexes["carbon_usage"])
        if budget_condition is not None and budget_condition.reason == cond.BUDGET_REJECTED:
            new = placement_status(status, cond.BUDGET_EXCEEDED, budget_condition.message, generation, now, "Failed")
            if await _write_status(ctx, body, new):
                await ctx.post_event(body, "Warning", cond.BUDGET_EXCEEDED, budget_condition.message, at_once=True)
            ctx.metrics.record_phase(uid, "Failed")
            return
    gate, data_quality = await carbon_gate(ctx, spec, body, zone, started, ctx.clock(), fetched, observed)
    hold = ""
    if gate.hold:
        saving = (gate.plan or {}).get("expectedSavingsPercent")
        hold = f"deferred until {gate.start_at}" + (f", expected to save {saving:.0f}%" if saving is not None else "")
    # The current Job is bound (node affinity) to the pool it was created for; if that pool lost its nodes and the
    # job was placed anew, the group restarts there (lifecycle.decide), instead of waiting for nodes that are gone.
    pool_lost = placed_on if placed_on and placed_on != pool and observed else ""
    exited = await worker_exit(ctx, ns, observed)  # a failed attempt: its container's reason, exit code, log tail
    observed = with_worker_exit(observed, exited)
    decision = decide(spec, previous_phase, observed, now, int(status.get("attempt", 0) or 0),
                      str(status.get("startTime", "") or ""), hold=hold, pool_lost=pool_lost)
    await apply_actions(ctx, owner, spec, pool, decision.actions, observed_names={j.name for j in observed},
                        job_index=indexes["child_jobs"],
                        service_known=has_service(indexes["child_services"], ns, name, uid))
    scheduled = Condition(cond.SCHEDULED, "True", cond.POOL_SELECTED, f"node pool {pool}")
    workers = await workers_ready(ctx, ns, observed, decision.attempt) or (exited.condition() if exited else None)
    extra = (scheduled, *((data_quality,) if data_quality else ()), *((budget_condition,) if budget_condition else ()),
             *((workers,) if workers else ()))
    has_children = bool(observed) or any(isinstance(a, EnsureJob) for a in decision.actions)
    children = {"job": job_name(name, decision.attempt), "service": service_name(name)} if has_children else None
    final = decision.phase in TERMINAL
    carbon = await _account(ctx, spec, body, power, zone, final=final, logger=logger,
                            start_time=decision.start_time)
    new = build_status(status, decision, generation, now, extra, **pool_fields, power=power, plan=gate.plan,
                       children=children, carbon=carbon)
    _record_carbon_metrics(ctx, spec, body, decision.phase, gate.plan, new)
    if decision.phase == "Deferred":
        new["scheduledStart"] = gate.start_at or new.get("scheduledStart")
    if _first_write_can_wait(status, observed, decision.actions,
                             decided_before_start=bool(gate.plan or data_quality or budget_condition)):
        # The new Job's watch event brings a pass within about a second (coalesced with its pods' first changes);
        # that pass reads the placement back from the Job and writes this status then. In a burst of new LLMJobs
        # the API server serves every other job's child creates first instead of one status write per job.
        ctx.metrics.record_phase(uid, decision.phase)
        return
    if await _write_status(ctx, body, new):
        for ev in decision.events:
            await ctx.post_event(body, ev.type, ev.reason, ev.message, at_once=final)
        if gate.announce and decision.phase == "Deferred":
            await ctx.post_event(body, "Normal", cond.DEFERRED, hold)
    if pool_fields:
        await ctx.post_event(body, "Normal", cond.POOL_SELECTED,
                             f"placed on node pool {pool} ({pool_fields['gpuProduct']})")
    ctx.metrics.record_phase(uid, decision.phase)


def _first_write_can_wait(status: dict[str, Any], observed: list[Any], actions: Sequence[object],
                          decided_before_start: bool) -> bool:
    """A job never written before whose pass just created its first Job: everything its status would say is
    recorded in that Job (pool, attempt 0) or recomputed by the next pass, so nothing is lost if this process dies.
    Not for a job with a carbon plan, a data-quality or a budget condition: those are decided before the start
    only, and the next pass (started) would not write them."""
    return (not decided_before_start and not status.get("phase") and not observed
            and any(isinstance(a, EnsureJob) for a in actions))


async def _account(ctx: OperatorContext, spec: LLMJobSpec, body: dict[str, Any], power: dict[str, Any] | None,
                   zone: str, final: bool, logger: Any, start_time: str = "") -> dict[str, Any] | None:
    try:
        return await carbon_accounting(ctx, spec, body, power, zone, final, start_time)
    except AccountingInputError as exc:
        logger.warning(f"energy accounting skipped this pass: {exc}")
        return None


def _record_carbon_metrics(ctx: OperatorContext, spec: LLMJobSpec, body: dict[str, Any], phase: str,
                           plan: dict[str, Any] | None, new: dict[str, Any]) -> None:
    """Deferral gauges while Deferred; deferral time at first start; intensities once finished."""
    meta, old = body["metadata"], body.get("status") or {}
    ns, name = meta["namespace"], meta["name"]
    if phase == "Deferred" and plan:
        deadline = job_for(spec, body).deadline
        ctx.metrics.record_deferred(ns, name, planned_start=parse_time(plan["startAt"], "plan.startAt"),
                                    latest_start=parse_time(plan["latestStart"], "plan.latestStart"),
                                    deadline=deadline)
        return
    ctx.metrics.clear_deferred(ns, name)
    if new.get("startTime") and not old.get("startTime"):
        created = parse_time(str(meta["creationTimestamp"]), "metadata.creationTimestamp")
        ctx.metrics.record_deferral((parse_time(str(new["startTime"]), "status.startTime") - created).total_seconds())
    if phase in TERMINAL and old.get("phase") not in TERMINAL:
        carbon = new.get("carbon") or {}
        ctx.metrics.record_intensities(planned=(plan or {}).get("expectedIntensity"),
                                       achieved=carbon.get("averageIntensity"),
                                       run_now=(plan or {}).get("runNowIntensity"))


def register_llmjob_handlers(registry: kopf.OperatorRegistry, ctx: OperatorContext) -> None:
    def indexes_of(kwargs: dict[str, Any]) -> dict[str, Any]:
        indexes = {k: kwargs[k] for k in INDEX_NAMES}
        if ctx.indexes is None:
            ctx.indexes = indexes  # kopf's live views, for the periodic resync (handlers/resync.py)
        return indexes

    # Every LLMJob event (the initial listing, creation, spec or status changes) runs the same level-based pass.
    # An event handler, not kopf's create/update/resume handlers: those persist per-object progress and a diff
    # base in annotations, two extra PATCHes per change that this operator does not need (the pass compares the
    # desired state with the observed one, not with the last-handled spec). Failures are retried by the periodic
    # resync (handlers/resync.py), not by a kopf timer: kopf would put a finalizer on every LLMJob for it.
    @kopf.on.event(c.GROUP, c.VERSION, c.PLURAL, id="reconcile", registry=registry)
    async def llmjob_event(body: kopf.Body, type: str | None, logger: Any, **kwargs: Any) -> None:
        if type == "DELETED":
            ctx.forget(body["metadata"]["uid"], str(body["metadata"].get("namespace", "")),
                       str(body["metadata"]["name"]))
            ctx.metrics.clear_deferred(str(body["metadata"].get("namespace", "")), str(body["metadata"]["name"]))
            return
        if ctx.is_own_write(body["metadata"]["uid"], body["metadata"].get("resourceVersion")):
            return  # the echo of this process's own status write: nothing new to act on
        try:
            await reconcile(ctx, dict(body), indexes_of(kwargs), logger)
        except (kopf.TemporaryError, kopf.PermanentError) as exc:
            logger.info(f"pass deferred to the next resync: {exc}")

    @kopf.on.event("", "v1", "configmaps", id="power-report", labels={REPORT_LABEL: "true"}, registry=registry)
    async def power_report_event(body: kopf.Body, logger: Any, **kwargs: Any) -> None:
        try:
            reports = parse_node_report(dict(body))
        except (ValueError, KeyError, TypeError) as exc:
            logger.warning(f"ignoring a malformed node power report: {exc}")
            return
        for ns, owner_name in sorted({(r.namespace, r.llmjob) for r in reports if r.llmjob}):
            await _reconcile_by_name(ctx, ns, owner_name, indexes_of(kwargs), logger)

    @kopf.on.event("batch", "v1", "jobs", id="child-job", labels={c.LABEL_LLMJOB: kopf.PRESENT},
                   registry=registry)
    async def child_job_event(body: kopf.Body, namespace: str | None, labels: kopf.Labels, type: str,
                              logger: Any, **kwargs: Any) -> None:
        owner_name = labels[c.LABEL_LLMJOB]
        owners = body.get("metadata", {}).get("ownerReferences") or []
        if not namespace or not any(o.get("kind") == c.KIND for o in owners):
            return  # not a child of an LLMJob (a copy made by hand, or the benchmark's floor)
        uid = body.get("metadata", {}).get("uid", "")
        if type == "DELETED":
            ctx.job_fingerprints.pop(uid, None)
        else:
            fingerprint = job_fingerprint(dict(body))
            if ctx.job_fingerprints.get(uid) == fingerprint:
                return
            ctx.job_fingerprints[uid] = fingerprint
        # A gang's pods start within moments of each other: one pass a short while after the first change sees
        # them all (one status write instead of one per pod). The pass runs in a task of its own and reads the
        # indexes as they are by then; this handler returns at once, so kopf keeps the Job's index entry current.
        key = (namespace, owner_name)
        if key in ctx.coalescing:
            return
        ctx.coalescing[key] = asyncio.create_task(
            _coalesced_pass(ctx, namespace, owner_name, indexes_of(kwargs), logger))


async def _coalesced_pass(ctx: OperatorContext, namespace: str, name: str, indexes: dict[str, Any],
                          logger: Any) -> None:
    try:
        await asyncio.sleep(CHILD_EVENT_COALESCE_SECONDS)
        # While new LLMJobs' children are being created (a burst), this pass's status write would compete with
        # those creates at the API server: it waits for a quiet moment, holding no slot and no lock, for at most
        # CHILD_PASS_MAX_HOLD_SECONDS (a long stream of new jobs delays running jobs' status, never stops it).
        await ctx.passes.wait_quiet(PRIORITY_NEW, NEW_PASS_QUIET_SECONDS, CHILD_PASS_MAX_HOLD_SECONDS)
    finally:
        ctx.coalescing.pop((namespace, name), None)
    try:
        await _reconcile_by_name(ctx, namespace, name, indexes, logger)
    except Exception:  # a task of its own: nobody awaits it, so report here (the resync retries the pass)
        ctx.metrics.record_error("internal")
        logger.exception(f"pass for {namespace}/{name} after a child Job change failed")


async def _reconcile_by_name(ctx: OperatorContext, namespace: str, name: str, indexes: dict[str, Any],
                             logger: Any) -> None:
    """A pass triggered by another object's event. The LLMJob comes from the watch-fed index, or from the answer
    to this process's own latest status write when that is newer; only when both are older than a version this
    process already saw is it read from the API server (never act on stale status)."""
    parent = ctx.newest_body(namespace, name, indexes["llmjob_bodies"].get((namespace, name), ()))
    if parent is None:
        # kopf fills every index before any handler runs, and an LLMJob reaches the index before its children
        # exist: no copy means the LLMJob is gone (a child being garbage-collected, or a namesake's leftover).
        return
    meta = parent.get("metadata", {})
    if ctx.is_stale(meta.get("uid", ""), meta.get("resourceVersion")):
        try:
            parent = await ctx.kube.get_or_none(LLMJOBS, name, namespace)
        except KubeApiError as exc:
            logger.warning(f"cannot read LLMJob {namespace}/{name}: {exc}")
            return
    if parent is None:
        return
    try:
        await reconcile(ctx, parent, indexes, logger)
    except (kopf.TemporaryError, kopf.PermanentError) as exc:
        # The LLMJob's own handlers and the resync timer retry; an event handler has no retries of its own.
        logger.info(f"pass for {namespace}/{name} deferred: {exc}")
