"""The pool a deferred LLMJob shares, read from the LLMJobs the operator already watches, and planned as a whole.

Restart-safe and without a store of its own: each member comes from an LLMJob's spec and status (`status.pool`,
`status.startTime`, the run-time ledger in `status.plan`), as kopf's `llmjob_bodies` index holds them. So do the
pool's arrivals of the last two days, finished LLMJobs included, that price the capacity wanted by the work still to
come (planning/timing/fleet_prices.py); deleting old LLMJobs only makes those prices lower. The pool plan
(pure: planning/timing/fleet_gate.py) is computed at most once per pool, minute and membership, and shared by the
passes of every job in that pool, so a burst of N deferred jobs costs N small plans, not N passes x N jobs.

A newly computed pool plan names the other deferred jobs whose planned start it moved; the asking pass has the resync
run theirs at once (handlers/wakeups.py), so each writes its own new plan (one status write and one Event per job)
without waiting a whole round.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from llmasos.api.phase import TERMINAL
from llmasos.api.spec import parse_spec
from llmasos.errors import SpecError
from llmasos.planning.timing.carbon_window import CarbonJob
from llmasos.planning.timing.fleet_gate import PoolPlan, moved_jobs, plan_pool
from llmasos.planning.timing.fleet_prices import HISTORY, Arrival
from llmasos.planning.timing.fleet_status import Member
from llmasos.planning.timing.forecast import Forecast, parse_instant
from llmasos.planning.timing.served import ledger_from

JobFor = Callable[[Any, dict[str, Any]], CarbonJob]


def _placed(body: Mapping[str, Any], job_for: JobFor) -> tuple[str, int, CarbonJob] | None:
    """(pool, GPUs, job) of an LLMJob given a pool; None without one or with an invalid spec."""
    pool = str((body.get("status") or {}).get("pool") or "")
    if not pool:
        return None
    try:
        spec = parse_spec(dict(body.get("spec") or {}))
        job = job_for(spec, dict(body))
    except SpecError:
        return None
    p = spec.parallelism
    return pool, max(p.nodes * p.gpus_per_node, 1), job


def member_of(body: Mapping[str, Any], job_for: JobFor) -> Member | None:
    """One LLMJob as its pool's planner sees it; None when it is not placed, finished, or its spec is invalid."""
    status = body.get("status") or {}
    placed = None if status.get("phase") in TERMINAL else _placed(body, job_for)
    if placed is None:
        return None
    pool, gpus, job = placed
    meta = body["metadata"]
    return Member(f"{meta['namespace']}/{meta['name']}", pool, gpus, job, bool(status.get("startTime")),
                  ledger_from(status.get("plan")))


def arrival_of(body: Mapping[str, Any], job_for: JobFor) -> Arrival | None:
    """When and what kind of work an LLMJob brought to its pool, whatever its phase; None without a pool, a
    creation time or a deadline (an `immediate` job is never planned around), or with an invalid spec."""
    created = (body.get("metadata") or {}).get("creationTimestamp")
    placed = _placed(body, job_for) if created else None
    if placed is None:
        return None
    pool, gpus, job = placed
    if job.deadline is None or job.policy == "immediate":
        return None
    at = parse_instant(str(created))
    return Arrival(pool, at, gpus, job.duration, job.deadline - at)


def planned_starts(bodies: Iterable[Mapping[str, Any]]) -> dict[str, datetime]:
    """The planned start each deferred job's status holds now (what `moved_jobs` compares the pool plan with)."""
    out: dict[str, datetime] = {}
    for body in bodies:
        status = body.get("status") or {}
        start = (status.get("plan") or {}).get("startAt")
        if status.get("phase") == "Deferred" and start:
            meta = body["metadata"]
            out[f"{meta['namespace']}/{meta['name']}"] = parse_instant(str(start))
    return out


@dataclass
class PoolPlans:
    """Pool plans shared by the passes of one operator process (in memory only: rebuilt from status after a
    restart). `bucket` is how long a plan is reused while its pool's membership does not change."""

    bucket: timedelta = timedelta(minutes=1)
    _plans: dict[str, tuple[tuple[Any, ...], PoolPlan]] = field(default_factory=dict)
    _members: dict[tuple[str, str], tuple[str, Member | None, Arrival | None]] = field(default_factory=dict)

    def members(self, bodies: Iterable[Mapping[str, Any]], pool: str, job_for: JobFor) -> list[Member]:
        """The pool's members; each body is parsed once per resourceVersion (deleted LLMJobs are forgotten)."""
        out: list[Member] = []
        bodies = list(bodies)
        present = {(str(b["metadata"].get("namespace", "")), str(b["metadata"].get("name", ""))) for b in bodies}
        for gone in self._members.keys() - present:
            del self._members[gone]
        for body in bodies:
            meta = body["metadata"]
            key = (str(meta.get("namespace", "")), str(meta.get("name", "")))
            version = str(meta.get("resourceVersion", ""))
            cached = self._members.get(key)
            if cached is None or cached[0] != version or not version:
                cached = (version, member_of(body, job_for), arrival_of(body, job_for))
                self._members[key] = cached
            if cached[1] is not None and cached[1].pool == pool:
                out.append(cached[1])
        return out

    def arrivals(self, pool: str, now: datetime) -> list[Arrival]:
        """The pool's arrivals within `HISTORY` of `now`, among the LLMJobs the last `members` call saw."""
        found = (cached[2] for cached in self._members.values())
        return sorted((a for a in found if a is not None and a.pool == pool and now - HISTORY < a.at <= now),
                      key=lambda a: (a.at, a.gpus, a.duration, a.window))

    def plan(self, members: list[Member], pool: str, gpus: int, zone: str, forecast: Forecast,
             now: datetime, starts: Mapping[str, datetime], asking: str) -> tuple[PoolPlan, list[str]]:
        """The pool plan at `now` (reused within the bucket while members, arrivals, capacity and forecast hold),
        and the keys of the deferred jobs other than `asking` whose planned start it moves (none when reused: the
        pass that computed it named them)."""
        bucket = int(now.timestamp() // self.bucket.total_seconds())
        arrivals = tuple(self.arrivals(pool, now))
        signature = (bucket, gpus, zone, forecast, tuple(sorted(members, key=lambda m: m.key)), arrivals)
        cached = self._plans.get(pool)
        if cached is not None and cached[0] == signature:
            return cached[1], []
        result = plan_pool(members, pool, gpus, zone, forecast, now, arrivals)
        self._plans[pool] = (signature, result)
        return result, moved_jobs(result, starts, skip=asking)
