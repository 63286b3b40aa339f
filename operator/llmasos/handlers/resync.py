"""The periodic resync: every `resync_seconds`, one pass over every known LLMJob, on the leader only.

Why not a kopf timer: kopf puts a finalizer on every object with a timer (two PATCHes and two extra watch events per
LLMJob, and LLMJobs that cannot be deleted while no operator runs). This loop reads kopf's live index views (captured by
the first handler call, so it starts once the indexes are filled), checks the peering record the same way kopf does
(planning/lifecycle/leadership.py), and runs the same level-based pass at the lowest priority. It catches what no watch
event announces: a deferred job's start time, maxRuntime, ttlSecondsAfterFinished, jobs no node pool could host yet,
retries after TemporaryErrors, and the at-most-once-a-minute energy accounting of running jobs. Between rounds, it
runs at once (checked every second) the passes that are due (handlers/wakeups.py): by the clock, so a deferred job
starts, and a segment ends, within a second of its planned instant; and those of deferred jobs that another job's pool
plan moved (handlers/fleet.py), so each writes its new plan and Event without waiting for the round."""

from __future__ import annotations

import asyncio
import logging
import time

import kopf

from llmasos.cluster.kube import CLUSTER_PEERINGS, PEERINGS
from llmasos.errors import KubeApiError
from llmasos.handlers.context import PRIORITY_RESYNC, OperatorContext
from llmasos.handlers.llmjob import reconcile
from llmasos.planning.lifecycle.leadership import is_leader

log = logging.getLogger("llmasos.resync")
WAKEUP_CHECK_SECONDS = 1.0


async def leads(ctx: OperatorContext) -> bool:
    """True when standalone, or when every peering record this replica takes part in names it the leader."""
    name = ctx.settings.peering_name
    if not name:
        return True
    records = ([await ctx.kube.get_or_none(PEERINGS, name, ns) for ns in ctx.settings.namespaces]
               if ctx.settings.namespaces else [await ctx.kube.get_or_none(CLUSTER_PEERINGS, name)])
    if any(r is None for r in records):
        log.warning(f"peering object {name} not found: the resync waits (kopf does not operate without it either)")
        return False
    now = ctx.clock()
    return all(is_leader(dict(r.get("status") or {}), ctx.peering_priority, now) for r in records if r)


async def resync_once(ctx: OperatorContext, only: list[tuple[str, str]] | None = None) -> int:
    """One pass per known LLMJob (or per key of `only`); returns how many passes ran (0 when not leading or not
    ready)."""
    indexes = ctx.indexes
    if indexes is None:
        return 0
    try:
        if not await leads(ctx):
            return 0
    except KubeApiError as exc:
        ctx.metrics.record_error("api")
        log.warning(f"resync skipped: cannot read the peering object: {exc}")
        return 0
    bodies_index = indexes["llmjob_bodies"]

    async def one(namespace: str, name: str) -> None:
        body = ctx.newest_body(namespace, name, bodies_index.get((namespace, name), ()))
        if body is None:
            return
        job_log = logging.LoggerAdapter(log, {"object": f"{namespace}/{name}"})
        try:
            await reconcile(ctx, body, indexes, job_log, priority=PRIORITY_RESYNC)
        except (kopf.TemporaryError, kopf.PermanentError) as exc:
            job_log.info(f"resync pass for {namespace}/{name} deferred: {exc}")

    keys = list(bodies_index.keys()) if only is None else only
    await asyncio.gather(*(one(ns, name) for ns, name in keys))
    return len(keys)


async def resync_forever(ctx: OperatorContext) -> None:
    """Runs until cancelled (operator clean-up). A failed round is logged with its traceback, counted in
    llmasos_errors_total{kind="resync"}, and the next round runs as usual."""
    last_round = time.monotonic()
    while True:
        # Every second: the jobs due (handlers/wakeups.py: a planned start, a segment boundary, a deadline, or a
        # deferred job whose planned start another job's pool plan moved) get their pass now, without waiting for
        # the round; every resync_seconds: the round over every LLMJob.
        await asyncio.sleep(min(WAKEUP_CHECK_SECONDS, ctx.settings.resync_seconds))
        due = ctx.wakeups.take_due(ctx.clock())
        round_due = time.monotonic() - last_round >= ctx.settings.resync_seconds
        if not due and not round_due:
            continue
        try:
            if round_due:
                last_round = time.monotonic()
                await resync_once(ctx)
            else:
                await resync_once(ctx, only=due)
        except Exception:
            ctx.metrics.record_error("resync")
            log.exception("resync round failed; the next one runs in resync_seconds")
