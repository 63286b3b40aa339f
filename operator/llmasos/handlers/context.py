"""What every handler needs, injected once at start-up (no module globals): settings, API client, metrics, clock.

kopf's `memo` carries one :class:`OperatorContext` to each handler. Per-LLMJob locks serialise the passes of one
LLMJob triggered by different causes (its own changes, a child Job's events, the resync timer).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from llmasos.carbon.fallback import FallbackSource, default_chain
from llmasos.cluster.inventory import GpuUsageCache
from llmasos.cluster.kube import EVENTS, KubeClient
from llmasos.metrics import OperatorMetrics
from llmasos.planning.budget import Budget
from llmasos.planning.pool_choice import DEFAULT_CATALOG, GpuProfile
from llmasos.settings import Settings


def _rv(value: object) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class OperatorContext:
    settings: Settings
    kube: KubeClient
    metrics: OperatorMetrics
    clock: Callable[[], datetime] = utc_now
    instance: str = field(default_factory=socket.gethostname)
    carbon: FallbackSource = field(default_factory=default_chain)
    catalog: Mapping[str, GpuProfile] = field(default_factory=lambda: DEFAULT_CATALOG)
    budgets: Mapping[str, Budget] = field(default_factory=dict)
    gpu_usage: GpuUsageCache = field(default_factory=GpuUsageCache)
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    # resourceVersions seen per LLMJob (etcd revisions: integers in practice; anything else disables the checks).
    _latest_rv: dict[str, int] = field(default_factory=dict)
    _own_rv: dict[str, int] = field(default_factory=dict)
    # Last seen fingerprint of each child Job's status: events that change nothing relevant skip the pass.
    job_fingerprints: dict[str, tuple[object, ...]] = field(default_factory=dict)
    _passes: asyncio.Semaphore | None = None

    @property
    def passes(self) -> asyncio.Semaphore:
        """Bounds concurrent reconcile passes to settings.max_workers (created lazily inside the event loop)."""
        if self._passes is None:
            self._passes = asyncio.Semaphore(self.settings.max_workers)
        return self._passes

    def saw_version(self, uid: str, resource_version: object, own_write: bool = False) -> None:
        rv = _rv(resource_version)
        if rv is None:
            return
        self._latest_rv[uid] = max(rv, self._latest_rv.get(uid, -1))
        if own_write:
            self._own_rv[uid] = rv

    def is_stale(self, uid: str, resource_version: object) -> bool:
        rv = _rv(resource_version)
        return rv is not None and rv < self._latest_rv.get(uid, -1)

    def is_own_write(self, uid: str, resource_version: object) -> bool:
        rv = _rv(resource_version)
        return rv is not None and self._own_rv.get(uid) == rv

    def lock(self, uid: str) -> asyncio.Lock:
        return self._locks.setdefault(uid, asyncio.Lock())

    def forget(self, uid: str) -> None:
        self._locks.pop(uid, None)
        self._latest_rv.pop(uid, None)
        self._own_rv.pop(uid, None)
        self.metrics.forget(uid)

    def now_iso(self) -> str:
        return iso(self.clock())

    async def post_event(self, body: dict[str, Any], type_: str, reason: str, message: str) -> None:
        """Record a core/v1 Event on the LLMJob (only after its status write succeeded)."""
        meta = body["metadata"]
        now = self.now_iso()
        event = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {"apiVersion": body.get("apiVersion", "llmasos.io/v1alpha1"),
                               "kind": body.get("kind", "LLMJob"), "name": meta["name"],
                               "namespace": meta["namespace"], "uid": meta["uid"]},
            "type": type_, "reason": reason, "message": message[:1024],
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
            "source": {"component": "llmasos-operator"},
            "reportingComponent": "llmasos-operator", "reportingInstance": self.instance[:128],
        }
        await self.kube.create(EVENTS, event, meta["namespace"])
