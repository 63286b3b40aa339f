"""GPUs already requested per node, read by listing running pods at most once per `ttl` seconds.

Why not a watch: placement needs this only when a new LLMJob picks its pool, while a cluster-wide pod watch would
make the operator process every pod event in the cluster (the 500-job benchmark showed it dominating CPU).
A short-lived cache shared by all passes keeps it to one list call per burst of new jobs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from llmasos.cluster.kube import PODS, KubeClient
from llmasos.cluster.observe import pod_gpu_request


class GpuUsageCache:
    def __init__(self, ttl: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._at = float("-inf")
        self._value: dict[str, int] = {}
        self._lock = asyncio.Lock()

    async def requested_by_node(self, kube: KubeClient) -> dict[str, int]:
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

    def invalidate(self) -> None:
        self._at = float("-inf")
