"""The exact path of the fleet planner: a time-indexed MILP solved by HiGHS (`highs.py`).

Time is cut into slots (the forecasts' step). A contiguous job chooses one start among the slot edges in its window
plus its earliest and latest start; it occupies every slot it touches, so the capacity rows are conservative and a
solution respects capacity in continuous time too. An interruptible job (when its `minSegment` fits in one slot and
it has no `maxSegments`) may instead take whole slots inside its window, at least its duration's worth; the excess
of the last slot is trimmed. Each job also has a "miss" variable priced above every placement together, so the
MILP always has a solution and maximises first the number of deadlines kept, then the emissions saved.

highspy is optional (`pip install llmasos[fleet]`; the dev extra has it): without it `solve` returns None and the
greedy path stands alone. `fleet.py` decides when the MILP is worth its time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from llmasos.planning.timing import highs
from llmasos.planning.timing.capacity import MICRO, Usage
from llmasos.planning.timing.fleet_types import Placement, Prepared


@dataclass(frozen=True)
class _Var:
    job: int
    pool: str
    kind: str  # "start", "slot", "split" (the split-mode switch) or "miss"
    start: int = 0  # start (µs) of a "start", slot index of a "slot"
    cost: float = 0.0


def count_variables(jobs: list[Prepared], caps: Mapping[str, int], slot: int, origin: int) -> int:
    """How many variables `solve` would create (cheap; `fleet.py` uses it to stay within its time budget)."""
    total = 0
    for job in jobs:
        for pool in job.job.pools:
            if caps.get(pool, 0) < job.job.gpus or not job.alone_feasible:
                continue
            total += len(_starts(job, slot, origin)) + (len(_slots(job, slot, origin)) + 1 if _splits(job, slot) else 0)
        total += 1
    return total


@dataclass(frozen=True)
class Solution:
    """The MILP's placements (jobs it keeps on time) and its relative gap to the proven bound (0 when optimal)."""

    placements: dict[str, Placement]
    gap: float


def solve(
    jobs: list[Prepared],
    caps: Mapping[str, int],
    base: Mapping[str, Usage],
    slot: int,
    origin: int,
    time_limit: float,
    mip_rel_gap: float = 1e-4,
) -> Solution | None:
    """The jobs the MILP keeps on time (others left out); None without highspy or without a solution in time.

    `slot` is the slot length and `origin` a slot edge, both in microseconds from the planning instant.
    """
    if not highs.available():
        return None
    if not any(job.alone_feasible for job in jobs):
        return Solution({}, 0.0)
    variables: list[_Var] = []
    for j, job in enumerate(jobs):
        if not job.alone_feasible:
            continue
        for pool in job.job.pools:
            if caps.get(pool, 0) < job.job.gpus:
                continue
            tl = job.timelines[pool]
            for s in _starts(job, slot, origin):
                cost = job.job.gpus * tl.integral(s / MICRO, (s + job.dur) / MICRO)
                variables.append(_Var(j, pool, "start", s, cost))
            if _splits(job, slot):
                variables.append(_Var(j, pool, "split"))
                for t in _slots(job, slot, origin):
                    a = origin + t * slot
                    variables.append(
                        _Var(j, pool, "slot", t, job.job.gpus * tl.integral(a / MICRO, (a + slot) / MICRO))
                    )
    scale = max((v.cost for v in variables), default=1.0) or 1.0
    penalty = 1.0 + sum(math.ceil(job.dur / slot) + 1 for job in jobs)
    variables.extend(_Var(j, "", "miss", cost=penalty * scale) for j in range(len(jobs)))

    matrix: list[tuple[int, int, float]] = []
    lower: list[float] = []
    upper: list[float] = []

    def row(items: list[tuple[int, float]], lo: float, hi: float) -> None:
        matrix.extend((len(lower), c, v) for c, v in items)
        lower.append(lo)
        upper.append(hi)

    per_job: dict[int, list[tuple[int, float]]] = {}
    split_of: dict[tuple[int, str], int] = {}
    slots_of: dict[tuple[int, str], list[int]] = {}
    load: dict[tuple[str, int], list[tuple[int, float]]] = {}
    for c, v in enumerate(variables):
        if v.kind in ("start", "split", "miss"):
            per_job.setdefault(v.job, []).append((c, 1.0))
        gpus = float(jobs[v.job].job.gpus)
        if v.kind == "split":
            split_of[(v.job, v.pool)] = c
        elif v.kind == "slot":
            slots_of.setdefault((v.job, v.pool), []).append(c)
            load.setdefault((v.pool, v.start), []).append((c, gpus))
        elif v.kind == "start":
            first = (v.start - origin) // slot
            last = -((origin - v.start - jobs[v.job].dur) // slot)  # ceil
            for t in range(first, last):
                load.setdefault((v.pool, t), []).append((c, gpus))
    for entries in per_job.values():
        row(entries, 1.0, 1.0)
    for key, z in split_of.items():
        ys = slots_of.get(key, [])
        need = jobs[key[0]].dur / slot
        row([*((c, 1.0) for c in ys), (z, -need)], 0.0, math.inf)  # enough slots when split
        row([*((c, 1.0) for c in ys), (z, -float(len(ys)))], -math.inf, 0.0)  # no slot unless split
    for (pool, t), entries in load.items():
        a = origin + t * slot
        free = caps[pool] - (base[pool].peak(a, a + slot) if pool in base else 0)
        row(entries, -math.inf, float(max(free, 0)))

    problem = highs.Problem([v.cost / scale for v in variables], [0.0] * len(variables), [1.0] * len(variables),
                            matrix, lower, upper, integer=True)
    result = highs.solve(problem, time_limit, mip_rel_gap)
    if result is None:
        return None
    return Solution(_placements(jobs, variables, [x > 0.5 for x in result.x], slot, origin), result.gap)


def _placements(
    jobs: list[Prepared], variables: list[_Var], chosen: list[bool], slot: int, origin: int
) -> dict[str, Placement]:
    out: dict[str, Placement] = {}
    taken: dict[tuple[int, str], list[int]] = {}
    for v, on in zip(variables, chosen, strict=True):
        if not on:
            continue
        job = jobs[v.job]
        if v.kind == "start":
            out[job.job.id] = Placement(v.pool, ((v.start, v.start + job.dur),), v.cost)
        elif v.kind == "slot":
            taken.setdefault((v.job, v.pool), []).append(v.start)
    for (j, pool), slots in taken.items():
        job = jobs[j]
        if job.job.id in out:
            continue
        spans: list[list[int]] = []
        for t in sorted(slots):
            a = origin + t * slot
            if spans and spans[-1][1] == a:
                spans[-1][1] = a + slot
            else:
                spans.append([a, a + slot])
        excess = sum(b - a for a, b in spans) - job.dur
        while excess > 0:
            a, b = spans[-1]
            cut = min(excess, b - a)
            spans[-1][1] = b - cut
            excess -= cut
            if spans[-1][1] <= spans[-1][0]:
                spans.pop()
        tl = job.timelines[pool]
        cost = job.job.gpus * sum(tl.integral(a / MICRO, b / MICRO) for a, b in spans)
        out[job.job.id] = Placement(pool, tuple((a, b) for a, b in spans), cost)
    return out


def _starts(job: Prepared, slot: int, origin: int) -> list[int]:
    """Slot edges in [lo, hi], and lo and hi themselves."""
    if not job.alone_feasible:
        return []
    first = -((origin - job.lo) // slot)
    edges = {origin + t * slot for t in range(first, (job.hi - origin) // slot + 1)}
    return sorted(edges | {job.lo, job.hi})


def _splits(job: Prepared, slot: int) -> bool:
    return (
        job.job.interruptible and job.job.max_segments is None and job.job.min_segment.total_seconds() * MICRO <= slot
    )


def _slots(job: Prepared, slot: int, origin: int) -> list[int]:
    """Slots wholly inside [lo, deadline)."""
    first = -((origin - job.lo) // slot)
    last = (job.deadline - origin) // slot  # exclusive
    return list(range(first, last))
