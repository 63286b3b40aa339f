"""Priorities for reconcile passes and the API requests they make (lower goes first).

Under a burst (hundreds of new LLMJobs while earlier ones start running), the API server is the bottleneck. A new
LLMJob's first pass, the one that creates its children, should not queue behind status updates of running jobs,
and Events, which only need to arrive eventually, should not delay either. Passes take a slot by priority
(OperatorContext.passes), set `request_priority` for the requests they make, and the API client admits in-flight
requests by that priority.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar

PRIORITY_NEW = 0  # a new LLMJob's first pass: creates its children
PRIORITY_EVENT = 1  # passes triggered by watch events
PRIORITY_RESYNC = 2  # the periodic resync
PRIORITY_EVENTS_API = 3  # posting core/v1 Events

request_priority: ContextVar[int] = ContextVar("llmasos_request_priority", default=PRIORITY_EVENT)


def loop_time() -> float:
    """The running event loop's clock: time.monotonic() in production; a test's virtual-time loop moves it without
    sleeping (tests/unit/virtual_time.py). The limiter and the Event recorder measure their waits with it."""
    return asyncio.get_running_loop().time()


class PriorityLimiter:
    """At most `limit` holders at once; waiters are admitted lowest priority number first, FIFO within one."""

    def __init__(self, limit: int) -> None:
        self._free = limit
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._admitted_at: dict[int, float] = {}  # priority -> monotonic time of its latest admission

    @property
    def waiting(self) -> int:
        return sum(1 for *_, fut in self._waiters if not fut.done())

    def active_within(self, priority: int, seconds: float) -> bool:
        """Whether work of `priority` (or more urgent) waits now or was admitted in the last `seconds`."""
        if any(p <= priority and not fut.done() for p, _, fut in self._waiters):
            return True
        now = loop_time()
        return any(p <= priority and now - at < seconds for p, at in self._admitted_at.items())

    async def wait_quiet(self, priority: int, quiet: float, at_most: float, poll: float = 0.2) -> float:
        """Wait until `active_within(priority, quiet)` is false, for at most `at_most` seconds; the seconds waited.
        Polled (activity is a condition of other tasks, with no event to wait on); it holds no slot meanwhile."""
        started = loop_time()
        while self.active_within(priority, quiet) and loop_time() - started < at_most:  # noqa: ASYNC110
            await asyncio.sleep(min(poll, max(at_most - (loop_time() - started), 0.0)))
        return loop_time() - started

    @asynccontextmanager
    async def slot(self, priority: int) -> AsyncIterator[None]:
        if self._free > 0:  # a free slot means nobody waits: releases hand slots to live waiters first
            self._free -= 1
        else:
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            heapq.heappush(self._waiters, (priority, next(self._seq), fut))
            try:
                await fut
            except asyncio.CancelledError:
                if fut.done() and not fut.cancelled():
                    self._release()  # handed a slot in the same tick as the cancellation: pass it on
                fut.cancel()
                raise
        self._admitted_at[priority] = loop_time()
        try:
            yield
        finally:
            self._release()

    def _release(self) -> None:
        while self._waiters:
            *_, fut = heapq.heappop(self._waiters)
            if not fut.done():
                fut.set_result(None)
                return
        self._free += 1
