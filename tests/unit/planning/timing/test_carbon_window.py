"""Worked examples of plan_start: each policy, gaps, horizons, margins and infeasible deadlines."""

from __future__ import annotations

from datetime import timedelta

import pytest

from llmasos.planning.timing.carbon_window import CarbonJob, latest_start, plan_start, window_bounds
from tests.unit.planning.builders import T0, make_forecast, make_job

H = timedelta(hours=1)
#        0    1    2    3    4   5    6    7    8    9   10  11
DAY = [300, 280, 250, 100, 90, 200, 310, 320, 100, 50, 60, 400]


def test_deadline_picks_cleanest_contiguous_window() -> None:
    plan = plan_start(make_job("2h").deadline("12h").build(), make_forecast(DAY), T0)
    assert [(s.start, s.end) for s in plan.segments] == [(T0 + 9 * H, T0 + 11 * H)]
    assert plan.expected_intensity == pytest.approx(55.0)
    assert plan.run_now_intensity == pytest.approx(290.0)
    assert plan.expected_savings_percent == pytest.approx(100 * (290 - 55) / 290)


def test_deadline_is_respected_even_when_later_is_cleaner() -> None:
    # Cleanest hours 9-10 end at 11:00, but the job must end by 10:00.
    plan = plan_start(make_job("2h").deadline("10h").build(), make_forecast(DAY), T0)
    assert plan.end_at <= T0 + 10 * H
    assert plan.start_at == T0 + 8 * H  # 100 + 50 beats 100 + 90


def test_safety_margin_moves_the_effective_deadline() -> None:
    job = make_job("2h").deadline("11h30m").margin("30m").build()
    plan = plan_start(job, make_forecast(DAY), T0)
    assert plan.end_at <= T0 + 11 * H
    assert plan.latest_start == T0 + 9 * H


def test_ties_prefer_the_earliest_start() -> None:
    plan = plan_start(make_job("1h").deadline("6h").build(), make_forecast([100] * 6), T0)
    assert plan.start_at == T0


def test_immediate_policy_starts_now() -> None:
    now = T0 + timedelta(minutes=7)
    plan = plan_start(make_job("2h").deadline("12h").policy("immediate").build(), make_forecast(DAY), now)
    assert plan.start_at == now
    assert plan.end_at == now + 2 * H
    assert plan.expected_savings_percent == pytest.approx(0.0)


def test_now_inside_a_step_uses_fractional_windows() -> None:
    # At 00:30, 1h windows: [00:30, 01:30) costs 0.5*300+0.5*10; a window can also start mid-step.
    forecast = make_forecast([300, 10, 300, 300])
    plan = plan_start(make_job("1h").deadline("4h").build(), forecast, T0 + 30 * timedelta(minutes=1))
    assert plan.start_at == T0 + H
    assert plan.expected_intensity == pytest.approx(10.0)


def test_window_can_end_on_a_step_boundary_between_starts() -> None:
    # A 90-minute job on 1h steps: the best window starts mid-step so that it ends on a boundary.
    forecast = make_forecast([500, 500, 150, 0, 500, 500])
    plan = plan_start(make_job("90m").deadline("6h").build(), forecast, T0)
    assert plan.start_at == T0 + timedelta(hours=2, minutes=30)
    assert plan.expected_intensity == pytest.approx((0.5 * 150 + 1 * 0) / 1.5)


def test_infeasible_deadline_starts_now_and_says_so() -> None:
    job = make_job("5h").deadline("3h").build()
    plan = plan_start(job, make_forecast(DAY), T0)
    assert not plan.feasible
    assert plan.start_at == T0
    assert "cannot finish" in plan.reason


def test_empty_forecast_starts_now() -> None:
    from llmasos.planning.timing.forecast import Forecast

    plan = plan_start(make_job("1h").deadline("6h").build(), Forecast(()), T0)
    assert plan.start_at == T0
    assert plan.expected_intensity is None
    assert plan.expected_savings_percent is None


def test_interruptible_takes_the_cleanest_hours() -> None:
    plan = plan_start(make_job("3h").deadline("12h").interruptible().build(), make_forecast(DAY), T0)
    assert [(s.start, s.end) for s in plan.segments] == [(T0 + 4 * H, T0 + 5 * H), (T0 + 9 * H, T0 + 11 * H)]
    assert plan.run_time == 3 * H
    assert plan.expected_intensity == pytest.approx((90 + 50 + 60) / 3)


def test_interruptible_with_one_segment_allowed_is_contiguous() -> None:
    job = make_job("3h").deadline("12h").interruptible(max_segments=1).build()
    plan = plan_start(job, make_forecast(DAY), T0)
    assert len(plan.segments) == 1
    assert plan.start_at == T0 + 8 * H  # 100 + 50 + 60


def test_min_segment_merges_short_segments() -> None:
    job = make_job("3h").deadline("12h").interruptible(min_segment="2h").build()
    plan = plan_start(job, make_forecast(DAY), T0)
    assert all(s.duration >= 2 * H for s in plan.segments) or len(plan.segments) == 1
    assert plan.run_time == 3 * H


def test_threshold_starts_at_first_clean_step() -> None:
    job = make_job("2h").deadline("12h").policy("threshold", max_intensity=120).build()
    plan = plan_start(job, make_forecast(DAY), T0)
    assert plan.start_at == T0 + 3 * H


def test_threshold_falls_back_to_latest_start() -> None:
    job = make_job("2h").deadline("12h").policy("threshold", max_intensity=10).build()
    plan = plan_start(job, make_forecast(DAY), T0)
    assert plan.start_at == T0 + 10 * H == plan.latest_start


def test_threshold_interruptible_runs_clean_then_forced() -> None:
    job = make_job("4h").deadline("12h").policy("threshold", max_intensity=95).interruptible().build()
    plan = plan_start(job, make_forecast(DAY), T0)
    # 04-05 (90) and 09-11 (50, 60) are clean: 3h; the last hour must run 11-12 at the latest.
    assert [(s.start, s.end) for s in plan.segments] == [(T0 + 4 * H, T0 + 5 * H), (T0 + 9 * H, T0 + 12 * H)]


def test_threshold_ignores_guessed_values_beyond_the_horizon() -> None:
    # Hours 0-1 are in the past; everything ahead is guessed (mean x 1.05 = 68.25) and must not trigger a start.
    job = make_job("1h").deadline("30h").policy("threshold", max_intensity=70).build()
    plan = plan_start(job, make_forecast([100, 30]), T0 + 2 * H)
    assert plan.start_at == plan.latest_start


def test_gap_is_not_assumed_clean() -> None:
    # Hours 2-3 are missing; hour 4 (=80) is known and beats the guess for the gap.
    forecast = make_forecast([300, 300, None, None, 80, 300])
    plan = plan_start(make_job("1h").deadline("6h").build(), forecast, T0)
    assert plan.start_at == T0 + 4 * H
    assert plan.estimated_fraction == 0.0


def test_beyond_horizon_uses_same_hour_yesterday() -> None:
    # 24 known hours with a clean 03:00; the deadline allows tomorrow, whose 03:00 is guessed (x1.05) and loses.
    values = [300.0] * 24
    values[3] = 100.0
    plan = plan_start(make_job("1h").deadline("40h").build(), make_forecast(values), T0 + 4 * H)
    assert plan.start_at == T0 + 27 * H
    assert plan.estimated_fraction == pytest.approx(1.0)
    assert plan.expected_intensity == pytest.approx(105.0)
    assert "beyond the forecast" in plan.reason


def test_five_minute_steps() -> None:
    values = [200.0] * 36
    values[20:26] = [20.0] * 6  # 01:40 .. 02:10
    plan = plan_start(make_job("30m").deadline("3h").build(), make_forecast(values, step="5m"), T0)
    assert plan.start_at == T0 + timedelta(minutes=100)


def test_window_bounds_and_latest_start() -> None:
    job = make_job("2h").deadline("10h").margin("1h").build()
    earliest, latest, latest_end = window_bounds(job, T0 + H)
    assert (earliest, latest, latest_end) == (T0 + H, T0 + 7 * H, T0 + 9 * H)
    assert latest_start(job, T0 + 8 * H) == T0 + 8 * H  # already too late: start now


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"policy": "deadline"}, "needs deadline or maxDelay"),
        ({"policy": "threshold", "deadline": T0 + 9 * H}, "maxIntensity"),
        ({"policy": "sometime", "deadline": T0 + 9 * H}, "unknown policy"),
    ],
)
def test_job_validation(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CarbonJob(duration=H, earliest_start=T0, **kwargs)  # type: ignore[arg-type]


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        CarbonJob(duration=H, earliest_start=T0.replace(tzinfo=None), policy="immediate")


def test_plan_helpers() -> None:
    plan = plan_start(make_job("3h").deadline("12h").interruptible().build(), make_forecast(DAY), T0)
    assert plan.segment_at(T0 + 4 * H + timedelta(minutes=30)) == plan.segments[0]
    assert plan.segment_at(T0 + 6 * H) is None
    assert plan.next_boundary(T0 + 6 * H) == T0 + 9 * H
    assert plan.next_boundary(T0 + 12 * H) is None
    data = plan.to_dict()
    assert data["startAt"] == "2024-03-06T04:00:00Z"
    assert data["segments"][1] == {"start": "2024-03-06T09:00:00Z", "end": "2024-03-06T11:00:00Z"}
