"""Passes due by the clock: each pass sets its job's next instant, the resync loop takes the due ones once."""

from __future__ import annotations

from datetime import timedelta

from llmasos.handlers.llmjob import reconcile
from llmasos.handlers.wakeups import Wakeups
from llmasos.planning.lifecycle.decision import ObservedJob
from tests.unit.builders import make_raw
from tests.unit.handlers.steps_world import JOB_PATH, LOG, NOW, observe, run, stored_status, world


def test_due_jobs_are_taken_once_and_a_cleared_one_never() -> None:
    wakeups = Wakeups()
    wakeups.set("ns", "a", NOW + timedelta(seconds=5))
    wakeups.set("ns", "b", NOW + timedelta(seconds=1))
    wakeups.set("ns", "c", NOW)
    wakeups.set("ns", "c", None)
    assert wakeups.take_due(NOW) == []
    assert wakeups.take_due(NOW + timedelta(seconds=5)) == [("ns", "a"), ("ns", "b")]
    assert wakeups.take_due(NOW + timedelta(hours=1)) == []


def test_a_job_asked_for_soon_is_due_at_once_even_if_its_own_pass_sets_a_later_instant() -> None:
    wakeups = Wakeups()
    wakeups.soon("ns/moved")
    wakeups.set("ns", "moved", NOW + timedelta(hours=1))  # its pass, already under way, ends after the request
    wakeups.set("ns", "other", NOW + timedelta(hours=1))
    assert wakeups.take_due(NOW) == [("ns", "moved")]
    assert wakeups.take_due(NOW) == [], "once"
    assert wakeups.take_due(NOW + timedelta(hours=1)) == [("ns", "other")], "the pass it got sets the next instant"


def test_a_deferred_pass_wakes_at_its_start_and_a_finished_one_not_at_all() -> None:
    spec = make_raw(carbon={"policy": "deadline", "maxDelay": "20h", "expectedDuration": "1h"})
    ctx, kube, body, indexes = world(spec=spec)
    run(reconcile(ctx, body, indexes, LOG))
    status = stored_status(kube)
    assert status["phase"] == "Deferred"
    start = status["scheduledStart"]
    assert ctx.wakeups.take_due(NOW) == []
    due = NOW.fromisoformat(start.replace("Z", "+00:00"))
    assert ctx.wakeups.take_due(due) == [("ns", "j")]

    observe(indexes, ObservedJob("j-a0", 0, succeeded=2, complete=True, pool="a100",
                                 start_time="2026-03-06T12:00:05Z", completion_time="2026-03-06T13:00:00Z"))
    ctx.wakeups.set("ns", "j", due)
    run(reconcile(ctx, kube.objects[JOB_PATH], indexes, LOG))
    assert stored_status(kube)["phase"] == "Succeeded"
    run(reconcile(ctx, kube.objects[JOB_PATH], indexes, LOG))  # a pass over the finished job
    assert ctx.wakeups.take_due(due + timedelta(days=2)) == []


def test_a_pass_whose_pool_plan_moves_other_deferred_jobs_has_their_passes_run_soon() -> None:
    # The 8-GPU pool's clean hours start at 15:00 (steps_world.CleanLater); three other 4-GPU jobs hold that start
    # in their status, so the pool plan that makes room for ns/j moves at least one of them.
    carbon = {"policy": "deadline", "deadline": "2026-03-06T22:00:00Z", "expectedDuration": "1h"}
    spec = make_raw(nodes=1, gpus=4, carbon=carbon, maxRuntime="1h")
    ctx, kube, body, indexes = world(spec=spec)
    others = {("ns", f"k{i}"): [{
        "metadata": {"namespace": "ns", "name": f"k{i}", "uid": f"k{i}", "resourceVersion": "1",
                     "creationTimestamp": "2026-03-06T10:00:00Z"},
        "spec": spec, "status": {"phase": "Deferred", "pool": "a100", "plan": {"startAt": "2026-03-06T15:00:00Z"}},
    }] for i in range(3)}
    indexes["llmjob_bodies"] = others
    run(reconcile(ctx, body, indexes, LOG))
    assert stored_status(kube)["phase"] == "Deferred"
    due = ctx.wakeups.take_due(NOW)
    assert due, "four 4-GPU jobs cannot all start at 15:00 on 8 GPUs"
    assert set(due) <= set(others), "only the others: the asking pass wrote its own plan"

    ctx.pool_plans = type(ctx.pool_plans)()
    indexes["llmjob_bodies"] = {("ns", "k0"): others[("ns", "k0")]}
    run(reconcile(ctx, body, indexes, LOG))
    assert ctx.wakeups.take_due(NOW) == [], "two jobs fit the clean hour side by side: nobody moves"
