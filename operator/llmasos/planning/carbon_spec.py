"""LLMJob `spec.carbon` as a validated value, and its translation into the planner's :class:`CarbonJob`.

One parser for the operator and `llmasos plan -f`, so a manifest means the same thing in both. Errors are
:class:`SpecError` naming the field (`spec.carbon.deadline`), which the operator turns into a condition.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from llmasos.api.durations import parse_duration
from llmasos.errors import SpecError
from llmasos.planning.carbon_window import POLICIES, CarbonJob, Policy
from llmasos.planning.forecast import ensure_utc, parse_instant

DEFAULT_SAFETY_MARGIN = timedelta(minutes=15)
DEFAULT_MIN_SEGMENT = timedelta(minutes=15)
_FIELDS = frozenset(
    {
        "policy",
        "deadline",
        "maxDelay",
        "expectedDuration",
        "interruptible",
        "maxIntensity",
        "zone",
        "safetyMargin",
        "minSegment",
        "maxSegments",
    }
)


@dataclass(frozen=True)
class CarbonSpec:
    """`spec.carbon` of an LLMJob: `{policy, deadline, maxDelay, expectedDuration, interruptible, maxIntensity,
    zone, safetyMargin, minSegment, maxSegments}`."""

    policy: Policy = "immediate"
    deadline: datetime | None = None
    max_delay: timedelta | None = None
    expected_duration: timedelta | None = None
    interruptible: bool = False
    max_intensity: float | None = None
    zone: str | None = None
    safety_margin: timedelta = DEFAULT_SAFETY_MARGIN
    min_segment: timedelta = DEFAULT_MIN_SEGMENT
    max_segments: int | None = None

    @classmethod
    def from_mapping(cls, raw: Mapping[str, object] | None) -> CarbonSpec:
        """Parse and validate the CRD shape; raise SpecError naming the field."""
        if not raw:
            return cls()
        unknown = sorted(set(raw) - _FIELDS)
        if unknown:
            raise SpecError(f"unknown field(s) in spec.carbon: {', '.join(unknown)}", f"spec.carbon.{unknown[0]}")
        policy = raw.get("policy", "deadline")
        if policy not in POLICIES:
            raise SpecError(f"carbon.policy must be one of {', '.join(POLICIES)}, got {policy!r}", "spec.carbon.policy")
        spec = cls(
            policy=policy,  # checked against POLICIES above
            deadline=_instant(raw, "deadline"),
            max_delay=_duration(raw, "maxDelay"),
            expected_duration=_duration(raw, "expectedDuration"),
            interruptible=_bool(raw, "interruptible"),
            max_intensity=_number(raw, "maxIntensity"),
            zone=_string(raw, "zone"),
            safety_margin=_duration(raw, "safetyMargin") or DEFAULT_SAFETY_MARGIN,
            min_segment=_duration(raw, "minSegment") or DEFAULT_MIN_SEGMENT,
            max_segments=_count(raw, "maxSegments"),
        )
        if spec.policy != "immediate" and spec.deadline is None and spec.max_delay is None:
            raise SpecError(f"carbon.policy {spec.policy!r} needs carbon.deadline or carbon.maxDelay", "spec.carbon")
        if spec.policy != "immediate" and spec.expected_duration is None:
            raise SpecError(
                f"carbon.policy {spec.policy!r} needs carbon.expectedDuration", "spec.carbon.expectedDuration"
            )
        if spec.policy == "threshold" and spec.max_intensity is None:
            raise SpecError("carbon.policy 'threshold' needs carbon.maxIntensity", "spec.carbon.maxIntensity")
        return spec

    def to_job(self, submitted_at: datetime, default_duration: timedelta = timedelta(hours=1)) -> CarbonJob:
        """The planner's job: earliest start = submission (creation) time, duration = expectedDuration."""
        return CarbonJob(
            duration=self.expected_duration or default_duration,
            earliest_start=ensure_utc(submitted_at),
            deadline=self.deadline,
            max_delay=self.max_delay,
            interruptible=self.interruptible,
            policy=self.policy,
            max_intensity=self.max_intensity,
            safety_margin=self.safety_margin,
            min_segment=self.min_segment,
            max_segments=self.max_segments,
        )


def _instant(raw: Mapping[str, object], key: str) -> datetime | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, datetime):  # YAML loaders turn unquoted timestamps into datetimes
        if value.tzinfo is None:
            raise SpecError(f"carbon.{key} {value.isoformat()} has no time zone; use RFC 3339", f"spec.carbon.{key}")
        return ensure_utc(value)
    try:
        return parse_instant(str(value), f"carbon.{key}")
    except ValueError as exc:
        raise SpecError(str(exc), f"spec.carbon.{key}") from None


def _duration(raw: Mapping[str, object], key: str) -> timedelta | None:
    value = raw.get(key)
    if value is None:
        return None
    try:
        return parse_duration(str(value))
    except ValueError as exc:
        raise SpecError(f"carbon.{key}: {exc}", f"spec.carbon.{key}") from None


def _bool(raw: Mapping[str, object], key: str) -> bool:
    value = raw.get(key, False)
    if not isinstance(value, bool):
        raise SpecError(f"carbon.{key} must be true or false, got {value!r}", f"spec.carbon.{key}")
    return value


def _number(raw: Mapping[str, object], key: str) -> float | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise SpecError(f"carbon.{key} must be a number >= 0, got {value!r}", f"spec.carbon.{key}")
    return float(value)


def _count(raw: Mapping[str, object], key: str) -> int | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SpecError(f"carbon.{key} must be an integer >= 1, got {value!r}", f"spec.carbon.{key}")
    return value


def _string(raw: Mapping[str, object], key: str) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise SpecError(f"carbon.{key} must be a non-empty string, got {value!r}", f"spec.carbon.{key}")
    return value.strip()
