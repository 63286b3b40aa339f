"""Applying a pass's decided child actions, and the TTL of finished LLMJobs: the handler's I/O on other objects.

`apply_actions` is idempotent (every create tolerates an existing object owned by the same LLMJob), so a pass
redone after a crash or a conflict never duplicates children.

Which kind of child an attempt gets (`child_kind`): an existing child keeps its kind; a new attempt of a
`strategy: ray` job is a KubeRay RayJob where the ray.io/v1 API is served (no headless Service: KubeRay creates the
head's), else an Indexed Job (docs/operator.md, "Ray jobs").
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from llmasos.api.clock import parse_instant
from llmasos.api.spec import LLMJobSpec
from llmasos.cluster import apply
from llmasos.cluster.builders import Owner, build_job, build_service, job_name
from llmasos.cluster.kube import JOBS, LLMJOBS
from llmasos.cluster.rayjob import RAYJOBS, build_rayjob
from llmasos.handlers.context import OperatorContext
from llmasos.planning.lifecycle.decision import JOB_KIND, RAYJOB_KIND, DeleteJob, EnsureJob, EnsureService, ObservedJob


async def child_kind(ctx: OperatorContext, spec: LLMJobSpec, name: str, observed: Sequence[ObservedJob]) -> str:
    """The kind of the child called `name`: its own if it exists; for a new one, RayJob for `strategy: ray` where
    KubeRay's API is served (one cached discovery GET, cluster/rayjob_api.py), else Job."""
    existing = next((j.kind for j in observed if j.name == name), None)
    if existing is not None:
        return existing
    if spec.parallelism.strategy == "ray" and await ctx.rayjob_api.served(ctx.kube):
        return RAYJOB_KIND
    return JOB_KIND


async def apply_actions(ctx: OperatorContext, owner: Owner, spec: LLMJobSpec, pool: str, actions: tuple[Any, ...],
                        observed: Sequence[ObservedJob], service_known: bool) -> None:
    """The Service first, then the Job(s) or RayJob(s); deletions follow, so a failed attempt is only removed once
    its successor exists."""
    image = spec.image or ctx.settings.worker_image
    ensures = [a for a in actions if isinstance(a, EnsureJob)]
    kinds = {a.attempt: await child_kind(ctx, spec, job_name(owner.name, a.attempt), observed) for a in ensures}

    async def ensure_service() -> None:
        if not service_known and await apply.ensure_service(ctx.kube, build_service(owner, spec), owner.uid):
            ctx.metrics.record_created("Service")

    async def ensure_job(action: EnsureJob) -> None:
        kind = kinds[action.attempt]
        build = build_rayjob if kind == RAYJOB_KIND else build_job
        body = build(owner, spec, action.attempt, pool, image, suspend=action.suspend,
                     checkpoint_dir=ctx.settings.checkpoint_dir)
        name = body["metadata"]["name"]
        seen = next((j for j in observed if j.name == name), None)
        existing = {"spec": {"suspend": seen.suspended}} if seen is not None else None
        created = await apply.ensure_job(ctx.kube, body, owner.uid, existing,
                                         RAYJOBS if kind == RAYJOB_KIND else JOBS)
        if created and existing is None:
            ctx.metrics.record_created(kind)

    # The Service before the Job: a Job whose pods come up without their rendezvous Service would hang, and an
    # operator killed between the two creates must not leave that state behind. A RayJob needs none.
    if any(isinstance(a, EnsureService) for a in actions) and JOB_KIND in kinds.values():
        await ensure_service()
    await asyncio.gather(*(ensure_job(a) for a in ensures))
    gone = {j.name: j.kind for j in observed}
    for action in actions:
        if isinstance(action, DeleteJob):
            res = RAYJOBS if gone.get(action.name) == RAYJOB_KIND else JOBS
            await apply.delete_job(ctx.kube, action.name, owner.namespace, res)


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
