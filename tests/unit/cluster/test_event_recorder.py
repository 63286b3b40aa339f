"""The background Event recorder: order kept, passes never wait, Events yield to new jobs' child creation (bounded),
failures counted, and shutdown posts what is queued. Every scenario runs on a fake clock (tests/unit/virtual_time.py):
the holds and polls below take no real time."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from llmasos.cluster.event_recorder import EventRecorder
from llmasos.cluster.priority import (
    PRIORITY_EVENT,
    PRIORITY_EVENTS_API,
    PRIORITY_NEW,
    PriorityLimiter,
    request_priority,
)
from tests.unit.virtual_time import run_virtual


def now() -> float:
    return asyncio.get_running_loop().time()


def event(reason: str) -> dict[str, Any]:
    return {"reason": reason, "involvedObject": {"name": "j"}}


def test_events_are_posted_in_order_at_the_lowest_priority_without_blocking_the_caller() -> None:
    posted: list[tuple[str, str, int]] = []
    gate = asyncio.Event()

    async def post(ns: str, ev: dict[str, Any]) -> None:
        await gate.wait()
        posted.append((ns, ev["reason"], request_priority.get()))

    async def scenario() -> list[tuple[str, str, int]]:
        rec = EventRecorder(post)
        for r in ("A", "B", "C"):
            rec.record("ns", event(r))  # returns at once although nothing can be posted yet
        assert rec.pending == 3
        assert posted == []
        gate.set()
        assert await rec.flush(5)
        await rec.close()
        return posted

    assert run_virtual(scenario()) == [("ns", r, PRIORITY_EVENTS_API) for r in ("A", "B", "C")]


def test_events_wait_while_new_jobs_are_admitted_then_go() -> None:
    posted: list[str] = []

    async def post(ns: str, ev: dict[str, Any]) -> None:
        posted.append(ev["reason"])

    async def scenario() -> None:
        passes = PriorityLimiter(4)
        rec = EventRecorder(post, busy=lambda: passes.active_within(PRIORITY_NEW, 1.0), poll=0.02)
        async with passes.slot(PRIORITY_NEW):
            rec.record("ns", event("A"))
            await asyncio.sleep(0.1)
            assert posted == [], "held while a new job's pass runs"
        await asyncio.sleep(0.05)
        assert posted == [], "and shortly after it (the next one is likely on its way)"
        assert await rec.flush(5)
        assert posted == ["A"]
        async with passes.slot(PRIORITY_EVENT):  # other passes do not hold Events back
            rec.record("ns", event("B"))
            assert await rec.flush(0.5)
        assert posted == ["A", "B"]
        await rec.close()

    run_virtual(scenario())


def test_a_held_event_goes_out_after_max_hold_even_when_new_jobs_keep_coming() -> None:
    posted: list[tuple[str, float]] = []

    async def post(ns: str, ev: dict[str, Any]) -> None:
        posted.append((ev["reason"], now()))

    async def scenario() -> float:
        rec = EventRecorder(post, busy=lambda: True)  # the shipped hold (30 s) and poll (0.2 s)
        started = now()
        rec.record("ns", event("A"))
        assert await rec.flush(60)
        await rec.close()
        return started

    wall = time.monotonic()
    started = run_virtual(scenario())
    assert [r for r, _ in posted] == ["A"]
    assert 30.0 <= posted[0][1] - started < 30.5, "held for max_hold, then posted"
    assert time.monotonic() - wall < 2.0, "on the fake clock: no real 30 s wait"


def test_a_failed_post_is_counted_and_the_next_event_still_goes() -> None:
    posted: list[str] = []
    errors: list[Exception] = []

    async def post(ns: str, ev: dict[str, Any]) -> None:
        if ev["reason"] == "bad":
            raise RuntimeError("403 forbidden")
        posted.append(ev["reason"])

    async def scenario() -> None:
        rec = EventRecorder(post, on_error=errors.append)
        rec.record("ns", event("bad"))
        rec.record("ns", event("good"))
        assert await rec.flush(2)
        await rec.close()

    run_virtual(scenario())
    assert posted == ["good"]
    assert [str(e) for e in errors] == ["403 forbidden"]


def test_close_posts_what_is_queued_without_waiting_for_a_quiet_moment() -> None:
    posted: list[str] = []

    async def post(ns: str, ev: dict[str, Any]) -> None:
        posted.append(ev["reason"])

    async def scenario() -> None:
        rec = EventRecorder(post, busy=lambda: True, max_hold=60, poll=0.01)
        rec.record("ns", event("A"))
        rec.record("ns", event("B"))
        await asyncio.sleep(0.05)
        assert posted == []
        await rec.close(within=2)

    run_virtual(scenario())
    assert posted == ["A", "B"]


def test_a_full_queue_drops_and_counts() -> None:
    async def post(ns: str, ev: dict[str, Any]) -> None:
        await asyncio.sleep(10)

    drops: list[int] = []

    async def scenario() -> int:
        rec = EventRecorder(post, max_queued=2, on_drop=lambda: drops.append(1))
        for r in "ABCD":
            rec.record("ns", event(r))
        dropped = rec.dropped
        await rec.close(within=0.05)
        return dropped

    assert run_virtual(scenario()) == 2
    assert len(drops) == 2, "each drop reaches the metrics"


def test_active_within_sees_waiters_and_recent_admissions_of_that_priority_or_more_urgent() -> None:
    async def scenario() -> None:
        lim = PriorityLimiter(1)
        assert not lim.active_within(PRIORITY_NEW, 1)
        async with lim.slot(PRIORITY_EVENT):
            assert not lim.active_within(PRIORITY_NEW, 1)
            waiter = asyncio.create_task(lim.slot(PRIORITY_NEW).__aenter__())
            await asyncio.sleep(0)
            assert lim.active_within(PRIORITY_NEW, 0), "a new job's pass is waiting"
        await waiter
        assert lim.active_within(PRIORITY_NEW, 1)
        await asyncio.sleep(0.05)
        assert not lim.active_within(PRIORITY_NEW, 0.01)

    run_virtual(scenario())


def test_wait_quiet_returns_once_new_passes_stop_and_gives_up_after_at_most() -> None:
    async def scenario() -> tuple[float, float, float]:
        lim = PriorityLimiter(4)
        idle = await lim.wait_quiet(PRIORITY_NEW, quiet=0.2, at_most=5, poll=0.01)

        async def burst(until: float) -> None:  # a new job's pass admitted every 50 ms
            while now() < until:
                async with lim.slot(PRIORITY_NEW):
                    pass
                await asyncio.sleep(0.05)

        feeder = asyncio.create_task(burst(now() + 0.6))
        await asyncio.sleep(0)
        after_burst = await lim.wait_quiet(PRIORITY_NEW, quiet=0.2, at_most=5, poll=0.01)
        await feeder
        endless = asyncio.create_task(burst(now() + 10))
        await asyncio.sleep(0)
        capped = await lim.wait_quiet(PRIORITY_NEW, quiet=0.2, at_most=0.3, poll=0.01)
        endless.cancel()
        return idle, after_burst, capped

    idle, after_burst, capped = run_virtual(scenario())
    assert idle < 0.05, "nothing new was active: no wait"
    assert 0.6 <= after_burst < 3.0, f"waited for the burst to end plus the quiet time, not {after_burst:.2f}s"
    assert 0.3 <= capped < 1.5, f"an endless burst holds it for at_most only, not {capped:.2f}s"


def test_a_pass_after_a_child_change_waits_while_new_jobs_are_being_admitted(monkeypatch: Any) -> None:
    """_coalesced_pass holds a running job's pass (no slot, no lock) until a burst of new jobs' passes ends."""
    from llmasos.handlers import llmjob
    from tests.unit.handlers.contexts import context

    ran: list[float] = []

    async def fake_pass(ctx: Any, namespace: str, name: str, indexes: Any, logger: Any) -> None:
        ran.append(now())

    monkeypatch.setattr(llmjob, "_reconcile_by_name", fake_pass)
    monkeypatch.setattr(llmjob, "CHILD_EVENT_COALESCE_SECONDS", 0.0)

    async def scenario() -> float:
        ctx = context()
        lim = ctx.passes
        ctx.coalescing[("ns", "a")] = asyncio.current_task()  # type: ignore[assignment]
        burst_end = now() + 0.8
        while now() < burst_end - 0.7:  # the burst has begun before the child change
            async with lim.slot(PRIORITY_NEW):
                pass
            await asyncio.sleep(0.02)

        async def burst() -> None:
            while now() < burst_end:
                async with lim.slot(PRIORITY_NEW):
                    pass
                await asyncio.sleep(0.05)

        feeder = asyncio.create_task(burst())
        await llmjob._coalesced_pass(ctx, "ns", "a", {}, None)
        await feeder
        assert ("ns", "a") not in ctx.coalescing
        return ran[0] - burst_end

    after_burst = run_virtual(scenario())
    assert after_burst >= 0.0, "the pass ran before the burst of new jobs ended"


def test_after_close_events_are_dropped_and_counted_not_posted_through_a_closed_client() -> None:
    posted: list[str] = []
    drops: list[int] = []

    async def post(ns: str, ev: dict[str, Any]) -> None:
        posted.append(ev["reason"])

    async def scenario() -> EventRecorder:
        rec = EventRecorder(post, on_drop=lambda: drops.append(1))
        rec.record("ns", event("A"))
        await rec.close(within=2)
        rec.record("ns", event("late"))  # a pass still finishing during shutdown
        await asyncio.sleep(0.05)
        return rec

    rec = run_virtual(scenario())
    assert posted == ["A"]
    assert rec.dropped == 1
    assert drops == [1]


def test_a_recorder_used_from_a_second_event_loop_gets_a_queue_and_worker_of_that_loop() -> None:
    posted: list[str] = []

    async def post(ns: str, ev: dict[str, Any]) -> None:
        posted.append(ev["reason"])

    rec = EventRecorder(post)

    async def one(reason: str) -> None:
        rec.record("ns", event(reason))
        assert await rec.flush(2)

    run_virtual(one("first loop"))
    run_virtual(one("second loop"))  # the first loop's queue cannot be awaited here
    assert posted == ["first loop", "second loop"]


def test_up_to_in_flight_events_are_posted_at_once() -> None:
    running: list[int] = []
    peak: list[int] = [0]

    async def post(ns: str, ev: dict[str, Any]) -> None:
        running.append(1)
        peak[0] = max(peak[0], len(running))
        await asyncio.sleep(0.02)
        running.pop()

    async def scenario() -> None:
        rec = EventRecorder(post, in_flight=3)
        for i in range(10):
            rec.record("ns", event(str(i)))
        assert await rec.flush(2)
        await rec.close()

    run_virtual(scenario())
    assert peak[0] == 3


def test_post_now_goes_past_the_queue_and_the_hold() -> None:
    posted: list[tuple[str, int]] = []

    async def post(ns: str, ev: dict[str, Any]) -> None:
        posted.append((ev["reason"], request_priority.get()))

    async def scenario() -> None:
        rec = EventRecorder(post, busy=lambda: True, max_hold=60, poll=0.01)
        rec.record("ns", event("held"))
        await rec.post_now("ns", event("JobCompleted"))
        assert posted == [("JobCompleted", PRIORITY_EVENTS_API)], "posted before returning, the held one still held"
        await rec.close(within=2)

    run_virtual(scenario())
    assert [r for r, _ in posted] == ["JobCompleted", "held"]
