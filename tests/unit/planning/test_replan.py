"""Re-planning the run time a started interruptible job still owes."""

from __future__ import annotations

from datetime import timedelta

import pytest

from llmasos.planning.replan import remaining_job, replan_remaining
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
