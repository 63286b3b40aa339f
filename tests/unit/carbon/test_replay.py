"""Plans made on the shipped trace say plainly that the data is a historical replay, not a forecast (#20 item 2)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from llmasos.api.conditions import CARBON_DATA_IS_FORECAST, CARBON_DATA_IS_REPLAY, carbon_replay_condition
from llmasos.carbon.static import StaticSource
from llmasos.carbon.trace import SOURCE, TraceSource
from llmasos.planning.timing.carbon_window import REPLAY_NOTE, REPLAY_SOURCE, CarbonJob, plan_start
from llmasos.planning.timing.forecast import Forecast

NOW = datetime(2026, 12, 4, 14, tzinfo=UTC)
JOB = CarbonJob(duration=timedelta(hours=1), earliest_start=NOW, deadline=NOW + timedelta(hours=12))


def clock() -> datetime:
    return NOW


def forecast_of(source: TraceSource | StaticSource) -> Forecast:
    return asyncio.run(source.forecast("DE"))


def test_the_trace_source_is_the_replay_source() -> None:
    assert SOURCE == REPLAY_SOURCE


def test_a_plan_on_the_trace_says_historical_replay() -> None:
    plan = plan_start(JOB, forecast_of(TraceSource(clock=clock)), NOW)
    assert plan.replay
    data = plan.to_dict()
    assert (data["dataKind"], data["dataNote"]) == ("replay", REPLAY_NOTE)
    assert data["dataNote"].startswith("historical replay, not a forecast")


def test_a_plan_on_other_data_says_nothing_of_replay() -> None:
    plan = plan_start(JOB, forecast_of(StaticSource(clock=clock)), NOW)
    assert not plan.replay
    assert "dataKind" not in plan.to_dict()


def test_the_replay_condition_is_a_warning_naming_the_zone() -> None:
    cond = carbon_replay_condition(True, "trace", "DE")
    assert (cond.type, cond.status, cond.reason) == ("CarbonDataReplay", "True", CARBON_DATA_IS_REPLAY)
    assert cond.message.startswith("carbon intensity for DE is a historical replay, not a forecast")
    off = carbon_replay_condition(False, "electricitymaps", "DE")
    assert (off.status, off.reason) == ("False", CARBON_DATA_IS_FORECAST)
