"""Builders for fleet-planner tests: `job("a", gpus=2, hours=2, deadline=6)` with times in hours from T0."""

from __future__ import annotations

from datetime import timedelta

from llmasos.planning.timing.fleet import plan_fleet, violations
from llmasos.planning.timing.fleet_prices import Arrival
from llmasos.planning.timing.fleet_types import FleetJob, FleetPlan, PoolCapacity, Reservation, Solver
from llmasos.planning.timing.forecast import Forecast
from tests.unit.planning.builders import T0, make_forecast

HOUR = timedelta(hours=1)
# Hour 2-3 is the cleanest; a herd of deadline jobs all wants it.
VALLEY = [300, 280, 100, 90, 200, 310, 320, 330, 300, 290, 280, 270]


def job(
    name: str,
    *,
    gpus: int = 1,
    hours: float = 1,
    earliest: float = 0,
    deadline: float = 12,
    pools: tuple[str, ...] = ("p",),
    interruptible: bool = False,
) -> FleetJob:
    return FleetJob(
        name,
        gpus,
        pools,
        hours * HOUR,
        T0 + earliest * HOUR,
        T0 + deadline * HOUR,
        interruptible=interruptible,
        min_segment=timedelta(0),
    )


def reserve(pool: str, start: float, end: float, gpus: int) -> Reservation:
    return Reservation(pool, T0 + start * HOUR, T0 + end * HOUR, gpus)


def forecast(values: list[float] | None = None, zone: str = "Z") -> Forecast:
    return make_forecast(VALLEY if values is None else values, zone=zone)


def plan(
    jobs: list[FleetJob],
    caps: dict[str, int],
    reservations: list[Reservation] | None = None,
    forecasts: dict[str, Forecast] | None = None,
    solver: Solver = "auto",
    now_h: float = 0,
    headroom: float = 0.0,
    arrivals: list[Arrival] | None = None,
) -> FleetPlan:
    """Plan and assert the guarantee that holds for every input: no pool over capacity."""
    pools = [PoolCapacity(name, gpus, "Z") for name, gpus in caps.items()]
    result = plan_fleet(
        jobs,
        pools,
        reservations or [],
        {"Z": forecast()} if forecasts is None else forecasts,
        T0 + now_h * HOUR,
        solver=solver,
        headroom=headroom,
        arrivals=arrivals or (),
    )
    assert violations(result, jobs, pools, reservations or []) == []
    return result


def hours(result: FleetPlan, job_id: str) -> list[tuple[float, float]]:
    a = result.by_id()[job_id]
    return [((s.start - T0) / HOUR, (s.end - T0) / HOUR) for s in a.segments]
