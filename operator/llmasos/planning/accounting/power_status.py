"""LLMJob `status.power` from the node agents' reports (pure): per worker pod, its GPUs and the limit applied.

Reports arrive per node at a low rate, so the latest report of each pod wins (by `reportedAt`). Energy is the
agents' NVML counter attribution in joules; the carbon accounting turns it into kWh and gCO2e. The value and its
JSON keys are `api.energy_status.PowerStatus`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from llmasos.api.energy_status import PodPower, PowerStatus


def build_power_status(reports: Iterable[Mapping[str, Any]],
                       previous: PowerStatus | None = None) -> PowerStatus | None:
    """`reports`: dicts with node, namespace, name, uid, gpus, policy, limit_w, state, energy_j, reported_at, and
    optionally tokens, step, planned_steps, remaining_s, slowdown, default_w (newer agents).

    Once a pod ends its agent restores the GPU and reports no limit; the limit that was applied is kept from the
    previous status so the finished job still shows what it ran under. Tokens, step counts, slowdown and the default
    limit are kept the same way when a report no longer has them (an agent that restarted forgets an ended pod's
    counter).
    """
    previous_pods = previous.pods if previous is not None else ()
    before = {p.pod: p for p in previous_pods}

    def carry(r: Mapping[str, Any], key: str, field: str) -> Any:
        value = r.get(key)
        if value is not None:
            return value
        old = before.get(str(r["name"]))
        return getattr(old, field) if old is not None else None

    latest: dict[str, Mapping[str, Any]] = {}
    for r in reports:
        key = str(r["uid"] or f"{r['namespace']}/{r['name']}")
        if key not in latest or str(r["reported_at"]) >= str(latest[key]["reported_at"]):
            latest[key] = r
    reported = {str(r["name"]) for r in latest.values()}
    kept = [p for p in previous_pods if p.pod not in reported]
    if not latest and not kept:
        return None
    pods = [
        PodPower(
            pod=str(r["name"]),
            node=r["node"],
            gpus=None if r["gpus"] is None else tuple(r["gpus"]),
            policy=r["policy"],
            limit_watts=carry(r, "limit_w", "limit_watts"),
            state=r["state"],
            energy_joules=round(float(r["energy_j"]), 1),
            read_at=r["reported_at"],
            default_watts=carry(r, "default_w", "default_watts"),
            slowdown=carry(r, "slowdown", "slowdown"),
            tokens=carry(r, "tokens", "tokens"),
            step=carry(r, "step", "step"),
            planned_steps=carry(r, "planned_steps", "planned_steps"),
            remaining_seconds=r.get("remaining_s"),  # never carried: an old estimate is no estimate
        )
        for r in sorted(latest.values(), key=lambda r: str(r["name"]))
    ]
    # Pods no current report mentions (their node's agent restarted and forgot ended pods) keep their last entry,
    # so a job's energy never goes down.
    pods = sorted([*pods, *kept], key=lambda p: p.pod)
    times = [str(r["reported_at"]) for r in latest.values()] + [p.read_at or "" for p in kept]
    return PowerStatus(
        pods=tuple(pods),
        energy_joules=round(sum(float(p.energy_joules or 0.0) for p in pods), 1),
        reported_at=max(times),
    )
