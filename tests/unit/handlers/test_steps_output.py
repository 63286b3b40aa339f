"""The reconcile steps that act and report (apply, conditions, account, render, write), then whole passes, against
an in-memory API server (fake_kube.py)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from llmasos.api.conditions import Conditions
from llmasos.api.energy_status import CarbonStatus, PowerStatus
from llmasos.api.phase import Phase
from llmasos.api.status import PlanStatus
from llmasos.carbon.fallback import FallbackSource
from llmasos.cluster.kube import EVENTS, JOBS, PODS, SERVICES
from llmasos.errors import KubeApiError
from llmasos.handlers import pass_output, steps
from llmasos.handlers.llmjob import reconcile
from llmasos.planning.lifecycle.decision import EnsureJob, EnsureService, ObservedJob
from llmasos.planning.timing.carbon_gate import Gate
from tests.unit.builders import make_raw
from tests.unit.handlers.steps_world import (
    JOB_PATH,
    LOG,
    SteadyHistory,
    condition,
    observe,
    read,
    run,
    stored_status,
    world,
)

# --- apply, conditions, account --------------------------------------------------------------------------------------


def test_apply_creates_the_service_then_the_job_and_a_second_pass_creates_nothing() -> None:
    ctx, kube, body, indexes = world()
    job = run(read(ctx, body, indexes))
    placement = steps.Placement(pool="a100", zone="DE")
    decision = steps.decide_pass(job, placement, steps.Timing(gate=Gate(hold=False, plan=None)))
    assert decision.actions[:2] == (EnsureService(), EnsureJob(0, False))
    run(steps.apply(ctx, job, placement, decision))
    assert kube.writes() == [("POST", SERVICES.path("ns")), ("POST", JOBS.path("ns"))]
    assert JOBS.path("ns", "j-a0") in kube.objects
    # The same pass redone (the status write failed): the creates find their objects, owned by this LLMJob.
    kube.objects[JOBS.path("ns", "j-a0")]["metadata"]["ownerReferences"] = [{"uid": "u1"}]
    kube.objects[SERVICES.path("ns", "j")]["metadata"]["ownerReferences"] = [{"uid": "u1"}]
    run(steps.apply(ctx, job, placement, decision))
    assert JOBS.path("ns", "j-a1") not in kube.objects
    assert len(kube.objects) == 3


def test_apply_does_not_adopt_a_namesakes_job() -> None:
    ctx, kube, body, indexes = world()
    kube.put(JOBS.path("ns", "j-a0"), {"metadata": {"name": "j-a0", "ownerReferences": [{"uid": "old"}]},
                                       "spec": {}})
    job = run(read(ctx, body, indexes))
    placement = steps.Placement(pool="a100", zone="DE")
    decision = steps.decide_pass(job, placement, steps.Timing(gate=Gate(hold=False, plan=None)))
    with pytest.raises(KubeApiError, match="belongs to another owner"):
        run(steps.apply(ctx, job, placement, decision))


def test_conditions_ask_the_pods_why_workers_are_not_ready_only_while_some_are_not() -> None:
    ctx, kube, body, indexes = world(status={"pool": "a100", "phase": "Pending"})
    observe(indexes, ObservedJob("j-a0", 0, active=2, ready=1, pool="a100"))
    kube.put(PODS.path("ns", "p0"), {"metadata": {"name": "p0", "labels": {"job-name": "j-a0"}},
                                     "status": {"phase": "Pending", "conditions": [
                                         {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                          "message": "0/2 nodes are available"}]}})
    job = run(read(ctx, body, indexes))
    placement = steps.Placement(pool="a100", zone="DE", placed_on="a100")
    timing = steps.Timing(gate=Gate(hold=False, plan=None))
    found = run(steps.conditions(ctx, job, placement, timing, steps.decide_pass(job, placement, timing)))
    assert [c.type for c in found] == ["Scheduled", "WorkersReady"]
    assert found[1].status == "False"
    assert kube.calls == [("GET", PODS.path("ns"))]


def test_exits_reads_the_failed_workers_exit_into_the_decision_and_its_condition() -> None:
    ctx, kube, body, indexes = world(status={"pool": "a100", "phase": "Running"},
                                     spec={**make_raw(), "backoffLimit": 0})
    observe(indexes, ObservedJob("j-a0", 0, pool="a100", failed_reason="BackoffLimitExceeded"))
    kube.put(PODS.path("ns", "j-a0-0"), {
        "metadata": {"name": "j-a0-0", "namespace": "ns", "labels": {"job-name": "j-a0"}},
        "status": {"containerStatuses": [{"state": {"terminated": {
            "exitCode": 137, "reason": "OOMKilled", "message": "loading shard 3",
            "finishedAt": "2026-03-06T11:59:00Z"}}}]}})
    job, exited = run(steps.exits(ctx, run(read(ctx, body, indexes))))
    assert exited is not None
    assert (exited.reason, exited.exit_code) == ("OOMKilled", 137)
    placement = steps.Placement(pool="a100", zone="DE", placed_on="a100")
    timing = steps.Timing(gate=Gate(hold=False, plan=None))
    decision = steps.decide_pass(job, placement, timing)
    assert decision.phase == Phase.FAILED
    assert "OOMKilled" in decision.message, "the Failed condition says what the worker said"
    found = run(steps.conditions(ctx, job, placement, timing, decision, exited))
    assert [c.type for c in found] == ["Scheduled", "WorkersReady"]
    assert found[1].reason == "OOMKilled"
    assert kube.calls == [("GET", PODS.path("ns"))], "one pod list; none for readiness of a failed Job"


def test_exits_costs_no_request_while_the_newest_job_has_not_failed() -> None:
    ctx, kube, body, indexes = world(status={"pool": "a100", "phase": "Running"})
    observe(indexes, ObservedJob("j-a0", 0, active=2, ready=2, pool="a100"))
    job, exited = run(steps.exits(ctx, run(read(ctx, body, indexes))))
    assert exited is None
    assert job.observed == [ObservedJob("j-a0", 0, active=2, ready=2, pool="a100")]
    assert kube.calls == []


def test_account_without_power_reports_keeps_the_previous_carbon_status() -> None:
    ctx, _, body, indexes = world()
    job = run(read(ctx, body, indexes))
    placement = steps.Placement(pool="a100", zone="DE")
    decision = steps.decide_pass(job, placement, steps.Timing(gate=Gate(hold=False, plan=None)))
    assert run(pass_output.account(ctx, job, placement, decision, LOG)) is None


# --- render, write ---------------------------------------------------------------------------------------------------


def test_render_of_a_deferred_job_says_when_it_starts_and_keeps_the_plan() -> None:
    ctx, _, body, indexes = world()
    job = run(read(ctx, body, indexes))
    plan = {"startAt": "2026-03-06T15:00:00Z", "latestStart": "2026-03-07T09:00:00Z"}
    timing = steps.Timing(gate=Gate(hold=True, plan=PlanStatus(plan)))
    placement = steps.Placement(pool="a100", zone="DE", fields={"pool": "a100", "zone": "DE", "gpuProduct": "x"})
    decision = steps.decide_pass(job, placement, timing)
    new = pass_output.render(job, placement, timing, decision, (), None)
    assert (new["phase"], new["scheduledStart"], new["plan"], new["pool"]) == \
        ("Deferred", "2026-03-06T15:00:00Z", plan, "a100")
    assert type(new["phase"]) is str, "status holds plain JSON values"
    assert "children" not in new


def test_the_zone_written_is_the_one_the_job_is_planned_and_accounted_in() -> None:
    """status.zone (the report's zone, the Zone column): spec.carbon.zone over the pool's label. A pool kept from an
    earlier pass gives its own zone once the override is removed, and a finished job's zone is mended to the one its
    carbon is valued in."""
    ctx, _, body, indexes = world(spec=make_raw(carbon={"zone": "SE"}))
    job = run(read(ctx, body, indexes))
    placement = run(steps.place(ctx, job, LOG))
    assert placement is not None
    assert (placement.zone, placement.fields["zone"]) == ("SE", "DE")
    timing = steps.Timing(gate=Gate(hold=False, plan=None))
    new = pass_output.render(job, placement, timing, steps.decide_pass(job, placement, timing), (), None)
    assert (new["pool"], new["zone"]) == ("a100", "SE")

    ctx, _, body, indexes = world(status={"phase": "Deferred", "pool": "a100", "zone": "SE"})
    job = run(read(ctx, body, indexes))
    placement = run(steps.place(ctx, job, LOG))
    assert placement is not None
    assert (placement.zone, placement.fields) == ("DE", {})
    new = pass_output.render(job, placement, timing, steps.decide_pass(job, placement, timing), (), None)
    assert new["zone"] == "DE"

    ctx, kube, body, indexes = world(spec=make_raw(carbon={"zone": "SE"}),
                                     status={"phase": "Succeeded", "pool": "a100", "zone": "DE"})
    run(reconcile(ctx, body, indexes, LOG))
    assert stored_status(kube)["zone"] == "SE"


def test_write_posts_events_only_after_the_status_write_and_a_stale_copy_gets_409() -> None:
    ctx, kube, body, indexes = world(status={"pool": "a100", "phase": "Pending"})
    observe(indexes, ObservedJob("j-a0", 0, active=2, ready=2, pool="a100"))
    job = run(read(ctx, body, indexes))
    placement = steps.Placement(pool="a100", zone="DE", placed_on="a100")
    timing = steps.Timing(gate=Gate(hold=False, plan=None))
    decision = steps.decide_pass(job, placement, timing)
    new = pass_output.render(job, placement, timing, decision, (), None)
    kube.put(JOB_PATH, {**kube.objects[JOB_PATH], "spec": {**body["spec"], "suspend": True}})  # changed meanwhile
    with pytest.raises(KubeApiError) as err:
        run(pass_output.write(ctx, job, placement, timing, decision, new))
    assert err.value.conflict
    assert ctx.events.pending == 0, "no Event for a status never written"
    assert kube.writes("POST") == []

    fresh = run(read(ctx, kube.objects[JOB_PATH], indexes))

    async def write_and_flush() -> None:
        new = pass_output.render(fresh, placement, timing, decision, (), None)
        await pass_output.write(ctx, fresh, placement, timing, decision, new)
        assert await ctx.events.flush(1)

    run(write_and_flush())
    assert stored_status(kube)["phase"] == "Running"
    assert kube.writes() == [("PATCH", JOB_PATH + "/status")] * 2 + [("POST", EVENTS.path("ns"))], \
        "the refused write, the written one, then its Event"


def test_write_of_a_first_pass_that_created_the_job_waits_for_the_next_pass() -> None:
    ctx, kube, body, indexes = world()
    job = run(read(ctx, body, indexes))
    placement = steps.Placement(pool="a100", zone="DE", fields={"pool": "a100", "zone": "DE", "gpuProduct": "x"})
    timing = steps.Timing(gate=Gate(hold=False, plan=None))
    decision = steps.decide_pass(job, placement, timing)
    new = pass_output.render(job, placement, timing, decision, (), None)
    run(pass_output.write(ctx, job, placement, timing, decision, new))
    assert "status" not in kube.objects[JOB_PATH]
    with_plan = steps.Timing(gate=Gate(hold=False, plan=PlanStatus({"startAt": "2026-03-06T12:00:00Z"})))
    run(pass_output.write(ctx, job, placement, with_plan, decision,
                          pass_output.render(job, placement, with_plan, decision, (), None)))
    assert stored_status(kube)["phase"] == "Pending", "a plan is decided before the start only: written now"


# --- the whole pass --------------------------------------------------------------------------------------------------


def test_a_pass_creates_the_children_then_the_next_pass_writes_running() -> None:
    ctx, kube, body, indexes = world()
    run(reconcile(ctx, body, indexes, LOG))
    assert JOBS.path("ns", "j-a0") in kube.objects
    assert SERVICES.path("ns", "j") in kube.objects
    assert "status" not in kube.objects[JOB_PATH], "the first write waits for the Job's own event"
    observe(indexes, ObservedJob("j-a0", 0, active=2, ready=2, pool="a100", start_time="2026-03-06T12:00:05Z"))
    indexes["child_services"] = {("ns", "j"): [("u1",)]}
    run(reconcile(ctx, kube.objects[JOB_PATH], indexes, LOG))
    status = stored_status(kube)
    assert (status["phase"], status["pool"], status["startTime"], status["children"]) == \
        ("Running", "a100", "2026-03-06T12:00:05Z", {"job": "j-a0", "service": "j"})
    writes = len(kube.writes())
    run(reconcile(ctx, kube.objects[JOB_PATH], indexes, LOG))
    assert len(kube.writes()) == writes, "a pass that changes nothing writes nothing"


def test_a_pass_over_a_finished_job_only_accounts_and_expires_it() -> None:
    spec = {**make_raw(), "ttlSecondsAfterFinished": 60}
    ctx, kube, body, indexes = world(spec=spec, status={"phase": "Succeeded", "completionTime": "2026-03-06T11:30:00Z"})
    run(reconcile(ctx, body, indexes, LOG))
    assert JOB_PATH not in kube.objects, "deleted: its TTL ran out"
    assert kube.writes() == [("DELETE", JOB_PATH)]


def test_the_workers_step_counts_become_status_progress_while_running_and_after_the_end() -> None:
    """The agents' last step counts are in status.progress for kubectl; the final count of a worker that ended
    (its termination message, reported after the job's end) still reaches a finished job's status."""
    report = {"node": "n0", "namespace": "ns", "name": "j-a0-0", "uid": "p1", "llmjob": "j", "gpus": ("GPU-1",),
              "policy": "none", "limit_w": None, "state": "Default", "energy_j": 10.0, "ended_at": None,
              "reported_at": "2026-03-06T11:59:00Z", "step": 40.0, "planned_steps": 100.0}
    ctx, kube, body, indexes = world(status={"phase": "Running", "pool": "a100", "zone": "DE", "attempt": 0,
                                             "startTime": "2026-03-06T11:30:00Z"})
    observe(indexes, ObservedJob("j-a0", 0, active=2, ready=2, pool="a100", start_time="2026-03-06T11:30:00Z"))
    indexes["power_reports"] = {("ns", "j"): [[report]]}
    run(reconcile(ctx, body, indexes, LOG))
    assert stored_status(kube)["progress"] == {"step": 40, "plannedSteps": 100, "percent": 40,
                                               "display": "40/100 (40%)"}

    finished = {"phase": "Succeeded", "completionTime": "2026-03-06T11:58:00Z", "progress": {
        "step": 90, "plannedSteps": 100, "percent": 90, "display": "90/100 (90%)"}}
    ctx, kube, body, indexes = world(status=finished)
    indexes["power_reports"] = {("ns", "j"): [[{**report, "step": 100.0, "state": "Ended"}]]}
    run(reconcile(ctx, body, indexes, LOG))
    assert stored_status(kube)["progress"]["display"] == "100/100 (100%)"
    assert stored_status(kube)["power"]["pods"][0]["step"] == 100.0


def test_a_running_pass_reads_carbon_power_and_conditions_once_and_renders_each_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    status = {"phase": "Running", "pool": "a100", "zone": "DE", "gpuProduct": "nvidia-a100-80gb", "attempt": 0,
              "startTime": "2026-03-06T11:30:00Z",
              "conditions": [{"type": "Scheduled", "status": "True", "reason": "PoolSelected",
                              "message": "node pool a100", "lastTransitionTime": "2026-03-06T11:00:00Z",
                              "observedGeneration": 1}],
              # 0.5 kWh accounted up to 11:50, written ten minutes ago
              "carbon": {"energyKWh": 0.5, "gCO2e": 250.0, "updatedAt": "2026-03-06T11:50:00Z",
                         "ledger": {"intervals": [["2026-03-06T11:30:00Z", "2026-03-06T11:50:00Z", 1.8e6]],
                                    "readings": {"j-a0-0": ["2026-03-06T11:50:00Z", 1.8e6]}}}}
    ctx, kube, body, indexes = world(status=status)
    observe(indexes, ObservedJob("j-a0", 0, active=2, ready=2, pool="a100", start_time="2026-03-06T11:30:00Z"))
    indexes["child_services"] = {("ns", "j"): [("u1",)]}
    report = {"node": "n0", "namespace": "ns", "name": "j-a0-0", "uid": "p1", "llmjob": "j", "gpus": ("GPU-1",),
              "policy": "none", "limit_w": None, "state": "Default", "energy_j": 3.6e6, "ended_at": None,
              "reported_at": "2026-03-06T11:59:00Z"}
    indexes["power_reports"] = {("ns", "j"): [[report]]}
    calls: dict[str, int] = {}

    ctx = replace(ctx, carbon=FallbackSource([SteadyHistory()]))

    def count(cls: type, name: str, what: str, of: Any = None) -> None:
        """Count calls of cls.name (a reading: only of the section `of`, the very object read from the API)."""
        original = cls.__dict__[name]
        func = original.__func__ if isinstance(original, classmethod) else original

        def spy(*args: Any) -> Any:
            if of is None or args[1] is of:
                calls[what] = calls.get(what, 0) + 1
            return func(*args)

        monkeypatch.setattr(cls, name, classmethod(spy) if isinstance(original, classmethod) else spy)

    # The pass reads each section of the LLMJob's status once (the conditions it writes are read back once more,
    # for the replay Event: not counted) and renders each once.
    for cls, what in ((CarbonStatus, "carbon"), (PowerStatus, "power"), (Conditions, "conditions")):
        count(cls, "read", f"{what} read", body["status"].get(what))
        count(cls, "to_status", f"{what} rendered")
    run(reconcile(ctx, body, indexes, LOG))
    written = stored_status(kube)
    assert calls == {"carbon read": 1, "power read": 1, "conditions read": 1, "carbon rendered": 1,
                     "power rendered": 1, "conditions rendered": 1}
    assert (written["carbon"]["energyKWh"], written["carbon"]["display"]["energy"]) == (1.0, "1.0 kWh")
    assert written["carbon"]["updatedAt"] == "2026-03-06T12:00:00Z"
    assert written["power"]["pods"][0]["energyJoules"] == 3.6e6
    assert condition(written, "Scheduled")["lastTransitionTime"] == "2026-03-06T11:00:00Z", "no flip, kept"


def test_passes_that_change_nothing_write_nothing_between_runs_and_after_the_end() -> None:
    """A running interruptible job's plan has fields set to None (no suspension yet), and a finished job's progress
    loses its estimate: both used to read as a change on every pass, and the estimate stayed in status. (The
    Service is created again, idempotently, since this world's index does not list it.)"""
    spec = make_raw(carbon={"policy": "deadline", "maxDelay": "3h", "expectedDuration": "1h", "interruptible": True})
    ctx, kube, body, indexes = world(spec=spec)
    run(reconcile(ctx, body, indexes, LOG))
    observe(indexes, ObservedJob("j-a0", 0, active=2, ready=2, pool="a100", start_time="2026-03-06T12:00:05Z"))
    reading = {"node": "n0", "namespace": "ns", "name": "j-a0-0", "uid": "p1", "llmjob": "j", "gpus": ("GPU-1",),
               "policy": "none", "limit_w": None, "state": "Default", "energy_j": 10.0, "ended_at": None,
               "reported_at": "2026-03-06T12:00:00Z", "step": 300, "planned_steps": 1000, "remaining_s": 1800}
    indexes["power_reports"] = {("ns", "j"): [[reading]]}
    run(reconcile(ctx, kube.objects[JOB_PATH], indexes, LOG))
    assert stored_status(kube)["phase"] == "Running"
    assert stored_status(kube)["progress"]["remainingSeconds"] == 1800
    writes = len(kube.writes("PATCH"))
    run(reconcile(ctx, kube.objects[JOB_PATH], indexes, LOG))
    assert len(kube.writes("PATCH")) == writes, "running, nothing changed"

    indexes["child_jobs"] = {}
    observe(indexes, ObservedJob("j-a0", 0, succeeded=2, complete=True, pool="a100",
                                 start_time="2026-03-06T12:00:05Z", completion_time="2026-03-06T12:50:00Z"))
    indexes["power_reports"] = {("ns", "j"): [[{**reading, "step": 1000, "remaining_s": 0,
                                                "reported_at": "2026-03-06T12:50:00Z"}]]}
    run(reconcile(ctx, kube.objects[JOB_PATH], indexes, LOG))
    progress = stored_status(kube)["progress"]
    assert progress == {"step": 1000, "plannedSteps": 1000, "percent": 100, "display": "1000/1000 (100%)"}
    writes = len(kube.writes("PATCH"))
    run(reconcile(ctx, kube.objects[JOB_PATH], indexes, LOG))
    assert len(kube.writes("PATCH")) == writes, "finished, nothing changed"
