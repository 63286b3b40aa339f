"""The node-power report: the contract between the node agent (which writes it) and the operator (which reads it).

One ConfigMap per node, `llmasos-power-<node>`, labelled `llmasos.io/node-power-report=true`, its JSON document under
`data["report.json"]` with `schema: llmasos.io/node-power-report/v1`. The agent renders it in
`llmasos.agent.node_report`; the operator parses it here. Keeping names, schema and parser in `api/` means the
operator never imports the agent, and a change to the shape shows up on both sides' tests.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass

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
    chosen_w: float | None = None  # energyOptimal: the limit the search chose (a follower: its leader's choice)
    step: float | None = None  # the worker's optimizer steps done (llmasos_worker_step), when it exports them
    planned_steps: float | None = None  # the step its run ends at (llmasos_worker_planned_steps), when it has one
    remaining_s: float | None = None  # run time it still needs at its recent pace (llmasos_worker_remaining_seconds)


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
            chosen_w=_opt_float(p.get("chosenW")),
            step=_opt_float(p.get("step")),
            planned_steps=_opt_float(p.get("plannedSteps")),
            remaining_s=_opt_float(p.get("remainingSeconds")),
        )
        for p in doc["pods"]
    ]


def _opt_float(value: object) -> float | None:
    """A number of the report, or None (absent, null, or from an older agent that did not write the key)."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
