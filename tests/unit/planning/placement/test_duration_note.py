"""A plan whose run time is not expectedDuration as written says why (#20 item 5: 10m planned as 4m or 33m)."""

from __future__ import annotations

from llmasos.planning.placement.pool_choice import PoolOption, choose_pool
from tests.unit.planning.builders import T0, make_forecast, make_job

A100 = PoolOption("a100", "nvidia-a100-80gb", 8, "Z")
H100 = PoolOption("h100", "nvidia-h100-80gb", 8, "Z")


def test_a_rescaled_duration_is_stated_in_the_plan() -> None:
    job = make_job("10h").deadline("40h").build()
    choice = choose_pool(job, 8, [H100], {"Z": make_forecast([100.0] * 48, zone="Z")}, T0)
    assert choice.plan.duration_note == (
        "expectedDuration 10h00m is read as run time on the reference GPU (nvidia-a100-80gb) and rescaled to 4h00m "
        "on nvidia-h100-80gb by their relative throughput (docs/carbon.md)")
    assert choice.plan.to_dict()["durationNote"] == choice.plan.duration_note


def test_on_the_reference_gpu_nothing_is_said() -> None:
    job = make_job("10h").deadline("40h").build()
    choice = choose_pool(job, 8, [A100], {"Z": make_forecast([100.0] * 48, zone="Z")}, T0)
    assert choice.plan.duration_note == ""
    assert "durationNote" not in choice.plan.to_dict()
