"""spec.carbon parsing: defaults, every field, and errors that name the field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from llmasos.errors import SpecError
from llmasos.planning.carbon_spec import CarbonSpec

T = datetime(2024, 3, 6, tzinfo=UTC)


def test_absent_means_immediate() -> None:
    spec = CarbonSpec.from_mapping(None)
    assert spec.policy == "immediate"
    job = spec.to_job(T)
    assert job.policy == "immediate"


def test_full_spec() -> None:
    spec = CarbonSpec.from_mapping(
        {
            "policy": "deadline",
            "deadline": "2024-03-07T06:00:00Z",
            "maxDelay": "6h",
            "expectedDuration": "2h",
            "interruptible": True,
            "zone": "DE",
            "safetyMargin": "30m",
            "maxSegments": 3,
        }
    )
    job = spec.to_job(T)
    assert job.deadline == datetime(2024, 3, 7, 6, tzinfo=UTC)
    assert job.max_delay == timedelta(hours=6)
    assert job.duration == timedelta(hours=2)
    assert job.interruptible
    assert job.safety_margin == timedelta(minutes=30)
    assert job.max_segments == 3
    assert spec.zone == "DE"


def test_yaml_datetimes_are_accepted() -> None:
    spec = CarbonSpec.from_mapping({"deadline": datetime(2024, 3, 7, tzinfo=UTC), "expectedDuration": "1h"})
    assert spec.policy == "deadline"
    assert spec.deadline == datetime(2024, 3, 7, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"policy": "sometime"}, "spec.carbon.policy"),
        ({"policy": "deadline", "expectedDuration": "1h"}, "spec.carbon"),
        ({"policy": "deadline", "maxDelay": "6h"}, "spec.carbon.expectedDuration"),
        ({"policy": "threshold", "maxDelay": "6h", "expectedDuration": "1h"}, "spec.carbon.maxIntensity"),
        ({"deadline": "tomorrow", "expectedDuration": "1h"}, "spec.carbon.deadline"),
        ({"deadline": "2024-03-07T06:00:00", "expectedDuration": "1h"}, "spec.carbon.deadline"),
        ({"maxDelay": "6", "expectedDuration": "1h"}, "spec.carbon.maxDelay"),
        ({"maxDelay": "6h", "expectedDuration": "1h", "interruptible": "yes"}, "spec.carbon.interruptible"),
        ({"maxDelay": "6h", "expectedDuration": "1h", "maxIntensity": -1}, "spec.carbon.maxIntensity"),
        ({"maxDelay": "6h", "expectedDuration": "1h", "maxSegments": 0}, "spec.carbon.maxSegments"),
        ({"maxDelay": "6h", "expectedDuration": "1h", "zone": ""}, "spec.carbon.zone"),
        ({"maxDelay": "6h", "expectedDuration": "1h", "colour": "green"}, "spec.carbon.colour"),
    ],
)
def test_errors_name_the_field(raw: dict[str, object], field: str) -> None:
    with pytest.raises(SpecError) as info:
        CarbonSpec.from_mapping(raw)
    assert info.value.field == field
