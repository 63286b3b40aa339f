"""LLMJob `status.power` from the node agents' reports (pure): per worker pod, its GPUs and the limit applied.

Reports arrive per node at a low rate, so the latest report of each pod wins (by `reportedAt`). Energy is the
agents' NVML counter attribution in joules; the carbon accounting turns it into kWh and gCO2e.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def build_power_status(reports: Iterable[Mapping[str, Any]],
                       previous: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """`reports`: dicts with node, namespace, name, uid, gpus, policy, limit_w, state, energy_j, reported_at, and
    optionally tokens, slowdown, default_w (newer agents).

    Once a pod ends its agent restores the GPU and reports no limit; the limit that was applied is kept from the
    previous status so the finished job still shows what it ran under. Tokens, slowdown and the default limit are
    kept the same way when a report no longer has them (an agent that restarted forgets an ended pod's counter).
    """
    before = {str(p["pod"]): p for p in (previous or {}).get("pods", []) or []}
    applied = {name: p.get("limitWatts") for name, p in before.items()}

    def carry(r: Mapping[str, Any], key: str, status_key: str) -> Any:
        value = r.get(key)
        return value if value is not None else before.get(str(r["name"]), {}).get(status_key)

    latest: dict[str, Mapping[str, Any]] = {}
    for r in reports:
        key = str(r["uid"] or f"{r['namespace']}/{r['name']}")
        if key not in latest or str(r["reported_at"]) >= str(latest[key]["reported_at"]):
            latest[key] = r
    reported = {str(r["name"]) for r in latest.values()}
    kept = [p for p in (previous or {}).get("pods", []) or [] if str(p.get("pod")) not in reported]
    if not latest and not kept:
        return None
    pods = [
        {k: v for k, v in {
            "pod": r["name"],
            "node": r["node"],
            "gpus": list(r["gpus"]),
            "policy": r["policy"],
            "limitWatts": r["limit_w"] if r["limit_w"] is not None else applied.get(str(r["name"])),
            "state": r["state"],
            "energyJoules": round(float(r["energy_j"]), 1),
            "readAt": r["reported_at"],
            "defaultWatts": carry(r, "default_w", "defaultWatts"),
            "slowdown": carry(r, "slowdown", "slowdown"),
            "tokens": carry(r, "tokens", "tokens"),
        }.items() if v is not None}
        for r in sorted(latest.values(), key=lambda r: str(r["name"]))
    ]
    # Pods no current report mentions (their node's agent restarted and forgot ended pods) keep their last entry,
    # so a job's energy never goes down.
    pods = sorted([*pods, *kept], key=lambda p: str(p["pod"]))
    times = [str(r["reported_at"]) for r in latest.values()] + [str(p.get("readAt", "")) for p in kept]
    return {
        "pods": pods,
        "energyJoules": round(sum(float(p.get("energyJoules", 0.0)) for p in pods), 1),
        "reportedAt": max(times),
    }
