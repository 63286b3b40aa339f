"""status.carbon as written: the builder's exact dict, power-cap and pool-choice savings, offsets, write throttle."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from llmasos.api.energy_status import CarbonStatus
from llmasos.planning.accounting.carbon_status import (
    CarbonInputs,
    build_carbon_status,
    display,
    offset,
    should_write_carbon,
)
from llmasos.planning.accounting.integral import (
    JOULES_PER_KWH,
    AccountingError,
    CapRecord,
    EnergyInterval,
    pool_choice_saved_grams,
    power_cap_saved_kwh,
)
from tests.unit.planning.builders import T0, make_forecast

KWH = JOULES_PER_KWH
M = timedelta(minutes=1)


def test_power_cap_saving_from_a_measured_slowdown() -> None:
    # 1 kWh at a 300 W cap (default 400 W), 10 % slower: uncapped = 1 x 400 / (300 x 1.1) = 1.21212 kWh.
    r = CapRecord(energy_j=KWH, limit_w=300, default_w=400, slowdown=1.1)
    assert power_cap_saved_kwh([r]) == pytest.approx(400 / 330 - 1)
    # Measured powers replace the limits: 1 x 380 / (290 x 1.05) - 1.
    m = CapRecord(energy_j=KWH, limit_w=300, default_w=400, slowdown=1.05, capped_power_w=290, uncapped_power_w=380)
    assert power_cap_saved_kwh([m]) == pytest.approx(380 / (290 * 1.05) - 1)
    assert power_cap_saved_kwh([r, m]) == pytest.approx(400 / 330 + 380 / (290 * 1.05) - 2)


def test_power_cap_claims_nothing_without_a_cap_or_a_measurement() -> None:
    assert power_cap_saved_kwh([CapRecord(KWH, limit_w=300, default_w=400, slowdown=None)]) == 0
    assert power_cap_saved_kwh([CapRecord(KWH, limit_w=None, default_w=400, slowdown=1.2)]) == 0
    assert power_cap_saved_kwh([CapRecord(KWH, limit_w=400, default_w=400, slowdown=1.0)]) == 0
    # A cap so tight that the job took much longer costs energy: reported as a negative saving, not hidden.
    assert power_cap_saved_kwh([CapRecord(KWH, limit_w=200, default_w=400, slowdown=2.5)]) == pytest.approx(-0.2)
    with pytest.raises(AccountingError, match="slowdown"):
        power_cap_saved_kwh([CapRecord(KWH, limit_w=200, default_w=400, slowdown=0.5)])


def test_pool_choice_saving_scales_the_plans_ratio_to_the_actual() -> None:
    # Planned 800 g on the chosen pool vs 1000 g on the first listed: the actual 1200 g would have been 1500 g.
    assert pool_choice_saved_grams(1200.0, 800.0, 1000.0) == pytest.approx(300.0)
    assert pool_choice_saved_grams(1200.0, 0.0, 1000.0) == 0.0


def test_offset_in_tonnes_and_cost() -> None:
    assert offset(2_500_000.0, 20.0, "EUR").to_status() == {"tonnes": 2.5, "cost": 50.0, "currency": "EUR"}
    assert offset(1234.0, None).to_status() == {"tonnes": 0.001234}


def test_the_status_dict_end_to_end() -> None:
    # Submitted 00:00, ran 02:00-03:00: 1 kWh at 100 g/kWh, PUE 1.2 -> 120 g. Run now (00:00-01:00 at 500): 600 g.
    # Saved 480 g = 80 %. A 300/400 W cap with a 1.1 slowdown on 0.5 kWh: 0.5 x (400/330 - 1) = 0.106061 kWh.
    # Pool choice: planned 90 vs 120 g -> 120 x (120/90 - 1) = 40 g. Offset at 25 EUR/t: 0.00012 t, 0.003 EUR.
    inputs = CarbonInputs(
        intervals=[EnergyInterval(T0 + 120 * M, T0 + 180 * M, KWH)],
        series=make_forecast([500, 400, 100]),
        submitted_at=T0,
        pue=1.2,
        source="trace",
        emission_factor_type="lifecycle",
        cap_records=[CapRecord(0.5 * KWH, limit_w=300, default_w=400, slowdown=1.1)],
        pool_choice=(90.0, 120.0),
        price_per_tonne=25.0,
        currency="EUR",
    )
    # The JSON, key for key, that the operator wrote when status.carbon was a dict built here.
    assert build_carbon_status(inputs).to_status() == {
        "energyKWh": 1.0,
        "facilityEnergyKWh": 1.2,
        "gCO2e": 120.0,
        "averageIntensity": 100.0,
        "runNowGCO2e": 600.0,
        "savedGCO2e": 480.0,
        "savedPercent": 80.0,
        "powerCapSavedKWh": round(0.5 * (400 / 330 - 1), 6),
        "poolChoiceSavedGCO2e": 40.0,
        "method": "location-based",
        "emissionFactorType": "lifecycle",
        "source": "trace",
        "isEstimated": False,
        "offset": {"tonnes": 0.00012, "cost": 0.003, "currency": "EUR"},
        "display": {"energy": "1.0 kWh", "emissions": "120 g", "saved": "480 g"},
    }


def test_status_before_any_energy_and_with_gaps() -> None:
    empty = CarbonInputs([], make_forecast([100]), T0, 1.2, "static", "direct", source_estimated=True)
    status = build_carbon_status(empty).to_status()
    assert status["energyKWh"] == 0
    assert status["gCO2e"] == 0
    assert "averageIntensity" not in status
    assert "savedPercent" not in status
    assert status["isEstimated"] is True
    assert "poolChoiceSavedGCO2e" not in status
    gap = CarbonInputs([EnergyInterval(T0, T0 + 120 * M, 2 * KWH)], make_forecast([100]), T0, 1.0, "trace", "direct")
    g = build_carbon_status(gap).to_status()
    assert g["isEstimated"] is True
    assert g["gCO2e"] == 200.0
    with pytest.raises(AccountingError, match="lifecycle or direct"):
        build_carbon_status(CarbonInputs([], make_forecast([100]), T0, 1.0, "trace", "marginal"))


@pytest.mark.parametrize(
    ("previous", "current", "last", "now_min", "final", "expected"),
    [
        (None, {"gCO2e": 1.0}, None, 0, False, True),  # first write
        ({"gCO2e": 1.0}, {"gCO2e": 2.0}, 0, 0.5, False, False),  # 30 s after the last: throttled
        ({"gCO2e": 1.0}, {"gCO2e": 2.0}, 0, 1, False, True),  # a minute later
        ({"gCO2e": 1.0}, {"gCO2e": 2.0}, 0, 0.1, True, True),  # final always goes out
        ({"gCO2e": 2.0}, {"gCO2e": 2.0}, 0, 10, True, False),  # nothing changed: no write, even final
    ],
)
def test_write_throttle(
    previous: dict[str, Any] | None,
    current: dict[str, Any],
    last: int | None,
    now_min: float,
    final: bool,
    expected: bool,
) -> None:
    last_written = None if last is None else T0 + last * M
    assert should_write_carbon(CarbonStatus.read(previous), CarbonStatus(grams=current["gCO2e"]), last_written,
                               T0 + now_min * M, final=final) is expected


def test_write_time_alone_is_no_change() -> None:
    before = CarbonStatus(grams=2.0, updated_at=T0)
    assert not should_write_carbon(before, CarbonStatus(grams=2.0), T0, T0 + 10 * M, final=True)
    assert should_write_carbon(before, CarbonStatus(grams=2.5), T0, T0 + 10 * M, final=False)


def test_display_scales_for_kubectl_columns() -> None:
    # A one-tonne job reads 1.0 t, not 1000000.000; energy below a kWh reads in Wh.
    assert display(2400.0, 1_000_000.0, -12.0).to_status() == {"energy": "2.4 MWh", "emissions": "1.0 t",
                                                                "saved": "-12.0 g"}
    assert display(0.34, 340.0, 0.0).to_status() == {"energy": "340 Wh", "emissions": "340 g", "saved": "0 g"}
