"""The node's report to the operator: one small ConfigMap per node, written at a low rate (see docs/power.md).

Why a per-node object and not pod annotations: one write per node per minute (about 17 writes/s for 1,000 nodes)
that only the operator watches, versus a write per *pod* that every pod watcher in the cluster (kubelet, scheduler,
controllers) receives; and the agent needs write access to one namespace's ConfigMaps only, not to every pod.

`build_node_report` renders the object (no I/O); the injected `ReportSink` applies it; `parse_node_report` is what
the operator calls on the ConfigMap it watched (it lives beside the builder so both sides share one schema).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from llmasos.agent.snapshot import Snapshot

REPORT_LABEL = "llmasos.io/node-power-report"
REPORT_KEY = "report.json"
NODE_ANNOTATION = "llmasos.io/node"
SCHEMA = "llmasos.io/node-power-report/v1"


def report_name(node: str) -> str:
    """`llmasos-power-<node>`, shortened with a hash where the node name would exceed a ConfigMap name's limit."""
    name = f"llmasos-power-{node}"
    if len(name) <= 253:
        return name
    return f"llmasos-power-{node[:200]}-{hashlib.sha256(node.encode()).hexdigest()[:12]}"


def _iso(t: float | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


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


@dataclass(frozen=True)
class PodPowerReport:
    """One worker pod as the operator needs it for LLMJob `status.power` and energy accounting."""

    node: str
    namespace: str
    name: str
    uid: str
    llmjob: str
    gpus: tuple[str, ...]  # GPU UUIDs
    policy: str
    limit_w: float | None
    state: str
    energy_j: float
    ended_at: str | None
    reported_at: str
    tokens: float | None = None  # the worker's cumulative tokens (llmasos_worker_tokens_total), when it exports them
    slowdown: float | None = None  # energyOptimal: measured slowdown of the chosen limit
    default_w: float | None = None  # NVML default limit of the pod's GPUs (the uncapped reference)


def parse_node_report(configmap: Mapping[str, object]) -> list[PodPowerReport]:
    """Pods of one node report (a ConfigMap as the API returns it); raise ValueError when it is not one."""
    data = configmap.get("data")
    if not isinstance(data, Mapping) or REPORT_KEY not in data:
        raise ValueError(f"not a node power report: no data[{REPORT_KEY!r}]")
    doc = json.loads(str(data[REPORT_KEY]))
    if doc.get("schema") != SCHEMA:
        raise ValueError(f"unknown node power report schema {doc.get('schema')!r}")
    return [
        PodPowerReport(
            node=doc["node"],
            namespace=p["namespace"],
            name=p["name"],
            uid=p["uid"],
            llmjob=p["llmjob"],
            gpus=tuple(p["gpuUUIDs"]),
            policy=p["policy"],
            limit_w=p["limitW"],
            state=p["state"],
            energy_j=float(p["energyJ"]),
            ended_at=p["endedAt"],
            reported_at=doc["time"],
            tokens=_opt_float(p.get("tokens")),
            slowdown=_opt_float(p.get("slowdown")),
            default_w=_opt_float(p.get("defaultW")),
        )
        for p in doc["pods"]
    ]


def _opt_float(value: object) -> float | None:
    """A number of the report, or None (absent, null, or from an older agent that did not write the key)."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
