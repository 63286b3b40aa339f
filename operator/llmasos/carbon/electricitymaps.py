"""Live intensity from the Electricity Maps API v3, made safe to call from every reconcile.

The operator asks for a zone's forecast on every pass of every deferred job, so answers are cached per zone and
endpoint; a fresh fetch that carries an *older* `updatedAt` than the cached one (a lagging replica) never replaces
it. Failures are classified once, here: timeouts, connection errors, 429 (honouring Retry-After) and 5xx are
retried with capped, jittered exponential backoff; 401/403/404 and malformed or null data are not worth retrying
and raise :class:`CarbonSourceError` at once, which the fallback chain turns into "degraded, using the trace".
Data older than `max_age` is refused as stale rather than planned on. Endpoints: `carbon-intensity/latest`,
`/forecast`, `/history`, `/past-range`; the token goes in the `auth-token` header; zone or lat/lon.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import httpx

from llmasos.api.clock import Clock, format_instant, utc_now
from llmasos.carbon.base import Location, Observation
from llmasos.errors import CarbonFailureKind as Kind
from llmasos.errors import CarbonSourceError
from llmasos.planning.timing.forecast import Forecast, parse_instant

SOURCE = "electricitymaps"
DEFAULT_BASE_URL = "https://api.electricitymap.org/v3"
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
V = TypeVar("V", Forecast, Observation)


@dataclass(frozen=True)
class ElectricityMapsConfig:
    """Settings of the client; `token` comes from a Secret (never logged)."""

    token: str
    base_url: str = DEFAULT_BASE_URL
    timeout: float = 10.0
    retries: int = 3
    backoff: float = 0.5
    max_backoff: float = 8.0
    cache_ttl: timedelta = timedelta(minutes=5)
    max_age: timedelta = timedelta(hours=3)
    stale_if_error: timedelta = timedelta(minutes=30)

    def __repr__(self) -> str:
        return f"ElectricityMapsConfig(base_url={self.base_url!r}, token=<redacted>)"


@dataclass(frozen=True)
class _Entry:
    fetched_at: datetime
    updated_at: datetime | None
    value: Any


class ElectricityMapsSource:
    """An :class:`~llmasos.carbon.base.IntensitySource` over httpx. Close it with :meth:`aclose`."""

    def __init__(
        self,
        config: ElectricityMapsConfig,
        *,
        client: httpx.AsyncClient | None = None,
        clock: Clock = utc_now,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self._client = client or httpx.AsyncClient(timeout=config.timeout)
        self._owns_client = client is None
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._cache: dict[tuple[str, str, str], _Entry] = {}

    @property
    def name(self) -> str:
        return SOURCE

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    # -- IntensitySource ---------------------------------------------------------------------------------------
    async def latest(self, location: str | Location) -> Observation:
        loc = Location.parse(location)
        obs = await self._cached("carbon-intensity/latest", loc, {}, _parse_observation)
        if self._clock() - obs.at > self.config.max_age:
            raise CarbonSourceError(f"Electricity Maps latest value for {loc.key} is stale", SOURCE, kind=Kind.STALE,
                                    detail=f"from {obs.at.isoformat()}")
        return obs

    async def forecast(self, location: str | Location) -> Forecast:
        loc = Location.parse(location)
        forecast = await self._cached("carbon-intensity/forecast", loc, {}, _parse_forecast)
        now = self._clock()
        if forecast.issued_at is not None and now - forecast.issued_at > self.config.max_age:
            raise CarbonSourceError(f"Electricity Maps forecast for {loc.key} is stale", SOURCE, kind=Kind.STALE,
                                    detail=f"updated {forecast.issued_at.isoformat()}")
        if forecast.end is None or forecast.end <= now:
            raise CarbonSourceError(f"Electricity Maps forecast for {loc.key} ends before now", SOURCE, kind=Kind.STALE)
        return forecast

    async def history(
        self, location: str | Location, start: datetime | None = None, end: datetime | None = None
    ) -> Forecast:
        """The last 24 h (`/history`) or, with `start`, the range [start, end) (`/past-range`)."""
        loc = Location.parse(location)
        if start is None:
            return await self._cached("carbon-intensity/history", loc, {}, _parse_history("history"))
        params = {"start": format_instant(start), "end": format_instant(end or self._clock())}
        return await self._cached("carbon-intensity/past-range", loc, params, _parse_history("data"))

    # -- plumbing ----------------------------------------------------------------------------------------------
    async def _cached(self, path: str, loc: Location, extra: Mapping[str, str], parse: Callable[[Any], V]) -> V:
        key = (path, loc.key, repr(sorted(extra.items())))
        now = self._clock()
        entry = self._cache.get(key)
        if entry is not None and now - entry.fetched_at < self.config.cache_ttl:
            cached: V = entry.value
            return cached
        try:
            try:
                value = parse(await self._get(path, {**_location_params(loc), **extra}))
            except ValueError as exc:
                raise CarbonSourceError(f"{path}: malformed response: {exc}", SOURCE, kind=Kind.MALFORMED) from None
        except CarbonSourceError:
            if entry is not None and now - entry.fetched_at < self.config.stale_if_error:
                stale: V = entry.value
                return stale
            raise
        updated = _updated_at(value)
        if entry is not None and entry.updated_at and updated and updated < entry.updated_at:
            value, updated = entry.value, entry.updated_at  # a lagging replica answered: keep the newer data
        self._cache[key] = _Entry(now, updated, value)
        return value

    async def _get(self, path: str, params: Mapping[str, str]) -> Any:
        url = f"{self.config.base_url.rstrip('/')}/{path}"
        headers = {"auth-token": self.config.token, "accept": "application/json"}
        problem, kind = "no attempt made", Kind.UNAVAILABLE
        for attempt in range(self.config.retries + 1):
            delay = min(self.config.max_backoff, self.config.backoff * 2**attempt) * self._rng.uniform(0.5, 1.0)
            try:
                response = await self._client.get(url, params=params, headers=headers, timeout=self.config.timeout)
            except httpx.TimeoutException:
                problem = f"timed out after {self.config.timeout:g}s"
            except httpx.TransportError as exc:
                problem = f"connection failed: {type(exc).__name__}"
            else:
                if response.status_code == 200:
                    try:
                        return response.json()
                    except ValueError:
                        raise CarbonSourceError(f"{path}: response is not JSON", SOURCE, kind=Kind.MALFORMED) from None
                problem = f"HTTP {response.status_code}{_error_text(response, self.config.token)}"
                kind = Kind.RATE_LIMITED if response.status_code == 429 else Kind.UNAVAILABLE
                if response.status_code not in RETRYABLE_STATUS:
                    kind = Kind.REFUSED if 400 <= response.status_code < 500 else Kind.UNAVAILABLE
                    raise CarbonSourceError(f"{path}: {problem}", SOURCE, delay=300, kind=kind)
                if response.status_code == 429:
                    wait = _retry_after(response)
                    if wait is not None:
                        if wait > self.config.max_backoff:
                            raise CarbonSourceError(f"{path}: rate limited", SOURCE, delay=wait, kind=kind,
                                                    retry_after=wait)
                        delay = wait
            if attempt < self.config.retries:
                await self._sleep(delay)
        raise CarbonSourceError(f"{path}: {problem} ({self.config.retries + 1} attempts)", SOURCE, kind=kind)


def _location_params(loc: Location) -> dict[str, str]:
    if loc.zone is not None:
        return {"zone": loc.zone}
    return {"lat": f"{loc.lat}", "lon": f"{loc.lon}"}


def _retry_after(response: httpx.Response) -> float | None:
    raw = response.headers.get("retry-after")
    try:
        value = float(raw) if raw is not None else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) and value >= 0 else None


def _error_text(response: httpx.Response, secret: str) -> str:
    """The start of an error body, for messages that end up in conditions: an API that echoes the token back in its
    error ("invalid token abc...") must not put the token into LLMJob status."""
    text = response.text.strip().replace("\n", " ")
    if secret:
        text = text.replace(secret, "<redacted>")
    return f" ({text[:120]})" if text else ""


def _updated_at(value: Any) -> datetime | None:
    if isinstance(value, Forecast):
        return value.issued_at
    if isinstance(value, Observation):
        return value.updated_at
    return None


def _field(obj: Any, key: str, what: str) -> Any:
    if not isinstance(obj, dict) or key not in obj:
        raise CarbonSourceError(f"malformed {what}: missing {key!r}", SOURCE, kind=Kind.MALFORMED)
    return obj[key]


def _time(obj: Any, key: str, what: str) -> datetime:
    try:
        return parse_instant(_field(obj, key, what), key)
    except ValueError as exc:
        raise CarbonSourceError(f"malformed {what}: {exc}", SOURCE, kind=Kind.MALFORMED) from None


def _optional_time(obj: Any, key: str, what: str) -> datetime | None:
    return _time(obj, key, what) if isinstance(obj, dict) and obj.get(key) is not None else None


def _intensity(obj: Any, what: str) -> float | None:
    value = _field(obj, "carbonIntensity", what)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise CarbonSourceError(f"malformed {what}: carbonIntensity {value!r}", SOURCE, kind=Kind.MALFORMED)
    return float(value)


def _parse_observation(body: Any) -> Observation:
    value = _intensity(body, "latest")
    zone = _field(body, "zone", "latest")
    if value is None:
        raise CarbonSourceError(f"Electricity Maps has no value for {zone} (carbonIntensity is null)", SOURCE,
                                kind=Kind.NO_DATA)
    return Observation(
        zone=str(zone),
        intensity=value,
        at=_time(body, "datetime", "latest"),
        source=SOURCE,
        updated_at=_optional_time(body, "updatedAt", "latest"),
        estimated=bool(body.get("isEstimated", False)),
    )


def _points(rows: Any, what: str) -> list[tuple[datetime, float]]:
    if not isinstance(rows, list):
        raise CarbonSourceError(f"malformed {what}: expected a list", SOURCE, kind=Kind.MALFORMED)
    pairs: list[tuple[datetime, float]] = []
    seen: set[datetime] = set()
    for row in rows:
        value = _intensity(row, what)
        moment = _time(row, "datetime", what)
        if value is not None and moment not in seen:  # null points become gaps
            pairs.append((moment, value))
            seen.add(moment)
    if not pairs:
        raise CarbonSourceError(f"Electricity Maps {what} has no values (all null or empty)", SOURCE,
                                kind=Kind.NO_DATA)
    return pairs


def _parse_forecast(body: Any) -> Forecast:
    pairs = _points(_field(body, "forecast", "forecast"), "forecast")
    return Forecast.from_pairs(
        pairs,
        zone=str(_field(body, "zone", "forecast")),
        issued_at=_optional_time(body, "updatedAt", "forecast"),
        source=SOURCE,
    )


def _parse_history(key: str) -> Callable[[Any], Forecast]:
    def parse(body: Any) -> Forecast:
        pairs = _points(_field(body, key, key), key)
        return Forecast.from_pairs(pairs, zone=str(_field(body, "zone", key)), source=SOURCE)

    return parse
