"""The WorkersReady step of a pass: ask the pods why workers are not ready, only while some are not."""

from __future__ import annotations

from collections.abc import Sequence

from llmasos.api.conditions import Condition
from llmasos.cluster.kube import PODS
from llmasos.handlers.context import OperatorContext
from llmasos.planning.lifecycle.decision import ObservedJob
from llmasos.planning.lifecycle.worker_health import observe_worker_problem, workers_ready_condition


async def workers_ready(ctx: OperatorContext, namespace: str, observed: Sequence[ObservedJob],
                        attempt: int) -> Condition | None:
    """WorkersReady for the current attempt's Job: one pod list while it has workers that are not ready (the Job
    itself does not say why), none once they all are."""
    job = next((j for j in observed if j.attempt == attempt), None)
    if job is None or job.suspended or job.complete or job.is_failed or job.active == 0:
        return None
    if job.ready >= job.active:
        return workers_ready_condition(None, all_ready=True)
    pods = await ctx.kube.list(PODS, namespace=namespace, label_selector=f"job-name={job.name}")
    return workers_ready_condition(observe_worker_problem(pods), all_ready=False)
