"""The Electricity Maps client against a real local HTTP server: shapes, errors, retries, cache and staleness."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest

from llmasos.carbon.base import IntensitySource
from llmasos.carbon.electricitymaps import ElectricityMapsConfig, ElectricityMapsSource
from llmasos.errors import CarbonFailureKind as Kind
from llmasos.errors import CarbonSourceError
from tests.unit.carbon.fake_server import FakeElectricityMaps, Reply, fixture

T = TypeVar("T")
LATEST = fixture("latest_carbon_intensity.json")  # 2024-03-06T19:00Z, updated 18:48
FORECAST = fixture("carbon_intensity_forecast_DE_2023-05-02.json")  # 48 h from 2023-05-02T20:00Z
HISTORY = fixture("carbon_intensity_history.json")
AT_LATEST = datetime(2024, 3, 6, 19, 10, tzinfo=UTC)
AT_FORECAST = datetime(2023, 5, 2, 20, 5, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def run(
    server: FakeElectricityMaps,
    now: datetime,
    body: Callable[[ElectricityMapsSource, Clock, list[float]], Awaitable[T]],
    **config: Any,
) -> tuple[T, list[float]]:
    """Run `body` with a client pointed at `server`; returns its result and the backoff sleeps it asked for."""
    sleeps: list[float] = []
    clock = Clock(now)

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    async def main() -> T:
        settings = {"timeout": 2.0, "retries": 2, "backoff": 0.1, **config}
        source = ElectricityMapsSource(
            ElectricityMapsConfig("secret-token", server.url, **settings),
            clock=clock,
            sleep=sleep,
            rng=random.Random(0),
        )
        try:
            return await body(source, clock, sleeps)
        finally:
            await source.aclose()

    return asyncio.run(main()), sleeps


def test_is_an_intensity_source(em_server: FakeElectricityMaps) -> None:
    source = ElectricityMapsSource(ElectricityMapsConfig("s3cr3t", em_server.url))
    assert isinstance(source, IntensitySource)
    assert "s3cr3t" not in repr(source.config)
    asyncio.run(source.aclose())


def test_latest_sends_token_and_zone(em_server: FakeElectricityMaps) -> None:
    em_server.queue("carbon-intensity/latest", Reply(LATEST))
    obs, _ = run(em_server, AT_LATEST, lambda s, c, z: s.latest("US-CAR-DUK"))
    assert obs.intensity == 216.0
    assert obs.at == datetime(2024, 3, 6, 19, tzinfo=UTC)
    assert obs.updated_at == datetime(2024, 3, 6, 18, 48, 27, 926000, tzinfo=UTC)
    assert obs.estimated
    request = em_server.requests[0]
    assert request.headers["auth-token"] == "secret-token"
    assert request.query == {"zone": ["US-CAR-DUK"]}


def test_lat_lon_location(em_server: FakeElectricityMaps) -> None:
    em_server.queue("carbon-intensity/latest", Reply(LATEST))
    run(em_server, AT_LATEST, lambda s, c, z: s.latest("35.22,-80.84"))
    assert em_server.requests[0].query == {"lat": ["35.22"], "lon": ["-80.84"]}


def test_forecast_shape(em_server: FakeElectricityMaps) -> None:
    em_server.queue("carbon-intensity/forecast", Reply(FORECAST))
    forecast, _ = run(em_server, AT_FORECAST, lambda s, c, z: s.forecast("DE"))
    assert len(forecast) == 48
    assert forecast.step == timedelta(hours=1)
    assert forecast.zone == "DE"
    assert forecast.source == "electricitymaps"
    assert forecast.issued_at == datetime(2023, 5, 2, 19, 52, 9, 141000, tzinfo=UTC)
    assert forecast.points[0].intensity == 557.0


def test_null_points_become_gaps(em_server: FakeElectricityMaps) -> None:
    body = {**FORECAST, "forecast": [dict(p) for p in FORECAST["forecast"]]}
    body["forecast"][3]["carbonIntensity"] = None
    em_server.queue("carbon-intensity/forecast", Reply(body))
    forecast, _ = run(em_server, AT_FORECAST, lambda s, c, z: s.forecast("DE"))
    assert len(forecast) == 47
    assert forecast.has_gaps()
    assert forecast.value_at(datetime(2023, 5, 2, 23, 30, tzinfo=UTC)) is None


def test_history_and_past_range(em_server: FakeElectricityMaps) -> None:
    em_server.queue("carbon-intensity/history", Reply(HISTORY))
    em_server.queue("carbon-intensity/past-range", Reply({"zone": "DE", "data": HISTORY["history"][:5]}))

    async def body(s: ElectricityMapsSource, c: Clock, z: list[float]) -> tuple[int, int]:
        day = await s.history("DE")
        part = await s.history("DE", datetime(2024, 3, 5, 20, tzinfo=UTC), datetime(2024, 3, 6, 1, tzinfo=UTC))
        return len(day), len(part)

    (day, part), _ = run(em_server, AT_LATEST, body)
    assert (day, part) == (24, 5)
    ranged = next(r for r in em_server.requests if r.path.endswith("past-range"))
    assert ranged.query["start"] == ["2024-03-05T20:00:00Z"]
    assert ranged.query["end"] == ["2024-03-06T01:00:00Z"]


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (Reply({**LATEST, "carbonIntensity": None}), "null"),
        (Reply(b"<html>oops</html>"), "not JSON"),
        (Reply({"zone": "DE"}), "missing 'carbonIntensity'"),
        (Reply({**LATEST, "carbonIntensity": "high"}), "malformed"),
        (Reply({**LATEST, "datetime": "yesterday"}), "malformed"),
        (Reply({"error": "bad token"}, 401), "HTTP 401"),
        (Reply({"error": "unknown zone"}, 404), "HTTP 404"),
    ],
)
def test_unusable_answers_fail_at_once(em_server: FakeElectricityMaps, reply: Reply, message: str) -> None:
    em_server.queue("carbon-intensity/latest", reply)
    with pytest.raises(CarbonSourceError, match=message) as info:
        run(em_server, AT_LATEST, lambda s, c, z: s.latest("DE"))
    assert info.value.source == "electricitymaps"
    assert em_server.hits("carbon-intensity/latest") == 1


def test_forecast_all_null_fails(em_server: FakeElectricityMaps) -> None:
    body = {**FORECAST, "forecast": [{**p, "carbonIntensity": None} for p in FORECAST["forecast"]]}
    em_server.queue("carbon-intensity/forecast", Reply(body))
    with pytest.raises(CarbonSourceError, match="no values"):
        run(em_server, AT_FORECAST, lambda s, c, z: s.forecast("DE"))


def test_5xx_is_retried_with_backoff(em_server: FakeElectricityMaps) -> None:
    em_server.queue("carbon-intensity/latest", Reply({}, 503), Reply({}, 502), Reply(LATEST))
    obs, sleeps = run(em_server, AT_LATEST, lambda s, c, z: s.latest("DE"))
    assert obs.intensity == 216.0
    assert em_server.hits("carbon-intensity/latest") == 3
    assert len(sleeps) == 2
    assert 0.05 <= sleeps[0] <= 0.1
    assert 0.1 <= sleeps[1] <= 0.2  # doubled, with jitter in [0.5, 1]


def test_persistent_5xx_gives_up(em_server: FakeElectricityMaps) -> None:
    em_server.queue("carbon-intensity/latest", Reply({"error": "down"}, 500))
    with pytest.raises(CarbonSourceError, match=r"HTTP 500.*3 attempts"):
        run(em_server, AT_LATEST, lambda s, c, z: s.latest("DE"))
    assert em_server.hits("carbon-intensity/latest") == 3


def test_429_honours_retry_after(em_server: FakeElectricityMaps) -> None:
    em_server.queue("carbon-intensity/latest", Reply({}, 429, {"Retry-After": "1.5"}), Reply(LATEST))
    obs, sleeps = run(em_server, AT_LATEST, lambda s, c, z: s.latest("DE"))
    assert obs.intensity == 216.0
    assert sleeps == [1.5]


def test_long_rate_limit_is_reported_not_waited(em_server: FakeElectricityMaps) -> None:
    em_server.queue("carbon-intensity/latest", Reply({}, 429, {"Retry-After": "3600"}))
    with pytest.raises(CarbonSourceError, match="rate limited") as info:
        run(em_server, AT_LATEST, lambda s, c, z: s.latest("DE"))
    assert info.value.delay == 3600
    assert (info.value.failure.kind, info.value.failure.retry_after) == (Kind.RATE_LIMITED, 3600)
    assert info.value.failure.message == "carbon-intensity/latest: rate limited"  # the wait is a field, not text
    assert em_server.hits("carbon-intensity/latest") == 1


def test_slow_answers_time_out_and_are_retried(em_server: FakeElectricityMaps) -> None:
    em_server.queue("carbon-intensity/latest", Reply(LATEST, delay=1.0), Reply(LATEST))
    obs, sleeps = run(em_server, AT_LATEST, lambda s, c, z: s.latest("DE"), timeout=0.2, retries=1)
    assert obs.intensity == 216.0
    assert len(sleeps) == 1


def test_slow_answers_eventually_fail(em_server: FakeElectricityMaps) -> None:
    em_server.queue("carbon-intensity/latest", Reply(LATEST, delay=1.0))
    with pytest.raises(CarbonSourceError, match="timed out"):
        run(em_server, AT_LATEST, lambda s, c, z: s.latest("DE"), timeout=0.2, retries=1)


def test_connection_refused() -> None:
    with FakeElectricityMaps() as server:
        url = server.url
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    async def main() -> None:
        source = ElectricityMapsSource(ElectricityMapsConfig("t", url, retries=1), sleep=sleep)
        try:
            await source.latest("DE")
        finally:
            await source.aclose()

    with pytest.raises(CarbonSourceError, match="connection failed"):
        asyncio.run(main())


def test_stale_latest_is_refused(em_server: FakeElectricityMaps) -> None:
    em_server.queue("carbon-intensity/latest", Reply(LATEST))
    with pytest.raises(CarbonSourceError, match="stale"):
        run(em_server, AT_LATEST + timedelta(hours=5), lambda s, c, z: s.latest("DE"))


def test_stale_forecast_is_refused(em_server: FakeElectricityMaps) -> None:
    em_server.queue("carbon-intensity/forecast", Reply(FORECAST))
    with pytest.raises(CarbonSourceError, match="stale"):
        run(em_server, AT_FORECAST + timedelta(hours=4), lambda s, c, z: s.forecast("DE"))


def test_cache_per_zone_and_ttl(em_server: FakeElectricityMaps) -> None:
    em_server.queue("carbon-intensity/forecast", Reply(FORECAST))

    async def body(s: ElectricityMapsSource, c: Clock, z: list[float]) -> None:
        await s.forecast("DE")
        await s.forecast("DE")
        await s.forecast("FR")
        assert em_server.hits("carbon-intensity/forecast") == 2
        c.now += timedelta(minutes=6)
        await s.forecast("DE")
        assert em_server.hits("carbon-intensity/forecast") == 3

    run(em_server, AT_FORECAST, body)


def test_older_updated_at_does_not_replace_the_cache(em_server: FakeElectricityMaps) -> None:
    older = {**FORECAST, "updatedAt": "2023-05-02T18:00:00.000Z", "forecast": FORECAST["forecast"][:3]}
    newer = {**FORECAST, "updatedAt": "2023-05-02T20:30:00.000Z", "forecast": FORECAST["forecast"][:5]}
    em_server.queue("carbon-intensity/forecast", Reply(FORECAST), Reply(older), Reply(newer))

    async def body(s: ElectricityMapsSource, c: Clock, z: list[float]) -> list[int]:
        sizes = [len(await s.forecast("DE"))]
        for _ in range(2):
            c.now += timedelta(minutes=10)
            sizes.append(len(await s.forecast("DE")))
        return sizes

    sizes, _ = run(em_server, AT_FORECAST, body)
    assert sizes == [48, 48, 5]


def test_stale_if_error_serves_the_cached_forecast(em_server: FakeElectricityMaps) -> None:
    em_server.queue("carbon-intensity/forecast", Reply(FORECAST), Reply({}, 503))

    async def body(s: ElectricityMapsSource, c: Clock, z: list[float]) -> int:
        await s.forecast("DE")
        c.now += timedelta(minutes=10)
        first = len(await s.forecast("DE"))  # refresh failed: the 10-minute-old copy is served
        c.now += timedelta(minutes=30)
        try:
            await s.forecast("DE")
        except CarbonSourceError:
            return first
        raise AssertionError("a 40-minute-old copy must not be served on error")

    first, _ = run(em_server, AT_FORECAST, body)
    assert first == 48
