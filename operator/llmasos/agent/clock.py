"""The node agent's clock: `api.clock.Clock` (the one clock protocol), also read as seconds since the epoch.

Every clock here is an `api.clock.Clock` (call it for the current UTC instant), so the agent, the operator, the
carbon sources and the tests share one notion of time and nothing calls `time.time()` or `datetime.now` itself.
The agent also reads it as epoch seconds (`time()`), because its work is arithmetic on sample times: energy counter
deltas over intervals of 0.05-60 s, the power-limit search's settle windows, report timestamps (`format_epoch`).
Floats keep that arithmetic exact where a test or the simulator steps time by fractions of a second, which a
datetime (microseconds) would round. It is the wall clock, not a monotonic one: reports carry it, and it must mean
the same after an agent restart.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol

from llmasos.api.clock import Clock as InstantClock
from llmasos.api.clock import utc_now


class Clock(Protocol):
    """An `api.clock.Clock` that also answers in seconds since the epoch (the same instant)."""

    def __call__(self) -> datetime:
        """The current instant (UTC), as `api.clock.Clock`."""
        ...

    def time(self) -> float:
        """The current instant in seconds since the epoch."""
        ...


class SystemClock:
    """The real clock (or any `api.clock.Clock`), read either way."""

    def __init__(self, now: InstantClock = utc_now) -> None:
        self._now = now

    def __call__(self) -> datetime:
        return self._now()

    def time(self) -> float:
        return self._now().timestamp()


class ManualClock:
    """A clock that moves only when told to: for tests, the benchmark and the simulator driven faster than real time.
    Kept in epoch seconds, so stepping it by fractions of a second is exact."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return datetime.fromtimestamp(self.now, UTC)

    def time(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("time only moves forward")
        self.now += seconds
