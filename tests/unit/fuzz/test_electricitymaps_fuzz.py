"""Electricity Maps answers of any shape: the client returns a forecast or raises CarbonSourceError, nothing else.

Bodies are drawn by hypothesis (arbitrary JSON, near-miss forecast shapes, raw bytes) with any status code and fed
through httpx.MockTransport into the real client, so the parsing and error paths run exactly as in the operator.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmasos.carbon.electricitymaps import ElectricityMapsConfig, ElectricityMapsSource
from llmasos.errors import CarbonSourceError
from llmasos.planning.timing.forecast import Forecast

TOKEN = "fuzz-token-0f9e8d7c"
NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
intensities = st.none() | st.integers(-10, 2000) | st.floats() | st.text(max_size=5) | st.booleans()
moments = st.one_of(
    st.integers(0, 47).map(lambda h: (NOW + timedelta(hours=h)).strftime("%Y-%m-%dT%H:%M:%S.000Z")),
    st.text(max_size=25), st.none(), st.integers())
points = st.fixed_dictionaries({}, optional={"carbonIntensity": intensities, "datetime": moments})
near_forecasts = st.fixed_dictionaries({}, optional={
    "zone": st.none() | st.text(max_size=8), "forecast": st.lists(points, max_size=8) | json_values,
    "updatedAt": moments})
bodies = st.one_of(json_values.map(lambda v: json.dumps(v).encode()),
                   near_forecasts.map(lambda v: json.dumps(v).encode()),
                   st.binary(max_size=64))
statuses = st.sampled_from([200, 200, 200, 204, 301, 400, 401, 403, 404, 429, 500, 502, 503])


async def _no_sleep(_: float) -> None:
    return None


def _forecast(status: int, body: bytes, headers: dict[str, str] | None = None) -> Forecast:
    def reply(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=body, headers=headers or {})

    async def go() -> Forecast:
        client = httpx.AsyncClient(transport=httpx.MockTransport(reply))
        source = ElectricityMapsSource(ElectricityMapsConfig(TOKEN, "http://em.invalid/v3", retries=1),
                                       client=client, clock=lambda: NOW, sleep=_no_sleep)
        try:
            return await source.forecast("DE")
        finally:
            await client.aclose()

    return asyncio.run(go())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(status=statuses, body=bodies, retry_after=st.none() | st.text(max_size=6))
def test_any_answer_is_a_forecast_or_a_clear_error(status: int, body: bytes, retry_after: str | None) -> None:
    headers = {"Retry-After": retry_after} if retry_after is not None and retry_after.isprintable() else None
    try:
        forecast = _forecast(status, body, headers)
    except CarbonSourceError as exc:
        message = str(exc)
        assert message.strip(), "the error says something"
        assert "Traceback" not in message
        assert TOKEN not in message
        return
    assert status == 200
    assert forecast.points, "a forecast that was accepted has points"
    assert all(p.intensity >= 0 for p in forecast.points)


@given(prefix=st.text(max_size=30), suffix=st.text(max_size=30), status=st.sampled_from([400, 401, 403, 429, 503]))
@settings(max_examples=100, deadline=None)
def test_an_error_body_that_echoes_the_token_is_redacted(prefix: str, suffix: str, status: int) -> None:
    body = json.dumps({"error": f"{prefix}{TOKEN}{suffix}"}).encode()
    with pytest.raises(CarbonSourceError) as caught:
        _forecast(status, body)
    assert TOKEN not in str(caught.value)


def test_null_and_garbage_messages_say_what_was_wrong() -> None:
    cases: list[tuple[Any, str]] = [
        ({"zone": "DE", "forecast": [{"carbonIntensity": None, "datetime": "2026-03-01T12:00:00Z"}]}, "null"),
        ({"zone": "DE", "forecast": "soon"}, "expected a list"),
        ({"zone": "DE", "forecast": [{"carbonIntensity": -5, "datetime": "2026-03-01T12:00:00Z"}]}, "-5"),
        ({"forecast": [{"carbonIntensity": 100, "datetime": "2026-03-01T12:00:00Z"}]}, "zone"),
    ]
    for body, words in cases:
        with pytest.raises(CarbonSourceError) as caught:
            _forecast(200, json.dumps(body).encode())
        assert words in str(caught.value), (body, str(caught.value))
    with pytest.raises(CarbonSourceError, match="not JSON"):
        _forecast(200, b"<html>")
