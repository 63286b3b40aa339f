"""The operator context's pass limiter (priority order, cancellation) and its newest-copy choice."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from llmasos.cluster.priority import PriorityLimiter
from tests.unit.handlers.contexts import context


def test_waiters_are_admitted_by_priority_then_arrival() -> None:
    async def scenario() -> list[str]:
        limiter = PriorityLimiter(1)
        order: list[str] = []
        gate = asyncio.Event()

        async def holder() -> None:
            async with limiter.slot(1):
                await gate.wait()

        async def waiter(name: str, priority: int) -> None:
            async with limiter.slot(priority):
                order.append(name)

        first = asyncio.create_task(holder())
        await asyncio.sleep(0)
        tasks = [asyncio.create_task(waiter(n, p)) for n, p in
                 (("resync-1", 2), ("event-1", 1), ("new-1", 0), ("event-2", 1), ("new-2", 0))]
        await asyncio.sleep(0)
        assert limiter.waiting == 5
        gate.set()
        await asyncio.gather(first, *tasks)
        return order

    assert asyncio.run(scenario()) == ["new-1", "new-2", "event-1", "event-2", "resync-1"]


def test_a_cancelled_waiter_does_not_leak_its_slot() -> None:
    async def scenario() -> int:
        limiter = PriorityLimiter(2)
        gate = asyncio.Event()
        ran = 0

        async def user(priority: int) -> None:
            nonlocal ran
            async with limiter.slot(priority):
                ran += 1
                await gate.wait()

        holders = [asyncio.create_task(user(1)) for _ in range(2)]
        await asyncio.sleep(0)
        doomed = asyncio.create_task(user(0))
        later = [asyncio.create_task(user(1)) for _ in range(2)]
        await asyncio.sleep(0)
        doomed.cancel()
        with pytest.raises(asyncio.CancelledError):
            await doomed
        gate.set()
        await asyncio.wait_for(asyncio.gather(*holders, *later), timeout=2)
        # Both slots are free again: two new holders enter at once.
        gate.clear()
        again = [asyncio.create_task(user(1)) for _ in range(2)]
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        entered = ran
        gate.set()
        await asyncio.gather(*again)
        return entered

    assert asyncio.run(scenario()) == 6


def body(uid: str, rv: int, phase: str = "") -> dict[str, Any]:
    return {"metadata": {"name": "j", "namespace": "ns", "uid": uid, "resourceVersion": str(rv)},
            "status": {"phase": phase}}


def test_newest_body_prefers_the_own_write_only_while_it_is_newer_and_the_same_object() -> None:
    ctx = context()
    assert ctx.newest_body("ns", "j", ()) is None
    ctx.remember_written(body("u1", 12, "Running"))
    assert ctx.newest_body("ns", "j", [body("u1", 10, "Pending")])["status"]["phase"] == "Running"
    assert ctx.newest_body("ns", "j", [body("u1", 13, "Succeeded")])["status"]["phase"] == "Succeeded"
    # A namesake created after a deletion is another object: its index copy wins whatever the versions say.
    assert ctx.newest_body("ns", "j", [body("u2", 5, "")])["metadata"]["uid"] == "u2"
    # Forgetting the deleted object drops its written copy.
    ctx.forget("u1", "ns", "j")
    assert ctx.newest_body("ns", "j", ()) is None
