"""GPUs in use over time in one pool, and the check that no plan ever over-subscribes a pool.

The fleet planner places jobs one after another into a step function of GPUs in use; it needs three questions
answered fast: where may a job of `g` GPUs not go (`blocked`), where is the next gap long enough (`free`), and what
was the peak (`peak`). Time is kept in whole microseconds, the resolution of the plans' segments, so a segment that
ends exactly where another starts never counts as an overlap because of float rounding.

`capacity_violations` is the guarantee in executable form: tests, `llmasos plan --batch --capacity` and the
benchmark all run it on what the planner returns.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

MICRO = 1_000_000
FAR_PAST = -(2**62)


def to_us(seconds: float) -> int:
    """Float seconds from the planner's origin to whole microseconds (the resolution of every segment)."""
    return round(seconds * MICRO)


class Usage:
    """A step function: `levels[i]` GPUs are in use on [times[i], times[i+1]) (the last level holds forever).

    Mutable on purpose and private to one planning pass: the planner adds and removes placements thousands of
    times, and copying an immutable profile each time would dominate the run time of a 1,000-job plan.
    """

    __slots__ = ("levels", "times")

    def __init__(self) -> None:
        self.times: list[int] = [FAR_PAST]
        self.levels: list[int] = [0]

    def copy(self) -> Usage:
        other = Usage()
        other.times = list(self.times)
        other.levels = list(self.levels)
        return other

    def _split(self, t: int) -> int:
        i = bisect_left(self.times, t)
        if i < len(self.times) and self.times[i] == t:
            return i
        self.times.insert(i, t)
        self.levels.insert(i, self.levels[i - 1])
        return i

    def add(self, start: int, end: int, gpus: int) -> None:
        """Take (or, with negative `gpus`, give back) `gpus` on [start, end)."""
        if end <= start or gpus == 0:
            return
        a = self._split(start)
        b = self._split(end)
        for i in range(a, b):
            self.levels[i] += gpus

    def peak(self, start: int, end: int) -> int:
        """The most GPUs in use at any instant of [start, end)."""
        i = bisect_right(self.times, start) - 1
        top = self.levels[i]
        i += 1
        while i < len(self.times) and self.times[i] < end:
            top = max(top, self.levels[i])
            i += 1
        return top

    def blocked(self, start: int, end: int, room: int) -> list[tuple[int, int]]:
        """The stretches of [start, end) with more than `room` GPUs in use (a job needing limit - room can't go)."""
        out: list[tuple[int, int]] = []
        i = bisect_right(self.times, start) - 1
        cursor = start
        while cursor < end:
            nxt = self.times[i + 1] if i + 1 < len(self.times) else end
            seg_end = min(nxt, end)
            if self.levels[i] > room and seg_end > cursor:
                if out and out[-1][1] == cursor:
                    out[-1] = (out[-1][0], seg_end)
                else:
                    out.append((cursor, seg_end))
            cursor = seg_end
            i += 1
        return out

    def free(self, start: int, end: int | None, room: int) -> Iterable[tuple[int, int]]:
        """Maximal stretches from `start` (to `end`, or for ever) with at most `room` GPUs in use, in time order."""
        i = bisect_right(self.times, start) - 1
        open_at: int | None = None
        cursor = start
        while end is None or cursor < end:
            nxt = self.times[i + 1] if i + 1 < len(self.times) else None
            ok = self.levels[i] <= room
            if ok and open_at is None:
                open_at = cursor
            if not ok and open_at is not None:
                yield open_at, cursor
                open_at = None
            if nxt is None:
                if ok and open_at is not None:
                    yield open_at, end if end is not None else 2**62
                return
            if end is not None and nxt >= end:
                if open_at is not None:
                    yield open_at, end
                return
            cursor = nxt
            i += 1
        if open_at is not None and end is not None and open_at < end:
            yield open_at, end


def capacity_violations(
    pools: Mapping[str, int],
    used: Iterable[tuple[str, datetime, datetime, int]],
) -> list[str]:
    """Each instant at which a pool holds more GPUs than it has, as readable lines; [] when the guarantee holds.

    `used` is every (pool, start, end, gpus) interval: reservations and planned segments alike.
    """
    events: dict[str, list[tuple[datetime, int]]] = {}
    for pool, start, end, gpus in used:
        if end <= start:
            continue
        events.setdefault(pool, []).extend([(start, gpus), (end, -gpus)])
    out: list[str] = []
    for pool, evs in sorted(events.items()):
        cap = pools.get(pool)
        level = 0
        # Ends before starts at the same instant: [a, b) and [b, c) do not overlap.
        for moment, delta in sorted(evs, key=lambda e: (e[0], e[1])):
            level += delta
            if cap is not None and level > cap:
                out.append(f"pool {pool}: {level} GPUs in use at {moment.isoformat()}, capacity {cap}")
    return out


def seconds_between(origin: datetime, moment: datetime) -> float:
    return (moment - origin) / timedelta(seconds=1)
