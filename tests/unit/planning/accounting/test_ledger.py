"""The energy ledger behind status.carbon: intervals from cumulative per-pod readings."""

from __future__ import annotations

from datetime import UTC, datetime


def test_first_reading_starts_at_the_group_start_not_at_submission() -> None:
    from llmasos.api.energy_status import PowerStatus
    from llmasos.planning.accounting.energy_ledger import advance_ledger, ledger_intervals

    started = datetime(2026, 11, 25, 12, 3, tzinfo=UTC)
    power = PowerStatus.read({"pods": [{"pod": "p0", "energyJoules": 600.0, "readAt": "2026-11-25T12:05:00Z"}]})
    ledger = advance_ledger(None, power, started)
    intervals = ledger_intervals(ledger)
    assert intervals[0].start == started
    assert sum(i.joules for i in intervals) == 600.0
    more = advance_ledger(ledger, PowerStatus.read({"pods": [{"pod": "p0", "energyJoules": 900.0,
                                                              "readAt": "2026-11-25T12:06:00Z"}]}), started)
    assert sum(i.joules for i in ledger_intervals(more)) == 900.0, "only the increase is added"
    # status.carbon.ledger as written: 5-minute cells (12:05 starts a new one), each pod's last reading.
    assert more.to_status() == {"intervals": [["2026-11-25T12:03:00Z", "2026-11-25T12:05:00Z", 600.0],
                                              ["2026-11-25T12:05:00Z", "2026-11-25T12:06:00Z", 300.0]],
                                "readings": {"p0": ["2026-11-25T12:06:00Z", 900.0]}}
