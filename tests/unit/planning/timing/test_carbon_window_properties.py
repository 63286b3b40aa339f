"""Properties of plan_start over random forecasts and jobs (hypothesis).

Emissions are recomputed here by a naive integrator straight from the forecast points, independent of the
planner's timeline, so a bug in the planner's arithmetic cannot hide behind itself.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmasos.planning.timing.carbon_window import CarbonJob, Plan, Segment, plan_start
from llmasos.planning.timing.forecast import Forecast
from tests.unit.planning.builders import T0

STEPS = [timedelta(minutes=5), timedelta(minutes=15), timedelta(minutes=60)]


def naive_emissions(forecast: Forecast, segments: tuple[Segment, ...]) -> float:
    """Sum over points of overlap seconds x intensity (the forecast must cover every segment)."""
    total = 0.0
    covered = 0.0
    for seg in segments:
        for p in forecast.points:
            lo = max(seg.start, p.start)
            hi = min(seg.end, p.start + forecast.step)
            if hi > lo:
                total += (hi - lo).total_seconds() * p.intensity
                covered += (hi - lo).total_seconds()
    assert abs(covered - sum(s.duration.total_seconds() for s in segments)) < 1e-3, "forecast must cover the plan"
    return total


@st.composite
def scenarios(draw: st.DrawFn, full_cover: bool = True) -> tuple[CarbonJob, Forecast, datetime]:
    step = draw(st.sampled_from(STEPS))
    step_min = int(step.total_seconds() // 60)
    duration = timedelta(minutes=draw(st.integers(1, 12 * 60)))
    slack = timedelta(minutes=draw(st.integers(0, 24 * 60)))
    now = T0 + timedelta(seconds=draw(st.integers(0, int(step.total_seconds()) - 1)))
    margin = timedelta(minutes=draw(st.sampled_from([0, 0, 15, 30])))
    deadline = now + duration + slack + margin
    needed = int((deadline - T0) / step) + 1
    n = needed if full_cover else draw(st.integers(1, needed))
    values = draw(
        st.lists(
            st.one_of(st.integers(0, 900).map(float), st.floats(0, 900, allow_nan=False)),
            min_size=n,
            max_size=n,
        )
    )
    pairs = [(T0 + i * step, v) for i, v in enumerate(values)]
    if not full_cover:
        # Random gaps too: drop some points (keep at least one).
        keep = draw(st.lists(st.booleans(), min_size=n, max_size=n))
        pairs = [p for p, k in zip(pairs, keep, strict=True) if k] or pairs[:1]
    forecast = Forecast.from_pairs(pairs, step)
    interruptible = draw(st.booleans())
    job = CarbonJob(
        duration=duration,
        earliest_start=T0,
        deadline=deadline,
        interruptible=interruptible,
        safety_margin=margin,
        min_segment=timedelta(minutes=draw(st.sampled_from([0, step_min, 60]))),
        max_segments=draw(st.sampled_from([None, 1, 2, 4])),
    )
    return job, forecast, now


def check_shape(job: CarbonJob, plan: Plan, now: datetime) -> None:
    assert job.deadline is not None
    assert plan.feasible
    assert plan.start_at >= now
    assert plan.end_at <= job.deadline - job.safety_margin
    assert plan.run_time == job.duration
    for a, b in zip(plan.segments, plan.segments[1:], strict=False):
        assert a.end < b.start, "segments must be sorted, disjoint and not touching"
    if not job.interruptible:
        assert len(plan.segments) == 1
    if job.max_segments is not None:
        assert len(plan.segments) <= job.max_segments


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_deadline_plans_are_in_time_exact_and_never_worse_than_now(case: tuple[CarbonJob, Forecast, datetime]) -> None:
    job, forecast, now = case
    plan = plan_start(job, forecast, now)
    check_shape(job, plan, now)
    planned = naive_emissions(forecast, plan.segments)
    run_now = naive_emissions(forecast, (Segment(now, now + job.duration),))
    assert planned <= run_now * (1 + 1e-9) + 1e-6
    assert plan.expected_intensity is not None
    assert plan.expected_intensity * job.duration.total_seconds() == pytest.approx(planned, rel=1e-6, abs=1e-6)


@settings(max_examples=200, deadline=None)
@given(scenarios())
def test_contiguous_plan_is_the_best_window_on_the_step_grid(case: tuple[CarbonJob, Forecast, datetime]) -> None:
    job, forecast, now = case
    if job.interruptible:
        return
    plan = plan_start(job, forecast, now)
    planned = naive_emissions(forecast, plan.segments)
    # Brute force over every start on a 5-minute grid plus "now" and the latest start.
    assert job.deadline is not None
    latest = job.deadline - job.safety_margin - job.duration
    candidates = [now, latest]
    t = T0
    while t <= latest:
        if t >= now:
            candidates.append(t)
        t += timedelta(minutes=5)
    best = min(naive_emissions(forecast, (Segment(c, c + job.duration),)) for c in candidates)
    assert planned <= best * (1 + 1e-9) + 1e-6


@settings(max_examples=200, deadline=None)
@given(scenarios(full_cover=False))
def test_gaps_and_short_horizons_keep_the_guarantees(case: tuple[CarbonJob, Forecast, datetime]) -> None:
    job, forecast, now = case
    plan = plan_start(job, forecast, now)
    check_shape(job, plan, now)
    assert plan.expected_intensity is not None
    assert plan.run_now_intensity is not None
    assert plan.expected_intensity <= plan.run_now_intensity * (1 + 1e-9) + 1e-9
    assert 0.0 <= plan.estimated_fraction <= 1.0 + 1e-9


@settings(max_examples=150, deadline=None)
@given(scenarios(), st.integers(0, 900))
def test_threshold_plans_are_in_time_and_exact(case: tuple[CarbonJob, Forecast, datetime], limit: int) -> None:
    job, forecast, now = case
    job = CarbonJob(
        duration=job.duration,
        earliest_start=job.earliest_start,
        deadline=job.deadline,
        interruptible=job.interruptible,
        safety_margin=job.safety_margin,
        policy="threshold",
        max_intensity=float(limit),
    )
    plan = plan_start(job, forecast, now)
    check_shape(job, plan, now)
    if not job.interruptible and plan.start_at < plan.latest_start:
        value = forecast.value_at(plan.start_at)
        assert value is not None
        assert value <= limit + 1e-6
