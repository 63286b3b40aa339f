"""In-memory views of nodes, namespaces, child Jobs, RayJobs and Services, kept current by kopf's watch streams.

Placement and reconciliation read these instead of listing from the API server on every pass, which keeps the
API load per LLMJob flat as the fleet grows. Index values are small frozen views, not whole objects. The index
functions are coroutines although they do no I/O: kopf runs plain functions in a thread pool, and the thread hop
per watch event cost more CPU than the functions themselves (profiled with 500 LLMJobs).

`child_rayjobs` is the RayJobs a `strategy: ray` LLMJob gets where KubeRay is installed (cluster/rayjob.py); kopf
watches them only while the ray.io/v1 API is served, and the index is empty elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict
from typing import Any

import kopf

from llmasos.api import constants as c
from llmasos.api.node_report import REPORT_LABEL, parse_node_report
from llmasos.api.workload_policy import NamespacePolicy
from llmasos.cluster.observe import observe_job, observe_node
from llmasos.cluster.rayjob import RAYJOBS, observe_rayjob
from llmasos.planning.lifecycle.decision import ObservedJob
from llmasos.planning.placement.feasible import NodeCapacity, PoolInventory, summarize_pools


def register_indexes(registry: kopf.OperatorRegistry) -> None:
    @kopf.index("", "v1", "nodes", id="node_inventory", registry=registry)
    async def node_inventory(body: kopf.Body, **_: Any) -> dict[str, NodeCapacity]:
        node = observe_node(dict(body))
        return {node.name: node} if node.pool else {}

    @kopf.index("batch", "v1", "jobs", id="child_jobs", labels={c.LABEL_LLMJOB: kopf.PRESENT},
                registry=registry)
    async def child_jobs(body: kopf.Body, namespace: str | None, labels: kopf.Labels,
                         **_: Any) -> dict[tuple[str, str], Any]:
        owners = tuple(r.get("uid", "") for r in body.get("metadata", {}).get("ownerReferences", []) or [])
        return {(namespace or "", labels[c.LABEL_LLMJOB]): (observe_job(dict(body)), owners)}

    @kopf.index(RAYJOBS.group, RAYJOBS.version, RAYJOBS.plural, id="child_rayjobs",
                labels={c.LABEL_LLMJOB: kopf.PRESENT}, registry=registry)
    async def child_rayjobs(body: kopf.Body, namespace: str | None, labels: kopf.Labels,
                            **_: Any) -> dict[tuple[str, str], Any]:
        owners = tuple(r.get("uid", "") for r in body.get("metadata", {}).get("ownerReferences", []) or [])
        return {(namespace or "", labels[c.LABEL_LLMJOB]): (observe_rayjob(dict(body)), owners)}

    @kopf.index("", "v1", "services", id="child_services", labels={c.LABEL_LLMJOB: kopf.PRESENT},
                registry=registry)
    async def child_services(body: kopf.Body, namespace: str | None, labels: kopf.Labels, **_: Any) -> dict[Any, Any]:
        owners = tuple(r.get("uid", "") for r in body.get("metadata", {}).get("ownerReferences", []) or [])
        return {(namespace or "", labels[c.LABEL_LLMJOB]): owners}

    @kopf.index("", "v1", "configmaps", id="power_reports", labels={REPORT_LABEL: "true"}, registry=registry)
    async def power_reports(body: kopf.Body, **_: Any) -> dict[tuple[str, str], Any]:
        try:
            reports = parse_node_report(dict(body))
        except (ValueError, KeyError, TypeError):
            return {}
        grouped: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for r in reports:
            if r.llmjob:
                grouped.setdefault((r.namespace, r.llmjob), []).append(asdict(r))
        return dict(grouped)

    # Only namespaces an admin widened or narrowed (labels, annotations of api.workload_policy) take an entry.
    @kopf.index("", "v1", "namespaces", id="namespace_policies", registry=registry)
    async def namespace_policies(name: str | None, labels: kopf.Labels, annotations: kopf.Annotations,
                                 **_: Any) -> dict[str, NamespacePolicy]:
        policy = NamespacePolicy.from_metadata(labels, annotations)
        return {} if policy.is_default or not name else {name: policy}

    @kopf.index(c.GROUP, c.VERSION, c.PLURAL, id="carbon_usage", registry=registry)
    async def carbon_usage(body: kopf.Body, namespace: str | None, uid: str, **_: Any) -> dict[str, Any]:
        carbon = (body.get("status") or {}).get("carbon") or {}
        created = str(body.get("metadata", {}).get("creationTimestamp", ""))[:7]  # YYYY-MM
        return {namespace or "": (uid, created, float(carbon.get("gCO2e", 0.0) or 0.0))}

    @kopf.index(c.GROUP, c.VERSION, c.PLURAL, id="llmjob_bodies", registry=registry)
    async def llmjob_bodies(body: kopf.Body, namespace: str | None, name: str | None, **_: Any) -> dict[Any, Any]:
        return {(namespace or "", name or ""): slim_body(dict(body))}


def slim_body(body: dict[str, Any]) -> dict[str, Any]:
    """What a pass reads of an LLMJob, without managedFields and kubectl's last-applied copy (most of its bytes)."""
    meta = dict(body.get("metadata") or {})
    meta.pop("managedFields", None)
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items()
                   if k != "kubectl.kubernetes.io/last-applied-configuration"}
    meta["annotations"] = annotations
    return {**body, "metadata": meta}


def namespace_policy(policy_index: Mapping[str, Iterable[NamespacePolicy]], namespace: str) -> NamespacePolicy:
    """What the namespace's labels and annotations allow (the defaults when it has none of them)."""
    return next(iter(policy_index.get(namespace, ())), NamespacePolicy())


def reports_for(report_index: Mapping[tuple[str, str], Iterable[list[dict[str, Any]]]], namespace: str,
                name: str) -> list[dict[str, Any]]:
    """Every pod report of this LLMJob, across the nodes' report objects."""
    return [r for per_node in report_index.get((namespace, name), ()) for r in per_node]


def has_service(service_index: Mapping[tuple[str, str], Iterable[tuple[str, ...]]], namespace: str, name: str,
                owner_uid: str) -> bool:
    return any(owner_uid in owners for owners in service_index.get((namespace, name), ()))


def inventory_from(node_index: Mapping[str, Iterable[NodeCapacity]],
                   requested_by_node: Mapping[str, int]) -> dict[str, PoolInventory]:
    nodes = []
    for name, store in node_index.items():
        for node in store:
            requested = requested_by_node.get(name, 0)
            nodes.append(NodeCapacity(node.name, node.pool, node.gpu_product, node.carbon_zone,
                                      node.allocatable_gpus, requested, node.schedulable))
    return summarize_pools(nodes)


def gpus_held_by_pool(*job_indexes: Mapping[tuple[str, str], Iterable[Any]]) -> dict[str, int]:
    """GPUs the LLMJobs' child Jobs (and RayJobs: pass both indexes) hold or are about to hold, per pool (for
    planning.placement.with_pending)."""
    held: dict[str, int] = {}
    for entries in (e for index in job_indexes for e in index.values()):
        for observed, _owners in entries:
            if observed.pool and observed.holds_gpus:
                held[observed.pool] = held.get(observed.pool, 0) + observed.gpus
    return held


def children_from(job_index: Mapping[tuple[str, str], Iterable[Any]], namespace: str, name: str,
                  owner_uid: str, *more: Mapping[tuple[str, str], Iterable[Any]]) -> list[ObservedJob]:
    """Child Jobs (and RayJobs, from the indexes in `more`) of this LLMJob (same name label *and* owned by this
    uid: a namesake's leftovers are ignored)."""
    out = []
    for index in (job_index, *more):
        for observed, owners in index.get((namespace, name), ()):
            if owner_uid in owners:
                out.append(observed)
    return out
