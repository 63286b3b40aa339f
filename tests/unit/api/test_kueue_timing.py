"""The timing annotations of Kueue-managed jobs: parsed once, bad ones named in the error."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from llmasos.api.kueue_timing import (
    DEADLINE_ANNOTATION,
    EXPECTED_DURATION_ANNOTATION,
    MAX_DELAY_ANNOTATION,
    AnnotationError,
    parse_timing,
)

T0 = datetime(2026, 5, 1, 0, 0, tzinfo=UTC)


def test_no_annotation_asks_for_nothing() -> None:
    assert parse_timing({"other": "x"}, T0) is None
    assert parse_timing(None, T0) is None


def test_max_delay_is_relative_to_submission_with_default_duration() -> None:
    req = parse_timing({MAX_DELAY_ANNOTATION: "8h"}, T0)
    assert req is not None
    assert req.deadline == T0 + timedelta(hours=8)
    assert req.expected_duration == timedelta(hours=1)
    assert req.latest_start == T0 + timedelta(hours=7)


def test_deadline_with_zone_and_expected_duration() -> None:
    req = parse_timing({DEADLINE_ANNOTATION: "2026-05-01T08:00:00+02:00", EXPECTED_DURATION_ANNOTATION: "90m"}, T0)
    assert req is not None
    assert req.deadline == T0 + timedelta(hours=6)
    assert req.latest_start == T0 + timedelta(hours=4, minutes=30)


@pytest.mark.parametrize(("annotations", "named"), [
    ({DEADLINE_ANNOTATION: "tomorrow"}, DEADLINE_ANNOTATION),
    ({DEADLINE_ANNOTATION: "2026-05-01T08:00:00"}, DEADLINE_ANNOTATION),  # no zone
    ({MAX_DELAY_ANNOTATION: "8"}, MAX_DELAY_ANNOTATION),
    ({MAX_DELAY_ANNOTATION: "8h", EXPECTED_DURATION_ANNOTATION: "0s"}, EXPECTED_DURATION_ANNOTATION),
    ({MAX_DELAY_ANNOTATION: "8h", EXPECTED_DURATION_ANNOTATION: "soon"}, EXPECTED_DURATION_ANNOTATION),
    ({MAX_DELAY_ANNOTATION: "8h", DEADLINE_ANNOTATION: "2026-05-01T08:00:00Z"}, DEADLINE_ANNOTATION),
])
def test_bad_annotations_name_the_annotation(annotations: dict[str, str], named: str) -> None:
    with pytest.raises(AnnotationError) as err:
        parse_timing(annotations, T0)
    assert err.value.annotation == named
    assert named in str(err.value)
