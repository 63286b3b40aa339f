"""The accounting part of the metrics facade: counters fed from status.carbon deltas, deferred-job gauges, sources."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from llmasos.metrics import OperatorMetrics


def value(m: OperatorMetrics, name: str, **labels: str) -> float | None:
    v = m.registry.get_sample_value(name, labels)
    return None if v is None else float(v)


FIRST = {"energyKWh": 2.0, "facilityEnergyKWh": 2.4, "gCO2e": 240.0, "averageIntensity": 100.0,
         "runNowGCO2e": 300.0, "powerCapSavedKWh": 0.5, "poolChoiceSavedGCO2e": 20.0}


def test_carbon_counters_add_deltas_between_status_objects() -> None:
    m = OperatorMetrics()
    m.record_carbon("ml", None, FIRST)
    assert value(m, "llmasos_energy_joules_total", namespace="ml") == pytest.approx(2.0 * 3.6e6)
    assert value(m, "llmasos_facility_energy_joules_total", namespace="ml") == pytest.approx(2.4 * 3.6e6)
    assert value(m, "llmasos_emissions_grams_total", namespace="ml") == pytest.approx(240.0)
    cf = "llmasos_counterfactual_emissions_grams_total"
    assert value(m, cf, namespace="ml", scenario="run_now") == pytest.approx(300.0)
    assert value(m, cf, namespace="ml", scenario="first_pool") == pytest.approx(260.0)
    # uncapped: 240 + 0.5 kWh x PUE 1.2 x 100 g/kWh = 300
    assert value(m, cf, namespace="ml", scenario="uncapped") == pytest.approx(300.0)
    second = {**FIRST, "energyKWh": 3.0, "facilityEnergyKWh": 3.6, "gCO2e": 360.0, "runNowGCO2e": 290.0}
    m.record_carbon("ml", FIRST, second)
    assert value(m, "llmasos_emissions_grams_total", namespace="ml") == pytest.approx(360.0)
    # run-now went down (revised history): a counter never goes down, the decrease is dropped
    assert value(m, cf, namespace="ml", scenario="run_now") == pytest.approx(300.0)
    m.record_carbon("ml", second, second)  # an operator restart re-reading the same status adds nothing
    assert value(m, "llmasos_energy_joules_total", namespace="ml") == pytest.approx(3.0 * 3.6e6)


def test_deferred_job_series_exist_only_while_deferred() -> None:
    m = OperatorMetrics()
    planned, latest = datetime(2024, 3, 6, 2, tzinfo=UTC), datetime(2024, 3, 6, 5, tzinfo=UTC)
    m.record_deferred("ml", "j1", planned_start=planned, latest_start=latest, deadline=None)
    name = "llmasos_llmjob_deferred_timestamp_seconds"
    assert value(m, name, namespace="ml", llmjob="j1", bound="latest_start") == latest.timestamp()
    assert value(m, name, namespace="ml", llmjob="j1", bound="deadline") is None
    m.clear_deferred("ml", "j1")
    m.clear_deferred("ml", "j1")  # twice is fine
    assert value(m, name, namespace="ml", llmjob="j1", bound="planned_start") is None


def test_histograms_and_carbon_source_health() -> None:
    m = OperatorMetrics()
    m.record_deferral(7200)
    m.record_intensities(planned=120.0, achieved=150.0, run_now=None)
    assert value(m, "llmasos_llmjob_deferral_seconds_sum") == 7200
    assert value(m, "llmasos_llmjob_intensity_grams_per_kwh_sum", kind="achieved") == 150.0
    # Known kinds exist from the start at 0 (so rate() sees their first increment); None was not recorded.
    assert value(m, "llmasos_llmjob_intensity_grams_per_kwh_count", kind="run_now") == 0.0
    t = datetime(2024, 3, 6, 1, tzinfo=UTC)
    m.record_carbon_data("electricitymaps", "DE", updated_at=t, intensity=300.0, degraded=False)
    m.record_carbon_error("electricitymaps")
    m.record_carbon_data("trace", "DE", updated_at=t, intensity=280.0, degraded=True)
    # the zone moved to the fallback: the old source's series are gone, not left frozen
    assert value(m, "llmasos_carbon_intensity_grams_per_kwh", zone="DE", source="electricitymaps") is None
    assert value(m, "llmasos_carbon_intensity_grams_per_kwh", zone="DE", source="trace") == 280.0
    assert value(m, "llmasos_carbon_data_timestamp_seconds", zone="DE", source="trace") == t.timestamp()
    assert value(m, "llmasos_carbon_source_degraded", zone="DE") == 1.0
    assert value(m, "llmasos_carbon_source_errors_total", source="electricitymaps") == 1.0
