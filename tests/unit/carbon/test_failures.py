"""Carbon-source failures are records (source, kind, retry-after, message): what a condition quotes is the same on
every pass, what varies (a cool-down's countdown, an instant, a Retry-After) is in fields for logs and callers."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from llmasos.carbon.base import Location, Observation
from llmasos.carbon.fallback import FallbackSource
from llmasos.carbon.static import StaticSource
from llmasos.carbon.trace import TraceSource
from llmasos.errors import CarbonFailure, CarbonSourceError
from llmasos.errors import CarbonFailureKind as Kind
from llmasos.planning.timing.forecast import Forecast

NOW = datetime(2026, 11, 25, 13, 17, tzinfo=UTC)


class RateLimited:
    """Electricity Maps answering 429 with a Retry-After (as the real source reports it)."""

    name = "electricitymaps"

    async def latest(self, location: str | Location) -> Observation:
        raise self._error()

    async def forecast(self, location: str | Location) -> Forecast:
        raise self._error()

    async def history(self, location: str | Location, start: datetime | None = None,
                      end: datetime | None = None) -> Forecast:
        raise self._error()

    def _error(self) -> CarbonSourceError:
        return CarbonSourceError("carbon-intensity/forecast: rate limited", self.name, delay=3600,
                                 kind=Kind.RATE_LIMITED, retry_after=3600)


@pytest.mark.parametrize("elapsed", [0.0, 1.0, 22.5, 59.0])
def test_a_cooling_source_reads_the_same_on_every_pass(elapsed: float) -> None:
    clock = [0.0]
    chain = FallbackSource([RateLimited(), StaticSource(clock=lambda: NOW)], monotonic=lambda: clock[0])
    first = asyncio.run(chain.forecast("DE"))
    clock[0] = elapsed
    again = asyncio.run(chain.forecast("DE"))
    assert again.message == first.message == (
        "carbon intensity from static (degraded: electricitymaps: carbon-intensity/forecast: rate limited)")
    assert again.failures[0].kind == Kind.RATE_LIMITED
    assert again.failures[0].retry_after == 3600
    if elapsed:  # skipped during its cool-down: the log says for how long, the status does not
        assert f"not retried for {60 - elapsed:.0f} s" in again.log_message


def test_a_trace_gap_keeps_its_instant_out_of_the_message() -> None:
    trace = TraceSource(clock=lambda: NOW)
    series = trace.series("DE")
    gap = Forecast(tuple(p for p in series.points if p.start != series.points[5].start), zone="DE",
                   step=series.step)
    trace._series["DE"] = gap  # a gap in the shipped trace, for this test only
    with pytest.raises(CarbonSourceError) as info:
        trace.latest_at("DE", series.points[5].start - trace.offset_for("DE", NOW))
    failure = info.value.failure
    assert (failure.source, failure.kind, failure.message) == ("trace", Kind.NO_DATA, "trace for DE has a gap")
    assert failure.detail.startswith("at ")
    assert "has a gap (at " in str(info.value)  # the exception text (logs) keeps the instant


def test_for_log_has_every_field() -> None:
    f = CarbonFailure("electricitymaps", Kind.RATE_LIMITED, "x: rate limited", 120.0, "not retried for 5 s")
    assert str(f) == "electricitymaps: x: rate limited"
    assert f.for_log() == "electricitymaps: x: rate limited (rate-limited, not retried for 5 s, retry after 120 s)"
