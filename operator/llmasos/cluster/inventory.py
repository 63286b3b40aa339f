"""GPUs already requested per node, read by listing running pods at most once per `ttl` seconds.

Why not a watch: placement needs this only when a new LLMJob picks its pool, while a cluster-wide pod watch would
make the operator process every pod event in the cluster (the 500-job benchmark showed it dominating CPU).
A short-lived cache shared by all passes keeps it to one list call per burst of new jobs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from llmasos.cluster.kube import PODS, KubeClient
from llmasos.cluster.observe import pod_gpu_request


class GpuUsageCache:
    """Fresh for `ttl` seconds. Up to `stale_ttl` seconds, callers get the previous answer at once while one
    background list refreshes it (a burst of new jobs does not wait on a list of every pod); older, they wait."""

    def __init__(self, ttl: float = 10.0, clock: Callable[[], float] = time.monotonic,
                 stale_ttl: float = 30.0) -> None:
        self.ttl = ttl
        self.stale_ttl = stale_ttl
        self._clock = clock
        self._at = float("-inf")
        self._value: dict[str, int] = {}
        self._lock = asyncio.Lock()
        self._refresh: asyncio.Task[dict[str, int]] | None = None

    async def requested_by_node(self, kube: KubeClient) -> dict[str, int]:
        age = self._clock() - self._at
        if age < self.ttl:
            return self._value
        if age < self.stale_ttl:
            if self._refresh is None or self._refresh.done():
                self._refresh = asyncio.create_task(self._list(kube))
                self._refresh.add_done_callback(_log_failure)
            return self._value
        return await self._list(kube)

    async def _list(self, kube: KubeClient) -> dict[str, int]:
        async with self._lock:  # one list in flight; concurrent callers share its answer
            if self._clock() - self._at < self.ttl:
                return self._value
            pods = await kube.list(PODS, field_selector="status.phase!=Succeeded,status.phase!=Failed")
            usage: dict[str, int] = {}
            for pod in pods:
                node = pod.get("spec", {}).get("nodeName")
                gpus = pod_gpu_request(pod)
                if node and gpus:
                    usage[node] = usage.get(node, 0) + gpus
            self._value, self._at = usage, self._clock()
            return usage



def _log_failure(task: asyncio.Task[dict[str, int]]) -> None:
    """A failed background refresh is logged; the next caller past the stale limit lists again and sees the error."""
    if not task.cancelled() and task.exception() is not None:
        logging.getLogger("llmasos.inventory").warning(f"refreshing GPU usage failed: {task.exception()}")
