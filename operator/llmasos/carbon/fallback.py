"""A chain of intensity sources: the first that answers wins, and the answer says who it was and whether degraded.

The operator must plan even when Electricity Maps is down, the token is wrong or a zone is unknown, and it must
say so: an LLMJob planned on static annual values deserves a condition telling the user. The chain tries each
source in order; an answer from any but the first is *degraded*, and carries the failures of those before it, as
records (source, kind, retry-after, message). When every source fails it raises one CarbonSourceError whose
`failures` lists them all (the operator then starts jobs at their latest start rather than waiting forever).
Messages are built from the records' stable parts, so a condition that quotes them reads the same on every pass.

A source that failed for a location is skipped for that location and that kind of call (forecast, history,
latest) during `cooldown` (60 s): a slow or down
Electricity Maps costs one round of timeouts and retries (about 40 s), not one per reconcile pass, so jobs near
their latest start are not held up by it. The last source of the chain is never skipped.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Generic, TypeVar

from llmasos.api.clock import Clock, utc_now
from llmasos.carbon.base import IntensitySource, Location, Observation
from llmasos.errors import CarbonFailure, CarbonSourceError
from llmasos.errors import CarbonFailureKind as Kind
from llmasos.planning.timing.forecast import Forecast
from llmasos.planning.timing.forecast_error import ForecastErrorModel

T = TypeVar("T")


@dataclass(frozen=True)
class Sourced(Generic[T]):
    """A value plus provenance: `source` answered; `degraded` when an earlier source failed (see `failures`)."""

    value: T
    source: str
    degraded: bool
    failures: tuple[CarbonFailure, ...] = ()

    @property
    def message(self) -> str:
        """One line for a condition or Event: which source was used and why (stable from pass to pass)."""
        if not self.degraded:
            return f"carbon intensity from {self.source}"
        return f"carbon intensity from {self.source} (degraded: {'; '.join(map(str, self.failures))})"

    @property
    def log_message(self) -> str:
        """The same with each failure's kind, detail and retry-after, for the operator's log."""
        if not self.degraded:
            return self.message
        return f"carbon intensity from {self.source} (degraded: {'; '.join(f.for_log() for f in self.failures)})"


class FallbackSource:
    """Try `sources` in order. Methods return :class:`Sourced` values instead of bare ones."""

    def __init__(self, sources: Sequence[IntensitySource], cooldown: float = 60.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        if not sources:
            raise ValueError("a fallback chain needs at least one source")
        self.sources = tuple(sources)
        self.cooldown = cooldown
        self._monotonic = monotonic
        # (call kind, source name, location) -> (skip until, the failure that started the cool-down)
        self._cooling: dict[tuple[str, str, str], tuple[float, CarbonFailure]] = {}

    @property
    def name(self) -> str:
        return " > ".join(s.name for s in self.sources)

    async def forecast(self, location: str | Location) -> Sourced[Forecast]:
        async def call(source: IntensitySource) -> Forecast:
            forecast = await source.forecast(location)
            if not forecast.points:
                raise CarbonSourceError("empty forecast", source.name, kind=Kind.NO_DATA)
            return forecast

        return await self._first(call, location, "forecast")

    async def history(self, location: str | Location, start: datetime | None = None,
                      end: datetime | None = None) -> Sourced[Forecast]:
        """Past intensity over [start, end) from the first source that has it (accounting of finished work)."""

        async def call(source: IntensitySource) -> Forecast:
            series = await source.history(location, start, end)
            if not series.points:
                raise CarbonSourceError("empty history", source.name, kind=Kind.NO_DATA)
            return series

        return await self._first(call, location, "history")

    async def latest(self, location: str | Location) -> Sourced[Observation]:
        return await self._first(lambda source: source.latest(location), location, "latest")

    async def aclose(self) -> None:
        """Close every source that holds connections (the Electricity Maps client); call once at shutdown."""
        for source in self.sources:
            close = getattr(source, "aclose", None)
            if close is not None:
                await close()

    async def _first(self, call: Callable[[IntensitySource], Awaitable[T]],
                     location: str | Location, kind: str) -> Sourced[T]:
        failures: list[CarbonFailure] = []
        last = len(self.sources) - 1
        for index, source in enumerate(self.sources):
            key = (kind, source.name, str(location))
            cooling = self._cooling.get(key)
            now = self._monotonic()
            if cooling is not None and now < cooling[0] and index < last:
                # Not asked again: the failure that started the cool-down stands (its message unchanged).
                skipped = f"not retried for {cooling[0] - now:.0f} s"
                failures.append(replace(cooling[1], detail="; ".join(filter(None, (cooling[1].detail, skipped)))))
                continue
            try:
                value = await call(source)
            except CarbonSourceError as exc:
                # A source's own error names itself; a wrapped chain's failures stay the failures of its sources.
                failure = exc.failure if exc.failure.source == source.name else replace(exc.failure, source=source.name)
                failures.append(failure)
                self._cooling[key] = (self._monotonic() + self.cooldown, failure)
                continue
            self._cooling.pop(key, None)
            return Sourced(value, source.name, index > 0, tuple(failures))
        raise CarbonSourceError("every carbon source failed: " + "; ".join(map(str, failures)), "fallback", delay=60,
                                kind=Kind.ALL_FAILED, failures=tuple(failures))


def default_chain(
    token: str | None = None,
    *,
    clock: Clock = utc_now,
    base_url: str | None = None,
    trace_offset: timedelta | None = None,
    forecast_error: ForecastErrorModel | None = None,
    include: Sequence[str] = ("electricitymaps", "trace", "static"),
    cache_ttl: timedelta | None = None,
) -> FallbackSource:
    """Electricity Maps (only with a token) > shipped traces > static annual values: the configured default.

    `include` keeps only the named sources (in this order); a chain left empty raises ValueError."""
    from llmasos.carbon.electricitymaps import DEFAULT_BASE_URL, ElectricityMapsConfig, ElectricityMapsSource
    from llmasos.carbon.static import StaticSource
    from llmasos.carbon.trace import TraceSource

    sources: list[IntensitySource] = []
    if token and "electricitymaps" in include:
        config = ElectricityMapsConfig(token, base_url or DEFAULT_BASE_URL)
        if cache_ttl is not None:
            config = replace(config, cache_ttl=cache_ttl)
        sources.append(ElectricityMapsSource(config, clock=clock))
    if "trace" in include:
        sources.append(TraceSource(clock=clock, offset=trace_offset, error_model=forecast_error))
    if "static" in include:
        sources.append(StaticSource(clock=clock))
    return FallbackSource(sources)
