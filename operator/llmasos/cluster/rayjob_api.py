"""Whether the RayJob API (KubeRay's ray.io/v1 rayjobs) is served: one discovery GET, remembered for a while.

`strategy: ray` creates a RayJob where it is served and the Indexed Job elsewhere (docs/operator.md). The question
is asked only when a pass is about to create a Ray child, and its answer is kept for `ttl` seconds, so a cluster
that installs or removes KubeRay is noticed within that time without a request per pass. Discovery
(/apis/ray.io/v1) is readable by every authenticated identity: no RBAC on CustomResourceDefinitions is needed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from llmasos.cluster.kube import KubeClient
from llmasos.errors import KubeApiError

DISCOVERY_PATH = "/apis/ray.io/v1"
DEFAULT_TTL_SECONDS = 300.0


@dataclass
class RayJobApi:
    """The cached answer; `served` asks the API server when it has none or it is older than `ttl`."""

    ttl: float = DEFAULT_TTL_SECONDS
    monotonic: Callable[[], float] = time.monotonic
    _answer: bool | None = None
    _asked_at: float = field(default=0.0)

    async def served(self, kube: KubeClient) -> bool:
        now = self.monotonic()
        if self._answer is not None and now - self._asked_at < self.ttl:
            return self._answer
        try:
            found = await kube.request("GET", DISCOVERY_PATH)
        except KubeApiError as exc:
            if not exc.not_found:
                raise
            found = {}
        self._answer = any(r.get("name") == "rayjobs" for r in (found or {}).get("resources") or [])
        self._asked_at = now
        return self._answer
