"""The one time module: instants as the API writes them, parsed leniently, refused without a zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from llmasos.api.clock import format_epoch, format_instant, parse_instant, parse_instant_or_none, utc_now


def test_instants_round_trip_in_utc_whole_seconds_with_a_z() -> None:
    moment = datetime(2026, 3, 6, 19, 0, 0, 750_000, tzinfo=timezone(timedelta(hours=2)))
    assert format_instant(moment) == "2026-03-06T17:00:00Z"
    assert parse_instant("2026-03-06T19:00:00.000+02:00") == datetime(2026, 3, 6, 17, tzinfo=UTC)
    assert parse_instant(format_instant(moment)) == datetime(2026, 3, 6, 17, tzinfo=UTC)
    assert format_epoch(1_700_000_000.9) == "2023-11-14T22:13:20Z"


@pytest.mark.parametrize("text", ["2026-03-06T19:00:00", "", "yesterday"])
def test_a_time_without_a_zone_or_not_a_time_is_refused_or_unknown(text: str) -> None:
    with pytest.raises(ValueError, match=r"status\.startTime"):
        parse_instant(text, "status.startTime")
    assert parse_instant_or_none(text) is None


def test_the_real_clock_is_aware_utc() -> None:
    assert utc_now().tzinfo is UTC
    with pytest.raises(ValueError, match="no time zone"):
        format_instant(datetime(2026, 3, 6))


def test_the_spec_parses_times_with_the_clock_and_refuses_them_as_spec_errors() -> None:
    from llmasos.api.spec import parse_time
    from llmasos.errors import SpecError

    assert parse_time("2026-03-06T21:00:00+02:00", "spec.carbon.deadline") == datetime(2026, 3, 6, 19, tzinfo=UTC)
    with pytest.raises(SpecError, match="has no time zone") as naive:
        parse_time("2026-03-06T19:00:00", "spec.carbon.deadline")
    assert naive.value.field == "spec.carbon.deadline"
    with pytest.raises(SpecError, match="'tomorrow' is not an ISO-8601 time"):
        parse_time("tomorrow", "spec.carbon.deadline")
