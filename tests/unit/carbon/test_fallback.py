"""The fallback chain: first answer wins, provenance and degradation are reported, total failure raises."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from llmasos.carbon.base import Location, Observation
from llmasos.carbon.fallback import FallbackSource, default_chain
from llmasos.carbon.static import StaticSource
from llmasos.carbon.trace import TraceSource
from llmasos.errors import CarbonFailureKind as Kind
from llmasos.errors import CarbonSourceError
from llmasos.planning.timing.forecast import Forecast
from tests.unit.carbon.fake_server import FakeElectricityMaps, Reply, fixture

NOW = datetime(2026, 11, 25, 13, 17, tzinfo=UTC)


class Broken:
    def __init__(self, name: str = "broken") -> None:
        self._name = name
        self.calls = 0

    @property
    def name(self) -> str:
        return self._name

    async def latest(self, location: str | Location) -> Observation:
        self.calls += 1
        raise CarbonSourceError("down", self._name)

    async def forecast(self, location: str | Location) -> Forecast:
        self.calls += 1
        raise CarbonSourceError("down", self._name)

    async def history(
        self, location: str | Location, start: datetime | None = None, end: datetime | None = None
    ) -> Forecast:
        raise CarbonSourceError("down", self._name)


class Empty(Broken):
    async def forecast(self, location: str | Location) -> Forecast:
        return Forecast(())


def test_first_source_answers_undegraded() -> None:
    chain = FallbackSource([TraceSource(clock=lambda: NOW), StaticSource(clock=lambda: NOW)])
    answer = asyncio.run(chain.forecast("SE"))
    assert answer.source == "trace"
    assert not answer.degraded
    assert answer.message == "carbon intensity from trace"


def test_falls_through_and_says_why() -> None:
    broken = Broken("electricitymaps")
    chain = FallbackSource([broken, Empty("trace"), StaticSource(clock=lambda: NOW)])
    answer = asyncio.run(chain.forecast("FR"))
    assert answer.source == "static"
    assert answer.degraded
    assert [str(f) for f in answer.failures] == ["electricitymaps: down", "trace: empty forecast"]
    assert [f.kind for f in answer.failures] == [Kind.UNAVAILABLE, Kind.NO_DATA]
    assert "degraded" in answer.message
    latest = asyncio.run(chain.latest("FR"))
    assert latest.source == "static"
    assert broken.calls == 2, "a failed forecast does not cool down the other kinds of call"
    again = asyncio.run(chain.forecast("FR"))
    assert broken.calls == 2, "a source that just failed for this location is not asked again during its cool-down"
    assert again.failures[0].message == "down"
    assert "not retried for" in again.failures[0].detail


def test_unknown_trace_zone_falls_back_to_static() -> None:
    chain = default_chain(None, clock=lambda: NOW)
    assert chain.name == "trace > static"
    answer = asyncio.run(chain.forecast("FR"))
    assert answer.source == "static"
    assert answer.degraded


def test_every_source_down_raises() -> None:
    chain = FallbackSource([Broken("a"), Broken("b")])
    with pytest.raises(CarbonSourceError, match="every carbon source failed: a: down; b: down") as info:
        asyncio.run(chain.forecast("DE"))
    assert info.value.failure.kind == Kind.ALL_FAILED
    assert [(f.source, f.message) for f in info.value.failures] == [("a", "down"), ("b", "down")]


def test_default_chain_with_token_uses_electricity_maps_first(em_server: FakeElectricityMaps) -> None:
    body = fixture("carbon_intensity_forecast_DE_2023-05-02.json")
    em_server.queue("carbon-intensity/forecast", Reply(body))
    when = datetime(2023, 5, 2, 20, 5, tzinfo=UTC)

    async def main() -> tuple[str, str]:
        chain = default_chain("tok", clock=lambda: when, base_url=em_server.url)
        first = await chain.forecast("DE")
        em_server.queue("carbon-intensity/forecast", Reply({"error": "x"}, 401))
        later = lambda: when + timedelta(hours=1)  # noqa: E731
        chain2 = default_chain("tok", clock=later, base_url=em_server.url, trace_offset=timedelta(0))
        second = await chain2.forecast("SE")
        for c in (chain, chain2):
            await c.aclose()
        return first.source, second.source

    first, second = asyncio.run(main())
    assert first == "electricitymaps"
    assert second == "static"  # 401 from the API, and a pinned trace offset outside the trace
    with pytest.raises(ValueError, match="at least one"):
        FallbackSource([])


def test_a_failed_source_cools_down_per_location_then_is_asked_again() -> None:
    now = [0.0]
    broken = Broken("electricitymaps")
    chain = FallbackSource([broken, StaticSource(clock=lambda: NOW)], cooldown=60, monotonic=lambda: now[0])
    asyncio.run(chain.forecast("FR"))
    asyncio.run(chain.forecast("FR"))
    assert broken.calls == 1
    asyncio.run(chain.forecast("DE"))  # another location: its own failure memory
    assert broken.calls == 2
    now[0] = 61
    asyncio.run(chain.forecast("FR"))
    assert broken.calls == 3


def test_the_last_source_is_always_asked() -> None:
    broken = Broken("static")
    chain = FallbackSource([broken], cooldown=60)
    for _ in range(2):
        with pytest.raises(CarbonSourceError):
            asyncio.run(chain.forecast("FR"))
    assert broken.calls == 2
