"""Forecast series: construction, validation, lookups across gaps, slicing and shifting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from llmasos.planning.timing.forecast import Forecast, IntensityPoint, format_instant, parse_instant
from tests.unit.planning.builders import T0, make_forecast

H = timedelta(hours=1)


def test_from_pairs_sorts_and_infers_the_step() -> None:
    f = Forecast.from_pairs([(T0 + 30 * timedelta(minutes=1), 2.0), (T0, 1.0), (T0 + 15 * timedelta(minutes=1), 3.0)])
    assert f.step == timedelta(minutes=15)
    assert [p.intensity for p in f.points] == [1.0, 3.0, 2.0]
    assert f.end == T0 + timedelta(minutes=45)


def test_single_point_defaults_to_an_hour() -> None:
    f = Forecast.from_pairs([(T0, 5.0)])
    assert f.step == H
    assert f.value_at(T0 + 59 * timedelta(minutes=1)) == 5.0
    assert f.value_at(T0 + H) is None


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        ([(T0, 1.0), (T0, 2.0)], "two points start"),
        ([(T0, -1.0)], ">= 0"),
        ([(T0, float("nan"))], "finite"),
        ([(T0.replace(tzinfo=None), 1.0)], "no time zone"),
    ],
)
def test_invalid_points_are_refused(pairs: list[tuple[datetime, float]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Forecast.from_pairs(pairs)


def test_points_closer_than_the_step_are_refused() -> None:
    with pytest.raises(ValueError, match="closer than the step"):
        Forecast((IntensityPoint(T0, 1), IntensityPoint(T0 + 10 * timedelta(minutes=1), 1)), step=H)


def test_other_time_zones_are_converted_to_utc() -> None:
    cet = timezone(timedelta(hours=1))
    p = IntensityPoint(datetime(2024, 3, 6, 1, 0, tzinfo=cet), 1.0)
    assert p.start == T0
    assert p.start.tzinfo == UTC


def test_gaps_are_unknown_not_clean() -> None:
    f = make_forecast([100, None, None, 50])
    assert f.has_gaps()
    assert f.value_at(T0 + 90 * timedelta(minutes=1)) is None
    pieces = f.pieces_between(T0 + 30 * timedelta(minutes=1), T0 + 5 * H)
    assert [(p.start, p.end, p.intensity) for p in pieces] == [
        (T0 + 30 * timedelta(minutes=1), T0 + H, 100.0),
        (T0 + H, T0 + 3 * H, None),
        (T0 + 3 * H, T0 + 4 * H, 50.0),
        (T0 + 4 * H, T0 + 5 * H, None),
    ]
    assert f.mean_between(T0, T0 + 2 * H) is None
    assert f.mean_between(T0 + 30 * timedelta(minutes=1), T0 + H) == 100.0


def test_before_the_first_point_is_unknown() -> None:
    f = make_forecast([10, 20], start=T0 + H)
    assert f.pieces_between(T0, T0 + 2 * H)[0].intensity is None
    assert f.value_at(T0) is None


def test_between_and_shifted() -> None:
    f = make_forecast([1, 2, 3, 4, 5], issued_at=T0)
    part = f.between(T0 + 90 * timedelta(minutes=1), T0 + 3 * H)
    assert [p.intensity for p in part.points] == [2.0, 3.0]
    moved = f.shifted(24 * H)
    assert moved.start == T0 + 24 * H
    assert moved.issued_at == T0 + 24 * H
    assert moved.known_mean() == 3.0


def test_instants_round_trip() -> None:
    assert parse_instant("2024-03-06T19:00:00.000Z") == datetime(2024, 3, 6, 19, tzinfo=UTC)
    assert parse_instant("2024-03-06T20:00:00+01:00") == datetime(2024, 3, 6, 19, tzinfo=UTC)
    assert format_instant(datetime(2024, 3, 6, 19, 0, 0, 5, tzinfo=UTC)) == "2024-03-06T19:00:00Z"
    with pytest.raises(ValueError, match="no time zone"):
        parse_instant("2024-03-06T19:00:00")
    with pytest.raises(ValueError, match="not an ISO-8601"):
        parse_instant("tomorrow")
