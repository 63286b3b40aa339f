"""The trace source: shipped series, time mapping, forecasts as the future part of the trace, error model."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from llmasos.carbon.base import IntensitySource
from llmasos.carbon.trace import YEAR_52_WEEKS, TraceSource, read_series, shipped_trace_files
from llmasos.errors import CarbonSourceError
from llmasos.planning.timing.forecast import Forecast
from llmasos.planning.timing.forecast_error import ForecastErrorModel

H = timedelta(hours=1)
NOW = datetime(2026, 11, 25, 13, 17, tzinfo=UTC)


def tiny_trace() -> Forecast:
    text = "timestamp_utc,gco2_per_kwh\n" + "".join(f"2020-01-01T{h:02d}:00:00Z,{100 + h}\n" for h in range(24))
    return read_series(text, "XX")


def test_every_documented_zone_is_shipped() -> None:
    assert set(shipped_trace_files()) == {"DE", "SE", "US-CAL-CISO", "US-MIDA-PJM", "US-NE-ISNE", "US-TEX-ERCO"}


@pytest.mark.parametrize(
    ("zone", "step", "rows", "gaps"), [("SE", H, 17544, False), ("DE", 15 * timedelta(minutes=1), 37147, True)]
)
def test_shipped_series_load(zone: str, step: timedelta, rows: int, gaps: bool) -> None:
    series = TraceSource().series(zone)
    assert series.step == step
    assert len(series) == rows
    # The German series misses two quarter-hours on 2020-12-19 (upstream); gaps stay gaps.
    assert series.has_gaps() == gaps


def test_read_series_names_the_bad_line() -> None:
    with pytest.raises(ValueError, match="line 3"):
        read_series("timestamp_utc,gco2_per_kwh\n2020-01-01T00:00:00Z,1\n2020-01-01T01:00:00Z,x\n", "XX")
    with pytest.raises(ValueError, match="expected columns"):
        read_series("time,value\n", "XX")


def test_pinned_offset_maps_now_onto_the_trace() -> None:
    now = datetime(2030, 6, 1, 5, 30, tzinfo=UTC)
    offset = datetime(2020, 1, 1, tzinfo=UTC) - datetime(2030, 6, 1, tzinfo=UTC)
    source = TraceSource({"XX": tiny_trace()}, offset=offset, horizon=6 * H)
    obs = source.latest_at("XX", now)
    assert obs.intensity == 105.0
    assert obs.at == datetime(2030, 6, 1, 5, tzinfo=UTC)
    forecast = source.forecast_at("XX", now)
    assert forecast.start == datetime(2030, 6, 1, 5, tzinfo=UTC)
    assert forecast.issued_at == datetime(2030, 6, 1, 5, tzinfo=UTC)
    assert [p.intensity for p in forecast.points] == [105.0, 106.0, 107.0, 108.0, 109.0, 110.0]
    assert forecast.source == "trace"
    history = source.history_at("XX", now - 3 * H, now, now)
    assert [p.intensity for p in history.points] == [102.0, 103.0, 104.0, 105.0]


def test_automatic_offset_is_whole_52_week_years_and_keeps_weekdays() -> None:
    source = TraceSource()
    offset = source.offset_for("SE", NOW)
    assert offset % YEAR_52_WEEKS == timedelta(0)
    trace_now = NOW + offset
    assert trace_now.weekday() == NOW.weekday()
    series = source.series("SE")
    assert series.start is not None
    assert series.start <= trace_now < series.start + YEAR_52_WEEKS


def test_forecast_is_stable_within_the_hour_and_newer_after_it() -> None:
    source = TraceSource(error_model=ForecastErrorModel(0.1, seed=7))
    a = source.forecast_at("US-CAL-CISO", NOW)
    b = source.forecast_at("US-CAL-CISO", NOW + timedelta(minutes=30))
    c = source.forecast_at("US-CAL-CISO", NOW + H)
    assert a == b
    assert c.issued_at is not None
    assert a.issued_at is not None
    assert c.issued_at > a.issued_at
    truth = TraceSource().forecast_at("US-CAL-CISO", NOW)
    assert a.points[0] == truth.points[0]  # the hour in progress is known exactly
    assert a.points[-1] != truth.points[-1]
    assert a.end == truth.end == a.issued_at + 24 * H


def test_outside_a_pinned_trace_is_an_error() -> None:
    source = TraceSource({"XX": tiny_trace()}, offset=timedelta(0))
    with pytest.raises(CarbonSourceError, match="covers"):
        source.forecast_at("XX", NOW)
    with pytest.raises(CarbonSourceError, match="no trace"):
        source.forecast_at("YY", NOW)


def test_unknown_shipped_zone_and_coordinates_fail() -> None:
    source = TraceSource(clock=lambda: NOW)
    assert isinstance(source, IntensitySource)
    with pytest.raises(CarbonSourceError, match="no shipped trace"):
        asyncio.run(source.forecast("FR"))
    with pytest.raises(CarbonSourceError, match="coordinates"):
        asyncio.run(source.forecast("52.5,13.4"))


def test_async_api() -> None:
    source = TraceSource(clock=lambda: NOW)
    forecast = asyncio.run(source.forecast("DE"))
    assert forecast.start is not None
    assert forecast.start <= NOW < forecast.start + forecast.step
    assert asyncio.run(source.latest("DE")).intensity == forecast.points[0].intensity
    history = asyncio.run(source.history("DE"))
    assert len(history) == 96 + 1
