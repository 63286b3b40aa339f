"""The world the reconcile-step tests share: an in-memory API server holding one LLMJob, kopf's indexes, a
carbon source, and small readers of what a pass wrote."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from llmasos.carbon.base import Location
from llmasos.carbon.fallback import FallbackSource
from llmasos.cluster.kube import LLMJOBS
from llmasos.handlers import steps
from llmasos.handlers.context import OperatorContext
from llmasos.metrics import OperatorMetrics
from llmasos.planning.lifecycle.decision import ObservedJob
from llmasos.planning.placement.feasible import NodeCapacity
from llmasos.planning.timing.forecast import Forecast, IntensityPoint
from llmasos.settings import Settings
from tests.unit.builders import make_raw
from tests.unit.handlers.fake_kube import FakeKube

T = TypeVar("T")

NOW = datetime(2026, 3, 6, 12, 0, tzinfo=UTC)
LOG = logging.getLogger("test-steps")
JOB_PATH = LLMJOBS.path("ns", "j")


def run(awaitable: Awaitable[T]) -> T:
    async def main() -> T:
        return await awaitable

    return asyncio.run(main())


class CleanLater:
    """A carbon source whose grid is dirty for three hours from NOW, then clean."""

    name = "fake"

    async def forecast(self, location: str | Location) -> Forecast:
        points = tuple(IntensityPoint(NOW + timedelta(hours=h), 500.0 if h < 3 else 50.0) for h in range(48))
        return Forecast(points, zone=str(location), issued_at=NOW, source="fake")

    async def latest(self, location: str | Location) -> Any:
        raise NotImplementedError

    async def history(self, location: str | Location, start: datetime, end: datetime) -> Forecast:
        return await self.forecast(location)


class SteadyHistory(CleanLater):
    """CleanLater whose past (the accounting's history) was a steady 100 g/kWh."""

    async def history(self, location: str | Location, start: datetime, end: datetime) -> Forecast:
        points = tuple(IntensityPoint(NOW + timedelta(hours=h), 100.0) for h in range(-6, 6))
        return Forecast(points, zone=str(location), issued_at=NOW, source="fake")


def world(spec: dict[str, Any] | None = None, status: dict[str, Any] | None = None, nodes: int = 2,
          **settings: Any) -> tuple[OperatorContext, FakeKube, dict[str, Any], dict[str, Any]]:
    """A context on a fake API server holding one LLMJob ns/j, and kopf's indexes with `nodes` 4-GPU nodes."""
    kube = FakeKube()
    ctx = OperatorContext(settings=Settings(**settings), kube=kube, metrics=OperatorMetrics(), clock=lambda: NOW,
                          carbon=FallbackSource([CleanLater()]))
    body = kube.put(JOB_PATH, {
        "apiVersion": "llmasos.io/v1alpha1", "kind": "LLMJob",
        "metadata": {"name": "j", "namespace": "ns", "uid": "u1", "generation": 1,
                     "creationTimestamp": "2026-03-06T11:00:00Z"},
        "spec": spec if spec is not None else make_raw(nodes=2, gpus=4),
        **({"status": status} if status is not None else {}),
    })
    indexes: dict[str, Any] = {
        "node_inventory": {f"n{i}": [NodeCapacity(f"n{i}", "a100", "nvidia-a100-80gb", "DE", 4)]
                           for i in range(nodes)},
        "child_jobs": {}, "child_rayjobs": {}, "child_services": {}, "power_reports": {}, "carbon_usage": {},
        "llmjob_bodies": {},
        "namespace_policies": {},
    }
    return ctx, kube, body, indexes


def observe(indexes: dict[str, Any], job: ObservedJob) -> None:
    indexes["child_jobs"].setdefault(("ns", "j"), []).append((job, ("u1",)))


def stored_status(kube: FakeKube) -> dict[str, Any]:
    return kube.objects[JOB_PATH].get("status") or {}


def condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == type_)


async def read(ctx: OperatorContext, body: dict[str, Any], indexes: dict[str, Any]) -> steps.Pass:
    return await steps.read(ctx, body, indexes)
