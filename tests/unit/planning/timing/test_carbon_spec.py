"""spec.carbon (as the API package parses it) to the planner's job: deadlines, maxDelay, errors naming fields."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from llmasos.api.spec import CarbonSpec, parse_spec
from llmasos.errors import SpecError
from llmasos.planning.timing.carbon_spec import carbon_job

CREATED = datetime(2024, 3, 6, tzinfo=UTC)


def manifest_spec(carbon: dict[str, Any]) -> dict[str, Any]:
    return {"model": {"builtin": "gpt-tiny"}, "carbon": carbon}


def test_absent_means_immediate() -> None:
    job = carbon_job(parse_spec(manifest_spec({})).carbon, CREATED)
    assert job.policy == "immediate"
    assert job.deadline is None
    assert job.duration == timedelta(hours=1)


def test_deadline_spec() -> None:
    spec = parse_spec(
        manifest_spec(
            {
                "policy": "deadline",
                "deadline": "2024-03-07T07:00:00+01:00",
                "expectedDuration": "2h",
                "interruptible": True,
                "safetyMargin": "30m",
            }
        )
    )
    job = carbon_job(spec.carbon, CREATED, max_segments=3)
    assert job.deadline == datetime(2024, 3, 7, 6, tzinfo=UTC)
    assert job.deadline.tzinfo == UTC
    assert job.duration == timedelta(hours=2)
    assert job.interruptible
    assert job.safety_margin == timedelta(minutes=30)
    assert job.max_segments == 3
    assert job.earliest_start == CREATED


def test_segment_limits_come_from_the_spec_unless_overridden() -> None:
    spec = parse_spec(manifest_spec({"policy": "deadline", "maxDelay": "1h", "expectedDuration": "10m",
                                     "interruptible": True, "minSegment": "30s", "maxSegments": 4}))
    job = carbon_job(spec.carbon, CREATED)
    assert (job.min_segment, job.max_segments) == (timedelta(seconds=30), 4)
    assert carbon_job(spec.carbon, CREATED, min_segment=timedelta(0)).min_segment == timedelta(0)
    default = carbon_job(parse_spec(manifest_spec({})).carbon, CREATED)
    assert (default.min_segment, default.max_segments) == (timedelta(minutes=15), None)
    assert parse_spec(manifest_spec({"minSegment": "0s"})).carbon.min_segment == timedelta(0), "0s is not unset"
    with pytest.raises(SpecError) as info:
        parse_spec(manifest_spec({"maxSegments": 0}))
    assert info.value.field == "spec.carbon.maxSegments"


def test_max_delay_is_a_deadline_relative_to_creation() -> None:
    spec = parse_spec(
        manifest_spec({"policy": "threshold", "maxDelay": "6h", "expectedDuration": "1h", "maxIntensity": 100})
    )
    job = carbon_job(spec.carbon, datetime(2024, 3, 6, 2, tzinfo=timezone(timedelta(hours=2))))
    assert job.earliest_start == CREATED
    assert job.deadline == CREATED + timedelta(hours=6)
    assert job.max_intensity == 100


@pytest.mark.parametrize(
    ("carbon", "field"),
    [
        ({"policy": "sometime"}, "spec.carbon.policy"),
        ({"policy": "deadline", "expectedDuration": "1h"}, "spec.carbon.policy"),
        ({"policy": "deadline", "maxDelay": "6h"}, "spec.carbon.expectedDuration"),
        ({"policy": "threshold", "maxDelay": "6h", "expectedDuration": "1h"}, "spec.carbon.maxIntensity"),
    ],
)
def test_a_spec_breaking_the_schemas_rules_is_never_built(carbon: dict[str, Any], field: str) -> None:
    """The parser and `dataclasses.replace` both build CarbonSpec, which checks the rules: carbon_job never sees
    a policy without what it needs."""
    with pytest.raises(SpecError) as info:
        parse_spec(manifest_spec(carbon))
    assert info.value.field == field


def test_replace_checks_the_rules_too() -> None:
    with pytest.raises(SpecError, match="needs deadline or maxDelay") as info:
        replace(CarbonSpec(), policy="deadline")
    assert info.value.field == "spec.carbon.policy"


def test_a_run_time_that_is_not_positive_names_the_field() -> None:
    spec = CarbonSpec(policy="deadline", max_delay=timedelta(hours=6), expected_duration=timedelta(0))
    with pytest.raises(SpecError) as info:
        carbon_job(spec, CREATED)
    assert info.value.field == "spec.carbon.expectedDuration"
