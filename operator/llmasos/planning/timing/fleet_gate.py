"""A deferred job's window when it shares its pool: the fleet planner's answer, applied to the job's own plan (pure).

Each LLMJob's pass plans that job alone first (`plan_start`). When other deadline jobs compete for the same pool,
the lone plan would send them all into the same clean hours; so the pass plans the whole pool (`plan_fleet`, greedy
path: deterministic, so every job's pass computes the same pool plan from the same inputs, and fast enough to run
once per pool and minute) and takes its own job's assignment from it. On an empty pool (no other pending job and no
reservation) the lone plan stands unchanged, so single-job behaviour is what it always was.

`moved_jobs` lists the other deferred jobs whose planned start the new pool plan moved, so the operator can re-run
their passes at once instead of waiting for the periodic resync.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from llmasos.planning.timing.carbon_window import Plan
from llmasos.planning.timing.fleet import plan_fleet
from llmasos.planning.timing.fleet_prices import Arrival
from llmasos.planning.timing.fleet_status import Member, fleet_inputs
from llmasos.planning.timing.fleet_types import Assignment, FleetPlan, PoolCapacity
from llmasos.planning.timing.forecast import Forecast


@dataclass(frozen=True)
class PoolPlan:
    """The plan of one pool at one instant, and whether anything competes in it at all."""

    plan: FleetPlan | None  # None: the pool holds only the asking job (the lone plan stands)
    at: datetime

    def assignment(self, key: str) -> Assignment | None:
        return self.plan.by_id().get(key) if self.plan else None


def plan_pool(members: Sequence[Member], pool: str, gpus: int, zone: str, forecast: Forecast,
              now: datetime, arrivals: Sequence[Arrival] = ()) -> PoolPlan:
    """Plan every pending member of `pool` together (greedy path), honouring the started members' reservations and
    pricing the capacity that the pool's recent `arrivals` say more work will want (fleet_prices.py)."""
    pending, reserved = fleet_inputs(members, pool, now)
    if len(pending) <= 1 and not reserved:
        return PoolPlan(None, now)
    capacity = PoolCapacity(pool, gpus, zone)
    fitting = [job for job in pending if job.gpus <= gpus]  # a gang larger than the pool: placement's business
    plan = plan_fleet(fitting, [capacity], reserved, {zone: forecast}, now, solver="greedy", arrivals=arrivals)
    return PoolPlan(plan, now)


def apply_assignment(own: Plan, assignment: Assignment | None, pool: str) -> Plan:
    """The job's own plan with the pool's window for it: segments, expected intensity and, when the pool cannot
    keep its deadline, `feasible=False` with the reason. Unchanged when the pool plan has no say (None)."""
    if assignment is None or not assignment.segments or assignment.segments == own.segments:
        return own
    if assignment.feasible:
        reason = f"moved: other jobs hold pool {pool} in the cleaner hours; this is the cleanest window left"
    else:
        reason = assignment.reason
    expected = own.expected_intensity if assignment.expected_intensity is None else assignment.expected_intensity
    return replace(own, segments=assignment.segments, expected_intensity=expected,
                   feasible=own.feasible and assignment.feasible, reason=reason)


def moved_jobs(pool_plan: PoolPlan, planned_starts: Mapping[str, datetime], skip: str) -> list[str]:
    """Keys of deferred jobs whose start in `pool_plan` differs from the start their status holds."""
    if pool_plan.plan is None:
        return []
    return sorted(a.job_id for a in pool_plan.plan.assignments
                  if a.job_id != skip and a.segments and a.job_id in planned_starts
                  and planned_starts[a.job_id] != a.start_at)
