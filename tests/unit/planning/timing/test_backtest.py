"""Backtesting: the strategies on small series where the right answers are known."""

from __future__ import annotations

from datetime import timedelta
from random import Random

import pytest

from llmasos.planning.timing import backtest
from llmasos.planning.timing.carbon_window import Segment
from llmasos.planning.timing.forecast import Forecast
from llmasos.planning.timing.forecast_error import ForecastErrorModel
from tests.unit.planning.builders import T0, make_forecast

H = timedelta(hours=1)
# Two days: dirty except 03:00-05:00 on day one and 30:00-33:00 (day two, cleaner).
VALUES = [300.0] * 48
VALUES[3:5] = [100.0, 100.0]
VALUES[30:33] = [50.0, 50.0, 50.0]
TRUTH = make_forecast(VALUES)


def horizon_limited(hours: int, sigma: float = 0.0) -> backtest.ForecastAt:
    model = ForecastErrorModel(sigma, seed=3)

    def forecast_at(now):  # type: ignore[no-untyped-def]
        issued = T0 + ((now - T0) // H) * H
        return model.apply(TRUTH.between(issued, issued + hours * H), issued)

    return forecast_at


def job(duration: str = "2h", slack_h: int = 40, interruptible: bool = False) -> backtest.BacktestJob:
    d = {"2h": 2 * H, "3h": 3 * H}[duration]
    return backtest.BacktestJob("j", T0, d, T0 + d + slack_h * H, interruptible)


def test_run_now_and_true_intensity() -> None:
    outcome = backtest.run_now(job(), TRUTH)
    assert outcome.intensity == 300.0
    assert not outcome.missed_deadline
    assert backtest.true_intensity(TRUTH, [Segment(T0 + 3 * H, T0 + 5 * H)]) == 100.0


def test_optimum_knows_day_two() -> None:
    outcome = backtest.optimum(job(), TRUTH)
    assert outcome.segments[0].start == T0 + 30 * H
    assert outcome.intensity == 50.0


def test_planner_with_a_full_horizon_matches_the_optimum() -> None:
    outcome = backtest.planner(job(), TRUTH, horizon_limited(48))
    assert outcome.segments == backtest.optimum(job(), TRUTH).segments


def test_planner_with_a_short_horizon_waits_for_the_clean_day() -> None:
    # With 24 h of forecast it sees 100 at 03:00 but estimates day two from day one (100 x 1.05): it takes 03:00.
    outcome = backtest.planner(job(), TRUTH, horizon_limited(24))
    assert outcome.segments[0].start == T0 + 3 * H
    assert not outcome.missed_deadline


@pytest.mark.parametrize("replan_after_start", [False, True])
@pytest.mark.parametrize("slack_h", [0, 5, 40])
def test_interruptible_planner_runs_exactly_its_duration_in_time(replan_after_start: bool, slack_h: int) -> None:
    j = job("3h", slack_h=slack_h, interruptible=True)
    outcome = backtest.planner(j, TRUTH, horizon_limited(24, sigma=0.2), replan_after_start=replan_after_start)
    assert outcome.run_time == 3 * H
    assert outcome.segments[-1].end <= j.deadline


def test_baseline_only_uses_windows_inside_the_forecast() -> None:
    j = job()
    assert backtest.rolling_window_baseline(j, TRUTH, horizon_limited(24)(T0)).segments[0].start == T0 + 3 * H
    assert backtest.rolling_window_baseline(j, TRUTH, horizon_limited(48)(T0)).segments[0].start == T0 + 30 * H
    # No window fits inside a 1 h forecast: run now.
    assert backtest.rolling_window_baseline(j, TRUTH, horizon_limited(1)(T0)).segments[0].start == T0


def test_summarize() -> None:
    j = job()
    outcomes = [
        backtest.run_now(j, TRUTH),
        backtest.optimum(j, TRUTH),
        backtest.planner(j, TRUTH, horizon_limited(24)),
    ]
    summary = backtest.summarize(outcomes)
    assert summary.jobs == 1
    assert summary.savings_percent["optimum"] == pytest.approx(100 * 250 / 300)
    assert summary.savings_percent["planner"] == pytest.approx(100 * 200 / 300)
    assert summary.capture_percent == pytest.approx(80.0)
    assert summary.missed_deadlines == {"run_now": 0, "optimum": 0, "planner": 0}
    with pytest.raises(ValueError, match="run_now"):
        backtest.summarize(outcomes[1:])


def test_gap_in_the_record_carries_the_last_value() -> None:
    series = Forecast.from_pairs([(T0, 10.0), (T0 + 2 * H, 30.0)], H)
    assert backtest.true_intensity(series, [Segment(T0, T0 + 3 * H)]) == pytest.approx((10 + 10 + 30) / 3)


# A misleading first forecast: 10:00 looks as clean as now (it is not), 20:00 looks dirty (it is the cleanest).
MISLEAD_TRUTH_VALUES = [300.0] * 48
MISLEAD_TRUTH_VALUES[0] = 100.0
MISLEAD_TRUTH_VALUES[20] = 50.0
MISLEAD_TRUTH = make_forecast(MISLEAD_TRUTH_VALUES)
FIRST_GUESS = list(MISLEAD_TRUTH_VALUES)
FIRST_GUESS[10], FIRST_GUESS[20] = 100.0, 200.0


def misleading_then_true(now):  # type: ignore[no-untyped-def]
    issued = T0 + ((now - T0) // H) * H
    values = FIRST_GUESS if issued == T0 else MISLEAD_TRUTH_VALUES
    return make_forecast(values, issued_at=issued).between(issued, T0 + 48 * H)


def test_started_interruptible_job_is_re_planned_like_the_operator() -> None:
    # Started at 00:00 on the first forecast (second hour at 10:00); the 01:00 forecast moves that hour to 20:00.
    j = backtest.BacktestJob("j", T0, 2 * H, T0 + 40 * H, interruptible=True)
    followed = backtest.planner(j, MISLEAD_TRUTH, misleading_then_true, replan_after_start=False)
    assert followed.segments == (Segment(T0, T0 + H), Segment(T0 + 10 * H, T0 + 11 * H))
    assert followed.intensity == 200.0
    replanned = backtest.planner(j, MISLEAD_TRUTH, misleading_then_true)  # the default, as the operator does
    assert replanned.segments == (Segment(T0, T0 + H), Segment(T0 + 20 * H, T0 + 21 * H))
    assert replanned.intensity == 75.0
    assert replanned.run_time == followed.run_time == 2 * H


def test_planner_re_plans_when_a_forecast_is_issued() -> None:
    seen: list[object] = []

    def forecast_at(now):  # type: ignore[no-untyped-def]
        seen.append(now)
        return horizon_limited(48)(now)

    submitted = T0 + 25 * timedelta(minutes=1)
    j = backtest.BacktestJob("j", submitted, 2 * H, submitted + 40 * H)
    backtest.planner(j, TRUTH, forecast_at)
    assert seen[:3] == [submitted, T0 + H, T0 + 2 * H]  # on the hour, as forecasts are issued, not submission + k h


def test_replanned_interruptible_jobs_keep_max_segments() -> None:
    """Each re-plan after the start gets the segments left, as the operator does (with maxSegments on every re-plan
    36 of these 60 jobs ran in more than 2 segments)."""
    rng = Random(2)
    for i in range(60):
        truth = make_forecast([float(rng.randint(20, 800)) for _ in range(48)])
        model = ForecastErrorModel(0.3, seed=i)

        def forecast_at(now, truth=truth, model=model):  # type: ignore[no-untyped-def]
            issued = T0 + ((now - T0) // H) * H
            return model.apply(truth.between(issued, issued + 24 * H), issued)

        d = rng.randint(2, 8) * H
        j = backtest.BacktestJob("j", T0, d, T0 + d + rng.randint(2, 30) * H, True)
        outcome = backtest.planner(j, truth, forecast_at, max_segments=2)
        assert outcome.run_time == d
        assert len(outcome.segments) <= 2, outcome.segments
        assert not outcome.missed_deadline
