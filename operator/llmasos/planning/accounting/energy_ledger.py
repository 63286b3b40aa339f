"""The energy ledger behind `status.carbon`: per-pod cumulative readings turned into time intervals (pure).

Node agents report each pod's cumulative energy about once a minute. Each pass turns the increase since the
previous reading into an :class:`EnergyInterval` [previous reading, this reading) and keeps the intervals compacted
to 5-minute cells, in `status.carbon.ledger` (`api.energy_status.CarbonLedger`). Keeping the ledger in the status (a
few KB even for long jobs) is what makes the time-varying integral survive an operator restart: nothing lives only
in memory.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from llmasos.api.clock import format_instant, parse_instant
from llmasos.api.energy_status import CarbonLedger, LedgerCell, LedgerReading, PowerStatus
from llmasos.planning.accounting.integral import EnergyInterval, compact_intervals

CELL = timedelta(minutes=5)


def ledger_intervals(ledger: CarbonLedger | None) -> list[EnergyInterval]:
    return [EnergyInterval(c.start, c.end, c.joules) for c in (ledger.intervals if ledger is not None else ())]


def advance_ledger(ledger: CarbonLedger | None, power: PowerStatus | None, started_at: datetime) -> CarbonLedger:
    """The ledger with every pod's energy since its last recorded reading appended (first reading: since start)."""
    readings = dict(ledger.readings) if ledger is not None else {}
    intervals = ledger_intervals(ledger)
    for pod in power.pods if power is not None else ():
        name, joules, at = pod.pod, float(pod.energy_joules or 0.0), pod.read_at
        if not at:
            continue
        t1 = parse_instant(at, "status.power.pods[].readAt")
        if name in readings:
            t0, j0 = readings[name].at, readings[name].joules
        else:
            t0, j0 = min(started_at, t1 - timedelta(seconds=1)), 0.0
        if joules > j0:
            # Same-second re-reports (readAt has 1 s resolution) still carry energy: give it a 1 s interval.
            start = t0 if t1 > t0 else t1 - timedelta(seconds=1)
            end = t1 if t1 > t0 else t0
            intervals.append(EnergyInterval(start, max(end, start + timedelta(seconds=1)), joules - j0))
        # Whole seconds, as the ledger is written (so a ledger read back equals the one that was rendered).
        readings[name] = LedgerReading(parse_instant(format_instant(max(t1, t0))), max(joules, j0))
    cells = compact_intervals(intervals, CELL)
    return CarbonLedger(tuple(LedgerCell(iv.start, iv.end, round(iv.joules, 1)) for iv in cells), readings)
