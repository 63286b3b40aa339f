"""The fleet planner on small, readable cases: herding, bumping, headroom, impossible deadlines, validation."""

from __future__ import annotations

from datetime import timedelta

import pytest

from llmasos.planning.timing import highs
from llmasos.planning.timing.capacity import Usage, capacity_violations
from llmasos.planning.timing.carbon_window import CarbonJob, plan_start
from llmasos.planning.timing.fleet import plan_fleet
from llmasos.planning.timing.fleet_types import FleetJob, PoolCapacity
from tests.unit.planning.builders import T0
from tests.unit.planning.timing.fleet_builders import HOUR, forecast, hours, job, plan, reserve

SOLVERS = ["greedy", "milp", "auto"]


@pytest.mark.parametrize("solver", SOLVERS)
def test_a_herd_shares_the_pool_and_keeps_every_deadline(solver: str) -> None:
    jobs = [job(f"j{i}", gpus=2, hours=2, deadline=6) for i in range(3)]
    result = plan(jobs, {"p": 4}, solver=solver)  # type: ignore[arg-type]
    assert all(a.feasible for a in result.assignments)
    assert all(a.end_at <= T0 + 6 * HOUR for a in result.assignments)
    assert sorted(hours(result, j.id)[0][0] for j in jobs).count(2.0) <= 2


def test_on_an_empty_pool_each_job_gets_its_single_job_plan() -> None:
    fc = forecast()
    jobs = [job("a", hours=2, deadline=8), job("b", hours=3, deadline=12, interruptible=True)]
    result = plan(jobs, {"p": 8}, forecasts={"Z": fc}, solver="greedy")
    for j in jobs:
        alone = plan_start(
            CarbonJob(j.duration, j.earliest_start, j.deadline, j.interruptible, min_segment=j.min_segment), fc, T0
        )
        assert result.by_id()[j.id].segments == alone.segments


def test_an_urgent_arrival_moves_a_deferred_job_within_its_deadline() -> None:
    deferred = job("deferred", gpus=4, hours=2, deadline=12)
    urgent = job("urgent", gpus=4, hours=2, earliest=2, deadline=4)
    result = plan([deferred, urgent], {"p": 4}, solver="greedy")
    assert hours(result, "urgent") == [(2.0, 4.0)]
    assert result.by_id()["deferred"].feasible
    assert result.by_id()["deferred"].end_at <= T0 + 12 * HOUR


def test_bumping_makes_room_that_least_room_first_alone_does_not() -> None:
    # "a" has the least room (latest start 8.5) and takes the cleanest hour, 8-9; "b" takes 9-10; "c" then finds no
    # free hour in 8-10: bumping places "c" first and "a" and "b" again, each within its own deadline.
    jobs = [job("a", deadline=9.5), job("b", earliest=8, deadline=10), job("c", earliest=8, deadline=10)]
    values = [500.0] * 8 + [10.0, 20.0, 500.0, 500.0]
    result = plan(jobs, {"p": 1}, forecasts={"Z": forecast(values)}, solver="greedy")
    assert all(a.feasible for a in result.assignments), [a.reason for a in result.assignments]
    assert sorted(hours(result, "b") + hours(result, "c")) == [(8.0, 9.0), (9.0, 10.0)]


def test_reservations_are_honoured() -> None:
    result = plan([job("a", gpus=2, hours=2, deadline=8)], {"p": 2}, [reserve("p", 0, 5, 1)])
    assert hours(result, "a")[0][0] >= 5


def test_an_impossible_deadline_is_reported_with_the_earliest_feasible_end() -> None:
    result = plan([job("a", gpus=2, hours=2, deadline=3)], {"p": 2}, [reserve("p", 0, 2, 2)])
    a = result.by_id()["a"]
    assert not a.feasible
    assert a.earliest_end == T0 + 4 * HOUR
    assert hours(result, "a") == [(2.0, 4.0)]
    assert "not enough free GPUs in p" in a.reason
    assert "earliest feasible end 2024-03-06T04:00:00Z" in a.reason


def test_a_job_too_long_for_its_window_is_planned_at_once_and_reported() -> None:
    result = plan([job("a", hours=3, earliest=0, deadline=2)], {"p": 1})
    a = result.by_id()["a"]
    assert not a.feasible
    assert "even when started at once" in a.reason
    assert hours(result, "a") == [(0.0, 3.0)]


def test_late_jobs_never_push_on_time_jobs_over_capacity() -> None:
    jobs = [job("late", gpus=2, hours=3, deadline=2), job("ok", gpus=2, hours=2, deadline=6)]
    result = plan(jobs, {"p": 2})
    assert result.by_id()["ok"].feasible
    assert not result.by_id()["late"].feasible


def test_an_interruptible_job_fills_the_gaps_others_leave() -> None:
    block = job("block", gpus=2, hours=1, earliest=3, deadline=4)
    split = job("split", gpus=2, hours=2, interruptible=True, deadline=5)
    result = plan([block, split], {"p": 2}, solver="greedy")
    assert hours(result, "split") == [(2.0, 3.0), (4.0, 5.0)]


def test_headroom_is_left_free_unless_a_deadline_needs_it() -> None:
    loose = [job(f"l{i}", gpus=1, hours=1, deadline=12) for i in range(4)]
    result = plan(loose, {"p": 4}, headroom=0.25, solver="greedy")
    usage = Usage()
    for a in result.assignments:
        for s in a.segments:
            usage.add(int((s.start - T0) / timedelta(microseconds=1)), int((s.end - T0) / timedelta(microseconds=1)), 1)
    assert usage.peak(-(2**62), 2**62) <= 3
    tight = [job(f"t{i}", gpus=1, hours=1, earliest=2, deadline=3) for i in range(4)]
    assert all(a.feasible for a in plan(tight, {"p": 4}, headroom=0.25, solver="greedy").assignments)


def test_a_job_may_choose_among_pools() -> None:
    jobs = [job("a", gpus=2, hours=2, deadline=4, pools=("small", "big")), job("b", gpus=2, hours=2, deadline=4)]
    result = plan(jobs, {"small": 2, "big": 2, "p": 0} | {"p": 2})
    assert all(a.feasible for a in result.assignments)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (job("a", pools=("nope",)), "job a: unknown pool nope"),
        (job("a", gpus=9), "job a needs 9 GPUs, more than its pool holds (p has 8)"),
    ],
)
def test_bad_input_is_refused(bad: FleetJob, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        plan_fleet([bad], [PoolCapacity("p", 8, "Z")], [], {}, T0)


def test_without_highspy_the_greedy_path_stands_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(highs, "available", lambda: False)
    result = plan([job("a", gpus=2, hours=2, deadline=6)], {"p": 2}, solver="auto")
    assert result.solver == "greedy"


def test_without_a_forecast_jobs_start_as_early_as_capacity_allows() -> None:
    result = plan([job("a", gpus=2, hours=1), job("b", gpus=2, hours=1)], {"p": 2}, forecasts={}, solver="greedy")
    assert sorted(hours(result, j)[0][0] for j in ("a", "b")) == [0.0, 1.0]


def test_capacity_violations_counts_touching_intervals_as_disjoint() -> None:
    t = [T0 + i * HOUR for i in range(3)]
    assert capacity_violations({"p": 1}, [("p", t[0], t[1], 1), ("p", t[1], t[2], 1)]) == []
    assert capacity_violations({"p": 1}, [("p", t[0], t[2], 1), ("p", t[1], t[2], 1)]) != []


# Two dips of about equal carbon, one 2 h ahead and one 26 h ahead (100 vs 99 g/kWh), 400 g/kWh elsewhere.
TWO_DIPS = [400.0] * 2 + [100.0] + [400.0] * 23 + [99.0] + [400.0] * 5


@pytest.mark.parametrize("solver", ["greedy", "milp"])
def test_where_gpus_are_scarce_the_nearer_of_two_equal_dips_is_taken(solver: str) -> None:
    """The lead price: two 1-GPU jobs on a 1-GPU pool, each could use either dip. On the forecast alone the first
    placed takes the farther dip (99 < 100); priced by lead (x1.1 a day out) the nearer dip is cheaper, so capacity
    a day out stays free for jobs not yet arrived; the reported intensity is the forecast's own."""
    fc = {"Z": forecast(TWO_DIPS)}
    jobs = [job("a", deadline=30), job("b", deadline=31)]
    priced = plan(jobs, {"p": 1}, forecasts=fc, solver=solver)  # type: ignore[arg-type]
    assert sorted(hours(priced, j.id)[0] for j in jobs) == [(2.0, 3.0), (26.0, 27.0)]
    by_id = priced.by_id()
    assert {by_id[j.id].expected_intensity for j in jobs} == {100.0, 99.0}
    pools = [PoolCapacity("p", 1, "Z")]
    plain = plan_fleet(jobs, pools, [], fc, T0, solver=solver, lead_price=0.0)  # type: ignore[arg-type]
    first = min(jobs, key=lambda j: (j.deadline, j.id))
    assert [s.start for s in priced.by_id()[first.id].segments] == [T0 + 2 * HOUR]
    assert [s.start for s in plain.by_id()[first.id].segments] == [T0 + 26 * HOUR]


def test_with_room_for_every_job_the_lead_price_changes_nothing() -> None:
    fc = {"Z": forecast(TWO_DIPS)}
    jobs = [job("a", deadline=30), job("b", deadline=31)]
    result = plan(jobs, {"p": 2}, forecasts=fc, solver="greedy")
    assert hours(result, "a") == hours(result, "b") == [(26.0, 27.0)]
