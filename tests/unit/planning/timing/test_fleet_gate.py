"""A deferred job's own plan under the pool plan: unchanged when alone, moved (never over capacity) when a herd
competes for the same clean hours, told when its deadline cannot be kept, and the moved jobs named for re-planning."""

from __future__ import annotations

from datetime import datetime, timedelta

from llmasos.planning.timing.capacity import Usage
from llmasos.planning.timing.carbon_window import CarbonJob, Plan, plan_start
from llmasos.planning.timing.fleet_gate import apply_assignment, moved_jobs, plan_pool
from llmasos.planning.timing.fleet_status import Member
from llmasos.planning.timing.served import RunLedger
from tests.unit.planning.builders import T0
from tests.unit.planning.timing.fleet_builders import HOUR, forecast

POOL_GPUS = 8


def member(key: str, *, gpus: int = 4, hours: float = 1, deadline: float = 10, started: bool = False,
           interruptible: bool = False) -> Member:
    job = CarbonJob(hours * HOUR, T0, T0 + deadline * HOUR, interruptible, "deadline", safety_margin=timedelta(0),
                    min_segment=timedelta(minutes=15))
    return Member(key, "p", gpus, job, started, RunLedger(timedelta(0), T0 if started else None, None, int(started)))


def own_plan(m: Member) -> Plan:
    return plan_start(m.job, forecast(), T0)


def peak_gpus(plans: dict[str, Plan], members: list[Member]) -> int:
    gpus = {m.key: m.gpus for m in members}
    usage = Usage()
    for key, plan in plans.items():
        for s in plan.segments:
            usage.add(int((s.start - T0).total_seconds()), int((s.end - T0).total_seconds()), gpus[key])
    return usage.peak(0, int(timedelta(days=2).total_seconds()))


def test_a_job_alone_in_its_pool_keeps_its_own_plan() -> None:
    alone = member("ns/a")
    pool_plan = plan_pool([alone], "p", POOL_GPUS, "Z", forecast(), T0)
    assert pool_plan.plan is None
    own = own_plan(alone)
    assert apply_assignment(own, pool_plan.assignment("ns/a"), "p") is own


def test_a_herd_is_spread_so_the_pool_is_never_over_subscribed_and_every_deadline_holds() -> None:
    herd = [member(f"ns/j{i}") for i in range(4)]  # 4 x 4 GPUs, all wanting hour 2-3 of an 8-GPU pool
    lone = {m.key: own_plan(m) for m in herd}
    assert len({p.segments for p in lone.values()}) == 1, "alone, every job picks the same clean hour"
    assert peak_gpus(lone, herd) == 16

    pool_plan = plan_pool(herd, "p", POOL_GPUS, "Z", forecast(), T0)
    planned = {m.key: apply_assignment(lone[m.key], pool_plan.assignment(m.key), "p") for m in herd}
    assert peak_gpus(planned, herd) <= POOL_GPUS
    assert all(p.feasible and p.end_at <= T0 + 10 * HOUR for p in planned.values())
    moved = [p for p in planned.values() if p.segments != lone["ns/j0"].segments]
    assert len(moved) == 2
    assert all(p.reason.startswith("moved: other jobs hold pool p") for p in moved)


def test_a_started_job_is_a_reservation_the_pending_ones_plan_around() -> None:
    running = member("ns/run", gpus=8, hours=3, started=True)
    waiting = member("ns/wait", gpus=4, hours=1, deadline=6)
    pool_plan = plan_pool([running, waiting], "p", POOL_GPUS, "Z", forecast(), T0)
    planned = apply_assignment(own_plan(waiting), pool_plan.assignment("ns/wait"), "p")
    assert planned.start_at >= T0 + 3 * HOUR, "the pool is full until the running job's run time is served"


def test_a_deadline_the_pool_cannot_keep_is_said_with_the_reason() -> None:
    running = member("ns/run", gpus=8, hours=6, started=True)
    urgent = member("ns/urgent", gpus=4, hours=1, deadline=3)
    pool_plan = plan_pool([running, urgent], "p", POOL_GPUS, "Z", forecast(), T0)
    planned = apply_assignment(own_plan(urgent), pool_plan.assignment("ns/urgent"), "p")
    assert not planned.feasible
    assert planned.reason
    assert planned.start_at >= T0 + 6 * HOUR


def test_the_jobs_a_new_plan_moved_are_named_for_an_early_pass() -> None:
    herd = [member(f"ns/j{i}") for i in range(3)]
    pool_plan = plan_pool(herd, "p", POOL_GPUS, "Z", forecast(), T0)
    assert pool_plan.plan is not None
    starts: dict[str, datetime] = {a.job_id: a.start_at for a in pool_plan.plan.assignments}
    assert moved_jobs(pool_plan, starts, skip="ns/j0") == []
    stale = {**starts, "ns/j1": starts["ns/j1"] + HOUR}
    assert moved_jobs(pool_plan, stale, skip="ns/j0") == ["ns/j1"]
    assert moved_jobs(pool_plan, stale, skip="ns/j1") == []
