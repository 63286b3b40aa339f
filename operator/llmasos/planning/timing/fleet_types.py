"""The fleet planner's inputs and outputs as frozen values, and the prepared form its two solvers share.

Inputs: pending jobs (`FleetJob`), pools with their GPU capacity and carbon zone (`PoolCapacity`), capacity already
committed (`Reservation`: running jobs, segments already promised). Output: one `Assignment` per job, collected in a
`FleetPlan`. Times are UTC-aware datetimes at the edges and whole microseconds from the planning instant inside,
so that what the greedy path and the MILP produce is checked against capacity exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from llmasos.planning.timing.carbon_window import Segment
from llmasos.planning.timing.forecast import Forecast, ensure_utc
from llmasos.planning.timing.timeline import Timeline

Solver = Literal["auto", "greedy", "milp"]
MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True)
class FleetJob:
    """A pending job: not started, or interruptible and owing `duration` more run time.

    `pools` lists where it may run (each must have at least `gpus` GPUs). `forecast`, when set, is the intensity
    this job sees wherever it runs (the batch contract gives each line its own); otherwise the pool's zone forecast.
    """

    id: str
    gpus: int
    pools: tuple[str, ...]
    duration: timedelta
    earliest_start: datetime
    deadline: datetime
    interruptible: bool = False
    min_segment: timedelta = timedelta(minutes=15)
    max_segments: int | None = None
    forecast: Forecast | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "earliest_start", ensure_utc(self.earliest_start, "earliest start"))
        object.__setattr__(self, "deadline", ensure_utc(self.deadline, "deadline"))
        if self.gpus < 1:
            raise ValueError(f"job {self.id}: gpus must be at least 1, got {self.gpus}")
        if not self.pools:
            raise ValueError(f"job {self.id}: no pool allowed")
        if self.duration <= timedelta(0):
            raise ValueError(f"job {self.id}: duration must be positive, got {self.duration}")
        if self.max_segments is not None and self.max_segments < 1:
            raise ValueError(f"job {self.id}: max_segments must be at least 1")


@dataclass(frozen=True)
class PoolCapacity:
    """A pool of `gpus` GPUs whose electricity comes from carbon zone `zone`."""

    name: str
    gpus: int
    zone: str = ""

    def __post_init__(self) -> None:
        if self.gpus < 0:
            raise ValueError(f"pool {self.name}: gpus must not be negative, got {self.gpus}")


@dataclass(frozen=True)
class Reservation:
    """`gpus` GPUs of `pool` already taken on [start, end): a running job, or a segment already promised."""

    pool: str
    start: datetime
    end: datetime
    gpus: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", ensure_utc(self.start, "reservation start"))
        object.__setattr__(self, "end", ensure_utc(self.end, "reservation end"))
        if self.gpus < 0:
            raise ValueError(f"reservation in {self.pool}: gpus must not be negative")


@dataclass(frozen=True)
class Assignment:
    """Where and when one job runs. `feasible` is False when no capacity-respecting plan meets its deadline:
    the segments are then the earliest the capacity left allows, `earliest_end` says when that ends, and
    `reason` says why (the operator's DeadlineAtRisk condition carries both)."""

    job_id: str
    pool: str
    segments: tuple[Segment, ...]
    feasible: bool
    reason: str
    expected_intensity: float | None = None
    earliest_end: datetime | None = None

    @property
    def start_at(self) -> datetime:
        return self.segments[0].start

    @property
    def end_at(self) -> datetime:
        return self.segments[-1].end


@dataclass(frozen=True)
class FleetPlan:
    """Every pending job's assignment, in input order, which solver produced the plan ("greedy" or "milp") and,
    for the MILP, its relative gap to the proven lower bound on emissions (0 when solved to optimality)."""

    assignments: tuple[Assignment, ...]
    solver: str
    milp_gap: float | None = None

    def by_id(self) -> dict[str, Assignment]:
        return {a.job_id: a for a in self.assignments}

    @property
    def at_risk(self) -> tuple[Assignment, ...]:
        return tuple(a for a in self.assignments if not a.feasible)


# -- the prepared form both solvers work on --------------------------------------------------------------------
@dataclass(frozen=True)
class Prepared:
    """A job in the planner's units: microseconds from the planning instant; `timelines[pool]` prices a second of
    it in that pool (g/kWh), from the planning instant on, as the solvers compare placements (with the lead price,
    fleet.py); `forecast_lines[pool]` is the forecast itself, for the intensity a plan reports (empty: the same)."""

    job: FleetJob
    lo: int  # earliest start
    deadline: int
    dur: int
    timelines: Mapping[str, Timeline] = field(compare=False)
    forecast_lines: Mapping[str, Timeline] = field(default_factory=dict, compare=False)

    @property
    def hi(self) -> int:
        """Latest start that still meets the deadline (below `lo` when even starting now is too late)."""
        return self.deadline - self.dur

    @property
    def alone_feasible(self) -> bool:
        return self.hi >= self.lo

    def order_key(self) -> tuple[int, int, str]:
        """Least room first: the latest start, then the deadline, then the id (a deterministic total order)."""
        return (self.hi, self.deadline, self.job.id)


@dataclass(frozen=True)
class Placement:
    """Spans [start, end) in microseconds from the planning instant, in one pool; `cost` = GPUs x g/kWh x s."""

    pool: str
    spans: tuple[tuple[int, int], ...]
    cost: float

    @property
    def end(self) -> int:
        return self.spans[-1][1]
