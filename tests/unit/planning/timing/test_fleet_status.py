"""The fleet read back from LLMJobs' spec and status: pending jobs, reservations, the DeadlineAtRisk condition."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from llmasos.api.conditions import Condition
from llmasos.planning.timing.carbon_window import CarbonJob
from llmasos.planning.timing.fleet import plan_fleet
from llmasos.planning.timing.fleet_status import Member, deadline_condition, deadline_outcome, fleet_inputs
from llmasos.planning.timing.fleet_types import PoolCapacity
from llmasos.planning.timing.served import RunLedger
from tests.unit.planning.builders import T0
from tests.unit.planning.timing.fleet_builders import HOUR, forecast

NOW = T0 + 2 * HOUR


def member(
    key: str,
    *,
    started: bool = False,
    interruptible: bool = False,
    policy: str = "deadline",
    served: float = 0,
    running_since: float | None = None,
    pool: str = "p",
) -> Member:
    job = CarbonJob(
        4 * HOUR,
        T0,
        T0 + 12 * HOUR,
        interruptible,
        policy,  # type: ignore[arg-type]
        safety_margin=timedelta(minutes=30),
        min_segment=timedelta(minutes=30),
    )
    since = T0 + running_since * HOUR if running_since is not None else None
    return Member(key, pool, 2, job, started, RunLedger(served * HOUR, since, None, 1 if started else 0))


def test_deferred_jobs_are_pending_and_keep_their_window() -> None:
    pending, reserved = fleet_inputs([member("ns/a")], "p", NOW)
    assert reserved == []
    assert [(j.id, j.duration, j.earliest_start, j.deadline) for j in pending] == [
        ("ns/a", 4 * HOUR, T0, T0 + 12 * HOUR - timedelta(minutes=30))
    ]


def test_a_started_job_reserves_what_it_still_owes() -> None:
    _, reserved = fleet_inputs([member("ns/a", started=True, running_since=1)], "p", NOW)
    assert [(r.start, r.end, r.gpus) for r in reserved] == [(NOW, NOW + 3 * HOUR, 2)]


def test_an_overrunning_job_still_holds_its_gpus() -> None:
    _, reserved = fleet_inputs([member("ns/a", started=True, served=5)], "p", NOW)
    assert reserved[0].end == NOW + timedelta(minutes=15)


def test_a_started_interruptible_job_owes_the_rest_and_keeps_its_young_run() -> None:
    pending, reserved = fleet_inputs(
        [member("ns/a", started=True, interruptible=True, served=1, running_since=1.75)], "p", NOW
    )
    assert [(r.start, r.end) for r in reserved] == [(NOW, NOW + timedelta(minutes=15))]
    assert pending[0].duration == 4 * HOUR - timedelta(minutes=75) - timedelta(minutes=15)
    assert pending[0].earliest_start == NOW + timedelta(minutes=15)


def test_immediate_jobs_and_other_pools() -> None:
    pending, reserved = fleet_inputs([member("ns/i", policy="immediate"), member("ns/x", pool="q")], "p", NOW)
    assert pending == []
    assert [(r.start, r.end) for r in reserved] == [(NOW, NOW + 4 * HOUR)]


def test_deadline_condition_says_why_and_when() -> None:
    members = [member("ns/run", started=True), member("ns/late")]
    pending, reserved = fleet_inputs(members, "p", T0 + 6 * HOUR)
    plan = plan_fleet(pending, [PoolCapacity("p", 2, "Z")], reserved, {"Z": forecast()}, T0 + 6 * HOUR)
    cond = deadline_condition(plan.by_id()["ns/late"])
    assert (cond.type, cond.status, cond.reason) == ("DeadlineAtRisk", "True", "NoCapacityBeforeDeadline")
    assert "earliest feasible end 2024-03-06T14:00:00Z" in cond.message
    ok = plan_fleet(pending, [PoolCapacity("p", 4, "Z")], reserved, {"Z": forecast()}, T0 + 6 * HOUR)
    assert deadline_condition(ok.by_id()["ns/late"]).status == "False"


def test_the_deadline_outcome_of_a_job_from_what_happened() -> None:
    due = datetime(2026, 3, 6, 14, tzinfo=UTC)
    on_track = Condition("DeadlineAtRisk", "False", "DeadlineOnTrack", "planned to finish by its deadline")
    late = due + timedelta(minutes=5)

    def outcome(planned: Condition | None = None, now: datetime = late, finished_at: datetime | None = None,
                flagged: bool = False, ended: bool = False) -> tuple[str, str] | None:
        found = deadline_outcome(planned, due, now, finished_at=finished_at, flagged=flagged, ended=ended)
        return (found.status, found.reason) if found is not None else None

    assert outcome(on_track, now=due) == ("False", "DeadlineOnTrack"), "due now is not late"
    assert outcome(on_track) == ("True", "DeadlineMissed"), "unfinished after the deadline, whatever the plan"
    assert outcome(None) == ("True", "DeadlineMissed")
    assert outcome(finished_at=late) == ("True", "DeadlineMissed")
    assert outcome(finished_at=due) is None, "in time and never at risk: no condition gained"
    assert outcome(finished_at=due, flagged=True) == ("False", "DeadlineMet")
    assert outcome(None, ended=True) is None, "failed, or ended with no completion time: left as it was"
    assert deadline_outcome(on_track, None, late, finished_at=None, flagged=True, ended=False) == on_track


def test_a_running_jobs_projected_end_against_its_deadline() -> None:
    due = datetime(2026, 3, 6, 14, tzinfo=UTC)
    now = due - timedelta(hours=1)
    too_close = Condition("DeadlineAtRisk", "True", "DeadlineTooClose", "run time does not fit")

    def outcome(projected: datetime | None, planned: Condition | None = None, flagged_late: bool = False,
                at: datetime = now) -> tuple[str, str] | None:
        found = deadline_outcome(planned, due, at, finished_at=None, flagged=planned is not None or flagged_late,
                                 ended=False, projected_end=projected, flagged_late=flagged_late)
        return (found.status, found.reason) if found is not None else None

    assert outcome(None) is None, "no reading: nothing to say"
    assert outcome(due) is None, "ending at the deadline is in time"
    assert outcome(due + timedelta(seconds=1)) == ("True", "ProjectedLate")
    assert outcome(due + timedelta(hours=1), planned=too_close) == ("True", "DeadlineTooClose"), "the plan's reason"
    assert outcome(due - timedelta(seconds=30), flagged_late=True) == ("True", "ProjectedLate"), "too near to clear"
    assert outcome(due - timedelta(minutes=1), flagged_late=True) == ("False", "DeadlineOnTrack")
    assert outcome(due - timedelta(minutes=1)) is None, "never late: no condition gained"
    assert outcome(due - timedelta(minutes=5), at=due + timedelta(seconds=1)) == ("True", "DeadlineMissed")
