"""LLMJob `spec.power`: one definition shared by the operator (which copies it onto worker pods as the
`llmasos.io/power` annotation) and the node agent (which parses that annotation and applies the policy).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from llmasos.errors import SpecError

POLICIES = ("none", "limit", "fraction", "energyOptimal")
DEFAULT_MAX_SLOWDOWN = 1.10


@dataclass(frozen=True)
class PowerSpec:
    """LLMJob `spec.power`: which policy, and its one parameter."""

    policy: str = "none"
    limit_watts: int | None = None
    fraction: float | None = None
    max_slowdown: float = DEFAULT_MAX_SLOWDOWN

    @classmethod
    def from_mapping(cls, raw: Mapping[str, object] | None) -> PowerSpec:
        """Parse and validate the CRD shape `{policy, limitWatts, fraction, maxSlowdown}`; raise SpecError."""
        if not raw:
            return cls()
        policy = raw.get("policy", "none")
        if policy not in POLICIES:
            raise SpecError(f"power.policy must be one of {', '.join(POLICIES)}, got {policy!r}", "spec.power.policy")
        limit = raw.get("limitWatts")
        fraction = raw.get("fraction")
        slowdown = raw.get("maxSlowdown", DEFAULT_MAX_SLOWDOWN)
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0):
            raise SpecError(f"power.limitWatts must be a positive integer, got {limit!r}", "spec.power.limitWatts")
        if fraction is not None and (not _is_number(fraction) or not 0.1 <= float(fraction) <= 1.0):  # type: ignore[arg-type]
            raise SpecError(f"power.fraction must be within 0.1..1.0, got {fraction!r}", "spec.power.fraction")
        if not _is_number(slowdown) or not 1.0 <= float(slowdown) <= 2.0:  # type: ignore[arg-type]
            raise SpecError(f"power.maxSlowdown must be within 1.0..2.0, got {slowdown!r}", "spec.power.maxSlowdown")
        if policy == "limit" and limit is None:
            raise SpecError("power.policy 'limit' needs power.limitWatts", "spec.power.limitWatts")
        if policy == "fraction" and fraction is None:
            raise SpecError("power.policy 'fraction' needs power.fraction", "spec.power.fraction")
        return cls(
            policy=str(policy),
            limit_watts=limit,
            fraction=None if fraction is None else float(fraction),  # type: ignore[arg-type]
            max_slowdown=float(slowdown),  # type: ignore[arg-type]
        )

    def to_mapping(self) -> dict[str, object]:
        out: dict[str, object] = {"policy": self.policy, "maxSlowdown": self.max_slowdown}
        if self.limit_watts is not None:
            out["limitWatts"] = self.limit_watts
        if self.fraction is not None:
            out["fraction"] = self.fraction
        return out


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


