"""When a job's next pass is due by the clock alone: a deferred start, an interruptible job's segment boundaries,
just past a deadline; nothing for a finished job."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from llmasos.planning.lifecycle.wake import next_wake

NOW = datetime(2026, 3, 6, 12, 0, tzinfo=UTC)
S = timedelta(seconds=1)
PLAN = {"segments": [{"start": "2026-03-06T11:00:00Z", "end": "2026-03-06T12:30:00Z"},
                     {"start": "2026-03-06T14:00:00Z", "end": "2026-03-06T15:00:00Z"}]}


def test_a_deferred_job_wakes_at_its_planned_start_or_just_past_its_deadline_if_sooner() -> None:
    deferred = {"phase": "Deferred", "scheduledStart": "2026-03-06T13:00:00Z"}
    assert next_wake(deferred, None, False, NOW) == NOW.replace(hour=13)
    assert next_wake(deferred, NOW.replace(minute=40), False, NOW) == NOW.replace(minute=40) + S
    assert next_wake(deferred, NOW.replace(hour=16), False, NOW) == NOW.replace(hour=13)
    assert next_wake(deferred, None, False, NOW.replace(hour=13)) is None, "nothing after now"


def test_an_interruptible_job_wakes_at_each_segment_boundary_and_others_do_not() -> None:
    running = {"phase": "Running", "plan": PLAN}
    assert next_wake(running, None, True, NOW) == NOW.replace(minute=30), "the segment's end suspends it"
    assert next_wake(running, None, True, NOW.replace(minute=30)) == NOW.replace(hour=14), "the next start"
    assert next_wake(running, None, True, NOW.replace(hour=14)) == NOW.replace(hour=15)
    assert next_wake(running, None, False, NOW) is None, "a job that is not interruptible runs to its end"
    assert next_wake(running, NOW.replace(hour=13), False, NOW) == NOW.replace(hour=13) + S


def test_a_finished_job_has_no_wake() -> None:
    for phase in ("Succeeded", "Failed"):
        assert next_wake({"phase": phase, "plan": PLAN}, NOW.replace(hour=13), True, NOW) is None
