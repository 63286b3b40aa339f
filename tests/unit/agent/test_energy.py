"""Energy deltas (counter, reset, glitch, integration, gaps) and attribution to pods."""

from __future__ import annotations

import pytest

from llmasos.agent.energy import Ledger, MeterState, PodRef, Reading, energy_delta

MAX_W = 400.0
POD_A = PodRef("default", "a", "uid-a", "job-a")
POD_B = PodRef("default", "b", "uid-b", "job-b")


def test_first_reading_has_no_delta() -> None:
    assert energy_delta(None, Reading(0.0, 300.0, 123_000), MAX_W).joules == 0.0


def test_counter_delta_in_joules() -> None:
    d = energy_delta(MeterState(0.0, 300.0, 1_000_000), Reading(5.0, 300.0, 2_500_000), MAX_W)
    assert (d.joules, d.method) == (1500.0, "counter")


def test_counter_reset_counts_energy_since_the_reset() -> None:
    d = energy_delta(MeterState(0.0, 300.0, 9_000_000_000), Reading(5.0, 300.0, 600_000), MAX_W)
    assert (d.joules, d.method) == (600.0, "counter-reset")


def test_implausible_counter_jump_falls_back_to_integrated_power() -> None:
    d = energy_delta(MeterState(0.0, 200.0, 0), Reading(10.0, 300.0, 10**12), MAX_W)
    assert d.method == "glitch"
    assert d.joules == pytest.approx(2500.0)  # trapezoid (200 + 300) / 2 x 10 s


def test_gpu_without_counter_integrates_power() -> None:
    d = energy_delta(MeterState(0.0, 100.0, None), Reading(4.0, 300.0, None), MAX_W)
    assert (d.joules, d.method, d.gap) == (800.0, "integrated", False)


def test_long_gap_without_counter_is_capped_and_flagged() -> None:
    d = energy_delta(MeterState(0.0, 100.0, None), Reading(600.0, 300.0, None), MAX_W, max_gap_s=30.0)
    assert d.gap
    assert d.joules == pytest.approx(300.0 * 30.0)


def test_long_gap_with_counter_is_exact() -> None:
    d = energy_delta(MeterState(0.0, 100.0, 0), Reading(600.0, 300.0, 120_000_000), MAX_W)
    assert (d.joules, d.method) == (120_000.0, "counter")


def test_ledger_attributes_to_owner_and_idle() -> None:
    ledger = Ledger.empty()
    ledger = ledger.add({0: 100.0, 1: 50.0, 2: 10.0}, {0: POD_A, 1: POD_A, 2: None})
    ledger = ledger.add({0: 100.0, 1: 50.0, 2: 10.0}, {0: POD_B, 1: POD_A})
    assert ledger.pod_joules(POD_A) == 200.0  # GPU 0 once, GPU 1 twice
    assert ledger.pod_joules(POD_B) == 100.0
    assert ledger.gpu_pod_joules[(2, None)] == 20.0
    assert ledger.pods() == {POD_A, POD_B}
    assert ledger.without({POD_A}).pods() == {POD_B}
