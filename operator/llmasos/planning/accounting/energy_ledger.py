"""The energy ledger behind `status.carbon`: per-pod cumulative readings turned into time intervals (pure).

Node agents report each pod's cumulative energy about once a minute. Each pass turns the increase since the
previous reading into an :class:`EnergyInterval` [previous reading, this reading) and keeps the intervals compacted
to 5-minute cells, in `status.carbon.ledger`. Keeping the ledger in the status (a few KB even for long jobs) is what
makes the time-varying integral survive an operator restart: nothing lives only in memory.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from llmasos.planning.accounting.integral import EnergyInterval, compact_intervals
from llmasos.planning.timing.forecast import format_instant, parse_instant

CELL = timedelta(minutes=5)


def ledger_intervals(ledger: Mapping[str, Any] | None) -> list[EnergyInterval]:
    rows = (ledger or {}).get("intervals", []) or []
    return [EnergyInterval(parse_instant(str(a)), parse_instant(str(b)), float(j)) for a, b, j in rows]


def advance_ledger(ledger: Mapping[str, Any] | None, power: Mapping[str, Any] | None,
                   started_at: datetime) -> dict[str, Any]:
    """The ledger with every pod's energy since its last recorded reading appended (first reading: since start)."""
    readings: dict[str, list[Any]] = {k: list(v) for k, v in ((ledger or {}).get("readings", {}) or {}).items()}
    intervals = ledger_intervals(ledger)
    for pod in (power or {}).get("pods", []) or []:
        name, joules, at = str(pod["pod"]), float(pod.get("energyJoules", 0.0)), pod.get("readAt")
        if not at:
            continue
        t1 = parse_instant(str(at))
        if name in readings:
            t0, j0 = parse_instant(str(readings[name][0])), float(readings[name][1])
        else:
            t0, j0 = min(started_at, t1 - timedelta(seconds=1)), 0.0
        if joules > j0:
            # Same-second re-reports (readAt has 1 s resolution) still carry energy: give it a 1 s interval.
            start = t0 if t1 > t0 else t1 - timedelta(seconds=1)
            end = t1 if t1 > t0 else t0
            intervals.append(EnergyInterval(start, max(end, start + timedelta(seconds=1)), joules - j0))
        readings[name] = [format_instant(max(t1, t0)), max(joules, j0)]
    cells = compact_intervals(intervals, CELL)
    return {
        "intervals": [[format_instant(iv.start), format_instant(iv.end), round(iv.joules, 1)] for iv in cells],
        "readings": readings,
    }
