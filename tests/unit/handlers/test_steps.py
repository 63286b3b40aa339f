"""Each step of a reconcile pass (handlers/steps.py) against an in-memory API server (fake_kube.py), then the pass."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import kopf
import pytest

from llmasos.api.conditions import Conditions
from llmasos.api.energy_status import CarbonStatus, PowerStatus
from llmasos.api.phase import Phase
from llmasos.api.status import PlanStatus
from llmasos.carbon.base import Location
from llmasos.carbon.fallback import FallbackSource
from llmasos.cluster.kube import EVENTS, JOBS, LLMJOBS, PODS, SERVICES
from llmasos.errors import KubeApiError
from llmasos.handlers import steps
from llmasos.handlers.context import OperatorContext
from llmasos.handlers.llmjob import reconcile
from llmasos.metrics import OperatorMetrics
from llmasos.planning.accounting.budget import Budget
from llmasos.planning.lifecycle.decision import EnsureJob, EnsureService, ObservedJob
from llmasos.planning.placement.feasible import NodeCapacity
from llmasos.planning.timing.carbon_gate import Gate, Hold
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


# --- read, admit ---------------------------------------------------------------------------------------------------


def test_read_parses_the_spec_once_and_applies_the_default_power_policy() -> None:
    ctx, kube, body, indexes = world()
    job = run(read(ctx, body, indexes))
    assert job.spec.power == ctx.settings.default_power()
    assert (job.name, job.namespace, job.uid, job.generation, job.previous_phase, job.started) == \
        ("j", "ns", "u1", 1, "", False)
    assert kube.calls == [], "reading costs no request"


def test_read_of_an_invalid_spec_writes_failed_and_raises_a_permanent_error() -> None:
    ctx, kube, body, indexes = world(spec={**make_raw(), "parallelism": {"strategy": "nope", "nodes": 1}})
    with pytest.raises(kopf.PermanentError, match=r"invalid spec: spec\.parallelism"):
        run(read(ctx, body, indexes))
    status = stored_status(kube)
    assert status["phase"] == "Failed"
    assert condition(status, "Scheduled")["reason"] == "InvalidSpec"
    assert ("POST", EVENTS.path("ns")) in kube.calls, "its Event goes at once (a job's end)"


def test_read_of_a_deadline_before_the_jobs_creation_fails_it_as_invalid() -> None:
    carbon = {"policy": "deadline", "deadline": "2026-03-06T10:00:00Z", "expectedDuration": "1h"}
    ctx, kube, body, indexes = world(spec={**make_raw(), "carbon": carbon})  # created 11:00
    with pytest.raises(kopf.PermanentError, match=r"invalid spec: spec\.carbon\.deadline"):
        run(read(ctx, body, indexes))
    assert stored_status(kube)["phase"] == "Failed"
    ctx, kube, body, indexes = world(spec={**make_raw(), "carbon": carbon}, status={"phase": "Succeeded"})
    assert run(read(ctx, body, indexes)).previous_phase == "Succeeded", "a finished job is never failed afterwards"


def test_a_plan_on_the_replayed_trace_says_so_in_a_condition_and_a_real_forecast_does_not() -> None:
    ctx, _, body, indexes = world(status={"pool": "a100", "phase": "Deferred"})
    job = run(read(ctx, body, indexes))
    placement = steps.Placement(pool="a100", zone="DE", placed_on="a100")
    for kind, source, expected in (("replay", "trace", "True"), ("forecast", "electricitymaps", "False")):
        plan = PlanStatus({"startAt": "2026-03-06T15:00:00Z", "source": source, "dataKind": kind})
        timing = steps.Timing(gate=Gate(hold=True, plan=plan))
        found = run(steps.conditions(ctx, job, placement, timing, steps.decide_pass(job, placement, timing)))
        replay = next(c for c in found if c.type == "CarbonDataReplay")
        assert replay.status == expected
        assert ("historical replay, not a forecast" in replay.message) == (expected == "True")


def test_admit_refuses_a_volume_the_namespace_does_not_allow() -> None:
    spec = {**make_raw(), "volumes": [{"name": "h", "hostPath": {"path": "/etc"}, "mountPath": "/h"}]}
    ctx, kube, body, indexes = world(spec=spec)
    job = run(read(ctx, body, indexes))
    with pytest.raises(kopf.PermanentError):
        run(steps.admit(ctx, job))
    assert stored_status(kube)["phase"] == "Failed"


# --- place -----------------------------------------------------------------------------------------------------------


def test_place_chooses_a_pool_with_room_for_the_gang_and_records_it() -> None:
    ctx, kube, body, indexes = world()
    placement = run(steps.place(ctx, run(read(ctx, body, indexes)), LOG))
    assert placement is not None
    assert (placement.pool, placement.zone, placement.placed_on) == ("a100", "DE", "")
    assert placement.fields == {"pool": "a100", "zone": "DE", "gpuProduct": "nvidia-a100-80gb"}
    assert kube.calls == [("GET", PODS.path())], "GPU usage: one pod list"


def test_place_keeps_the_pool_of_an_existing_child_job_and_records_it_when_status_lost_it() -> None:
    ctx, kube, body, indexes = world()
    observe(indexes, ObservedJob("j-a0", 0, pool="a100"))
    placement = run(steps.place(ctx, run(read(ctx, body, indexes)), LOG))
    assert placement is not None
    assert (placement.pool, placement.placed_on) == ("a100", "a100")
    assert placement.fields["pool"] == "a100"
    assert kube.calls == [], "nothing to choose: no pod list"


def test_place_without_room_writes_pending_once_and_the_next_pass_writes_nothing() -> None:
    ctx, kube, body, indexes = world(nodes=1)
    assert run(steps.place(ctx, run(read(ctx, body, indexes)), LOG)) is None
    status = stored_status(kube)
    assert status["phase"] == "Pending"
    assert condition(status, "Scheduled")["status"] == "False"
    assert len(kube.writes("PATCH")) == 1
    again = kube.objects[JOB_PATH]
    assert run(steps.place(ctx, run(read(ctx, again, indexes)), LOG)) is None
    assert len(kube.writes("PATCH")) == 1, "the same verdict is not written twice"


# --- budget ----------------------------------------------------------------------------------------------------------


def test_budget_rejects_a_new_job_of_a_namespace_over_its_budget() -> None:
    ctx, kube, body, indexes = world()
    ctx.budgets = {"ns": Budget(monthly_grams=100.0, policy="reject")}
    indexes["carbon_usage"] = {"ns": [("other", "2026-03", 150.0)]}
    assert run(steps.budget(ctx, run(read(ctx, body, indexes)))) is None
    status = stored_status(kube)
    assert (status["phase"], condition(status, "Failed")["reason"]) == ("Failed", "CarbonBudgetExceeded")


def test_budget_holds_an_immediate_job_over_budget_to_its_window_and_leaves_a_started_one() -> None:
    ctx, kube, body, indexes = world()
    ctx.budgets = {"ns": Budget(monthly_grams=100.0, policy="hold")}
    indexes["carbon_usage"] = {"ns": [("other", "2026-03", 150.0)]}
    budgeted = run(steps.budget(ctx, run(read(ctx, body, indexes))))
    assert budgeted is not None
    job, cond = budgeted
    assert job.spec.carbon.policy == "deadline"
    assert cond is not None
    assert cond.reason == "CarbonBudgetExceeded"
    observe(indexes, ObservedJob("j-a0", 0, pool="a100"))
    started = run(steps.budget(ctx, run(read(ctx, body, indexes))))
    assert started is not None
    assert started[1] is None
    assert kube.writes() == []


# --- gate, decide ----------------------------------------------------------------------------------------------------


def test_gate_lets_an_immediate_job_run_and_holds_a_deadline_job_for_its_clean_window() -> None:
    ctx, _, body, indexes = world()
    job = run(read(ctx, body, indexes))
    timing = run(steps.gate(ctx, job, steps.Placement(pool="a100", zone="DE"), None))
    assert (timing.gate.hold, timing.gate.plan, timing.data_quality) == (False, None, None)
    assert not timing.decided_before_start

    carbon = {"policy": "deadline", "maxDelay": "24h", "expectedDuration": "2h"}
    ctx, _, body, indexes = world(spec={**make_raw(), "carbon": carbon})
    job = run(read(ctx, body, indexes))
    timing = run(steps.gate(ctx, job, steps.Placement(pool="a100", zone="DE"), None))
    assert timing.gate.deferral is not None
    assert timing.gate.deferral.until == "2026-03-06T15:00:00Z"
    assert timing.data_quality is not None
    assert timing.data_quality.status == "False"
    assert timing.decided_before_start


def test_decide_restarts_the_group_on_the_new_pool_when_its_pool_lost_every_node() -> None:
    ctx, _, body, indexes = world(status={"pool": "h100", "phase": "Running"})
    observe(indexes, ObservedJob("j-a0", 0, ready=2, active=2, pool="h100"))
    job = run(read(ctx, body, indexes))
    placement = steps.Placement(pool="a100", zone="DE", placed_on="h100")
    decision = steps.decide_pass(job, placement, steps.Timing(gate=Gate(hold=False, plan=None)))
    assert decision.phase == Phase.PENDING
    assert decision.attempt == 1
    assert "node pool h100 has no nodes left" in decision.message
    kept = steps.decide_pass(job, steps.Placement(pool="h100", zone="DE", placed_on="h100"),
                             steps.Timing(gate=Gate(hold=False, plan=None)))
    assert kept.phase == Phase.RUNNING


def test_decide_defers_a_held_job_with_the_hold_as_its_message() -> None:
    ctx, _, body, indexes = world()
    job = run(read(ctx, body, indexes))
    held = Gate(hold=True, plan=PlanStatus({"startAt": "2026-03-06T15:00:00Z", "expectedSavingsPercent": 90.0}))
    decision = steps.decide_pass(job, steps.Placement(pool="a100", zone="DE"), steps.Timing(gate=held))
    assert decision.phase == Phase.DEFERRED
    assert decision.message == Hold("2026-03-06T15:00:00Z", 90.0).message
    assert decision.actions == ()


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
    assert run(steps.account(ctx, job, placement, decision, LOG)) is None


# --- render, write ---------------------------------------------------------------------------------------------------


def test_render_of_a_deferred_job_says_when_it_starts_and_keeps_the_plan() -> None:
    ctx, _, body, indexes = world()
    job = run(read(ctx, body, indexes))
    plan = {"startAt": "2026-03-06T15:00:00Z", "latestStart": "2026-03-07T09:00:00Z"}
    timing = steps.Timing(gate=Gate(hold=True, plan=PlanStatus(plan)))
    placement = steps.Placement(pool="a100", zone="DE", fields={"pool": "a100", "zone": "DE", "gpuProduct": "x"})
    decision = steps.decide_pass(job, placement, timing)
    new = steps.render(job, placement, timing, decision, (), None)
    assert (new["phase"], new["scheduledStart"], new["plan"], new["pool"]) == \
        ("Deferred", "2026-03-06T15:00:00Z", plan, "a100")
    assert type(new["phase"]) is str, "status holds plain JSON values"
    assert "children" not in new


def test_write_posts_events_only_after_the_status_write_and_a_stale_copy_gets_409() -> None:
    ctx, kube, body, indexes = world(status={"pool": "a100", "phase": "Pending"})
    observe(indexes, ObservedJob("j-a0", 0, active=2, ready=2, pool="a100"))
    job = run(read(ctx, body, indexes))
    placement = steps.Placement(pool="a100", zone="DE", placed_on="a100")
    timing = steps.Timing(gate=Gate(hold=False, plan=None))
    decision = steps.decide_pass(job, placement, timing)
    new = steps.render(job, placement, timing, decision, (), None)
    kube.put(JOB_PATH, {**kube.objects[JOB_PATH], "spec": {**body["spec"], "suspend": True}})  # changed meanwhile
    with pytest.raises(KubeApiError) as err:
        run(steps.write(ctx, job, placement, timing, decision, new))
    assert err.value.conflict
    assert ctx.events.pending == 0, "no Event for a status never written"
    assert kube.writes("POST") == []

    fresh = run(read(ctx, kube.objects[JOB_PATH], indexes))

    async def write_and_flush() -> None:
        await steps.write(ctx, fresh, placement, timing, decision, steps.render(fresh, placement, timing, decision,
                                                                                (), None))
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
    run(steps.write(ctx, job, placement, timing, decision, steps.render(job, placement, timing, decision, (), None)))
    assert "status" not in kube.objects[JOB_PATH]
    with_plan = steps.Timing(gate=Gate(hold=False, plan=PlanStatus({"startAt": "2026-03-06T12:00:00Z"})))
    run(steps.write(ctx, job, placement, with_plan, decision,
                    steps.render(job, placement, with_plan, decision, (), None)))
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
