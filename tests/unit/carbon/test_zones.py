"""Zone keys: one spelling everywhere, and a zone with no data refused by name instead of the world average."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from llmasos.carbon.base import Location, normalize_zone
from llmasos.carbon.static import StaticSource
from llmasos.carbon.trace import TraceSource
from llmasos.carbon.zones import check_zone, is_known_zone

NOW = datetime(2026, 12, 4, 14, tzinfo=UTC)


@pytest.mark.parametrize(("raw", "zone"), [
    ("de", "DE"), (" DE ", "DE"), ("us-cal-ciso", "US-CAL-CISO"), ("GCP:Europe-West4", "gcp:europe-west4"),
])
def test_normalize(raw: str, zone: str) -> None:
    assert normalize_zone(raw) == zone
    assert Location.parse(raw).zone == zone


def test_de_and_DE_give_the_same_forecast() -> None:
    def clock() -> datetime:
        return NOW

    async def both() -> tuple[object, object]:
        source = TraceSource(clock=clock)
        return await source.forecast("de"), await source.forecast("DE")

    lower, upper = asyncio.run(both())
    assert lower == upper


def test_static_lookup_or_none_tells_a_known_zone_from_the_world_average() -> None:
    static = StaticSource()
    assert static.lookup_or_none("FR") is not None
    assert static.lookup_or_none("XX-NOWHERE") is None
    assert static.lookup("XX-NOWHERE") == (475.0, "world-average")  # the operator's last resort stays


@pytest.mark.parametrize("zone", ["DE", "de", "SE", "FR", "US-CAL-CISO", "gcp:europe-west4", "DEU"])
def test_known_zones(zone: str) -> None:
    assert is_known_zone(zone)
    assert check_zone(zone) == normalize_zone(zone)


def test_an_unknown_zone_is_refused_listing_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"^unknown carbon zone 'XX-NOWHERE': no trace and no annual average") as err:
        check_zone("XX-NOWHERE")
    assert "Hourly traces ship for DE, SE, US-CAL-CISO" in str(err.value)
    assert check_zone("") == ""
