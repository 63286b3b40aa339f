"""Capacity prices for the work still to come: the expected work from recent arrivals, the LP's duals on cases
small enough to check by hand, the priced timeline, and a plan that leaves the cleanest hour to expected arrivals."""

from __future__ import annotations

from datetime import timedelta

import pytest

from llmasos.planning.timing import highs
from llmasos.planning.timing.capacity import MICRO, Usage
from llmasos.planning.timing.fleet_prices import (
    HORIZON_HOURS,
    Arrival,
    Work,
    capacity_prices,
    expected_work,
    free_gpus,
    pending_work,
    priced,
)
from llmasos.planning.timing.timeline import Timeline, TimelinePiece
from tests.unit.planning.builders import T0
from tests.unit.planning.timing.fleet_builders import HOUR, forecast, hours, job, plan

needs_highs = pytest.mark.skipif(not highs.available(), reason="highspy (the fleet extra) is not installed")


def arrival(ago_h: float, *, pool: str = "p", gpus: int = 1, hours_: float = 1, window_h: float = 2) -> Arrival:
    return Arrival(pool, T0 - ago_h * HOUR, gpus, hours_ * HOUR, window_h * HOUR)


def test_expected_work_is_half_the_last_two_days_rate_every_two_hours_of_the_next_day() -> None:
    arrivals = [arrival(k, gpus=2) for k in range(48)]  # 2 GPUs an hour, for 1 h within 2 h
    arrivals += [arrival(60), arrival(3, pool="other")]  # too old; another pool
    work = expected_work(arrivals, "p", T0)
    assert [(w.lo, w.hi, w.hours) for w in work] == [(a, a + 2, 1) for a in range(1, 25, 2)]
    assert all(w.gpus == pytest.approx(2.0) for w in work)  # 2 GPUs/h x 0.5 x 2 h per step


def test_a_pool_that_just_started_reads_its_rate_over_the_hours_it_has_seen() -> None:
    work = expected_work([arrival(0.5, gpus=4), arrival(0, gpus=4)], "p", T0)  # 8 GPUs in its first hour
    assert work[0].gpus == pytest.approx(8.0)  # 8 GPUs/h x 0.5 x 2 h per step


def test_expected_work_is_clipped_to_the_horizon_and_dropped_when_it_cannot_fit() -> None:
    work = expected_work([arrival(1, hours_=4, window_h=30)], "p", T0)
    assert max(w.hi for w in work) == HORIZON_HOURS
    assert all(w.hi - w.lo >= w.hours for w in work)
    assert expected_work([arrival(1, hours_=2, window_h=1)], "p", T0) == []


def test_pending_work_counts_jobs_of_this_pool_alone_in_whole_hours() -> None:
    jobs = [job("a", gpus=2, hours=1.5, earliest=1, deadline=6), job("b", pools=("p", "q")), job("c", pools=("q",))]
    assert pending_work(jobs, "p", T0) == [Work(2.0, 2, 1, 6)]


def test_free_gpus_take_the_reservations_peak_in_each_hour() -> None:
    reserved = Usage()
    reserved.add(int(0.5 * 3600 * MICRO), int(2 * 3600 * MICRO), 3)
    assert free_gpus(4, reserved)[:3] == [1.0, 1.0, 4.0]


@needs_highs
def test_an_hour_two_jobs_want_is_priced_at_what_the_loser_pays_elsewhere() -> None:
    work = [Work(1.0, 1, 0, 2), Work(1.0, 1, 0, 2)]  # one GPU-hour each, both in hours 0-2
    assert capacity_prices(work, [1.0, 2.0], [100.0, 200.0]) == pytest.approx([100.0, 0.0])


@needs_highs
def test_room_for_everything_costs_nothing() -> None:
    work = [Work(1.0, 1, 0, 2), Work(1.0, 1, 0, 2)]
    assert capacity_prices(work, [2.0, 2.0], [100.0, 200.0]) == [0.0, 0.0]
    assert capacity_prices([], [1.0, 1.0], [100.0, 200.0]) == [0.0, 0.0]


@needs_highs
def test_work_that_cannot_fit_prices_its_hours_at_most_at_the_spread() -> None:
    prices = capacity_prices([Work(3.0, 2, 0, 2)], [1.0, 1.0], [100.0, 150.0])
    assert prices == pytest.approx([50.0, 50.0])


def test_a_priced_timeline_adds_each_hours_price_and_splits_pieces_at_the_hour() -> None:
    line = Timeline.from_pieces(T0, [TimelinePiece(0.0, 5400.0, 100.0, False), TimelinePiece(5400.0, 9000.0, 50.0,
                                                                                              True)])
    out = priced(line, [0.0, 10.0])
    assert [(p.start, p.end, p.intensity, p.estimated) for p in out.pieces] == [
        (0.0, 3600.0, 100.0, False), (3600.0, 5400.0, 110.0, False), (5400.0, 7200.0, 60.0, True),
        (7200.0, 9000.0, 50.0, True)]
    assert priced(line, [0.0, 0.0]) is line


@needs_highs
def test_a_job_with_room_leaves_the_cleanest_hour_to_the_work_expected_there() -> None:
    # Hour 10 is the cleanest (100), hour 0 nearly as clean (104). Over the last two days a 1-GPU, 1-hour job with a
    # 2-hour window arrived every hour: one is expected in hours 9-11, where hour 10 is its only clean choice.
    values = [300.0] * HORIZON_HOURS
    values[0], values[10] = 104.0, 100.0
    fc = {"Z": forecast(values)}
    pending = [job("a", deadline=24)]
    assert hours(plan(pending, {"p": 1}, forecasts=fc, solver="greedy"), "a") == [(10.0, 11.0)]
    history = [arrival(k) for k in range(48)]
    priced_plan = plan(pending, {"p": 1}, forecasts=fc, solver="greedy", arrivals=history)
    assert hours(priced_plan, "a") == [(0.0, 1.0)]
    assert priced_plan.by_id()["a"].expected_intensity == pytest.approx(104.0), "reported on the forecast itself"


@needs_highs
def test_old_arrivals_price_nothing() -> None:
    values = [300.0] * HORIZON_HOURS
    values[0], values[10] = 104.0, 100.0
    history = [arrival(48 + k) for k in range(48)]
    result = plan([job("a", deadline=24)], {"p": 1}, forecasts={"Z": forecast(values)}, solver="greedy",
                  arrivals=history)
    assert hours(result, "a") == [(10.0, 11.0)]


def test_arrivals_are_utc() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        Arrival("p", T0.replace(tzinfo=None), 1, HOUR, HOUR)
    assert arrival(0).at - T0 == timedelta(0)
