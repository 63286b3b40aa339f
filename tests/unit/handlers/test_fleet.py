"""The pool a deferred LLMJob shares, read from LLMJob bodies as kopf's index holds them: members from spec and
status, their planned starts, one pool plan per minute and membership, and the jobs a new plan moved."""

from __future__ import annotations

from typing import Any

from llmasos.handlers.fleet import PoolPlans, arrival_of, member_of, planned_starts
from llmasos.handlers.gate import job_for
from llmasos.planning.timing.forecast import format_instant
from tests.unit.builders import make_raw
from tests.unit.planning.builders import T0
from tests.unit.planning.timing.fleet_builders import HOUR, forecast


def body(name: str, *, pool: str = "p", phase: str = "Deferred", started: bool = False, rv: str = "1",
         start_at: float | None = None, spec: dict[str, Any] | None = None, created_h: float = 0) -> dict[str, Any]:
    status: dict[str, Any] = {"pool": pool, "phase": phase}
    if started:
        status["startTime"] = format_instant(T0)
    if start_at is not None:
        status["plan"] = {"startAt": format_instant(T0 + start_at * HOUR)}
    carbon = {"policy": "deadline", "maxDelay": "10h", "expectedDuration": "1h"}
    if created_h:  # created long ago: the same deadline, given as an instant
        carbon = {"policy": "deadline", "deadline": format_instant(T0 + 10 * HOUR), "expectedDuration": "1h"}
    raw = spec or make_raw(nodes=1, gpus=4, carbon=carbon, maxRuntime="1h")
    return {"metadata": {"namespace": "ns", "name": name, "resourceVersion": rv,
                         "creationTimestamp": format_instant(T0 + created_h * HOUR)},
            "spec": raw, "status": status}


def test_a_member_is_read_from_spec_and_status() -> None:
    m = member_of(body("a", started=True), job_for)
    assert m is not None
    assert (m.key, m.pool, m.gpus, m.started) == ("ns/a", "p", 4, True)
    assert m.job.deadline == T0 + 10 * HOUR
    assert m.job.duration == HOUR


def test_unplaced_finished_and_invalid_jobs_are_not_members() -> None:
    assert member_of(body("a", pool=""), job_for) is None
    assert member_of(body("a", phase="Succeeded"), job_for) is None
    assert member_of(body("a", spec={"model": {}}), job_for) is None


def test_planned_starts_are_those_of_deferred_jobs() -> None:
    bodies = [body("a", start_at=2), body("b", phase="Running", start_at=1), body("c")]
    assert planned_starts(bodies) == {"ns/a": T0 + 2 * HOUR}


def test_one_pool_plan_per_minute_and_membership_and_the_moved_jobs_are_named_once() -> None:
    plans = PoolPlans()
    # All three hold the cleanest hour (3-4) in their status; created three days ago, they price nothing.
    herd = [body(f"j{i}", start_at=3, created_h=-72) for i in range(3)]
    members = plans.members(herd, "p", job_for)
    assert [m.key for m in members] == ["ns/j0", "ns/j1", "ns/j2"]
    f = forecast()
    first, named = plans.plan(members, "p", 8, "Z", f, T0, planned_starts(herd), asking="ns/j0")
    reused, named_again = plans.plan(members, "p", 8, "Z", f, T0 + HOUR / 120, planned_starts(herd), asking="ns/j1")
    assert reused is first
    assert first.plan is not None
    moved = [a.job_id for a in first.plan.assignments if a.start_at != T0 + 3 * HOUR]
    assert len(moved) == 1, "8 GPUs hold two of the three 4-GPU jobs in the clean hour"
    assert named == [k for k in moved if k != "ns/j0"], "the asking job writes its own plan"
    assert named_again == [], "the pass that computed the plan named them"
    later, _ = plans.plan(members, "p", 8, "Z", f, T0 + HOUR / 30, planned_starts(herd), asking="ns/j0")
    assert later is not first, "a new minute plans again"


def test_a_body_is_parsed_again_only_when_its_resource_version_changes() -> None:
    plans = PoolPlans()
    (m1,) = plans.members([body("a", rv="1")], "p", job_for)
    (m2,) = plans.members([body("a", rv="1", pool="p", started=True)], "p", job_for)
    assert m2 is m1, "same resourceVersion: the cached member"
    (m3,) = plans.members([body("a", rv="2", started=True)], "p", job_for)
    assert m3.started


def test_a_deleted_llmjob_is_forgotten() -> None:
    plans = PoolPlans()
    plans.members([body("a"), body("b")], "p", job_for)
    assert [m.key for m in plans.members([body("b")], "p", job_for)] == ["ns/b"]
    assert list(plans._members) == [("ns", "b")]


def test_an_arrival_is_read_from_any_placed_llmjob_finished_ones_included() -> None:
    for phase in ("Deferred", "Running", "Succeeded", "Failed"):
        a = arrival_of(body("a", phase=phase), job_for)
        assert a is not None
        assert (a.pool, a.at, a.gpus, a.duration, a.window) == ("p", T0, 4, HOUR, 10 * HOUR)
    assert arrival_of(body("a", pool=""), job_for) is None
    assert arrival_of(body("a", spec={"model": {}}), job_for) is None
    immediate = make_raw(nodes=1, gpus=4, carbon={"policy": "immediate"}, maxRuntime="1h")
    assert arrival_of(body("a", spec=immediate), job_for) is None


def test_the_pool_plan_is_priced_by_the_arrivals_of_the_last_two_days() -> None:
    plans = PoolPlans()
    plans.members([body("a"), body("b", phase="Succeeded"), body("c", pool="q")], "p", job_for)
    assert [a.at for a in plans.arrivals("p", T0 + HOUR)] == [T0, T0]
    assert plans.arrivals("p", T0 + 49 * HOUR) == []
    assert plans.arrivals("p", T0 - HOUR) == [], "not yet arrived"


def test_a_new_arrival_plans_the_pool_again_even_when_it_has_finished() -> None:
    plans = PoolPlans()
    herd = [body(f"j{i}", start_at=3, created_h=-72) for i in range(3)]
    members = plans.members(herd, "p", job_for)
    f = forecast()
    first, _ = plans.plan(members, "p", 8, "Z", f, T0, planned_starts(herd), asking="ns/j0")
    plans.members([*herd, body("done", phase="Succeeded", created_h=-1)], "p", job_for)
    again, _ = plans.plan(members, "p", 8, "Z", f, T0, planned_starts(herd), asking="ns/j0")
    assert again is not first
