"""The decision-rule experiment (bench/carbon_policy_bound.py) must replay the shipped rule faithfully before its
figures mean anything: with a perfect forecast every rule is optimal, with a noisy one none beats the optimum."""

from __future__ import annotations

import numpy as np
import pytest

from bench.carbon_policy_bound import Job, Replay, ce_contiguous, ce_quota, job_stream, window_sums
from llmasos.planning.timing.forecast_error import ForecastErrorModel

ZONE = "US-MIDA-PJM"


def test_window_sums_covers_every_window() -> None:
    assert window_sums(np.array([1.0, 2.0, 3.0, 4.0]), 2).tolist() == [3.0, 5.0, 7.0]


def test_ce_rules_on_exact_forecasts_pick_the_cleanest_hours() -> None:
    truth = np.array([[5.0, 1.0, 3.0, 2.0, 9.0]])

    def exact(_: int) -> np.ndarray:
        return truth

    assert ce_quota(exact, truth, 0, 5, 2).tolist() == [3.0]  # hours 1 and 3
    assert ce_contiguous(exact, truth, 0, 3, 2).tolist() == [4.0]  # hours 1-2
    assert ce_quota(exact, truth, 3, 5, 2).tolist() == [11.0]  # forced: both hours left


@pytest.mark.parametrize("rule", ["ce", "rollout", "know:6"])
def test_every_rule_is_optimal_on_a_perfect_forecast(rule: str) -> None:
    replay = Replay(ZONE, ForecastErrorModel(sigma_at_24h=0.0, seed=1))
    rng = np.random.default_rng(1)
    jobs = job_stream(len(replay.truth), 12, 1, ZONE)
    assert {job.interruptible for job in jobs} == {True, False}
    for job in jobs:
        assert replay.cost(rule, rng, 4, job) == pytest.approx(replay.optimum(job))


def test_a_noisy_forecast_costs_the_shipped_rule_something_and_knowing_the_truth_removes_it() -> None:
    replay = Replay(ZONE, ForecastErrorModel(sigma_at_24h=0.2, seed=1))
    rng = np.random.default_rng(1)
    jobs = [job for job in job_stream(len(replay.truth), 40, 1, ZONE) if job.slack >= 12]
    ce = [replay.cost("ce", rng, 4, job) for job in jobs]
    best = [replay.optimum(job) for job in jobs]
    assert all(c >= b - 1e-6 for c, b in zip(ce, best, strict=True))
    assert sum(ce) > sum(best) + 1.0
    known = [replay.cost("know:72", rng, 4, job) for job in jobs]
    assert known == pytest.approx(best)


def test_a_job_past_its_latest_start_runs_at_once() -> None:
    replay = Replay(ZONE, ForecastErrorModel(sigma_at_24h=0.1, seed=1))
    job = Job(submitted=100, duration=3, slack=0, interruptible=False)
    assert replay.cost("ce", np.random.default_rng(1), 4, job) == pytest.approx(float(replay.truth[100:103].sum()))
