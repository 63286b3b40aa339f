"""An asyncio event loop on a fake clock: `run_virtual(coro)` runs a coroutine whose sleeps and timeouts take no real
time. When every task waits for a timer, the clock jumps to the earliest one (what a real loop would sleep for);
file descriptors (the loop's own wake-up pipe) are still polled, without blocking. Code under test reads the clock
through the loop (`loop.time()`, cluster/priority.py `loop_time`), never `time.monotonic()`.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine, Mapping
from typing import Any, TypeVar

T = TypeVar("T")
TURN = 1e-6  # seconds one turn of the loop takes on the fake clock


class _VirtualSelector(selectors.BaseSelector):
    """Delegates to a real selector, polled with a zero timeout; a wait for a timer moves the loop's clock instead."""

    def __init__(self) -> None:
        self._real = selectors.DefaultSelector()
        self.now = 0.0

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._real.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.modify(fileobj, events, data)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        # Each turn of the loop costs a microsecond, as on a real clock: a loop polling with ever shorter sleeps
        # (a deadline approached by rounding) still reaches its deadline.
        self.now += TURN
        ready = self._real.select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:
            raise RuntimeError("every task waits, and no timer is due: the code under test would hang forever")
        self.now += timeout
        return []

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._real.get_map()

    def close(self) -> None:
        self._real.close()


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        self._virtual = _VirtualSelector()
        super().__init__(selector=self._virtual)

    def time(self) -> float:
        return self._virtual.now


def run_virtual(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run on the fake clock."""
    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
        return runner.run(coro)
