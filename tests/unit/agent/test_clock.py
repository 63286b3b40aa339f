"""The agent's clocks are the one `api.clock.Clock`, also read in epoch seconds: both readings are one instant."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from llmasos.agent.clock import ManualClock, SystemClock
from llmasos.api.clock import Clock, format_instant


def test_a_manual_clock_reads_the_same_instant_both_ways_and_steps_exactly() -> None:
    clock = ManualClock(1_700_000_000.0)
    instant: Clock = clock  # an api.clock.Clock: what the operator side and the carbon sources take
    assert instant() == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    for _ in range(4):
        clock.advance(0.25)
    assert clock.time() == 1_700_000_001.0
    assert format_instant(clock()) == "2023-11-14T22:13:21Z"
    with pytest.raises(ValueError, match="forward"):
        clock.advance(-1.0)


def test_the_system_clock_wraps_any_instant_clock() -> None:
    fixed = datetime(2026, 3, 6, 12, tzinfo=UTC)
    clock = SystemClock(lambda: fixed)
    assert (clock(), clock.time()) == (fixed, fixed.timestamp())
    assert SystemClock()().tzinfo is UTC
