"""Applying a pass's decided child actions, and the TTL of finished LLMJobs: the handler's I/O on other objects.

`apply_actions` is idempotent (every create tolerates an existing object owned by the same LLMJob), so a pass
redone after a crash or a conflict never duplicates children.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from llmasos.api.clock import parse_instant
from llmasos.api.spec import LLMJobSpec
from llmasos.cluster import apply
from llmasos.cluster.builders import Owner, build_job, build_service
from llmasos.cluster.kube import LLMJOBS
from llmasos.handlers.context import OperatorContext
from llmasos.planning.lifecycle.decision import DeleteJob, EnsureJob, EnsureService


async def apply_actions(ctx: OperatorContext, owner: Owner, spec: LLMJobSpec, pool: str, actions: tuple[Any, ...],
                 observed_names: set[str], job_index: Any, service_known: bool) -> None:
    """The Service first, then the Job(s); deletions follow, so a failed attempt is only removed once its successor
    exists."""
    image = spec.image or ctx.settings.worker_image

    async def ensure_service() -> None:
        if not service_known and await apply.ensure_service(ctx.kube, build_service(owner, spec), owner.uid):
            ctx.metrics.record_created("Service")

    async def ensure_job(action: EnsureJob) -> None:
        body = build_job(owner, spec, action.attempt, pool, image, suspend=action.suspend,
                         checkpoint_dir=ctx.settings.checkpoint_dir)
        existing = None
        name = body["metadata"]["name"]
        if name in observed_names:
            for observed, _owners in job_index.get((owner.namespace, owner.name), ()):
                if observed.name == name:
                    existing = {"spec": {"suspend": observed.suspended}}
        created = await apply.ensure_job(ctx.kube, body, owner.uid, existing)
        if created and existing is None:
            ctx.metrics.record_created("Job")

    # The Service before the Job: a Job whose pods come up without their rendezvous Service would hang, and an
    # operator killed between the two creates must not leave that state behind.
    if any(isinstance(a, EnsureService) for a in actions):
        await ensure_service()
    await asyncio.gather(*(ensure_job(a) for a in actions if isinstance(a, EnsureJob)))
    for action in actions:
        if isinstance(action, DeleteJob):
            await apply.delete_job(ctx.kube, action.name, owner.namespace)


async def expire_if_due(ctx: OperatorContext, body: dict[str, Any], spec: LLMJobSpec) -> None:
    """ttlSecondsAfterFinished: delete the finished LLMJob once its time is up."""
    if spec.ttl_seconds_after_finished is None:
        return
    done = (body.get("status") or {}).get("completionTime")
    if not done:
        return
    finished = parse_instant(str(done), "status.completionTime")
    if ctx.clock() >= finished + timedelta(seconds=spec.ttl_seconds_after_finished):
        meta = body["metadata"]
        await ctx.kube.delete(LLMJOBS, meta["name"], meta["namespace"])
