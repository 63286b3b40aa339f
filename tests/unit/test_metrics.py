"""The accounting part of the metrics facade: counters fed from status.carbon deltas, deferred-job gauges, sources."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from llmasos.api.energy_status import CarbonStatus
from llmasos.metrics import OperatorMetrics


def value(m: OperatorMetrics, name: str, **labels: str) -> float | None:
    v = m.registry.get_sample_value(name, labels)
    return None if v is None else float(v)


FIRST = CarbonStatus(energy_kwh=2.0, facility_energy_kwh=2.4, grams=240.0, average_intensity=100.0,
                     run_now_grams=300.0, power_cap_saved_kwh=0.5, pool_choice_saved_grams=20.0)


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
    second = replace(FIRST, energy_kwh=3.0, facility_energy_kwh=3.6, grams=360.0, run_now_grams=290.0)
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


def test_zone_series_exist_only_while_the_zone_is_in_use() -> None:
    now = [1_000_000.0]
    m = OperatorMetrics(clock=lambda: now[0], zone_ttl_s=3600)
    t = datetime(2024, 3, 6, 1, tzinfo=UTC)
    m.record_carbon_data("trace", "DE", updated_at=t, intensity=280.0, degraded=True)
    m.record_carbon_data("static", "SE", updated_at=t, intensity=None, degraded=False)
    assert value(m, "llmasos_carbon_intensity_grams_per_kwh", zone="SE", source="static") is None  # no value given
    assert value(m, "llmasos_carbon_source_degraded", zone="SE") == 0.0
    now[0] += 1800
    m.record_carbon_data("trace", "DE", updated_at=t, intensity=None, degraded=True)  # same source: value kept
    assert value(m, "llmasos_carbon_intensity_grams_per_kwh", zone="DE", source="trace") == 280.0
    now[0] += 1801  # SE unused for more than the TTL: gone, so no stale-data or degraded alert can fire for it
    assert value(m, "llmasos_carbon_data_timestamp_seconds", zone="SE", source="static") is None
    assert value(m, "llmasos_carbon_source_degraded", zone="SE") is None
    assert value(m, "llmasos_carbon_source_degraded", zone="DE") == 1.0
    assert m.current_zones() == ["DE"]
    # Every source failing still counts as "in use": the last data stays and keeps ageing.
    now[0] += 3000
    m.zone_in_use("DE")
    now[0] += 3000
    assert value(m, "llmasos_carbon_data_timestamp_seconds", zone="DE", source="trace") == t.timestamp()
    now[0] += 3601
    assert m.current_zones() == []
    assert value(m, "llmasos_carbon_data_timestamp_seconds", zone="DE", source="trace") is None
    m.zone_in_use("DE")  # touching a forgotten zone does not bring it back without data
    assert m.current_zones() == []


def test_metrics_and_health_listen_on_loopback_unless_told_otherwise() -> None:
    from llmasos.errors import ConfigError
    from llmasos.settings import Settings, load_settings

    assert Settings().bind_address == "127.0.0.1"
    assert load_settings(None, env={"LLMASOS_BIND_ADDRESS": "0.0.0.0"}).bind_address == "0.0.0.0"
    assert load_settings(None, env={"LLMASOS_BIND_ADDRESS": "::"}).bind_address == "::"
    with pytest.raises(ConfigError, match=r"LLMASOS_BIND_ADDRESS \(environment, Helm value operator\.bindAddress\)"):
        load_settings(None, env={"LLMASOS_BIND_ADDRESS": "every-interface"})
