"""The pure lifecycle decision: phases, gang restarts, suspend, terminal phases that never regress."""

from __future__ import annotations

import pytest

from llmasos.planning.lifecycle.decision import DeleteJob, EnsureJob, EnsureService, decide
from llmasos.planning.timing.carbon_gate import Hold
from tests.unit.builders import make_job, make_spec

NOW = "2026-11-25T12:00:00Z"


def test_new_job_creates_service_and_first_attempt() -> None:
    d = decide(make_spec(), "", [], NOW)
    assert d.phase == "Pending"
    assert d.actions == (EnsureService(), EnsureJob(0, False))
    assert (d.workers_ready, d.workers_total) == (0, 2)


@pytest.mark.parametrize(("ready", "phase"), [(0, "Pending"), (1, "Pending"), (2, "Running")])
def test_running_only_when_the_whole_gang_is_ready(ready: int, phase: str) -> None:
    d = decide(make_spec(nodes=2), "Pending", [make_job(ready=ready, active=2)], NOW)
    assert d.phase == phase
    assert d.workers_ready == ready


def test_a_running_group_whose_workers_ended_stays_running_until_the_job_counts_them() -> None:
    """On the real node a Job says active 2, ready 0, succeeded 0 between its workers' exit and its count of them:
    the group is ending, not waiting to start (no Pending, no WorkersStarting event). A gang not yet all running,
    or a Job with a pod missing (replaced), is still starting."""
    d = decide(make_spec(nodes=2), "Running", [make_job(ready=0, active=2)], NOW, previous_start=NOW)
    assert (d.phase, d.events, d.message) == ("Running", (), "0/2 worker(s) still running; the others have ended")
    assert decide(make_spec(nodes=2), "Running", [make_job(ready=1, active=1)], NOW).phase == "Pending"
    assert decide(make_spec(nodes=2), "Pending", [make_job(ready=0, active=2)], NOW).phase == "Pending"


def test_running_sets_start_time_once() -> None:
    d = decide(make_spec(nodes=1), "Pending", [make_job(ready=1)], NOW)
    assert d.start_time == NOW
    later = decide(make_spec(nodes=1), "Running", [make_job(ready=1)], "2026-11-25T13:00:00Z",
                   previous_start=NOW)
    assert later.start_time == NOW
    assert later.events == (), "no event when the phase does not change"


def test_complete_job_succeeds_with_event() -> None:
    d = decide(make_spec(), "Running", [make_job(complete=True, completion_time="2026-11-25T12:30:00Z")], NOW)
    assert d.phase == "Succeeded"
    assert d.completion_time == "2026-11-25T12:30:00Z"
    assert [e.reason for e in d.events] == ["JobCompleted"]
    types = {c.type: c.status for c in d.conditions}
    assert types == {"Succeeded": "True", "Failed": "False", "Running": "False"}


def test_failed_worker_restarts_whole_group_creating_next_before_deleting() -> None:
    d = decide(make_spec(backoffLimit=2), "Running",
               [make_job(0, failed_reason="PodFailurePolicy", failed_message="exit 7")], NOW)
    assert d.phase == "Pending"
    assert d.attempt == 1
    assert d.actions.index(EnsureJob(1, False)) < d.actions.index(DeleteJob("j-a0"))
    assert "attempt 1 of 2" in d.message


def test_failure_after_backoff_limit_fails_with_jobs_reason() -> None:
    d = decide(make_spec(backoffLimit=1), "Pending",
               [make_job(1, failed_reason="PodFailurePolicy", failed_message="container exited with 7")], NOW)
    assert d.phase == "Failed"
    failed = next(c for c in d.conditions if c.type == "Failed")
    assert failed.status == "True"
    assert failed.reason == "WorkerFailed"
    assert "container exited with 7" in failed.message
    assert "2 attempt(s)" in d.message


def test_backoff_limit_zero_fails_at_once() -> None:
    d = decide(make_spec(backoffLimit=0), "Running", [make_job(0, failed_reason="PodFailurePolicy")], NOW)
    assert d.phase == "Failed"


def test_deadline_exceeded_is_max_runtime_and_never_restarted() -> None:
    d = decide(make_spec(backoffLimit=5), "Running", [make_job(0, failed_reason="DeadlineExceeded")], NOW)
    assert d.phase == "Failed"
    assert next(c for c in d.conditions if c.type == "Failed").reason == "MaxRuntimeExceeded"
    assert not any(isinstance(a, EnsureJob) for a in d.actions)


def test_suspend_suspends_existing_job_and_creates_nothing_new() -> None:
    running = decide(make_spec(suspend=True), "Running", [make_job(ready=2)], NOW)
    assert running.phase == "Suspended"
    assert running.actions == (EnsureJob(0, True),)
    fresh = decide(make_spec(suspend=True), "", [], NOW)
    assert fresh.phase == "Suspended"
    assert fresh.actions == ()


def test_resume_unsuspends_the_same_attempt() -> None:
    d = decide(make_spec(), "Suspended", [make_job(0, suspended=True)], NOW)
    assert EnsureJob(0, False) in d.actions
    assert d.phase == "Pending"


@pytest.mark.parametrize("terminal", ["Succeeded", "Failed"])
def test_terminal_phase_never_regresses(terminal: str) -> None:
    d = decide(make_spec(), terminal, [make_job(ready=2)], NOW)
    assert d.phase == terminal
    assert not any(isinstance(a, EnsureJob | EnsureService) for a in d.actions)


def test_older_attempts_are_cleaned_up_and_attempt_never_goes_back() -> None:
    d = decide(make_spec(), "Pending", [make_job(0, failed_reason="PodFailurePolicy"), make_job(1, ready=0)], NOW,
               previous_attempt=1)
    assert DeleteJob("j-a0") in d.actions
    assert EnsureJob(1, False) in d.actions
    assert d.attempt == 1


def test_pending_gang_reports_no_start_time_until_it_runs() -> None:
    d = decide(make_spec(nodes=2), "Pending", [make_job(ready=1, active=2)], NOW)
    assert d.phase == "Pending"
    assert d.start_time == ""


def test_lost_pool_restarts_the_group_as_a_new_attempt() -> None:
    d = decide(make_spec(backoffLimit=1), "Running", [make_job(0, ready=2, active=2)], NOW, pool_lost="a100")
    assert d.phase == "Pending"
    assert d.attempt == 1
    assert d.actions.index(EnsureJob(1, False)) < d.actions.index(DeleteJob("j-a0"))
    assert [e.reason for e in d.events] == ["NodePoolLost"]
    assert "node pool a100 has no nodes left" in d.message


@pytest.mark.parametrize("pool_lost", ["", "a100"])
def test_a_restart_while_held_or_suspended_creates_the_next_attempt_suspended(pool_lost: str) -> None:
    failed = make_job(0, suspended=True, failed_reason="" if pool_lost else "PodFailurePolicy")
    held = decide(make_spec(backoffLimit=2), "Deferred", [failed], NOW, hold=Hold("2024-03-07T18:00:00Z"),
                  pool_lost=pool_lost)
    assert held.attempt == 1
    assert held.actions.index(EnsureJob(1, True)) < held.actions.index(DeleteJob("j-a0")), "held: no pods yet"
    suspended = decide(make_spec(backoffLimit=2, suspend=True), "Suspended", [failed], NOW, pool_lost=pool_lost)
    assert EnsureJob(1, True) in suspended.actions
    running = decide(make_spec(backoffLimit=2), "Running", [failed], NOW, pool_lost=pool_lost)
    assert EnsureJob(1, False) in running.actions


def test_lost_pool_after_the_last_attempt_fails_naming_the_pool() -> None:
    d = decide(make_spec(backoffLimit=0), "Running", [make_job(0, ready=2, active=2)], NOW, pool_lost="a100")
    assert d.phase == "Failed"
    failed = next(c for c in d.conditions if c.type == "Failed")
    assert failed.reason == "NodePoolLost"
    assert "a100" in failed.message


def test_a_finished_job_ignores_a_lost_pool() -> None:
    d = decide(make_spec(), "Running", [make_job(complete=True)], NOW, pool_lost="a100")
    assert d.phase == "Succeeded"
