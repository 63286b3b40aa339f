"""Node-pool choice: cleaner zones, faster GPUs and frugal GPUs trade off in grams; deadlines and capacity rule out."""

from __future__ import annotations

from datetime import timedelta

import pytest

from llmasos.errors import PlacementError
from llmasos.gpus.products import DEFAULT_CATALOG, build_catalog
from llmasos.planning.placement.pool_choice import PoolOption, choose_pool, run_time_on
from tests.unit.planning.builders import T0, make_forecast, make_job

A100 = PoolOption("a100", "nvidia-a100-80gb", 16, "DIRTY")
H100 = PoolOption("h100", "nvidia-h100-80gb", 16, "CLEAN")
L4 = PoolOption("l4", "nvidia-l4", 12, "CLEAN")


def forecasts(dirty: float = 400.0, clean: float = 40.0) -> dict[str, object]:
    return {
        "DIRTY": make_forecast([dirty] * 48, zone="DIRTY"),
        "CLEAN": make_forecast([clean] * 48, zone="CLEAN"),
    }


def test_catalog_has_the_required_products() -> None:
    for product in ("nvidia-a100-80gb", "nvidia-h100-80gb", "nvidia-l4"):
        assert product in DEFAULT_CATALOG


def test_run_time_scales_with_throughput() -> None:
    assert run_time_on(timedelta(hours=10), "nvidia-h100-80gb", DEFAULT_CATALOG) == timedelta(hours=4)
    with pytest.raises(KeyError, match="not in the catalog"):
        run_time_on(timedelta(hours=1), "nvidia-b200", DEFAULT_CATALOG)


def test_clean_zone_wins() -> None:
    job = make_job("10h").deadline("40h").build()
    choice = choose_pool(job, 8, [A100, H100], forecasts(), T0)  # type: ignore[arg-type]
    assert choice.pool.name == "h100"
    h100 = next(e for e in choice.estimates if e.pool.name == "h100")
    # 8 GPUs x 700 W x 4 h = 22.4 kWh at 40 g/kWh.
    assert h100.energy_kwh == pytest.approx(22.4)
    assert h100.expected_grams == pytest.approx(22.4 * 40)


def test_same_zone_prefers_the_lower_energy_gpu() -> None:
    same = {"CLEAN": make_forecast([100] * 72, zone="CLEAN")}
    job = make_job("6h").deadline("70h").build()
    # L4: 0.3x throughput at 72 W -> 20 h x 72 W = 1.44 kWh/GPU; H100: 2.4 h x 700 W = 1.68 kWh/GPU.
    choice = choose_pool(job, 4, [H100, L4], same, T0)
    assert choice.pool.name == "l4"


def test_deadline_rules_out_slow_gpus() -> None:
    same = {"CLEAN": make_forecast([100] * 72, zone="CLEAN")}
    job = make_job("6h").deadline("12h").build()  # L4 would need 20 h
    choice = choose_pool(job, 4, [H100, L4], same, T0)
    assert choice.pool.name == "h100"
    l4 = next(e for e in choice.estimates if e.pool.name == "l4")
    assert not l4.eligible
    assert "deadline" in l4.reason


def test_capacity_rules_out_small_pools() -> None:
    job = make_job("2h").deadline("20h").build()
    choice = choose_pool(job, 16, [A100, L4], forecasts(), T0)  # type: ignore[arg-type]
    assert choice.pool.name == "a100"


def test_no_feasible_pool_raises_with_reasons() -> None:
    job = make_job("2h").deadline("20h").build()
    with pytest.raises(PlacementError, match="l4: 12 of 32 GPUs free") as info:
        choose_pool(job, 32, [A100, L4], forecasts(), T0)  # type: ignore[arg-type]
    assert info.value.reason == "NoFeasiblePool"


def test_without_any_data_choose_by_energy() -> None:
    job = make_job("6h").deadline("70h").build()
    choice = choose_pool(job, 4, [H100, L4], {}, T0)
    assert choice.pool.name == "l4"
    assert choice.plan.start_at == T0


def test_catalog_overrides() -> None:
    catalog = build_catalog(
        {"NVIDIA-L4": {"powerWatts": 200}, "nvidia-b200": {"relativeThroughput": 5, "powerWatts": 1000}}
    )
    assert catalog["nvidia-l4"].power_watts == 200
    assert catalog["nvidia-l4"].relative_throughput == DEFAULT_CATALOG["nvidia-l4"].relative_throughput
    assert catalog["nvidia-b200"].relative_throughput == 5
    with pytest.raises(ValueError, match="needs relativeThroughput"):
        build_catalog({"nvidia-x": {"powerWatts": 1}})
