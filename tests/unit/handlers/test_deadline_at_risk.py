"""A job whose run time does not fit before its deadline is told so (DeadlineAtRisk and one Warning Event), also
on an empty pool where no pool plan is made; it is never silently late. Whole passes on the fake API server."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from llmasos.api.clock import parse_instant
from llmasos.cluster.kube import EVENTS
from llmasos.handlers.llmjob import reconcile
from llmasos.planning.lifecycle.decision import ObservedJob
from llmasos.planning.timing.carbon_window import Plan, Segment
from llmasos.planning.timing.fleet_status import lone_deadline_condition
from tests.unit.builders import make_raw
from tests.unit.handlers.steps_world import JOB_PATH, LOG, NOW, condition, observe, run, stored_status, world


def reconcile_and_flush(ctx: Any, body: dict[str, Any], indexes: dict[str, Any]) -> None:
    """One pass, and its queued Events posted (the recorder's queue lives in the pass's event loop)."""
    async def both() -> None:
        await reconcile(ctx, body, indexes, LOG)
        assert await ctx.events.flush(1)

    run(both())


def events(kube: Any) -> list[dict[str, Any]]:
    return [o for path, o in kube.objects.items() if path.startswith(EVENTS.path("ns"))]


def deadline_job(max_delay: str) -> dict[str, Any]:
    # created 11:00, planned at 12:00 (NOW): a 1 h run with the default 15 min safety margin
    return make_raw(carbon={"policy": "deadline", "maxDelay": max_delay, "expectedDuration": "1h"})


def test_a_deadline_the_run_cannot_meet_is_a_condition_and_one_warning_on_an_empty_pool() -> None:
    ctx, kube, body, indexes = world(spec=deadline_job("90m"))  # due 12:30: too close for 1 h from 12:00
    reconcile_and_flush(ctx, body, indexes)
    risk = condition(stored_status(kube), "DeadlineAtRisk")
    assert (risk["status"], risk["reason"]) == ("True", "DeadlineTooClose")
    assert "cannot finish by the deadline even when started now" in risk["message"]
    assert "earliest end 2026-03-06T13:00:00Z" in risk["message"]
    warned = [e for e in events(kube) if e["reason"] == "DeadlineTooClose"]
    assert [(e["type"], e["message"]) for e in warned] == [("Warning", risk["message"])]
    assert stored_status(kube)["plan"]["startAt"] == "2026-03-06T12:00:00Z", "started at once, as before"

    observe(indexes, ObservedJob("j-a0", 0, active=2, ready=2, pool="a100", start_time="2026-03-06T12:00:05Z"))
    reconcile_and_flush(ctx, kube.objects[JOB_PATH], indexes)
    assert stored_status(kube)["phase"] == "Running"
    assert condition(stored_status(kube), "DeadlineAtRisk")["status"] == "True", "kept while it runs"
    assert len([e for e in events(kube) if e["reason"] == "DeadlineTooClose"]) == 1, "one Event, not one a pass"


def test_a_deadline_that_fits_says_nothing_on_an_empty_pool() -> None:
    ctx, kube, body, indexes = world(spec=deadline_job("6h"))
    reconcile_and_flush(ctx, body, indexes)
    assert "DeadlineAtRisk" not in {c["type"] for c in stored_status(kube)["conditions"]}
    assert not [e for e in events(kube) if e["type"] == "Warning" and "Deadline" in e["reason"]]


def test_the_lone_condition_needs_an_infeasible_plan() -> None:
    plan = Plan("deadline", (Segment(NOW, NOW.replace(hour=13)),), NOW, NOW, None, None, feasible=False,
                reason="cannot finish by the deadline even when started now (latest start x)")
    found = lone_deadline_condition(plan)
    assert found is not None
    assert (found.type, found.status, found.reason) == ("DeadlineAtRisk", "True", "DeadlineTooClose")
    assert found.message.endswith("; earliest end 2026-03-06T13:00:00Z")
    assert lone_deadline_condition(replace(plan, feasible=True)) is None


def finish(ctx: Any, kube: Any, indexes: dict[str, Any], at: str) -> dict[str, Any]:
    """The job's Job completes at `at`; one pass; the DeadlineAtRisk condition written."""
    indexes["child_jobs"] = {}
    observe(indexes, ObservedJob("j-a0", 0, succeeded=2, complete=True, pool="a100",
                                 start_time="2026-03-06T12:00:05Z", completion_time=at))
    reconcile_and_flush(ctx, kube.objects[JOB_PATH], indexes)
    assert stored_status(kube)["phase"] == "Succeeded"
    return condition(stored_status(kube), "DeadlineAtRisk")


def started_at_risk() -> tuple[Any, Any, dict[str, Any]]:
    ctx, kube, body, indexes = world(spec=deadline_job("90m"))  # due 12:30
    reconcile_and_flush(ctx, body, indexes)
    observe(indexes, ObservedJob("j-a0", 0, active=2, ready=2, pool="a100", start_time="2026-03-06T12:00:05Z"))
    reconcile_and_flush(ctx, kube.objects[JOB_PATH], indexes)
    assert condition(stored_status(kube), "DeadlineAtRisk")["status"] == "True"
    return ctx, kube, indexes


def test_a_job_at_risk_that_finishes_late_says_how_late() -> None:
    ctx, kube, indexes = started_at_risk()
    risk = finish(ctx, kube, indexes, "2026-03-06T12:40:00Z")
    assert (risk["status"], risk["reason"]) == ("True", "DeadlineMissed")
    assert risk["message"] == "finished at 2026-03-06T12:40:00Z, 600 s after its deadline 2026-03-06T12:30:00Z"


def test_a_job_at_risk_that_finishes_in_time_after_all_is_no_longer_at_risk() -> None:
    ctx, kube, indexes = started_at_risk()
    risk = finish(ctx, kube, indexes, "2026-03-06T12:20:00Z")  # ran shorter than its expectedDuration
    assert (risk["status"], risk["reason"]) == ("False", "DeadlineMet")
    assert risk["message"] == "finished at 2026-03-06T12:20:00Z, by its deadline 2026-03-06T12:30:00Z"


def started_in_time() -> tuple[Any, Any, dict[str, Any]]:
    """A job due 14:00 (planned 1 h runs fit), started at 12:00 and never at risk."""
    ctx, kube, body, indexes = world(spec=deadline_job("3h"))
    reconcile_and_flush(ctx, body, indexes)
    observe(indexes, ObservedJob("j-a0", 0, active=2, ready=2, pool="a100", start_time="2026-03-06T12:00:05Z"))
    reconcile_and_flush(ctx, kube.objects[JOB_PATH], indexes)
    assert stored_status(kube)["phase"] == "Running"
    assert "DeadlineAtRisk" not in {c["type"] for c in stored_status(kube)["conditions"]}
    return ctx, kube, indexes


def test_a_job_still_running_at_its_deadline_is_told_once_with_a_warning() -> None:
    ctx, kube, indexes = started_in_time()
    ctx.clock = lambda: NOW.replace(hour=13, minute=59)
    reconcile_and_flush(ctx, kube.objects[JOB_PATH], indexes)
    assert "DeadlineAtRisk" not in {c["type"] for c in stored_status(kube)["conditions"]}, "not yet due"
    for minute in (1, 2):  # it overran its expectedDuration past the deadline; two resync passes
        ctx.clock = lambda m=minute: NOW.replace(hour=14, minute=m)
        reconcile_and_flush(ctx, kube.objects[JOB_PATH], indexes)
        risk = condition(stored_status(kube), "DeadlineAtRisk")
        assert (risk["status"], risk["reason"]) == ("True", "DeadlineMissed")
        assert risk["message"] == "not finished by its deadline 2026-03-06T14:00:00Z"
    warned = [e for e in events(kube) if e["reason"] == "DeadlineMissed"]
    assert [(e["type"], e["message"]) for e in warned] == [("Warning", risk["message"])], "one Event, not one a pass"
    counted = ctx.metrics.registry.get_sample_value("llmasos_llmjob_deadline_warnings_total",
                                                    {"reason": "DeadlineMissed"})
    assert counted == 1, "the alert's counter: one per Warning"
    risk = finish(ctx, kube, indexes, "2026-03-06T14:05:00Z")
    assert (risk["status"], risk["reason"]) == ("True", "DeadlineMissed")
    assert risk["message"] == "finished at 2026-03-06T14:05:00Z, 300 s after its deadline 2026-03-06T14:00:00Z"


def test_a_job_never_at_risk_that_succeeds_late_says_how_late_and_in_time_says_nothing() -> None:
    ctx, kube, indexes = started_in_time()
    risk = finish(ctx, kube, indexes, "2026-03-06T14:10:00Z")  # one pass, after it finished 10 min late
    assert (risk["status"], risk["reason"]) == ("True", "DeadlineMissed")
    assert "600 s after its deadline" in risk["message"]

    ctx, kube, indexes = started_in_time()
    indexes["child_jobs"] = {}
    observe(indexes, ObservedJob("j-a0", 0, succeeded=2, complete=True, pool="a100",
                                 start_time="2026-03-06T12:00:05Z", completion_time="2026-03-06T13:00:00Z"))
    reconcile_and_flush(ctx, kube.objects[JOB_PATH], indexes)
    assert stored_status(kube)["phase"] == "Succeeded"
    assert "DeadlineAtRisk" not in {c["type"] for c in stored_status(kube)["conditions"]}, "no condition gained"


def test_a_job_at_risk_whose_deadline_passes_is_warned_again_with_the_new_reason() -> None:
    ctx, kube, indexes = started_at_risk()  # DeadlineTooClose, due 12:30
    ctx.clock = lambda: NOW.replace(minute=31)
    reconcile_and_flush(ctx, kube.objects[JOB_PATH], indexes)
    assert condition(stored_status(kube), "DeadlineAtRisk")["reason"] == "DeadlineMissed"
    assert [e["reason"] for e in events(kube) if e["type"] == "Warning"] == ["DeadlineTooClose", "DeadlineMissed"]


def report(step: float, remaining_s: float, at: str, planned: float = 1000.0) -> dict[str, Any]:
    """One node report entry of the job's rank-0 pod, as indexes.py keeps it."""
    return {"node": "n0", "namespace": "ns", "name": "j-a0-0", "uid": "p1", "llmjob": "j", "gpus": ("GPU-1",),
            "policy": "none", "limit_w": None, "state": "Default", "energy_j": 10.0, "ended_at": None,
            "reported_at": at, "step": step, "planned_steps": planned, "remaining_s": remaining_s}


def test_a_running_job_whose_workers_are_too_slow_is_told_before_its_deadline_and_again_once_on_pace() -> None:
    ctx, kube, indexes = started_in_time()  # due 14:00
    ctx.clock = lambda: NOW.replace(minute=30)
    # At 12:30 the workers are at step 200 of 1000 and need 2 h more at their pace: 14:30, 30 min late.
    indexes["power_reports"] = {("ns", "j"): [[report(200, 7200, "2026-03-06T12:30:00Z")]]}
    reconcile_and_flush(ctx, kube.objects[JOB_PATH], indexes)
    status = stored_status(kube)
    assert status["progress"] == {"step": 200, "plannedSteps": 1000, "percent": 20, "display": "200/1000 (20%)",
                                  "remainingSeconds": 7200, "estimatedEnd": "2026-03-06T14:30:00Z"}
    risk = condition(status, "DeadlineAtRisk")
    assert (risk["status"], risk["reason"]) == ("True", "ProjectedLate")
    assert risk["message"] == ("at its workers' recent pace it finishes around 2026-03-06T14:30:00Z, 1800 s after "
                               "its deadline 2026-03-06T14:00:00Z")
    # Faster later (other jobs left the node): 13:40, but within a minute of the deadline it stays projected late.
    ctx.clock = lambda: NOW.replace(minute=40)
    indexes["power_reports"] = {("ns", "j"): [[report(600, 4770, "2026-03-06T12:40:00Z")]]}
    reconcile_and_flush(ctx, kube.objects[JOB_PATH], indexes)
    risk = condition(stored_status(kube), "DeadlineAtRisk")
    assert (risk["status"], risk["reason"]) == ("True", "ProjectedLate")
    assert "close to its deadline" in risk["message"]
    ctx.clock = lambda: NOW.replace(minute=50)
    indexes["power_reports"] = {("ns", "j"): [[report(800, 1800, "2026-03-06T12:50:00Z")]]}
    reconcile_and_flush(ctx, kube.objects[JOB_PATH], indexes)
    risk = condition(stored_status(kube), "DeadlineAtRisk")
    assert (risk["status"], risk["reason"]) == ("False", "DeadlineOnTrack")
    assert risk["message"] == ("at its workers' recent pace it finishes around 2026-03-06T13:20:00Z, by its "
                               "deadline 2026-03-06T14:00:00Z")
    assert [e["reason"] for e in events(kube) if e["type"] == "Warning"] == ["ProjectedLate"], "one Warning"
    counted = ctx.metrics.registry.get_sample_value("llmasos_llmjob_deadline_warnings_total",
                                                    {"reason": "ProjectedLate"})
    assert counted == 1


def test_a_job_on_pace_gains_no_condition() -> None:
    ctx, kube, indexes = started_in_time()
    ctx.clock = lambda: NOW.replace(minute=30)
    indexes["power_reports"] = {("ns", "j"): [[report(500, 1800, "2026-03-06T12:30:00Z")]]}  # ends 13:00
    reconcile_and_flush(ctx, kube.objects[JOB_PATH], indexes)
    assert stored_status(kube)["progress"]["estimatedEnd"] == "2026-03-06T13:00:00Z"
    assert "DeadlineAtRisk" not in {c["type"] for c in stored_status(kube)["conditions"]}


def planned_left(status: dict[str, Any], now: datetime) -> timedelta:
    return sum((max(parse_instant(s["end"], "end") - max(parse_instant(s["start"], "start"), now), timedelta(0))
                for s in status["plan"]["segments"]), timedelta(0))


def test_an_interruptible_job_is_planned_on_its_workers_pace_and_told_when_even_running_on_is_late() -> None:
    """expectedDuration 1 h, due 14:00 (15 min safety margin). At 12:30 the workers need 1 h more, not the 30 min
    the expected duration leaves: the time owed is planned again on their pace. At 12:40 they need 2 h: even
    running without a pause it ends after the deadline, so it is projected late and runs on."""
    spec = make_raw(carbon={"policy": "deadline", "maxDelay": "3h", "expectedDuration": "1h", "interruptible": True})
    ctx, kube, body, indexes = world(spec=spec)
    reconcile_and_flush(ctx, body, indexes)
    observe(indexes, ObservedJob("j-a0", 0, active=2, ready=2, pool="a100", start_time="2026-03-06T12:00:05Z"))
    reconcile_and_flush(ctx, kube.objects[JOB_PATH], indexes)
    assert stored_status(kube)["phase"] == "Running"
    now = NOW.replace(minute=30)
    ctx.clock = lambda: now
    assert planned_left(stored_status(kube), now) <= timedelta(minutes=30)
    indexes["power_reports"] = {("ns", "j"): [[report(300, 3600, "2026-03-06T12:30:00Z")]]}
    reconcile_and_flush(ctx, kube.objects[JOB_PATH], indexes)
    status = stored_status(kube)
    assert planned_left(status, now) == timedelta(hours=1), status["plan"]
    assert "DeadlineAtRisk" not in {c["type"] for c in status["conditions"]}, "ends 13:30 at the latest"

    ctx.clock = lambda: NOW.replace(minute=40)
    indexes["power_reports"] = {("ns", "j"): [[report(350, 7200, "2026-03-06T12:40:00Z")]]}
    reconcile_and_flush(ctx, kube.objects[JOB_PATH], indexes)
    status = stored_status(kube)
    assert status["phase"] == "Running"
    assert status["plan"]["segments"][0]["start"] == "2026-03-06T12:40:00Z", "too late to pause: runs on"
    risk = condition(status, "DeadlineAtRisk")
    assert (risk["status"], risk["reason"]) == ("True", "ProjectedLate")
    assert risk["message"] == ("at its workers' recent pace and without a pause it finishes around "
                               "2026-03-06T14:40:00Z, 2400 s after its deadline 2026-03-06T14:00:00Z")
    assert [e["reason"] for e in events(kube) if e["type"] == "Warning"] == ["ProjectedLate"]
