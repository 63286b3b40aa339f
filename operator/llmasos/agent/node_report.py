"""The node's report to the operator: one small ConfigMap per node, written at a low rate (see docs/power.md).

Why a per-node object and not pod annotations: one write per node per minute (about 17 writes/s for 1,000 nodes)
that only the operator watches, versus a write per *pod* that every pod watcher in the cluster (kubelet, scheduler,
controllers) receives; and the agent needs write access to one namespace's ConfigMaps only, not to every pod.

`build_node_report` renders the object (no I/O); the injected `ReportSink` applies it. Names, schema and the parser the
operator uses live in `llmasos.api.node_report`, the contract both sides share.
"""

from __future__ import annotations

import json

from llmasos.agent.snapshot import Snapshot
from llmasos.api.clock import format_epoch
from llmasos.api.node_report import NODE_ANNOTATION, REPORT_KEY, REPORT_LABEL, SCHEMA, report_name


def _iso(t: float | None) -> str | None:
    return None if t is None else format_epoch(t)


def report_payload(snap: Snapshot) -> dict[str, object]:
    uuids = {g.index: g.uuid for g in snap.gpus}
    defaults = {g.index: g.default_w for g in snap.gpus}
    idle = sum(j for (_, p), j in snap.ledger.gpu_pod_joules.items() if p is None)
    return {
        "schema": SCHEMA,
        "node": snap.node,
        "time": _iso(snap.t),
        "mapping": snap.mapper,
        "gpus": [
            {
                "index": g.index,
                "uuid": g.uuid,
                "name": g.name,
                "limitW": round(g.limit_w, 1),
                "defaultW": round(g.default_w, 1),
                "powerW": round(g.power_w, 1),
                "pod": f"{g.pod.namespace}/{g.pod.name}" if g.pod else None,
            }
            for g in snap.gpus
        ],
        "pods": [
            {
                "namespace": p.ref.namespace,
                "name": p.ref.name,
                "uid": p.ref.uid,
                "llmjob": p.ref.llmjob,
                "gpus": list(p.gpus),
                "gpuUUIDs": [uuids.get(i, "") for i in p.gpus],
                "policy": p.policy,
                "limitW": None if p.limit_w is None else round(p.limit_w, 1),
                "state": p.state,
                "energyJ": round(p.energy_j, 1),
                "endedAt": _iso(p.ended_at),
                "chosenW": p.chosen_w,
                "slowdown": None if p.slowdown is None else round(p.slowdown, 4),
                "defaultW": round(defaults[p.gpus[0]], 1) if p.gpus and p.gpus[0] in defaults else None,
                "tokens": None if p.tokens is None else round(p.tokens, 1),
                "step": p.step,
                "plannedSteps": p.planned_steps,
                "remainingSeconds": None if p.remaining_s is None else round(p.remaining_s, 1),
            }
            for p in snap.pods
        ],
        "idleEnergyJ": round(idle, 1),
    }


def build_node_report(snap: Snapshot, namespace: str | None = None) -> dict[str, object]:
    """The ConfigMap body; the sink fills in the namespace when it is None (the agent's own)."""
    metadata: dict[str, object] = {
        "name": report_name(snap.node),
        "labels": {REPORT_LABEL: "true"},
        "annotations": {NODE_ANNOTATION: snap.node},
    }
    if namespace:
        metadata["namespace"] = namespace
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata,
        "data": {REPORT_KEY: json.dumps(report_payload(snap), sort_keys=True, separators=(",", ":"))},
    }
