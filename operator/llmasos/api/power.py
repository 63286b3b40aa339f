"""LLMJob `spec.power`: one definition shared by the operator (which copies it onto worker pods as the
`llmasos.io/power` annotation) and the node agent (which parses that annotation and applies the policy).
Its policies, defaults and the fields a policy needs are the schema's (`api.schema`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from llmasos.api.schema import POWER_NEEDS, POWER_POLICIES, check_choice, spec_default, spec_field, unmet_need
from llmasos.errors import SpecError

POLICIES = POWER_POLICIES
DEFAULT_POLICY: str = spec_default("power.policy")
DEFAULT_MAX_SLOWDOWN = float(spec_default("power.maxSlowdown"))
FRACTION_RANGE = (float(spec_field("power.fraction")["minimum"]), float(spec_field("power.fraction")["maximum"]))
SLOWDOWN_RANGE = (float(spec_field("power.maxSlowdown")["minimum"]), float(spec_field("power.maxSlowdown")["maximum"]))


@dataclass(frozen=True)
class PowerSpec:
    """LLMJob `spec.power`: which policy, and its one parameter."""

    policy: str = DEFAULT_POLICY
    limit_watts: int | None = None
    fraction: float | None = None
    max_slowdown: float = DEFAULT_MAX_SLOWDOWN

    @classmethod
    def from_mapping(cls, raw: Mapping[str, object] | None) -> PowerSpec:
        """Parse and validate the CRD shape `{policy, limitWatts, fraction, maxSlowdown}`; raise SpecError."""
        if not raw:
            return cls()
        policy = check_choice("power.policy", _or_default(raw.get("policy"), DEFAULT_POLICY))
        limit = raw.get("limitWatts")
        fraction = raw.get("fraction")
        slowdown = _or_default(raw.get("maxSlowdown"), DEFAULT_MAX_SLOWDOWN)
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0):
            raise SpecError(f"power.limitWatts must be a positive integer, got {limit!r}", "spec.power.limitWatts")
        (low, high), (slow, shigh) = FRACTION_RANGE, SLOWDOWN_RANGE
        if fraction is not None and (not _is_number(fraction) or not low <= float(fraction) <= high):  # type: ignore[arg-type]
            raise SpecError(f"power.fraction must be within {low}..{high}, got {fraction!r}", "spec.power.fraction")
        if not _is_number(slowdown) or not slow <= float(slowdown) <= shigh:  # type: ignore[arg-type]
            raise SpecError(f"power.maxSlowdown must be within {slow}..{shigh}, got {slowdown!r}",
                            "spec.power.maxSlowdown")
        present = [name for need in POWER_NEEDS for name in need.fields if raw.get(name) is not None]
        need = unmet_need(POWER_NEEDS, policy, present)
        if need is not None:
            raise SpecError(need.message(policy), need.field_path)
        return cls(
            policy=policy,
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


def _or_default(value: object, default: object) -> object:
    """An absent or null field takes the schema's default."""
    return default if value is None else value


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


