"""The emissions integral against hand-computed cases: step changes, gaps, PUE steps, pauses, run-now, UTC."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmasos.planning.accounting.integral import (
    JOULES_PER_KWH,
    AccountingError,
    EnergyInterval,
    EnergyReading,
    PueSchedule,
    compact_intervals,
    emissions,
    intervals_from_readings,
    run_now_emissions,
    savings,
)
from llmasos.planning.timing.carbon_window import Segment
from tests.unit.planning.builders import T0, make_forecast

KWH = JOULES_PER_KWH
H = timedelta(hours=1)
M = timedelta(minutes=1)


def iv(start_min: float, end_min: float, kwh: float) -> EnergyInterval:
    return EnergyInterval(T0 + start_min * M, T0 + end_min * M, kwh * KWH)


def test_constant_intensity_and_pue() -> None:
    # 1 kWh at 100 g/kWh, PUE 1.5: facility 1.5 kWh, 150 g, average 100 g/kWh.
    r = emissions([iv(0, 60, 1.0)], make_forecast([100, 100]), 1.5)
    assert r.energy_kwh == pytest.approx(1.0)
    assert r.facility_kwh == pytest.approx(1.5)
    assert r.grams == pytest.approx(150.0)
    assert r.average_intensity == pytest.approx(100.0)
    assert r.gap_energy_j == 0


def test_step_change_inside_one_interval_splits_energy_by_time() -> None:
    # 3 kWh over 00:45..01:30: 1 kWh at 100 (before 01:00) + 2 kWh at 300 (after) = 700 g, not 3 x mean (600).
    r = emissions([iv(45, 90, 3.0)], make_forecast([100, 300]), 1.0)
    assert r.grams == pytest.approx(700.0)
    assert r.average_intensity == pytest.approx(700 / 3)


def test_uneven_power_between_readings_follows_the_readings() -> None:
    # 15-min series 100, 200, 300, 400. Readings: 0.1 kWh by 00:15, 1.0 kWh (cumulative) by 01:00.
    # 00:00-00:15: 0.1 kWh x 100 = 10; 00:15-01:00: 0.9 kWh spread over 45 min = 0.3 kWh per quarter:
    # 0.3 x (200 + 300 + 400) = 270 -> 280 g.
    readings = [EnergyReading(T0 + 15 * M, 0.1 * KWH), EnergyReading(T0 + 60 * M, 1.0 * KWH)]
    intervals = intervals_from_readings(T0, readings)
    r = emissions(intervals, make_forecast([100, 200, 300, 400], step="15m"), 1.0)
    assert r.grams == pytest.approx(280.0)
    assert r.energy_kwh == pytest.approx(1.0)


def test_gap_is_valued_at_the_mean_of_the_known_part_and_flagged() -> None:
    # Points at 00:00 (100) and 02:00 (300), 01:00-02:00 unknown. 3 kWh over 3 h: known 100 + 300 = 400 g over 2 kWh
    # (mean 200), the gap's 1 kWh at 200 -> 600 g; a third of the energy is estimated.
    series = make_forecast([100, None, 300])
    r = emissions([iv(0, 180, 3.0)], series, 1.0)
    assert r.grams == pytest.approx(600.0)
    assert r.gap_energy_j == pytest.approx(1.0 * KWH)
    assert r.estimated_fraction == pytest.approx(1 / 3)


def test_gap_intensity_overrides_the_fill_and_the_edge_of_the_series_is_a_gap() -> None:
    # Same gap valued at 500: 400 + 500 = 900. The run also extends 30 min past the series' end (03:00..03:30, at
    # 1 kWh/h -> 0.5 kWh), valued at 500 too -> 1150.
    series = make_forecast([100, None, 300])
    r = emissions([iv(0, 210, 3.5)], series, 1.0, gap_intensity=500.0)
    assert r.grams == pytest.approx(1150.0)
    assert r.gap_energy_j == pytest.approx(1.5 * KWH)


def test_no_intensity_at_all_raises_instead_of_charging_zero() -> None:
    with pytest.raises(AccountingError, match="no intensity known"):
        emissions([iv(0, 60, 1.0)], make_forecast([]), 1.0)


def test_time_varying_pue() -> None:
    # PUE 1.2 until 00:30 then 1.5: facility 0.5 x 1.2 + 0.5 x 1.5 = 1.35 kWh; intensity 100 -> 135 g.
    pue = PueSchedule(((T0, 1.2), (T0 + 30 * M, 1.5)))
    r = emissions([iv(0, 60, 1.0)], make_forecast([100]), pue)
    assert r.facility_kwh == pytest.approx(1.35)
    assert r.grams == pytest.approx(135.0)
    assert r.average_intensity == pytest.approx(100.0)


def test_pue_step_and_intensity_step_in_the_same_interval() -> None:
    # 00:00-02:00, 2 kWh; intensity 100 then 300 at 01:00; PUE 1.0 then 2.0 at 00:30.
    # 00:00-00:30: 0.5 x 1.0 x 100 = 50; 00:30-01:00: 0.5 x 2 x 100 = 100; 01:00-02:00: 1 x 2 x 300 = 600 -> 750.
    pue = PueSchedule(((T0, 1.0), (T0 + 30 * M, 2.0)))
    r = emissions([iv(0, 120, 2.0)], make_forecast([100, 300]), pue)
    assert r.grams == pytest.approx(750.0)
    assert r.facility_kwh == pytest.approx(3.5)


def test_pause_inside_a_reading_interval_puts_the_energy_in_the_run_spans() -> None:
    # One reading interval 00:00-03:00 (2 kWh) but the job was suspended 01:00-02:00, the dirty hour (1000).
    # Actual: 1 kWh x 100 + 1 kWh x 300 = 400. Run now (straight 00:00-02:00): 100 + 1000 = 1100; saved 700 (63.6 %).
    series = make_forecast([100, 1000, 300])
    spans = [Segment(T0, T0 + H), Segment(T0 + 2 * H, T0 + 3 * H)]
    actual = emissions([iv(0, 180, 2.0)], series, 1.0, run_spans=spans)
    now = run_now_emissions([iv(0, 180, 2.0)], series, 1.0, T0, run_spans=spans)
    assert actual.grams == pytest.approx(400.0)
    assert now.grams == pytest.approx(1100.0)
    saved, pct = savings(actual.grams, now.grams)
    assert saved == pytest.approx(700.0)
    assert pct == pytest.approx(700 / 11)


def test_default_run_spans_skip_zero_energy_readings() -> None:
    # Readings show no energy from 01:00 to 02:00 (suspended): run-now compresses the pause away.
    readings = [EnergyReading(T0 + H, KWH), EnergyReading(T0 + 2 * H, KWH), EnergyReading(T0 + 3 * H, 2 * KWH)]
    intervals = intervals_from_readings(T0, readings)
    assert [(i.start, i.end) for i in intervals] == [(T0, T0 + H), (T0 + 2 * H, T0 + 3 * H)]
    now = run_now_emissions(intervals, make_forecast([100, 1000, 300]), 1.0, T0)
    assert now.grams == pytest.approx(1100.0)


def test_run_now_shifts_the_profile_to_submission() -> None:
    # Submitted 00:00, deferred to 02:00-03:00 (1 kWh at 100). Run now: 00:00-01:00 at 500 -> saved 400 (80 %).
    series = make_forecast([500, 400, 100])
    intervals = [iv(120, 150, 0.25), iv(150, 180, 0.75)]
    actual = emissions(intervals, series, 1.2)
    now = run_now_emissions(intervals, series, 1.2, T0)
    assert actual.grams == pytest.approx(1.2 * 100)
    assert now.grams == pytest.approx(1.2 * 500)
    assert savings(actual.grams, now.grams) == (pytest.approx(480.0), pytest.approx(80.0))


def test_run_now_of_an_undeferred_job_equals_the_actual() -> None:
    series = make_forecast([500, 400, 100])
    intervals = [iv(0, 90, 1.5)]
    assert run_now_emissions(intervals, series, 1.1, T0).grams == pytest.approx(emissions(intervals, series, 1.1).grams)


def test_readings_with_a_meter_reset_and_duplicates() -> None:
    readings = [
        EnergyReading(T0 + 30 * M, 1e6),
        EnergyReading(T0 + 30 * M, 1.2e6),  # same report time seen twice: keep the larger
        EnergyReading(T0 + 60 * M, 1.5e6),
        EnergyReading(T0 + 90 * M, 0.2e6),  # reset: energy since the reset
    ]
    assert [i.joules for i in intervals_from_readings(T0, readings)] == pytest.approx([1.2e6, 0.3e6, 0.2e6])


def test_energy_metered_before_the_first_reading_goes_to_the_first_interval() -> None:
    readings = [EnergyReading(T0, 5.0), EnergyReading(T0 + M, 8.0)]
    assert [i.joules for i in intervals_from_readings(T0, readings)] == [8.0]
    with pytest.raises(AccountingError, match="before the start"):
        intervals_from_readings(T0 + H, readings)


def test_utc_only_and_dst_changes_do_not_move_the_result() -> None:
    # 2021-03-28 01:00 UTC: Berlin jumps from 02:00 CET to 03:00 CEST. The same instants in local time give the same
    # grams; a naive time is refused rather than guessed.
    berlin = ZoneInfo("Europe/Berlin")
    t0 = datetime(2021, 3, 28, 0, 0, tzinfo=UTC)
    series = make_forecast([100, 300, 500], start=t0)
    utc = emissions([EnergyInterval(t0 + 30 * M, t0 + 150 * M, 2 * KWH)], series, 1.0)
    local = EnergyInterval((t0 + 30 * M).astimezone(berlin), (t0 + 150 * M).astimezone(berlin), 2 * KWH)
    assert local.start.tzinfo is UTC
    assert emissions([local], series, 1.0).grams == pytest.approx(utc.grams)
    # 0.5 kWh x 100 + 1 kWh x 300 + 0.5 kWh x 500 = 600
    assert utc.grams == pytest.approx(600.0)
    with pytest.raises(ValueError, match="no time zone"):
        EnergyInterval(datetime(2021, 3, 28, 1, 30), datetime(2021, 3, 28, 2, 30), 1.0)


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.floats(0, 1000), min_size=4, max_size=12),
    cuts=st.lists(st.integers(1, 239), min_size=1, max_size=8, unique=True),
    kwh=st.floats(0.01, 50),
)
def test_splitting_a_constant_power_run_never_changes_the_total(
    values: list[float], cuts: list[int], kwh: float
) -> None:
    """Linearity: cutting one uniform interval into pieces with proportional energy gives the same grams."""
    series = make_forecast(values, step="15m")
    whole = emissions([iv(0, 240, kwh)], series, 1.3, gap_intensity=50.0)
    edges = [0, *sorted(cuts), 240]
    parts = [iv(a, b, kwh * (b - a) / 240) for a, b in itertools.pairwise(edges)]
    split = emissions(parts, series, 1.3, gap_intensity=50.0)
    assert split.grams == pytest.approx(whole.grams, rel=1e-9, abs=1e-9)
    assert whole.energy_kwh == pytest.approx(kwh)
    known = [*values, 50.0]
    assert 1.3 * kwh * min(known) - 1e-9 <= whole.grams <= 1.3 * kwh * max(known) + 1e-9


def test_compacting_many_pods_keeps_the_integral_on_a_grid_aligned_series() -> None:
    # Three pods, readings every 70 s with uneven power, 3 hours on a 15-min series: compaction to 5-min cells is
    # exact for the actual integral, and leaves at most one interval per cell.
    series = make_forecast([100 + 37 * (i % 5) for i in range(12)], step="15m")
    intervals = []
    for pod in range(3):
        t, joules = T0 + pod * 13 * timedelta(seconds=1), 0.0
        readings = []
        for k in range(150):
            t += timedelta(seconds=70)
            joules += 1000.0 * (1 + (k * (pod + 1)) % 7)
            readings.append(EnergyReading(t, joules))
        intervals += intervals_from_readings(T0, readings)
    compact = compact_intervals(intervals)
    assert len(compact) <= 36 < len(intervals)
    assert sum(i.joules for i in compact) == pytest.approx(sum(i.joules for i in intervals))
    assert emissions(compact, series, 1.25).grams == pytest.approx(emissions(intervals, series, 1.25).grams)
    # A two-hour pause survives compaction: the cells around it keep their tight extent.
    paused = compact_intervals([iv(0, 12, 1.0), iv(130, 142, 1.0)])
    assert [(i.start, i.end) for i in paused] == [(T0, T0 + 5 * M), (T0 + 5 * M, T0 + 10 * M),
                                                 (T0 + 10 * M, T0 + 12 * M), (T0 + 130 * M, T0 + 135 * M),
                                                 (T0 + 135 * M, T0 + 140 * M), (T0 + 140 * M, T0 + 142 * M)]
