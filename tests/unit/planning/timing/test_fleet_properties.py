"""Properties of the fleet planner over random fleets (hypothesis).

* Never over capacity, reservations included, whatever the input (every solver).
* Never after a deadline when a feasible plan exists: each fleet is drawn around a hidden witness schedule that
  keeps every deadline within capacity, so a plan missing one is a planner failure, not bad luck. The witness is
  on whole hours, where the MILP is exact, so `auto` must find a plan as good as the witness.
* Every plan runs exactly the job's duration, inside [earliest start, deadline] when it is feasible.
* Capacity prices from any history change neither of the first two.
"""

from __future__ import annotations

from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmasos.planning.timing.capacity import Usage
from llmasos.planning.timing.fleet import plan_fleet, violations
from llmasos.planning.timing.fleet_prices import Arrival
from llmasos.planning.timing.fleet_types import FleetJob, PoolCapacity, Reservation
from tests.unit.planning.builders import T0, make_forecast
from tests.unit.planning.timing.fleet_builders import HOUR

HORIZON = 16
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
Fleet = tuple[list[FleetJob], list[PoolCapacity], list[Reservation], dict[str, object]]


@st.composite
def fleets(draw: st.DrawFn, witnessed: bool) -> tuple[list[FleetJob], list[PoolCapacity], list[Reservation], dict]:  # type: ignore[type-arg]
    """Pools, reservations and jobs laid into a witness schedule (kept within capacity), then given windows
    around their witness slots; without `witnessed`, deadlines may also be too tight for any plan."""
    n_pools = draw(st.integers(1, 2))
    caps = {f"p{i}": draw(st.integers(1, 6)) for i in range(n_pools)}
    zones = {name: draw(st.sampled_from(["A", "B"])) for name in caps}
    usage = {name: Usage() for name in caps}
    reservations: list[Reservation] = []
    for _ in range(draw(st.integers(0, 3))):
        pool = draw(st.sampled_from(sorted(caps)))
        start, length = draw(st.integers(0, HORIZON - 1)), draw(st.integers(1, 4))
        gpus = draw(st.integers(1, caps[pool]))
        if usage[pool].peak(start, start + length) + gpus <= caps[pool]:
            usage[pool].add(start, start + length, gpus)
            reservations.append(Reservation(pool, T0 + start * HOUR, T0 + (start + length) * HOUR, gpus))
    jobs: list[FleetJob] = []
    for i in range(draw(st.integers(1, 7))):
        pool = draw(st.sampled_from(sorted(caps)))
        gpus = draw(st.integers(1, caps[pool]))
        length = draw(st.integers(1, 4))
        start = draw(st.integers(0, HORIZON - length))
        fits = usage[pool].peak(start, start + length) + gpus <= caps[pool]
        if witnessed and not fits:
            continue
        if fits:
            usage[pool].add(start, start + length, gpus)
        earliest = start - draw(st.integers(0, start))
        deadline = start + length + draw(st.integers(0, 6)) - (0 if witnessed else draw(st.integers(0, 3)))
        others = [p for p in sorted(caps) if p != pool and caps[p] >= gpus and draw(st.booleans())]
        jobs.append(
            FleetJob(
                f"j{i}",
                gpus,
                (pool, *others),
                length * HOUR,
                T0 + earliest * HOUR,
                T0 + deadline * HOUR,
                interruptible=draw(st.booleans()),
                min_segment=timedelta(0),
            )
        )
    values = {z: draw(st.lists(st.integers(0, 500).map(float), min_size=24, max_size=24)) for z in ("A", "B")}
    forecasts = {z: make_forecast(v, zone=z) for z, v in values.items()}
    pools = [PoolCapacity(name, cap, zones[name]) for name, cap in caps.items()]
    return jobs, pools, reservations, forecasts


def check_runs(result: object, jobs: list[FleetJob]) -> None:
    by_id = result.by_id()  # type: ignore[attr-defined]
    for j in jobs:
        a = by_id[j.id]
        assert sum((s.duration for s in a.segments), timedelta(0)) == j.duration
        assert all(s.start < s.end for s in a.segments)
        assert all(x.end <= y.start for x, y in zip(a.segments, a.segments[1:], strict=False))
        assert a.pool in j.pools
        if a.feasible:
            assert a.segments[0].start >= j.earliest_start
            assert a.segments[-1].end <= j.deadline


@SETTINGS
@given(fleets(witnessed=False), st.sampled_from(["greedy", "milp", "auto"]))
def test_never_over_capacity_reservations_included(fleet: tuple, solver: str) -> None:  # type: ignore[type-arg]
    jobs, pools, reservations, forecasts = fleet
    result = plan_fleet(jobs, pools, reservations, forecasts, T0, solver=solver)  # type: ignore[arg-type]
    assert violations(result, jobs, pools, reservations) == []
    check_runs(result, jobs)


@SETTINGS
@given(fleets(witnessed=True))
def test_never_after_a_deadline_when_a_feasible_plan_exists(fleet: tuple) -> None:  # type: ignore[type-arg]
    jobs, pools, reservations, forecasts = fleet
    result = plan_fleet(jobs, pools, reservations, forecasts, T0, solver="auto")
    assert violations(result, jobs, pools, reservations) == []
    assert [a.reason for a in result.at_risk] == []
    check_runs(result, jobs)


@SETTINGS
@given(fleets(witnessed=True))
def test_the_greedy_path_alone_never_over_capacity(fleet: tuple) -> None:  # type: ignore[type-arg]
    jobs, pools, reservations, forecasts = fleet
    result = plan_fleet(jobs, pools, reservations, forecasts, T0 + HOUR / 2, solver="greedy", headroom=0.25)
    assert violations(result, jobs, pools, reservations) == []
    check_runs(result, [j for j in jobs if j.earliest_start >= T0 + HOUR / 2])


@st.composite
def histories(draw: st.DrawFn, pools: list[PoolCapacity]) -> list[Arrival]:
    """Recent arrivals in the fleet's pools: what the capacity prices are made of."""
    return [
        Arrival(draw(st.sampled_from([p.name for p in pools])), T0 - draw(st.integers(0, 60)) * HOUR,
                draw(st.integers(1, 6)), draw(st.integers(1, 4)) * HOUR, draw(st.integers(1, 12)) * HOUR)
        for _ in range(draw(st.integers(0, 30)))
    ]


@SETTINGS
@given(st.data(), fleets(witnessed=True))
def test_capacity_prices_never_cost_a_deadline_or_capacity(data: st.DataObject, fleet: tuple) -> None:  # type: ignore[type-arg]
    jobs, pools, reservations, forecasts = fleet
    arrivals = data.draw(histories(pools))
    result = plan_fleet(jobs, pools, reservations, forecasts, T0, solver="auto", arrivals=arrivals)
    assert violations(result, jobs, pools, reservations) == []
    assert [a.reason for a in result.at_risk] == []
    check_runs(result, jobs)
