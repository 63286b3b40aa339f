"""From an LLMJob's `spec.carbon` (parsed by :mod:`llmasos.api.spec`) to the planner's :class:`CarbonJob`.

The API package owns parsing and validation of the manifest (one parser for the operator and `llmasos plan -f`);
this adapter only fills in what the planner needs: the earliest start is the job's creation (or submission) time,
`maxDelay` becomes a deadline relative to it, and the expected duration is the run time to reserve. A
:class:`CarbonSpec` already meets the schema's rules (its policy is one the schema lists, and has the fields that
policy needs: `api.schema.CARBON_NEEDS`); what only the planner minds (a run time that is not positive) raises
:class:`SpecError` naming the field, like the parser does.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import cast

from llmasos.api.spec import CarbonSpec
from llmasos.errors import SpecError
from llmasos.planning.timing.carbon_window import CarbonJob, Policy
from llmasos.planning.timing.forecast import ensure_utc


def carbon_job(
    spec: CarbonSpec,
    created_at: datetime,
    *,
    default_duration: timedelta = timedelta(hours=1),
    min_segment: timedelta | None = None,
    max_segments: int | None = None,
) -> CarbonJob:
    """The planner's job for `spec`, submitted at `created_at` (the LLMJob's creationTimestamp). `min_segment` and
    `max_segments` override the spec's `minSegment`/`maxSegments` (the benchmark plans without limits)."""
    created = ensure_utc(created_at, "creation time")
    deadline = spec.deadline_for(created)
    duration = spec.expected_duration if spec.expected_duration is not None else default_duration
    if duration <= timedelta(0):
        raise SpecError("carbon.expectedDuration must be positive", "spec.carbon.expectedDuration")
    return CarbonJob(
        duration=duration,
        earliest_start=created,
        deadline=ensure_utc(deadline, "deadline") if deadline is not None else None,
        interruptible=spec.interruptible,
        policy=cast(Policy, spec.policy),  # one of the schema's policies: CarbonSpec checked it
        max_intensity=spec.max_intensity,
        safety_margin=spec.safety_margin,
        min_segment=min_segment if min_segment is not None else spec.min_segment,
        max_segments=max_segments if max_segments is not None else spec.max_segments,
    )
