"""The seeded forecast-error model: deterministic, zero at lead 0, spreading with lead time."""

from __future__ import annotations

import statistics
from datetime import timedelta

from llmasos.planning.timing.forecast_error import ForecastErrorModel
from tests.unit.planning.builders import T0, make_forecast


def test_same_seed_same_forecast_other_seed_other_forecast() -> None:
    truth = make_forecast([200.0] * 48)
    a = ForecastErrorModel(0.1, seed=1).apply(truth, T0)
    b = ForecastErrorModel(0.1, seed=1).apply(truth, T0)
    c = ForecastErrorModel(0.1, seed=2).apply(truth, T0)
    assert a == b
    assert a != c
    assert a.issued_at == T0


def test_zero_sigma_is_the_truth() -> None:
    truth = make_forecast([200.0, 100.0])
    assert ForecastErrorModel(0.0).apply(truth, T0).points == truth.points


def test_error_grows_with_lead_time() -> None:
    truth = make_forecast([200.0] * 48)
    near, far = [], []
    for seed in range(200):
        f = ForecastErrorModel(0.1, seed=seed).apply(truth, T0)
        assert f.points[0].intensity == 200.0  # the step in progress is known
        near.append(f.points[1].intensity)
        far.append(f.points[24].intensity)
    assert statistics.pstdev(near) < statistics.pstdev(far)
    assert 0.05 * 200 < statistics.pstdev(far) < 0.15 * 200
    assert abs(statistics.mean(far) - 200) < 0.05 * 200


def test_sigma_curve() -> None:
    model = ForecastErrorModel(0.2)
    assert model.sigma(timedelta(0)) == 0.0
    assert model.sigma(timedelta(hours=24)) == 0.2
    assert abs(model.sigma(timedelta(hours=6)) - 0.1) < 1e-12


def test_day_ahead_sigma_for_every_shipped_zone() -> None:
    from llmasos.carbon.trace import shipped_trace_files
    from llmasos.planning.timing.forecast_error import DAY_AHEAD_SIGMA

    assert set(DAY_AHEAD_SIGMA) == set(shipped_trace_files())
    assert all(0.03 < s < 0.25 for s in DAY_AHEAD_SIGMA.values())
