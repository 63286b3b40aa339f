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
