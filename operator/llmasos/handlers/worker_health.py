"""The WorkersReady step of a pass: ask the pods why workers are not ready, only while some are not.

A Job's pods carry its `job-name`; a RayJob's (KubeRay names its Ray cluster and pods itself) are found by the
LLMJob labels the operator puts on its pod templates, the same labels the node agent attributes energy by.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llmasos.api import constants as c
from llmasos.api.conditions import Condition
from llmasos.cluster.kube import EVENTS
from llmasos.handlers.context import OperatorContext
from llmasos.handlers.pod_lists import PodLists
from llmasos.planning.lifecycle.decision import RAYJOB_KIND, ObservedJob
from llmasos.planning.lifecycle.worker_faults import (
    WorkerExit,
    observe_mount_failure,
    observe_worker_exit,
    stuck_creating,
)
from llmasos.planning.lifecycle.worker_health import observe_worker_problem, workers_ready_condition


async def workers_ready(ctx: OperatorContext, namespace: str, observed: Sequence[ObservedJob],
                        attempt: int, pods: PodLists | None = None) -> Condition | None:
    """WorkersReady for the current attempt's Job: one pod list while it has workers that are not ready (the Job
    itself does not say why), none once they all are."""
    job = next((j for j in observed if j.attempt == attempt), None)
    if job is None or job.suspended or job.complete or job.is_failed or job.active == 0:
        return None
    if job.ready >= job.active:
        return workers_ready_condition(None, all_ready=True)
    listed = await (pods or PodLists()).list(ctx.kube, namespace, pod_selector(job))
    problem = observe_worker_problem(listed)
    if problem is None:
        return await mount_failure(ctx, namespace, listed)
    return workers_ready_condition(problem, all_ready=False)


def pod_selector(job: ObservedJob) -> str:
    """The label selector of one attempt's pods (a RayJob is named `<llmjob>-a<attempt>`, cluster/builders.py)."""
    if job.kind != RAYJOB_KIND:
        return f"job-name={job.name}"
    owner = job.name.removesuffix(f"-a{job.attempt}")
    return f"{c.LABEL_LLMJOB}={owner},{c.LABEL_ATTEMPT}={job.attempt}"


async def worker_exit(ctx: OperatorContext, namespace: str, observed: Sequence[ObservedJob],
                      pods: PodLists | None = None) -> WorkerExit | None:
    """What the failed container of the newest attempt said (reason, exit code, log tail): one pod list, only in a
    pass whose newest Job has failed (its pods go with it when the group restarts)."""
    newest = max(observed, key=lambda j: j.attempt, default=None)
    if newest is None or not newest.is_failed:
        return None
    return observe_worker_exit(await (pods or PodLists()).list(ctx.kube, namespace, pod_selector(newest)))


async def mount_failure(ctx: OperatorContext, namespace: str, pods: Sequence[dict[str, Any]]) -> Condition | None:
    """WorkersReady from the kubelet's FailedMount events of a worker stuck in ContainerCreating (a missing ConfigMap
    or Secret volume): one event list, only for the first pod that has been creating for longer than the grace."""
    for pod in stuck_creating(pods, ctx.clock())[:1]:
        events = await ctx.kube.list(EVENTS, namespace=namespace,
                                     field_selector=f"involvedObject.kind=Pod,involvedObject.name={pod}")
        failure = observe_mount_failure(pod, events)
        if failure is not None:
            return failure.condition()
    return None
