"""status.carbon and status.power as typed values: what the operator wrote reads back and renders byte for byte."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from llmasos.api.energy_status import CarbonLedger, CarbonStatus, LedgerCell, PodPower, PowerStatus

# status.carbon as the operator writes it (key order included): the accounting's numbers, the ledger, the write time.
CARBON: dict[str, Any] = {
    "energyKWh": 1.0, "facilityEnergyKWh": 1.2, "gCO2e": 120.0, "averageIntensity": 100.0, "runNowGCO2e": 600.0,
    "savedGCO2e": 480.0, "savedPercent": 80.0, "powerCapSavedKWh": 0.106061, "method": "location-based",
    "emissionFactorType": "lifecycle", "source": "trace", "isEstimated": False,
    "offset": {"tonnes": 0.00012, "cost": 0.003, "currency": "EUR"},
    "display": {"energy": "1.0 kWh", "emissions": "120 g", "saved": "480 g"},
    "tokens": 1000000, "joulesPerToken": 3.6, "poolChoiceSavedGCO2e": 40.0,
    "ledger": {"intervals": [["2026-03-06T02:00:00Z", "2026-03-06T02:05:00Z", 300000.0]],
               "readings": {"j-a0-0": ["2026-03-06T02:05:00Z", 300000.0]}},
    "updatedAt": "2026-03-06T02:05:30Z",
}

POWER: dict[str, Any] = {
    "pods": [{"pod": "j-a0-0", "node": "n0", "gpus": ["GPU-1", "GPU-2"], "policy": "energyOptimal",
              "limitWatts": 300.0, "state": "Settled", "energyJoules": 300000.0, "readAt": "2026-03-06T02:05:00Z",
              "defaultWatts": 400.0, "slowdown": 1.05, "tokens": 1000000.0},
             {"pod": "j-a0-1", "node": "n1", "gpus": ["GPU-3"], "policy": "none", "state": "Default",
              "energyJoules": 0.0, "readAt": "2026-03-06T02:04:00Z"}],
    "energyJoules": 300000.0, "reportedAt": "2026-03-06T02:05:00Z",
}


def test_carbon_reads_into_typed_fields_and_renders_the_same_json() -> None:
    carbon = CarbonStatus.read(CARBON)
    assert carbon is not None
    assert (carbon.energy_kwh, carbon.grams, carbon.average_intensity, carbon.tokens) == (1.0, 120.0, 100.0, 1000000)
    assert carbon.display is not None
    assert carbon.display.energy == "1.0 kWh"
    assert carbon.updated_at == datetime(2026, 3, 6, 2, 5, 30, tzinfo=UTC)
    assert carbon.ledger == CarbonLedger.read(CARBON["ledger"])
    assert carbon.ledger is not None
    assert carbon.ledger.intervals == (LedgerCell(datetime(2026, 3, 6, 2, tzinfo=UTC),
                                                  datetime(2026, 3, 6, 2, 5, tzinfo=UTC), 300000.0),)
    assert json.dumps(carbon.to_status()) == json.dumps(CARBON), "same keys, same order, same values"
    assert CarbonStatus.read(carbon) is carbon, "never parsed twice"


def test_carbon_from_an_older_or_newer_operator_keeps_what_it_holds() -> None:
    older = {"energyKWh": 2, "gCO2e": 240}  # integers, as the API server may hand whole numbers back
    assert json.dumps(CarbonStatus.read(older).to_status()) == json.dumps(older)  # type: ignore[union-attr]
    newer = {**CARBON, "marketBasedGCO2e": 99.0, "offset": {**CARBON["offset"], "registry": "x"}}
    read = CarbonStatus.read(newer)
    assert read is not None
    assert read.to_status() == newer, "unknown keys are kept, nested ones too"
    assert CarbonStatus.read(None) is None
    assert CarbonStatus.read({}) is None


def test_the_write_time_is_not_part_of_what_changed() -> None:
    carbon = CarbonStatus.read(CARBON)
    assert carbon is not None
    assert carbon.comparable() == CarbonStatus.read({k: v for k, v in CARBON.items() if k != "updatedAt"})
    assert carbon.comparable() != CarbonStatus.read({**CARBON, "gCO2e": 121.0})


def test_power_reads_into_typed_pods_and_renders_the_same_json() -> None:
    power = PowerStatus.read(POWER)
    assert power is not None
    assert [p.pod for p in power.pods] == ["j-a0-0", "j-a0-1"]
    assert power.pods[0] == PodPower("j-a0-0", "n0", ("GPU-1", "GPU-2"), "energyOptimal", 300.0, "Settled", 300000.0,
                                     "2026-03-06T02:05:00Z", 400.0, 1.05, 1000000.0)
    assert (power.pods[1].limit_watts, power.pods[1].tokens) == (None, None)
    assert json.dumps(power.to_status()) == json.dumps(POWER)
    newer = {**POWER, "pods": [{**POWER["pods"][0], "migStrategy": "single"}], "agentVersion": "2"}
    assert PowerStatus.read(newer).to_status() == newer  # type: ignore[union-attr]
    assert PowerStatus.read(None) is None
