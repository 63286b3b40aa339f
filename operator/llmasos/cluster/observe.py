"""Turn raw Kubernetes objects into the small frozen views the planner reasons about (pure, no I/O)."""

from __future__ import annotations

from typing import Any

from llmasos.api import constants as c
from llmasos.api.phase import POD_TERMINAL
from llmasos.planning.lifecycle.decision import ObservedJob
from llmasos.planning.placement.feasible import NodeCapacity


def _cond(obj: dict[str, Any], type_: str) -> dict[str, Any] | None:
    for item in obj.get("status", {}).get("conditions", []) or []:
        if item.get("type") == type_ and item.get("status") == "True":
            return dict(item)
    return None


def observe_job(job: dict[str, Any]) -> ObservedJob:
    meta, spec, status = job.get("metadata", {}), job.get("spec", {}), job.get("status", {}) or {}
    failed = _cond(job, "Failed")
    # FailureTarget appears before Failed while pods are still being terminated: treat it as the failure.
    failed = failed or _cond(job, "FailureTarget")
    complete = _cond(job, "Complete") or _cond(job, "SuccessCriteriaMet")
    try:
        attempt = int(meta.get("labels", {}).get(c.LABEL_ATTEMPT, "0"))
    except ValueError:
        attempt = 0
    return ObservedJob(
        name=meta.get("name", ""),
        attempt=attempt,
        suspended=bool(spec.get("suspend", False)),
        active=int(status.get("active", 0) or 0),
        ready=int(status.get("ready", 0) or 0),
        succeeded=int(status.get("succeeded", 0) or 0),
        failed=int(status.get("failed", 0) or 0),
        complete=complete is not None,
        failed_reason=str(failed.get("reason", "Failed")) if failed else "",
        failed_message=str(failed.get("message", "")) if failed else "",
        start_time=str(status.get("startTime", "") or ""),
        completion_time=str(status.get("completionTime", "") or ""),
        pool=_affinity_pool(spec),
        gpus=_job_gpus(spec),
        uid=str(meta.get("uid", "") or ""),
    )


def _job_gpus(job_spec: dict[str, Any]) -> int:
    try:
        parallelism = int(job_spec.get("parallelism", 1) or 0)
    except (TypeError, ValueError):
        parallelism = 0
    return parallelism * pod_gpu_request({"spec": (job_spec.get("template") or {}).get("spec") or {}})


def _affinity_pool(job_spec: dict[str, Any]) -> str:
    return template_pool((job_spec.get("template") or {}).get("spec") or {})


def template_pool(pod_spec: dict[str, Any]) -> str:
    """The pool a pod template's spec is bound to: its nodeSelector's pool label (Kueue adds the assigned flavour's
    node labels there when it admits a queued Job), else the single pool of its required node affinity
    (cluster/builders.py puts it there; a queued Job may list several allowed pools, which name no one pool)."""
    selected = (pod_spec.get("nodeSelector") or {}).get(c.NODE_POOL_LABEL)
    if selected:
        return str(selected)
    affinity = (pod_spec.get("affinity") or {}).get("nodeAffinity") or {}
    required = affinity.get("requiredDuringSchedulingIgnoredDuringExecution") or {}
    for term in required.get("nodeSelectorTerms") or []:
        for expr in term.get("matchExpressions") or []:
            values = list(expr.get("values") or ())
            if expr.get("key") == c.NODE_POOL_LABEL and expr.get("operator") == "In" and len(values) == 1:
                return str(values[0])
    return ""


def observe_node(node: dict[str, Any], requested_gpus: int = 0) -> NodeCapacity:
    meta, spec, status = node.get("metadata", {}), node.get("spec", {}), node.get("status", {}) or {}
    labels = meta.get("labels", {}) or {}
    ready = any(x.get("type") == "Ready" and x.get("status") == "True" for x in status.get("conditions", []) or [])
    try:
        gpus = int(str((status.get("allocatable") or {}).get(c.GPU_RESOURCE, "0")))
    except ValueError:
        gpus = 0
    return NodeCapacity(
        name=meta.get("name", ""),
        pool=labels.get(c.NODE_POOL_LABEL, ""),
        gpu_product=labels.get(c.NODE_GPU_PRODUCT_LABEL, ""),
        carbon_zone=labels.get(c.NODE_CARBON_ZONE_LABEL, ""),
        allocatable_gpus=gpus,
        requested_gpus=requested_gpus,
        schedulable=ready and not spec.get("unschedulable", False),
    )


def pod_gpu_request(pod: dict[str, Any]) -> int:
    """GPUs a pod holds on its node (0 once it has finished)."""
    if (pod.get("status", {}) or {}).get("phase") in POD_TERMINAL:
        return 0
    total = 0
    for container in pod.get("spec", {}).get("containers", []) or []:
        res = container.get("resources", {}) or {}
        raw = (res.get("limits") or {}).get(c.GPU_RESOURCE) or (res.get("requests") or {}).get(c.GPU_RESOURCE)
        try:
            total += int(str(raw)) if raw is not None else 0
        except ValueError:
            continue
    return total


def job_fingerprint(job: dict[str, Any]) -> tuple[object, ...]:
    """What about a child Job can change its LLMJob's status; other updates (e.g. uncounted pods) are noise."""
    o = observe_job(job)
    wanted = int(job.get("spec", {}).get("parallelism", 1) or 1)
    return (o.suspended, o.active > 0, o.ready >= wanted, o.complete, o.failed_reason)
