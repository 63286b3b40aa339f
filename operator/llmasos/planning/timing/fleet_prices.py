"""Capacity prices for the jobs that have not arrived yet: what an hour of a pool's GPUs is worth to them (pure).

The hourly fleet plan knows only the jobs that exist. It fills the clean hours with them, even when a job could run
almost as cleanly earlier, and a job that arrives an hour later finds those hours taken. Here each pool's next
`HORIZON_HOURS` hours get a price, in g/kWh, that the planner adds to the forecast when it compares placements
(fleet.py): the opportunity cost of a GPU-hour for the work expected to come.

* **Expected work:** the pool's arrivals of the last `HISTORY` (any phase, finished ones included), grouped by
  run time and window (deadline minus arrival), are assumed to keep arriving at `EXPECTED_SHARE` of their mean
  rate over the next `AHEAD` (every `ARRIVAL_STEP`). The rate is taken over the hours since the oldest of those
  arrivals (whole hours, at least one), so a pool that has just started is not read as a quiet one. At the full
  rate the prices cut the missed deadlines but not the emissions; half the rate did both, the better of the two
  rates tried (docs/carbon.md).
* **The prices** are the capacity duals of a fluid plan: the pending jobs and the expected work, as divisible
  GPU-hours inside their windows (at most their GPUs in any one hour), fill the hours left free by the reservations
  at the least carbon, and a GPU-hour that cannot be placed costs `MISS_FACTOR` x the dearest hour. A linear
  program, solved by HiGHS (`highs.py`; highspy: the `fleet` extra, in the operator's image too); without it
  every price is 0. A projected-subgradient solve in plain Python, within 0.3 % of the LP's
  objective, gave different enough duals to lose the gain (docs/development.md).
* A price is never more than the spread of the pool's intensities over the horizon: beyond that a price only says
  "some work will be late", which the plan's deadline handling already knows.

With no arrival history, or when the expected work fits the clean hours with room to spare, every price is 0 and
the plan is what it was without prices.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from llmasos.planning.timing import highs
from llmasos.planning.timing.capacity import MICRO, Usage
from llmasos.planning.timing.fleet_types import FleetJob
from llmasos.planning.timing.forecast import ensure_utc
from llmasos.planning.timing.timeline import Timeline, TimelinePiece

HOUR = timedelta(hours=1)
HORIZON_HOURS = 48
HISTORY = timedelta(hours=48)
AHEAD = timedelta(hours=24)
ARRIVAL_STEP = timedelta(hours=2)
EXPECTED_SHARE = 0.5
MISS_FACTOR = 10.0


@dataclass(frozen=True)
class Arrival:
    """A job that arrived in `pool` at `at` (its creation), needing `gpus` GPUs for `duration` within `window`
    (its deadline minus `at`). Finished jobs count: they say what kind of work this pool receives."""

    pool: str
    at: datetime
    gpus: int
    duration: timedelta
    window: timedelta

    def __post_init__(self) -> None:
        object.__setattr__(self, "at", ensure_utc(self.at, "arrival"))


@dataclass(frozen=True)
class Work:
    """Divisible work for the fluid plan: `gpus` GPUs for `hours` hours inside hours [lo, hi) from now."""

    gpus: float
    hours: int
    lo: int
    hi: int


def expected_work(arrivals: Iterable[Arrival], pool: str, now: datetime) -> list[Work]:
    """The work expected to arrive in `pool` over the next `AHEAD`, from its arrivals of the last `HISTORY`."""
    recent = [a for a in arrivals if a.pool == pool and now - HISTORY < a.at <= now]
    if not recent:
        return []
    observed = min((now - min(a.at for a in recent)) // HOUR + 1, HISTORY // HOUR)
    rate: dict[tuple[int, int], float] = {}
    for a in recent:
        key = (_hours_up(a.duration), a.window // HOUR)
        rate[key] = rate.get(key, 0.0) + a.gpus * EXPECTED_SHARE / observed
    step = ARRIVAL_STEP // HOUR
    out = []
    for offset in range(1, AHEAD // HOUR + 1, step):
        for (hours, window), gpus in sorted(rate.items()):
            hi = min(offset + window, HORIZON_HOURS)
            if hi - offset >= hours:
                out.append(Work(gpus * step, hours, offset, hi))
    return out


def pending_work(jobs: Iterable[FleetJob], pool: str, now: datetime) -> list[Work]:
    """The pending jobs that may run only in `pool`, as work (a job too long for its window in the horizon is left
    out: its deadline is the planner's business, not the prices')."""
    out = []
    for job in jobs:
        if job.pools != (pool,):
            continue
        lo = max((job.earliest_start - now) // HOUR, 0)
        hi = min((job.deadline - now) // HOUR, HORIZON_HOURS)
        hours = _hours_up(job.duration)
        if hi - lo >= hours:
            out.append(Work(float(job.gpus), hours, lo, hi))
    return out


def hourly_intensity(line: Timeline) -> list[float]:
    """The timeline's mean intensity in each hour of the horizon (the last value held beyond its end)."""
    out = []
    for h in range(HORIZON_HOURS):
        a, b = h * 3600.0, (h + 1) * 3600.0
        out.append(line.integral(a, b) / 3600.0 if b <= line.length else line.value_at(min(a, line.length)))
    return out


def free_gpus(gpus: int, reserved: Usage) -> list[float]:
    """GPUs left in each hour of the horizon after the reservations (their peak within the hour)."""
    hour = 3600 * MICRO
    return [float(max(gpus - reserved.peak(h * hour, (h + 1) * hour), 0)) for h in range(HORIZON_HOURS)]


def capacity_prices(work: Sequence[Work], free: Sequence[float], intensity: Sequence[float]) -> list[float]:
    """Per-hour capacity prices: the capacity rows' duals of the fluid plan (module docstring), solved by HiGHS,
    capped at the intensities' spread; all 0 without highspy or when HiGHS finds no optimum."""
    hours = len(intensity)
    if not work or hours == 0 or not highs.available():
        return [0.0] * hours
    merged: dict[tuple[int, int, int], float] = {}
    for w in work:
        merged[(w.hours, w.lo, w.hi)] = merged.get((w.hours, w.lo, w.hi), 0.0) + w.gpus
    items = [(gpus, n, lo, hi) for (n, lo, hi), gpus in sorted(merged.items()) if gpus > 0]
    # Columns: one per (item, hour in its window), then one "miss" per item. Rows: capacity per hour (<=), then
    # each item's GPU-hours (=).
    cost: list[float] = []
    upper: list[float] = []
    entries: list[tuple[int, int, float]] = []
    for i, (gpus, _, lo, hi) in enumerate(items):
        for t in range(lo, hi):
            entries += [(t, len(cost), 1.0), (hours + i, len(cost), 1.0)]
            cost.append(intensity[t])
            upper.append(gpus)
    miss = MISS_FACTOR * max(max(intensity), 1.0)
    for i in range(len(items)):
        entries.append((hours + i, len(cost), 1.0))
        cost.append(miss)
        upper.append(math.inf)
    need = [gpus * hours_needed for gpus, hours_needed, _, _ in items]
    problem = highs.Problem(cost, [0.0] * len(cost), upper, entries, [-math.inf] * hours + need,
                            [max(float(f), 0.0) for f in free] + need)
    result = highs.solve(problem)
    if result is None:
        return [0.0] * hours
    spread = max(intensity) - min(intensity)
    return [min(max(-d, 0.0), spread) for d in result.row_duals[:hours]]


def pool_prices(jobs: Sequence[FleetJob], arrivals: Sequence[Arrival], pool: str, gpus: int, reserved: Usage,
                line: Timeline, now: datetime) -> list[float]:
    """The capacity prices of `pool` at `now` (all 0 without arrivals in the last `HISTORY`)."""
    expected = expected_work(arrivals, pool, now)
    if not expected:
        return [0.0] * HORIZON_HOURS
    work = pending_work(jobs, pool, now) + expected
    return capacity_prices(work, free_gpus(gpus, reserved), hourly_intensity(line))


def priced(line: Timeline, prices: Sequence[float]) -> Timeline:
    """`line` with `prices[h]` added over its hour h (pieces split at the hour edges); unchanged when all are 0."""
    if not any(prices):
        return line
    out = []
    for p in line.pieces:
        a = p.start
        while a < p.end:
            h = int(a // 3600)
            b = min(p.end, (h + 1) * 3600.0) if 0 <= h < len(prices) else p.end
            extra = prices[h] if 0 <= h < len(prices) else 0.0
            out.append(TimelinePiece(a, b, p.intensity + extra, p.estimated))
            a = b
    return Timeline.from_pieces(line.origin, out)


def _hours_up(duration: timedelta) -> int:
    return max(-(-duration // HOUR), 1)


def prices_by_pool(jobs: Sequence[FleetJob], arrivals: Sequence[Arrival], caps: Mapping[str, int],
                   reserved: Mapping[str, Usage], lines: Mapping[str, Timeline],
                   now: datetime) -> dict[str, list[float]]:
    """`pool_prices` for every pool with a timeline and some price above 0."""
    out = {}
    for pool, line in lines.items():
        prices = pool_prices(jobs, arrivals, pool, caps[pool], reserved[pool], line, now)
        if any(prices):
            out[pool] = prices
    return out
