"""The served-time ledger dates a run from the pods, not from the pass that sees it (handlers/gate.observe_run).

In one fresh-clone `make test` run, an interruptible job whose gang had been Ready for about 27 s was found to have
served 1.7 s at its first suspension: the pass that opened its run came about 25 s late (the Job's status.ready lags
the pods when the Job controller is busy; a watch may reconnect; the operator may be starved of CPU). These tests
fail when the run is dated from the pass.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from llmasos.cluster.kube import PODS
from llmasos.handlers import steps
from llmasos.handlers.context import OperatorContext
from llmasos.handlers.gate import observe_run
from llmasos.metrics import OperatorMetrics
from llmasos.planning.lifecycle.decision import ObservedJob
from llmasos.planning.timing.served import RunLedger, RunState, gang_ready_since
from llmasos.settings import Settings
from tests.unit.builders import make_raw
from tests.unit.handlers.fake_kube import FakeKube
from tests.unit.handlers.steps_world import observe
from tests.unit.handlers.steps_world import world as pass_world

T = TypeVar("T")
NOW = datetime(2026, 3, 6, 12, 0, tzinfo=UTC)
S = timedelta(seconds=1)


def run(awaitable: Awaitable[T]) -> T:
    async def main() -> T:
        return await awaitable

    return asyncio.run(main())


def pod(name: str, ready_at: datetime | None, job: str = "j-a0", deleting: bool = False) -> dict[str, Any]:
    conditions = [{"type": "Ready", "status": "True" if ready_at else "False",
                   **({"lastTransitionTime": ready_at.strftime("%Y-%m-%dT%H:%M:%SZ")} if ready_at else {})}]
    meta: dict[str, Any] = {"name": name, "namespace": "ns", "labels": {"job-name": job}}
    if deleting:
        meta["deletionTimestamp"] = "2026-03-06T11:59:59Z"
    return {"metadata": meta, "status": {"phase": "Running", "conditions": conditions}}


def world(*pods: dict[str, Any]) -> tuple[OperatorContext, FakeKube]:
    kube = FakeKube()
    for p in pods:
        kube.put(PODS.path("ns", p["metadata"]["name"]), p)
    ctx = OperatorContext(settings=Settings(), kube=kube, metrics=OperatorMetrics(), clock=lambda: NOW)
    return ctx, kube


def test_the_gang_is_ready_when_its_last_worker_became_ready() -> None:
    pods = [pod("a", NOW - 30 * S), pod("b", NOW - 27 * S), pod("c", None), pod("d", NOW - 5 * S, deleting=True)]
    assert gang_ready_since(pods, 2) == NOW - 27 * S
    assert gang_ready_since(pods, 3) is None, "a worker not Ready, and one being deleted, do not count"
    assert gang_ready_since([pod("a", NOW - 9 * S), pod("b", NOW - 30 * S), pod("e", NOW - 2 * S)], 2) == NOW - 9 * S
    assert gang_ready_since([], 1) is None


def test_a_late_pass_opens_the_run_when_the_gang_became_ready_never_before_the_last_suspension() -> None:
    late = RunLedger().observe(RunState(True, False, ready_since=NOW - 25 * S), NOW)
    assert late.running_since == NOW - 25 * S
    assert late.close(NOW + 2 * S).served == 27 * S, "not the 2 s since the late pass"
    resumed = late.close(NOW).observe(RunState(True, False, ready_since=NOW - 60 * S), NOW + 10 * S)
    assert resumed.running_since == NOW, "old pods' Ready time is before the suspension: the run opens no earlier"
    future = RunLedger().observe(RunState(True, False, ready_since=NOW + 5 * S), NOW)
    assert future.running_since == NOW, "a clock skewed ahead never dates a run after the pass"


def test_the_pods_open_the_run_before_the_jobs_ready_count_catches_up() -> None:
    ctx, _ = world(pod("j-a0-0", NOW - 26 * S), pod("j-a0-1", NOW - 25 * S), pod("other", NOW, job="x-a0"))
    lagging = ObservedJob("j-a0", 0, active=2, ready=0)
    state = run(observe_run(ctx, "ns", [lagging], 2, run_open=False))
    assert (state.running, state.ready_since) == (True, NOW - 25 * S)
    assert RunLedger().observe(state, NOW).running_since == NOW - 25 * S


def test_pods_are_listed_only_while_the_run_is_not_open_or_the_job_says_the_gang_is_not_ready() -> None:
    ctx, kube = world(pod("j-a0-0", NOW - 5 * S), pod("j-a0-1", NOW - 4 * S))
    ready = ObservedJob("j-a0", 0, active=2, ready=2)
    assert run(observe_run(ctx, "ns", [ready], 2, run_open=True)).running
    assert run(observe_run(ctx, "ns", [ObservedJob("j-a0", 0, suspended=True)], 2, run_open=False)) == \
        RunState(True, True, ready=False)
    assert kube.calls == [], "an open run on a ready Job, or a suspended Job: no list"
    still = run(observe_run(ctx, "ns", [ObservedJob("j-a0", 0, active=2, ready=1)], 2, run_open=True))
    assert still.running, "an open run is not closed while the pods are all Ready and the Job lags"
    assert kube.calls == [("GET", PODS.path("ns"))]
    gone = world(pod("j-a0-0", NOW - 5 * S), pod("j-a0-1", None))[0]
    assert not run(observe_run(gone, "ns", [ObservedJob("j-a0", 0, active=2, ready=1)], 2, run_open=True)).running


def test_a_pass_lists_the_pods_once_for_the_ledger_and_for_workers_ready() -> None:
    """An interruptible job whose gang is not ready yet: the served-time ledger and WorkersReady both need the
    attempt's pods in the same pass, and one list answers both (handlers/pod_lists.py); it was two."""
    spec = make_raw(nodes=2, gpus=4, carbon={"policy": "deadline", "maxDelay": "24h", "expectedDuration": "2h",
                                             "interruptible": True})
    ctx, kube, body, indexes = pass_world(spec=spec, status={"pool": "a100", "phase": "Running",
                                                             "startTime": "2026-03-06T11:50:00Z"})
    observe(indexes, ObservedJob("j-a0", 0, active=2, ready=1, pool="a100"))
    waiting = pod("b", None)
    waiting["status"] = {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
                                                            "reason": "Unschedulable", "message": "0/2 nodes"}]}
    for p in (pod("a", NOW - 30 * S), waiting):
        kube.put(PODS.path("ns", p["metadata"]["name"]), p)
    job = run(steps.read(ctx, body, indexes))
    placement = steps.Placement(pool="a100", zone="DE", placed_on="a100")
    timing = run(steps.gate(ctx, job, placement, None))
    found = run(steps.conditions(ctx, job, placement, timing, steps.decide_pass(job, placement, timing)))
    assert next(c for c in found if c.type == "WorkersReady").status == "False"
    assert [c for c in kube.calls if c == ("GET", PODS.path("ns"))] == [("GET", PODS.path("ns"))]
