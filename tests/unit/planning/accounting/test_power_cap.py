"""Power-cap savings of limit/fraction policies from the measured curves, and tokens in status.carbon.

Hand-computed cases on small piecewise-linear curves; one check on the shipped A100 curves against the table
values in operator/llmasos/data/gpu-power (interpolated by hand).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from typing import Any

import pytest

from llmasos.api.energy_status import PodPower, PowerStatus
from llmasos.handlers.account import gpu_curves
from llmasos.planning.accounting.carbon_status import CarbonInputs, build_carbon_status, job_tokens
from llmasos.planning.accounting.integral import (
    JOULES_PER_KWH,
    AccountingError,
    CapRecord,
    EnergyInterval,
    power_cap_saved_kwh,
)
from llmasos.planning.accounting.power_cap import GpuCurves, cap_records, uncapped_energy_ratio
from tests.unit.planning.builders import T0, make_forecast

KWH = JOULES_PER_KWH


def typed(pods: Iterable[Mapping[str, Any]]) -> list[PodPower]:
    """status.power.pods entries as a pass reads them."""
    return [PodPower.read({"pod": f"w-{i}", **p}) for i, p in enumerate(pods)]


def line(e_at_half: float) -> Callable[[float], float]:
    """Energy per work relative to the max limit: e(1) = 1, e(0.5) = e_at_half, linear in between."""
    return lambda f: 1.0 + (1.0 - f) / 0.5 * (e_at_half - 1.0)


def test_ratio_is_the_median_over_workloads_of_energy_per_work_default_over_cap() -> None:
    # Max 400 W = default. At a 300 W cap (f = 0.75): e = 0.95, 0.90, 1.05 -> ratios 1/0.95, 1/0.90, 1/1.05.
    curves = GpuCurves(400, 400, (line(0.9), line(0.8), line(1.1)))
    assert uncapped_energy_ratio(curves, 300) == pytest.approx(1 / 0.95)
    # A default below the max (as on an H100 PCIe): uncapped means "at the default", e(0.875) / e(0.75).
    lower = GpuCurves(400, 350, (line(0.8),))
    assert uncapped_energy_ratio(lower, 300) == pytest.approx((1 - 0.125 * 0.4) / (1 - 0.25 * 0.4))
    assert uncapped_energy_ratio(curves, 400) is None  # nothing capped
    assert uncapped_energy_ratio(curves, 450) is None
    assert uncapped_energy_ratio(GpuCurves(400, 400, ()), 300) is None  # no curves: no estimate


def test_static_caps_are_valued_on_the_curves_slowdown_included() -> None:
    # 2 kWh capped at 300 W of 400 W; energy per work there is 0.9 of uncapped (the GPU drew less for longer):
    # the same work uncapped takes 2 / 0.9 = 2.2222 kWh, so the cap saved 0.2222 kWh.
    curves = GpuCurves(400, 400, (line(0.8),))  # e(0.75) = 0.9
    pods = [{"pod": "a", "policy": "fraction", "limitWatts": 300, "energyJoules": 2 * KWH, "defaultWatts": 400}]
    records = cap_records(typed(pods), curves)
    assert records == [CapRecord(2 * KWH, 300, 400, None, energy_ratio=pytest.approx(1 / 0.9))]
    assert power_cap_saved_kwh(records) == pytest.approx(2 / 0.9 - 2)


def test_a_cap_that_costs_energy_is_negative() -> None:
    # Deep cap at 100 W of 400 W where energy per work is 1.3x: the same work uncapped took 1 / 1.3 kWh.
    curves = GpuCurves(400, 400, (lambda f: 1.3 if f < 0.5 else 1.0,))
    pods = [{"pod": "a", "policy": "limit", "limitWatts": 100, "energyJoules": KWH}]
    assert power_cap_saved_kwh(cap_records(typed(pods), curves)) == pytest.approx(1 / 1.3 - 1)


def test_which_pods_count() -> None:
    curves = GpuCurves(400, 400, (line(0.8),))
    pods = [
        {"pod": "none", "policy": "none", "limitWatts": 300, "energyJoules": KWH},
        {"pod": "uncapped", "policy": "fraction", "limitWatts": 400, "energyJoules": KWH},
        {"pod": "no-energy", "policy": "fraction", "limitWatts": 300, "energyJoules": 0},
        {"pod": "no-limit", "policy": "fraction", "energyJoules": KWH},
        # energyOptimal with its measured slowdown: 1 x 400 / (300 x 1.1) - 1 (the measurement wins)
        {"pod": "opt", "policy": "energyOptimal", "limitWatts": 300, "energyJoules": KWH, "slowdown": 1.1},
        # energyOptimal before a measurement: the curves, like a static cap
        {"pod": "opt-new", "policy": "energyOptimal", "limitWatts": 300, "energyJoules": KWH},
    ]
    records = cap_records(typed(pods), curves)
    assert [r.slowdown for r in records] == [1.1, None]
    assert power_cap_saved_kwh(records) == pytest.approx(400 / 330 - 1 + 1 / 0.9 - 1)
    assert cap_records(typed(pods[-1:]), None) == []  # no curves for the product: nothing claimed


def test_shipped_a100_curves_at_80_percent() -> None:
    """nvidia-a100-80gb borrows the A100 PCIe sweeps by fraction: its 320 W cap is f = 0.8, between the 225 W
    (0.75) and 250 W (0.8333) rows of power_limit_response_summary.csv. The median workload there is gpt3-xl,
    energy per work 0.924 at 225 W and 0.912 at 250 W: 0.924 + 0.6 x (0.912 - 0.924) = 0.9168; so the same work
    uncapped would have used 1 / 0.9168 = 1.0907 x the capped energy (a 9.1 % saving on it)."""
    curves = gpu_curves("nvidia-a100-80gb")
    assert curves is not None
    assert (curves.max_w, curves.default_w, len(curves.energy_per_work)) == (400, 400, 5)
    assert uncapped_energy_ratio(curves, 320) == pytest.approx(1 / 0.9168, rel=1e-3)
    assert gpu_curves("tpu-v5") is None


def test_job_tokens_are_the_largest_pod_counter() -> None:
    assert job_tokens(typed([{"tokens": 4096.0}, {"tokens": 8192}, {"tokens": None}, {}])) == 8192
    assert job_tokens(typed([{}, {"tokens": 0}])) is None
    assert job_tokens(typed([{"tokens": True}])) is None


def test_tokens_and_energy_per_token_in_the_status() -> None:
    inputs = CarbonInputs(intervals=[EnergyInterval(T0, T0 + timedelta(hours=1), 0.36 * KWH)],
                          series=make_forecast([100.0] * 4), submitted_at=T0, pue=1.0, source="static",
                          emission_factor_type="lifecycle", tokens=1_000_000)
    carbon = build_carbon_status(inputs).to_status()
    assert carbon["tokens"] == 1_000_000
    assert carbon["joulesPerToken"] == pytest.approx(1.296)  # 0.36 kWh = 1.296 MJ over 1e6 tokens
    no_tokens = build_carbon_status(CarbonInputs(**{**inputs.__dict__, "tokens": None})).to_status()
    assert "tokens" not in no_tokens
    assert "joulesPerToken" not in no_tokens
    with pytest.raises(AccountingError):
        build_carbon_status(CarbonInputs(**{**inputs.__dict__, "tokens": float("nan")}))


def test_power_status_carries_tokens_slowdown_and_default_through_an_agent_restart() -> None:
    from llmasos.planning.accounting.power_status import build_power_status

    def report(at: str, **extra: object) -> dict[str, object]:
        return {"node": "n", "namespace": "ns", "name": "w-0", "uid": "u", "gpus": ["GPU-1"], "policy": "fraction",
                "limit_w": 320.0, "state": "Capped", "energy_j": 10.0, "reported_at": at, **extra}

    typed_first = build_power_status([report("2026-01-01T00:00:00Z", tokens=4096.0, default_w=400.0)])
    assert typed_first is not None
    first = typed_first.to_status()
    assert first["pods"][0]["tokens"] == 4096.0
    assert first["pods"][0]["defaultWatts"] == 400.0
    assert "slowdown" not in first["pods"][0]
    # A restarted agent reports the ended pod without its counter (and without a limit): both are kept.
    typed_later = build_power_status([report("2026-01-01T00:01:00Z", limit_w=None, state="Ended")],
                                     PowerStatus.read(first))
    assert typed_later is not None
    later = typed_later.to_status()
    assert (later["pods"][0]["tokens"], later["pods"][0]["limitWatts"]) == (4096.0, 320.0)
