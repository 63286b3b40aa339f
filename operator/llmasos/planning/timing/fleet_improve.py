"""Improving the greedy fleet plan: take out the jobs whose windows meet a stretch of one pool, place them again.

The greedy path places one job at a time, each in the cleanest window left to it, so the order decides who gets
a dip, and the jobs placed first often leave gaps that no later job fits. Measured on the fleet benchmark's whole
trace with every job and the true series known in advance (docs/carbon.md), that order alone keeps about 85 % of
the offline optimum's savings. A large-neighbourhood search closes most of the rest without a solver: each round
picks one pool and a stretch of `STRETCH` (from a generator seeded by the plan's own size, so the same inputs give
the same plan), takes out every placed job that may use that pool and whose window meets the stretch (those placed
across it, and those that could move into it), and places them again, alternately least room first and in a
shuffled order. The new placements are kept only when every removed job is on time again and they cost less in
all; otherwise the old ones are put back. So a round never loses a deadline, never exceeds capacity (each
placement is made against the usage left by the others) and never raises the cost.

A job alone in its pool is already in its cleanest window, so this never moves it: the single-job plan holds on an
empty pool.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from datetime import timedelta

from llmasos.planning.timing.capacity import Usage
from llmasos.planning.timing.carbon_window import REL_TOL
from llmasos.planning.timing.fleet_greedy import best_placement, take
from llmasos.planning.timing.fleet_types import MICROSECOND, Placement, Prepared
from llmasos.planning.timing.segments import EPS

ROUNDS = 100
STRETCH = timedelta(hours=6) // MICROSECOND


def improve(
    jobs: list[Prepared],
    caps: Mapping[str, int],
    usage: Mapping[str, Usage],
    headroom: Mapping[str, int],
    placed: dict[str, Placement],
    rounds: int = ROUNDS,
) -> dict[str, Placement]:
    """`placed` after `rounds` rounds of re-placing the jobs whose windows meet a stretch of one pool; `usage`
    (which must be what `placed` leaves) is kept in step."""
    if not placed or rounds <= 0:
        return placed
    by_id = {p.job.id: p for p in jobs}
    pools = sorted({p.pool for p in placed.values()})
    horizon = max(p.end for p in placed.values())
    rng = random.Random(f"fleet-improve:{len(jobs)}:{len(placed)}")
    for turn in range(rounds):
        pool, start = rng.choice(pools), rng.uniform(0, horizon)
        out = [jid for jid in placed if pool in by_id[jid].job.pools and _meets(by_id[jid], start, start + STRETCH)]
        if not out:
            continue
        order = sorted(out, key=lambda j: by_id[j].order_key()) if turn % 2 == 0 else rng.sample(out, len(out))
        _replace(order, by_id, caps, usage, headroom, placed)
    return placed


def _meets(job: Prepared, start: float, end: float) -> bool:
    """Whether the job's window [earliest start, deadline) meets the stretch [start, end)."""
    return job.lo < end and job.deadline > start


def _replace(
    order: list[str],
    by_id: Mapping[str, Prepared],
    caps: Mapping[str, int],
    usage: Mapping[str, Usage],
    headroom: Mapping[str, int],
    placed: dict[str, Placement],
) -> None:
    """Place the jobs in `order` again, in that order; keep the new placements only if all fit and cost less."""
    for jid in order:
        take(usage, by_id[jid], placed[jid], -1)
    new: dict[str, Placement] = {}
    for jid in order:
        found = best_placement(by_id[jid], caps, usage, headroom)
        if found is None:
            break
        take(usage, by_id[jid], found)
        new[jid] = found
    old_cost = sum(placed[j].cost for j in order)
    if len(new) == len(order) and sum(p.cost for p in new.values()) < old_cost - max(abs(old_cost) * REL_TOL, EPS):
        placed.update(new)
        return
    for jid, found in new.items():
        take(usage, by_id[jid], found, -1)
    for jid in order:
        take(usage, by_id[jid], placed[jid])
