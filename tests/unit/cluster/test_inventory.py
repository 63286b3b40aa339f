"""The GPU usage cache: fresh answers from memory, stale ones served while one background list refreshes them."""

from __future__ import annotations

import asyncio
from typing import Any

from llmasos.cluster.inventory import GpuUsageCache


class FakeKube:
    """Counts list calls; each answers with one running pod per GPU on node n1, one more each call."""

    def __init__(self) -> None:
        self.lists = 0
        self.release = asyncio.Event()

    async def list(self, *_: Any, **__: Any) -> list[dict[str, Any]]:
        self.lists += 1
        await self.release.wait()
        return [{"spec": {"nodeName": "n1", "containers": [{"resources": {"requests": {"nvidia.com/gpu": "1"}}}]}}
                for _ in range(self.lists)]


def test_fresh_stale_and_expired_answers() -> None:
    async def scenario() -> None:
        now = [0.0]
        cache = GpuUsageCache(ttl=10, stale_ttl=30, clock=lambda: now[0])
        kube = FakeKube()
        kube.release.set()
        assert await cache.requested_by_node(kube) == {"n1": 1}  # type: ignore[arg-type]
        now[0] = 5
        assert await cache.requested_by_node(kube) == {"n1": 1}  # type: ignore[arg-type]
        assert kube.lists == 1
        now[0] = 15  # stale: the old answer now, one refresh in the background for many callers
        kube.release.clear()
        answers = await asyncio.gather(*(cache.requested_by_node(kube) for _ in range(5)))  # type: ignore[arg-type]
        assert answers == [{"n1": 1}] * 5
        await asyncio.sleep(0)
        assert kube.lists == 2
        kube.release.set()
        await asyncio.sleep(0.01)
        assert await cache.requested_by_node(kube) == {"n1": 2}  # type: ignore[arg-type]
        now[0] = 100  # expired: callers wait for a new list
        assert await cache.requested_by_node(kube) == {"n1": 3}  # type: ignore[arg-type]
        assert kube.lists == 3

    asyncio.run(scenario())
