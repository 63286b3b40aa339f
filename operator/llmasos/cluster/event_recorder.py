"""Posts core/v1 Events in the background, so a reconcile pass never waits for one, and after a burst, not in it.

Events only need to arrive eventually (Kubernetes itself treats them as best effort). Posting them inline made every
pass hold its slot, and its LLMJob's lock, for one more API round trip; and under a burst of new LLMJobs each Event
cost the API server as much as a child object's create, so the last children arrived later. The recorder keeps a
queue in order; one worker task posts them at the lowest request priority, and while the operator is still
creating children for new LLMJobs (`busy()`), it waits, for at most `max_hold` seconds per Event, so the Events of a
long stream of new jobs are late, never lost for that reason. On shutdown, `close()` posts what is left without
waiting for a quiet moment. What a SIGKILL leaves in the queue is lost, as with any Kubernetes event recorder.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from llmasos.cluster.priority import PRIORITY_EVENTS_API, loop_time, request_priority

log = logging.getLogger(__name__)

Post = Callable[[str, dict[str, Any]], Awaitable[object]]


class EventRecorder:
    def __init__(self, post: Post, busy: Callable[[], bool] = lambda: False, max_hold: float = 30.0,
                 poll: float = 0.2, max_queued: int = 10_000, in_flight: int = 8,
                 on_error: Callable[[Exception], None] = lambda exc: None,
                 on_drop: Callable[[], None] = lambda: None) -> None:
        self._post = post
        self._busy = busy
        self._max_hold = max_hold
        self._poll = poll
        self._max_queued = max_queued
        self._in_flight = in_flight
        self._on_error = on_error
        self._on_drop = on_drop
        self._queue: asyncio.Queue[tuple[float, str, dict[str, Any]]] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._worker: asyncio.Task[None] | None = None
        self._closing = False
        self.dropped = 0

    @property
    def pending(self) -> int:
        return self._queue.qsize() if self._queue is not None else 0

    def record(self, namespace: str, event: dict[str, Any]) -> None:
        """Queue one Event (never blocks); the worker starts with the first one, inside the running loop. After
        close() (a pass still finishing during shutdown) the Event is dropped and counted, never posted through a
        closed client."""
        if self._closing:
            self._drop("the operator is shutting down")
            return
        loop = asyncio.get_running_loop()
        if self._queue is None or self._loop is not loop:  # a queue belongs to the loop it was first used in
            self._queue, self._loop, self._worker = asyncio.Queue(), loop, None
        if self._queue.qsize() >= self._max_queued:
            self._drop(f"the queue is full ({self._max_queued} Events)")
            return
        self._queue.put_nowait((loop.time(), namespace, event))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._run(), name="llmasos-events")
            self._worker.add_done_callback(_report_death)

    async def post_now(self, namespace: str, event: dict[str, Any]) -> None:
        """Post one Event at once, past the queue and the hold (still at the lowest request priority): for the
        few Events whose loss matters most (a job's end), since a killed process loses what is queued."""
        token = request_priority.set(PRIORITY_EVENTS_API)
        try:
            await self._send(namespace, event)
        finally:
            request_priority.reset(token)

    def _drop(self, why: str) -> None:
        self.dropped += 1
        self._on_drop()
        if self.dropped == 1 or self.dropped % 1000 == 0:
            log.warning("Event dropped: %s (%d dropped so far)", why, self.dropped)

    async def _run(self) -> None:
        """Started in queue order, up to `in_flight` at once: one at a time, a burst of completions (hundreds of
        Events) would take tens of seconds to drain, and an operator killed meanwhile loses all of it."""
        queue = self._queue
        assert queue is not None
        token = request_priority.set(PRIORITY_EVENTS_API)
        slots = asyncio.Semaphore(self._in_flight)
        sending: set[asyncio.Task[None]] = set()

        async def send(namespace: str, event: dict[str, Any]) -> None:
            try:
                await self._send(namespace, event)
            finally:
                slots.release()
                queue.task_done()

        try:
            while True:
                queued_at, namespace, event = await queue.get()
                try:
                    # busy() is a condition of other components (no event to wait on): polled, a few times a second
                    while self._holding(queued_at):  # noqa: ASYNC110 (a polled condition)
                        await asyncio.sleep(self._poll)
                    await slots.acquire()
                except BaseException:
                    queue.task_done()
                    raise
                task = asyncio.create_task(send(namespace, event))
                sending.add(task)
                task.add_done_callback(sending.discard)
        finally:
            for task in list(sending):
                task.cancel()
            request_priority.reset(token)

    def _holding(self, queued_at: float) -> bool:
        return not self._closing and self._busy() and loop_time() - queued_at < self._max_hold

    async def _send(self, namespace: str, event: dict[str, Any]) -> None:
        try:
            await self._post(namespace, event)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # best effort, but counted and logged: a lost Event is never silent
            self._on_error(exc)
            log.warning("could not post Event %s for %s/%s: %s", event.get("reason"), namespace,
                        (event.get("involvedObject") or {}).get("name"), exc)

    async def flush(self, within: float = 10.0) -> bool:
        """Wait until every queued Event was posted (tests, shutdown); False when `within` seconds passed first."""
        if self._queue is None:
            return True
        try:
            await asyncio.wait_for(self._queue.join(), within)
        except TimeoutError:
            return False
        return True

    async def close(self, within: float = 5.0) -> None:
        """Post what is queued without waiting for a quiet moment (for at most `within` seconds), then stop."""
        self._closing = True
        if not await self.flush(within):
            log.warning("shutting down with %d Events not posted", self.pending)
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)


def _report_death(task: asyncio.Task[None]) -> None:
    """The worker only ends by cancellation; anything else is a bug worth a log line (the next record() restarts it)."""
    if not task.cancelled() and task.exception() is not None:
        log.error("the Event worker died: %r", task.exception())
