"""kopf handlers for LLMJobs and their child Jobs: every cause runs the same level-based reconcile pass.

A pass: parse the spec, pick (once) a node pool, decide (pure) the phase and child actions, apply the actions
idempotently, write the status once if it changed, then post Events. Errors map onto kopf's taxonomy:
an invalid spec -> PermanentError plus a Failed condition; no pool yet -> a Scheduled=False condition and the
next periodic resync tries again (no retry storm); API trouble -> TemporaryError with the error's delay.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import kopf

from llmasos.api import constants as c
from llmasos.api.node_report import REPORT_LABEL, parse_node_report
from llmasos.api.phase import TERMINAL, Phase
from llmasos.cluster.kube import LLMJOBS
from llmasos.cluster.observe import job_fingerprint
from llmasos.cluster.priority import request_priority
from llmasos.cluster.rayjob import RAYJOBS, rayjob_fingerprint
from llmasos.errors import KubeApiError
from llmasos.handlers import pass_output, queueing, steps
from llmasos.handlers.admission_check import KUEUE_GROUP, KUEUE_VERSION
from llmasos.handlers.context import NEW_PASS_QUIET_SECONDS, PRIORITY_EVENT, PRIORITY_NEW, OperatorContext
from llmasos.handlers.gate import job_for
from llmasos.planning.lifecycle.queueing import workload_fingerprint
from llmasos.planning.lifecycle.wake import next_wake

# How long a pass triggered by a child Job's change waits, so that the changes of one gang's pods share a pass.
CHILD_EVENT_COALESCE_SECONDS = 1.0
# The longest such a pass waits while new LLMJobs' children are being created (see _coalesced_pass).
CHILD_PASS_MAX_HOLD_SECONDS = 10.0
# Every kopf index a pass reads (handlers/indexes.py); a test checks this list against the registered indexes.
INDEX_NAMES = ("node_inventory", "child_jobs", "child_rayjobs", "child_services", "power_reports", "carbon_usage",
               "llmjob_bodies", "namespace_policies")


async def reconcile(ctx: OperatorContext, body: dict[str, Any], indexes: dict[str, Any],
                    logger: Any, priority: int = PRIORITY_EVENT) -> None:
    """One pass over one LLMJob. Safe to run at any time, any number of times. A job's first pass (no children
    yet, not deferred) outranks other event-driven passes for a slot; `priority` orders the rest."""
    meta = body["metadata"]
    uid, name, ns = meta["uid"], meta["name"], meta["namespace"]
    if meta.get("deletionTimestamp"):
        return
    status = body.get("status") or {}
    if priority == PRIORITY_EVENT and not status.get("children") and status.get("phase") in (None, "", Phase.PENDING):
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
    """The pass, as named steps (handlers/steps.py, then handlers/pass_output.py); a step that ends it early has
    written the status saying why."""
    job = await steps.read(ctx, body, indexes)
    if job.previous_phase in TERMINAL:
        ctx.wakeups.set(job.namespace, job.name, None)
        await steps.finish(ctx, job, logger)
        return
    await steps.admit(ctx, job)
    placement = await steps.place(ctx, job, logger)
    if placement is None:
        return
    budgeted = await steps.budget(ctx, job)
    if budgeted is None:
        return
    job, budget_condition = budgeted
    timing = await steps.gate(ctx, job, placement, budget_condition)
    job, exited = await steps.exits(ctx, job)
    queued = await queueing.observe(ctx, job, placement, timing)  # spec.queueName: Kueue admits the child Job
    placement, timing = (queued.placement, queued.timing) if queued is not None else (placement, timing)
    decision = queueing.decided(queued, job, steps.decide_pass(job, placement, timing))
    await steps.apply(ctx, job, placement, decision)
    extra = queueing.scheduled(queued, await steps.conditions(ctx, job, placement, timing, decision, exited))
    carbon = await pass_output.account(ctx, job, placement, decision, logger)
    new = pass_output.render(job, placement, timing, decision, extra, carbon)
    await pass_output.write(ctx, job, placement, timing, decision, new, carbon)
    # The next instant at which time alone changes this pass's outcome: the resync runs the pass then.
    ctx.wakeups.set(job.namespace, job.name, next_wake(new, job_for(job.spec, job.body).deadline,
                                                       job.spec.carbon.interruptible, ctx.clock()))


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
        if _owned_by_llmjob(dict(body), namespace):
            _child_changed(ctx, dict(body), namespace or "", labels[c.LABEL_LLMJOB], type, job_fingerprint,
                           indexes_of(kwargs), logger)

    # The RayJobs of `strategy: ray` jobs where KubeRay is installed (kopf watches them while ray.io/v1 is served).
    @kopf.on.event(RAYJOBS.group, RAYJOBS.version, RAYJOBS.plural, id="child-rayjob",
                   labels={c.LABEL_LLMJOB: kopf.PRESENT}, registry=registry)
    async def child_rayjob_event(body: kopf.Body, namespace: str | None, labels: kopf.Labels, type: str,
                                 logger: Any, **kwargs: Any) -> None:
        if _owned_by_llmjob(dict(body), namespace):
            _child_changed(ctx, dict(body), namespace or "", labels[c.LABEL_LLMJOB], type, rayjob_fingerprint,
                           indexes_of(kwargs), logger)

    if not ctx.settings.kueue_llm_jobs:
        return

    # The Workloads Kueue makes for queued LLMJobs' children (spec.queueName): a change of admission state (quota
    # reserved, checks, admitted, evicted, deactivated) starts the LLMJob's pass now, not at the next resync.
    @kopf.on.event(KUEUE_GROUP, KUEUE_VERSION, "workloads", id="queued-workload", registry=registry)
    async def workload_event(body: kopf.Body, namespace: str | None, type: str, logger: Any, **kwargs: Any) -> None:
        owner = queueing.owning_llmjob(dict(body), namespace or "", (kwargs["child_jobs"], kwargs["child_rayjobs"]))
        if owner is not None:
            _child_changed(ctx, dict(body), namespace or "", owner, type, workload_fingerprint, indexes_of(kwargs),
                           logger)


def _owned_by_llmjob(body: dict[str, Any], namespace: str | None) -> bool:
    """A child made by the operator (not a copy made by hand, or the benchmark's floor, which carry the label)."""
    owners = body.get("metadata", {}).get("ownerReferences") or []
    return bool(namespace) and any(o.get("kind") == c.KIND for o in owners)


def _child_changed(ctx: OperatorContext, body: dict[str, Any], namespace: str, owner_name: str, type: str,
                   fingerprint_of: Callable[[dict[str, Any]], tuple[object, ...]], indexes: dict[str, Any],
                   logger: Any) -> None:
    """A child Job, RayJob or a child's Workload changed: schedule one coalesced pass of its LLMJob, unless nothing
    that matters did."""
    uid = body.get("metadata", {}).get("uid", "")
    if type == "DELETED":
        ctx.job_fingerprints.pop(uid, None)
    else:
        fingerprint = fingerprint_of(body)
        if ctx.job_fingerprints.get(uid) == fingerprint:
            return
        ctx.job_fingerprints[uid] = fingerprint
    # A gang's pods start within moments of each other: one pass a short while after the first change sees
    # them all (one status write instead of one per pod). The pass runs in a task of its own and reads the
    # indexes as they are by then; this handler returns at once, so kopf keeps the Job's index entry current.
    key = (namespace, owner_name)
    if key in ctx.coalescing:
        return
    ctx.coalescing[key] = asyncio.create_task(_coalesced_pass(ctx, namespace, owner_name, indexes, logger))


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
