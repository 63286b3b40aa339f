"""The carbon gate: hold before the planned start, follow segments after it, never hold forever."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from llmasos.api.status import PlanStatus
from llmasos.planning.lifecycle.decision import EnsureJob, EnsureService, decide
from llmasos.planning.timing.carbon_gate import Gate, Hold, gate_after_start, gate_before_start
from tests.unit.builders import make_job, make_spec

T0 = datetime(2026, 11, 25, 12, tzinfo=UTC)


def iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def plan(*segments: tuple[int, int], **fields: object) -> PlanStatus:
    segs = [{"start": iso(T0 + timedelta(hours=a)), "end": iso(T0 + timedelta(hours=b))} for a, b in segments]
    return PlanStatus({"startAt": segs[0]["start"], "segments": segs, **fields})


def test_holds_until_the_planned_start_and_announces_only_new_or_moved_starts() -> None:
    p = plan((3, 5))
    first = gate_before_start(p, None, T0)
    assert first.hold
    assert first.announce
    again = gate_before_start(p, p, T0 + timedelta(hours=1))
    assert again.hold
    assert not again.announce
    moved = gate_before_start(plan((4, 6)), p, T0 + timedelta(hours=1))
    assert moved.announce
    assert not gate_before_start(p, p, T0 + timedelta(hours=3)).hold


def test_interruptible_job_follows_its_segments() -> None:
    p = plan((1, 2), (4, 5))
    assert not gate_after_start(p, True, T0 + timedelta(hours=1, minutes=30)).hold
    assert gate_after_start(p, True, T0 + timedelta(hours=3)).hold, "between segments: suspended"
    assert not gate_after_start(p, True, T0 + timedelta(hours=4, minutes=1)).hold
    assert not gate_after_start(p, True, T0 + timedelta(hours=6)).hold, "past the last segment: never held"


def test_a_hold_between_segments_says_when_it_resumes_and_is_announced_once() -> None:
    p = plan((1, 2), (4, 5))
    held = gate_after_start(p, True, T0 + timedelta(hours=3))
    assert held.resume_at == iso(T0 + timedelta(hours=4))
    assert held.start_at == held.resume_at, "the Event and scheduledStart name the next segment, not the first"
    assert held.announce, "newly held: worth an Event"
    assert not gate_after_start(p, True, T0 + timedelta(hours=3, minutes=5), held.resume_at).announce
    assert gate_after_start(p, True, T0 + timedelta(hours=3), iso(T0 + timedelta(hours=6))).announce, "moved"
    running = gate_after_start(p, True, T0 + timedelta(hours=1, minutes=30))
    assert (running.resume_at, running.announce) == ("", False)


def test_non_interruptible_job_is_never_held_once_started() -> None:
    assert not gate_after_start(plan((1, 2), (4, 5)), False, T0 + timedelta(hours=3)).hold


def test_held_job_creates_nothing_then_suspends_and_resumes_its_job() -> None:
    spec = make_spec(carbon={"policy": "deadline", "maxDelay": "24h", "expectedDuration": "2h",
                             "interruptible": True})
    before = decide(spec, "", [], "now", hold=Hold("2024-03-07T02:00:00Z"))
    assert before.phase == "Deferred"
    assert before.message == "deferred until 2024-03-07T02:00:00Z"
    assert before.actions == ()
    between = decide(spec, "Running", [make_job(0, ready=2)], "now", hold=Hold("2024-03-07T04:00:00Z"))
    assert between.phase == "Deferred"
    assert between.actions == (EnsureJob(0, True),)
    resumed = decide(spec, "Deferred", [make_job(0, suspended=True)], "now")
    assert resumed.actions == (EnsureService(), EnsureJob(0, False))
    assert any(c.type == "Deferred" and c.status == "False" for c in resumed.conditions)


def test_replans_keep_savings_against_running_at_submission() -> None:
    first = plan((3, 5), expectedIntensity=100.0, runNowIntensity=400.0, expectedSavingsPercent=75.0)
    later = plan((3, 5), expectedIntensity=100.0, runNowIntensity=100.0, expectedSavingsPercent=0.0)
    gate = gate_before_start(later, first, T0 + timedelta(hours=3))
    assert gate.plan is not None
    assert gate.plan["runNowIntensity"] == 400.0
    assert gate.plan["expectedSavingsPercent"] == 75.0


def test_a_hold_is_a_value_and_its_message_says_until_when_and_the_saving() -> None:
    assert Gate(hold=False, plan=PlanStatus({"startAt": "2024-03-07T02:00:00Z"})).deferral is None
    held = Gate(hold=True, plan=PlanStatus({"startAt": "2024-03-07T02:00:00Z", "expectedSavingsPercent": 41.6,
                                           "reason": ""}))
    assert held.deferral == Hold("2024-03-07T02:00:00Z", 41.6)
    assert held.deferral.message == "deferred until 2024-03-07T02:00:00Z, expected to save 42%"
    between = Gate(hold=True, plan=PlanStatus({"startAt": "2024-03-07T00:00:00Z"}), resume_at="2024-03-07T05:00:00Z")
    assert between.deferral == Hold("2024-03-07T05:00:00Z"), "a started job resumes at its next segment"
    moved = Gate(hold=True, plan=PlanStatus({"startAt": "2024-03-07T02:00:00Z", "reason": "moved: pool a100 is full"}))
    assert moved.deferral is not None
    assert moved.deferral.message == "deferred until 2024-03-07T02:00:00Z (moved: pool a100 is full)"
