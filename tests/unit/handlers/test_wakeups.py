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
