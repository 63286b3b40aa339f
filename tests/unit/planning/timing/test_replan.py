"""Re-planning the run time a started interruptible job still owes."""

from __future__ import annotations

from datetime import timedelta

import pytest

from llmasos.planning.timing.replan import remaining_job, replan_remaining, replan_within_segments
from tests.unit.planning.builders import T0, make_forecast, make_job

H = timedelta(hours=1)


def test_remaining_job_owes_the_rest_and_nothing_once_served() -> None:
    job = make_job("4h").deadline("12h").interruptible().job
    rest = remaining_job(job, 90 * timedelta(minutes=1))
    assert rest is not None
    assert rest.duration == 150 * timedelta(minutes=1)
    assert rest.deadline == job.deadline
    assert remaining_job(job, 4 * H) is None
    assert remaining_job(job, 5 * H) is None
    with pytest.raises(ValueError, match="negative"):
        remaining_job(job, -H)


def test_replan_puts_the_rest_in_the_cleanest_time_left_before_the_deadline() -> None:
    values = [300.0] * 12
    values[2], values[9] = 100.0, 50.0
    job = make_job("3h").deadline("12h").interruptible().job
    now = T0 + 2 * H  # two hours served already (00:00-02:00), one owed
    plan = replan_remaining(job, 2 * H, make_forecast(values).between(now, T0 + 12 * H), now)
    assert plan is not None
    assert plan.run_time == H
    assert plan.segments[0].start == T0 + 9 * H
    assert plan.end_at <= T0 + 12 * H
    assert replan_remaining(job, 3 * H, make_forecast(values), now) is None


def test_within_segments_a_plan_that_continues_the_open_run_may_have_one_segment_more() -> None:
    job = make_job("3h").deadline("12h").interruptible(max_segments=2).job
    now = T0 + 2 * H  # one hour served in the open run, two owed; one new run left
    values = [300.0] * 12
    values[2], values[8] = 50.0, 100.0  # now is cheap, and so is 08:00
    forecast = make_forecast(values).between(now, T0 + 12 * H)
    plan = replan_within_segments(job, H, forecast, now, segments_left=1, open_run=True)
    assert plan is not None
    assert [(s.start, s.end) for s in plan.segments] == [(now, now + H), (T0 + 8 * H, T0 + 9 * H)]


def test_within_segments_a_plan_that_holds_opens_only_the_runs_left() -> None:
    job = make_job("3h").deadline("12h").interruptible(max_segments=2).job
    now = T0 + 2 * H
    values = [300.0] * 12
    values[4], values[8] = 100.0, 100.0  # two dips later, none now: two separate segments would be cheapest
    forecast = make_forecast(values).between(now, T0 + 12 * H)
    unlimited = replan_remaining(job, H, forecast, now)
    assert unlimited is not None
    assert len(unlimited.segments) == 2, "the scenario: without the limit the rest would be split in two"
    for open_run in (True, False):
        plan = replan_within_segments(job, H, forecast, now, segments_left=1, open_run=open_run)
        assert plan is not None
        assert len(plan.segments) == 1, f"one new run left (open run: {open_run}): {plan.segments}"
        assert plan.run_time == 2 * H
        assert plan.start_at > now
    assert replan_within_segments(job, 3 * H, forecast, now, segments_left=1, open_run=True) is None
