"""The fast path of the fleet planner: place jobs one by one, least room first, each in its cleanest free window.

Each job gets exactly the single-job planner's answer (`best_contiguous`, `greedy_split`, `enforce_limits` from
`carbon_window.py`/`segments.py`) restricted to where its pool still has room, so on an empty pool the fleet plan is
the single-job plan. Contention is what changes:

* Order: least room first (latest start, then deadline). Urgent jobs take their few possible windows before jobs
  with a day of slack spread over what is left, so the herd of deadline jobs no longer all picks the same hours.
  The pass also runs ordered by room itself (latest start minus earliest start) and the better plan is kept;
  `fleet_improve.py` then re-places jobs where that emits less.
* Headroom: a placement first tries to leave `headroom` GPUs of its pool free (for urgent work that has not arrived
  yet) and only uses them when it would otherwise miss its deadline.
* Bumping: a job that finds no room before its deadline takes the place of the jobs already placed in its window,
  which are then placed again, each within its own deadline; if any of them no longer fits, nothing moves.

Runs in about O(jobs x (forecast steps + placements per pool)) and never calls a solver; `fleet.py` decides when the
MILP (`fleet_milp.py`) is tried as well.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping

from llmasos.planning.timing.capacity import MICRO, Usage, to_us
from llmasos.planning.timing.carbon_window import REL_TOL, best_contiguous
from llmasos.planning.timing.fleet_types import Placement, Prepared
from llmasos.planning.timing.segments import EPS, Span, enforce_limits, greedy_split
from llmasos.planning.timing.timeline import Timeline, TimelinePiece

# Blocked time is priced this many times the dirtiest hour, so the split heuristics avoid it whenever they can;
# a split that still touches it is refused by the exact check, never executed.
BLOCKED_FACTOR = 1e7


def place_greedy(
    jobs: list[Prepared], caps: Mapping[str, int], base: Mapping[str, Usage], headroom: Mapping[str, int]
) -> tuple[dict[str, Placement], dict[str, Usage]]:
    """Placements of the jobs that meet their deadlines (the others are left out) and the usage they leave: the
    better of two orders, least room first by latest start and by room itself (more jobs on time, then less cost)."""
    best = place_in_order(jobs, caps, base, headroom, Prepared.order_key)
    other = place_in_order(jobs, caps, base, headroom, _room_key)
    return other if fewer_late_or_cheaper(other[0], best[0]) else best


def _room_key(job: Prepared) -> tuple[int, int, str]:
    return (job.hi - job.lo, job.hi, job.job.id)


def fewer_late_or_cheaper(a: Mapping[str, Placement], b: Mapping[str, Placement]) -> bool:
    """Whether plan `a` keeps more jobs on time than `b`, or as many at a lower cost."""
    if len(a) != len(b):
        return len(a) > len(b)
    cost_b = sum(p.cost for p in b.values())
    return sum(p.cost for p in a.values()) < cost_b - max(abs(cost_b) * REL_TOL, EPS)


def place_in_order(
    jobs: list[Prepared],
    caps: Mapping[str, int],
    base: Mapping[str, Usage],
    headroom: Mapping[str, int],
    key: Callable[[Prepared], tuple[int, int, str]],
) -> tuple[dict[str, Placement], dict[str, Usage]]:
    """One greedy pass: the jobs in `key` order, each in its cleanest window left, bumping when it finds none."""
    usage = {name: base[name].copy() if name in base else Usage() for name in caps}
    placed: dict[str, Placement] = {}
    by_id = {p.job.id: p for p in jobs}
    for job in sorted(jobs, key=key):
        if not job.alone_feasible:
            continue
        found = best_placement(job, caps, usage, headroom)
        if found is not None:
            take(usage, job, found)
            placed[job.job.id] = found
        else:
            _bump(job, caps, usage, headroom, placed, by_id)
    return placed, usage


def best_placement(
    job: Prepared, caps: Mapping[str, int], usage: Mapping[str, Usage], headroom: Mapping[str, int]
) -> Placement | None:
    """The cheapest placement meeting the deadline, first leaving each pool's headroom free, then using it."""
    attempts = (True, False) if any(headroom.get(p, 0) > 0 for p in job.job.pools) else (False,)
    for spare in attempts:
        best: Placement | None = None
        for pool in job.job.pools:
            room = caps.get(pool, 0) - job.job.gpus - (headroom.get(pool, 0) if spare else 0)
            if room < 0:
                continue
            found = place_in_pool(job, pool, usage[pool], room)
            if found is not None and (best is None or _better(found, best)):
                best = found
        if best is not None:
            return best
    return None


def _better(a: Placement, b: Placement) -> bool:
    tol = max(abs(b.cost) * REL_TOL, EPS)
    return a.cost < b.cost - tol or (abs(a.cost - b.cost) <= tol and a.end < b.end)


def place_in_pool(job: Prepared, pool: str, usage: Usage, room: int) -> Placement | None:
    """The cheapest window (or, for an interruptible job, set of segments) in [lo, deadline) where the pool never
    holds more than `room` GPUs before this job's are added; None when there is none."""
    tl, dur, gpus = job.timelines[pool], job.dur, job.job.gpus
    best: tuple[float, int] | None = None
    for a, b in usage.free(job.lo, job.deadline, room):
        s_hi = min(b - dur, job.hi)
        if s_hi < a:
            continue
        start, cost = best_contiguous(tl, a / MICRO, s_hi / MICRO, dur / MICRO)
        s = min(max(to_us(start), a), s_hi)
        if best is None or cost < best[0] - max(abs(best[0]) * REL_TOL, EPS):
            best = (cost, s)
    contiguous = Placement(pool, ((best[1], best[1] + dur),), gpus * best[0]) if best is not None else None
    if not job.job.interruptible:
        return contiguous
    split = _split(job, pool, usage, room)
    if split is None:
        return contiguous
    if contiguous is None or (len(split.spans) > 1 and split.cost < contiguous.cost * (1 - REL_TOL) - EPS):
        return split
    return contiguous


def _split(job: Prepared, pool: str, usage: Usage, room: int) -> Placement | None:
    """The single-job split (`greedy_split` + `enforce_limits`) on a timeline where blocked time is priced out."""
    priced = job.timelines[pool]
    blocked = usage.blocked(job.lo, job.deadline, room)
    timeline = masked(priced, blocked, job.deadline / MICRO) if blocked else priced
    dur = job.dur / MICRO
    spans = greedy_split(timeline, job.lo / MICRO, job.deadline / MICRO, dur)
    if not spans:
        return None
    spans = enforce_limits(timeline, spans, job.job.min_segment.total_seconds(), job.job.max_segments)
    ints = _exact(spans, job.dur, job.lo, job.deadline)
    if ints is None or any(usage.peak(a, b) > room for a, b in ints):
        return None
    cost = job.job.gpus * sum(priced.integral(a / MICRO, b / MICRO) for a, b in ints)
    return Placement(pool, ints, cost)


def _exact(spans: list[Span], dur: int, lo: int, deadline: int) -> tuple[tuple[int, int], ...] | None:
    """Spans in whole microseconds adding up to exactly `dur` inside [lo, deadline]; None when rounding can't."""
    ints = [[to_us(s.start), to_us(s.end)] for s in spans]
    longest = max(range(len(ints)), key=lambda i: ints[i][1] - ints[i][0])
    ints[longest][1] += dur - sum(b - a for a, b in ints)
    if ints[longest][1] > deadline:
        shift = ints[longest][1] - deadline
        ints[longest] = [ints[longest][0] - shift, deadline]
    ok = all(a < b for a, b in ints) and ints[0][0] >= lo and ints[-1][1] <= deadline
    ok = ok and all(ints[i][1] <= ints[i + 1][0] for i in range(len(ints) - 1))
    return tuple((a, b) for a, b in ints) if ok else None


def masked(timeline: Timeline, blocked: list[tuple[int, int]], end: float) -> Timeline:
    """`timeline` up to `end` with the `blocked` stretches (microseconds) priced out of reach."""
    big = BLOCKED_FACTOR * max(1.0, max(p.intensity for p in timeline.pieces))
    cuts = sorted({0.0, end, *timeline.breakpoints(0.0, end), *(x / MICRO for ab in blocked for x in ab)})
    cuts = [c for c in cuts if 0.0 <= c <= end]
    pieces: list[TimelinePiece] = []
    k = 0
    for a, b in itertools.pairwise(cuts):
        if b - a <= 0:
            continue
        mid = (a + b) / 2
        while k < len(blocked) and blocked[k][1] / MICRO <= mid:
            k += 1
        hidden = k < len(blocked) and blocked[k][0] / MICRO <= mid
        value = big if hidden else timeline.value_at(mid)
        pieces.append(TimelinePiece(a, b, value, timeline.is_estimated_at(mid)))
    return Timeline.from_pieces(timeline.origin, pieces)


def take(usage: Mapping[str, Usage], job: Prepared, placement: Placement, sign: int = 1) -> None:
    """Add (sign 1) or remove (sign -1) a placement's GPUs from its pool's usage."""
    for a, b in placement.spans:
        usage[placement.pool].add(a, b, sign * job.job.gpus)


def _bump(
    job: Prepared,
    caps: Mapping[str, int],
    usage: Mapping[str, Usage],
    headroom: Mapping[str, int],
    placed: dict[str, Placement],
    by_id: Mapping[str, Prepared],
) -> None:
    """Make room for `job` by placing it first and the jobs in its window again after it; all or nothing."""
    victims = [
        by_id[jid]
        for jid, p in placed.items()
        if p.pool in job.job.pools and p.spans[0][0] < job.deadline and p.end > job.lo
    ]
    if not victims:
        return
    old = {v.job.id: placed[v.job.id] for v in victims}
    for v in victims:
        take(usage, v, old[v.job.id], -1)
    mine = best_placement(job, caps, usage, headroom)
    moved: dict[str, Placement] = {}
    if mine is not None:
        take(usage, job, mine)
        for v in sorted(victims, key=Prepared.order_key):
            again = best_placement(v, caps, usage, headroom)
            if again is None:
                break
            take(usage, v, again)
            moved[v.job.id] = again
    if mine is None or len(moved) < len(victims):
        for jid, p in moved.items():
            take(usage, by_id[jid], p, -1)
        if mine is not None:
            take(usage, job, mine, -1)
        for v in victims:
            take(usage, v, old[v.job.id])
        return
    placed.update(moved)
    placed[job.job.id] = mine
