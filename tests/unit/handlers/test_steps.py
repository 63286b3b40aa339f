"""Each step of a reconcile pass (handlers/steps.py) from reading the LLMJob to deciding what it needs, against an
in-memory API server (fake_kube.py)."""

from __future__ import annotations

import kopf
import pytest

from llmasos.api.phase import Phase
from llmasos.api.status import PlanStatus
from llmasos.cluster.kube import EVENTS, PODS
from llmasos.handlers import steps
from llmasos.planning.accounting.budget import Budget
from llmasos.planning.lifecycle.decision import ObservedJob
from llmasos.planning.timing.carbon_gate import Gate, Hold
from tests.unit.builders import make_raw
from tests.unit.handlers.steps_world import (
    JOB_PATH,
    LOG,
    condition,
    observe,
    read,
    run,
    stored_status,
    world,
)

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


def test_read_of_a_job_the_built_in_worker_would_refuse_fails_it_before_any_pod() -> None:
    spec = {**make_raw(nodes=2, gpus=4), "taskConfig": {"batch_size": 12}}  # 8 data-parallel ranks
    ctx, kube, body, indexes = world(spec=spec)
    with pytest.raises(kopf.PermanentError, match=r"invalid spec: spec\.taskConfig: the built-in worker would "
                                                  r"refuse this job: batch_size=12 is not divisible by "
                                                  r"parallelism\.dataParallel=8"):
        run(read(ctx, body, indexes))
    assert stored_status(kube)["phase"] == "Failed"
    ctx, kube, body, indexes = world(spec={**spec, "command": ["python", "mine.py"]})
    assert run(read(ctx, body, indexes)).spec.task_config == {"batch_size": 12}, "another program: its own rules"
    ctx, kube, body, indexes = world(spec=spec, status={"phase": "Running", "startTime": "2026-03-06T11:30:00Z"})
    assert run(read(ctx, body, indexes)).previous_phase == "Running", \
        "taskConfig patched while it runs: its pods keep the config they started with, the job is not failed"


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
