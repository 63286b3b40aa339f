"""The static source: annual values by zone, country and cloud region, served as flat forecasts."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from llmasos.carbon.static import StaticSource, flat_forecast
from llmasos.errors import CarbonSourceError

NOW = datetime(2026, 11, 25, 13, 17, tzinfo=UTC)


@pytest.mark.parametrize(
    ("key", "matched"),
    [
        ("DE", "DEU"),
        ("SE-SE3", "SWE"),
        ("US-CAL-CISO", "USA"),
        ("FRA", "FRA"),
        ("gcp:europe-west4", "gcp:europe-west4"),
        ("europe-west4", "gcp:europe-west4"),
        ("aws:eu-central-1", "aws:eu-central-1"),
        ("azure:West Europe", "azure:west europe"),
    ],
)
def test_lookup(key: str, matched: str) -> None:
    value, found = StaticSource().lookup(key)
    assert found == matched
    assert 0 < value < 1500


def test_relative_levels_make_sense() -> None:
    source = StaticSource()
    assert source.lookup("SE")[0] < source.lookup("DE")[0] < source.lookup("IN")[0]


def test_repaired_upstream_rows() -> None:
    # Upstream wrote "000077" for Finland Central; it means 0.000077 t/kWh = 77 g/kWh.
    assert StaticSource().lookup("azure:finland central")[0] == pytest.approx(77.0)


def test_unknown_zone_gets_the_world_average_or_fails() -> None:
    assert StaticSource().lookup("ZZ-NOWHERE") == (475.0, "world-average")
    with pytest.raises(CarbonSourceError, match="no annual intensity"):
        StaticSource(default_intensity=None).lookup("ZZ-NOWHERE")


def test_flat_forecast_from_now() -> None:
    source = StaticSource({"XX": 123.0}, clock=lambda: NOW, horizon=timedelta(hours=6))
    forecast = asyncio.run(source.forecast("XX"))
    assert {p.intensity for p in forecast.points} == {123.0}
    assert forecast.start == NOW.replace(minute=0)
    assert forecast.end is not None
    assert forecast.end >= NOW + timedelta(hours=6)
    assert forecast.source == "static"
    latest = asyncio.run(source.latest("XX"))
    assert latest.estimated
    assert latest.intensity == 123.0


def test_flat_forecast_helper() -> None:
    f = flat_forecast("X", 1.0, NOW, timedelta(hours=2))
    assert len(f) == 3
