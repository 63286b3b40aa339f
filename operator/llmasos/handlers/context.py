"""What every handler needs, injected once at start-up (no module globals): settings, API client, metrics, clock.

kopf's `memo` carries one :class:`OperatorContext` to each handler. Per-LLMJob locks serialise the passes of one
LLMJob triggered by different causes (its own changes, a child Job's events, the periodic resync). Passes queue for
a bounded number of slots by priority: a new LLMJob's first pass (which creates its children) goes before passes
of running jobs, and the periodic resync goes last, so admission latency stays flat under a burst of events.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from llmasos.api.clock import Clock, format_instant, utc_now
from llmasos.carbon.fallback import FallbackSource, default_chain
from llmasos.cluster.event_recorder import EventRecorder
from llmasos.cluster.inventory import GpuUsageCache
from llmasos.cluster.kube import EVENTS, KubeClient
from llmasos.cluster.priority import (
    PRIORITY_EVENT,
    PRIORITY_NEW,
    PRIORITY_RESYNC,
    PriorityLimiter,
)
from llmasos.cluster.rayjob_api import RayJobApi
from llmasos.handlers.fleet import PoolPlans
from llmasos.handlers.wakeups import Wakeups

__all__ = ["PRIORITY_EVENT", "PRIORITY_NEW", "PRIORITY_RESYNC", "OperatorContext", "PriorityLimiter"]
from llmasos.gpus.products import DEFAULT_CATALOG, GpuProfile
from llmasos.metrics import OperatorMetrics
from llmasos.planning.accounting.budget import Budget
from llmasos.settings import Settings

# Events wait until no new LLMJob's first pass was admitted for this long (they yield to a burst of new jobs).
NEW_PASS_QUIET_SECONDS = 0.5


def _rv(value: object) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None






@dataclass
class OperatorContext:
    settings: Settings
    kube: KubeClient
    metrics: OperatorMetrics
    clock: Clock = utc_now
    instance: str = field(default_factory=socket.gethostname)
    carbon: FallbackSource = field(default_factory=default_chain)
    catalog: Mapping[str, GpuProfile] = field(default_factory=lambda: DEFAULT_CATALOG)
    budgets: Mapping[str, Budget] = field(default_factory=dict)
    gpu_usage: GpuUsageCache = field(default_factory=GpuUsageCache)
    pool_plans: PoolPlans = field(default_factory=PoolPlans)  # deferred jobs planned per pool (handlers/fleet.py)
    rayjob_api: RayJobApi = field(default_factory=RayJobApi)  # is KubeRay's RayJob served (handlers/children.py)
    wakeups: Wakeups = field(default_factory=Wakeups)  # passes due by the clock alone (handlers/wakeups.py)
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    # resourceVersions seen per LLMJob (etcd revisions: integers in practice; anything else disables the checks).
    _latest_rv: dict[str, int] = field(default_factory=dict)
    _own_rv: dict[str, int] = field(default_factory=dict)
    # Last seen fingerprint of each child Job's status: events that change nothing relevant skip the pass.
    job_fingerprints: dict[str, tuple[object, ...]] = field(default_factory=dict)
    # LLMJobs (namespace, name) with a child-Job-triggered pass already scheduled, and its task (handlers/llmjob.py).
    coalescing: dict[tuple[str, str], asyncio.Task[None]] = field(default_factory=dict)
    # The body the API server returned for this process's latest status write, per LLMJob (namespace, name): newer
    # than the watch-fed index copy until the write's echo arrives, so passes need no GET in between.
    _written: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    # kopf's live index views, captured from the first handler call, for the periodic resync (handlers/resync.py).
    indexes: dict[str, Any] | None = None
    # This replica's kopf peering priority (chosen at start-up when not configured).
    peering_priority: int = 0
    _passes: PriorityLimiter | None = None
    _events: EventRecorder | None = None

    @property
    def passes(self) -> PriorityLimiter:
        """Bounds concurrent reconcile passes to settings.max_workers (created lazily inside the event loop)."""
        if self._passes is None:
            self._passes = PriorityLimiter(self.settings.max_workers)
        return self._passes

    @property
    def events(self) -> EventRecorder:
        """Posts Events in the background, after the children of new LLMJobs (cluster/event_recorder.py)."""
        if self._events is None:
            self._events = EventRecorder(
                post=lambda namespace, event: self.kube.create(EVENTS, event, namespace),
                busy=lambda: self.passes.active_within(PRIORITY_NEW, NEW_PASS_QUIET_SECONDS),
                on_error=lambda exc: self.metrics.record_error("api"),
                on_drop=lambda: self.metrics.record_error("internal"))
        return self._events

    def remember_written(self, body: dict[str, Any]) -> None:
        meta = body.get("metadata") or {}
        if meta.get("uid") and meta.get("namespace") and meta.get("name"):
            self._written[(meta["namespace"], meta["name"])] = body

    def newest_body(self, namespace: str, name: str, copies: Any) -> dict[str, Any] | None:
        """The newest of the index's copies of an LLMJob and this process's last written one (by resourceVersion,
        same uid only: a namesake recreated after a deletion is a different object)."""
        candidates = [b for b in copies if isinstance(b, dict)]
        newest = candidates[-1] if candidates else None
        written = self._written.get((namespace, name))
        if written is None:
            return newest
        if newest is None:
            return written
        same = written["metadata"].get("uid") == newest["metadata"].get("uid")
        rv_written, rv_index = _rv(written["metadata"].get("resourceVersion")), _rv(
            newest["metadata"].get("resourceVersion"))
        if same and rv_written is not None and rv_index is not None and rv_written > rv_index:
            return written
        return newest

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

    def forget(self, uid: str, namespace: str = "", name: str = "") -> None:
        written = self._written.get((namespace, name))
        if written is not None and written["metadata"].get("uid") == uid:
            del self._written[(namespace, name)]
        self._locks.pop(uid, None)
        self._latest_rv.pop(uid, None)
        self._own_rv.pop(uid, None)
        self.metrics.forget(uid)

    def now_iso(self) -> str:
        return format_instant(self.clock())

    async def post_event(self, body: dict[str, Any], type_: str, reason: str, message: str,
                         at_once: bool = False) -> None:
        """Record a core/v1 Event on the LLMJob (only after its status write succeeded). Queued: it is posted in
        the background once no new LLMJob's children are being created (self.events); `at_once` posts it before
        returning (a job's end: the one Event a killed operator must not lose with its queue)."""
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
        if at_once:
            await self.events.post_now(meta["namespace"], event)
        else:
            self.events.record(meta["namespace"], event)
