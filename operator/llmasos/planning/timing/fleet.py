"""Carbon planning for a fleet: windows for every pending job such that no pool is ever over-subscribed.

Planning each job alone sends every deadline job to the same clean hours; the pool saturates and late jobs queue
past their deadlines. `plan_fleet` plans them together:

* Capacity: at no instant does a pool hold more GPUs than it has, counting the reservations already committed
  (running jobs, segments already promised). Every plan is checked with `capacity_violations` before it is returned.
* Deadlines: a job whose deadline can be met is planned to meet it. The greedy path (`fleet_greedy.py`) places the
  jobs with the least room first and moves already-placed deferred jobs out of an urgent job's way, then
  `fleet_improve.py` re-places jobs wherever that lowers the carbon and keeps every job on time; when it still
  leaves a job late, the MILP (`fleet_milp.py`) is tried, and the plan that keeps more deadlines (then saves more)
  wins. A job that no plan can keep on time is told so (`feasible` False, `reason`, `earliest_end`) and planned as
  early as the capacity left allows, after the others, never silently late.
* Re-planning: pending jobs are all planned again on each call, so a deferred job that has not started moves, within
  its own deadline, to make room for an urgent arrival; an interruptible job that already ran is passed with the
  run time it still owes and may yield at the boundary where this plan begins.

Lead price (`lead_price`, 0.1 by default): in a pool whose GPUs cannot hold all its jobs at once (their GPUs plus
the reservations' peak exceed it), placements compare intensities raised by `lead_price` per 24 hours ahead (x1.1
a day out, x1.2 two days out). The plan knows only the jobs that exist; capacity far ahead is also wanted by jobs
that have not arrived yet, and the forecast is less sure there, so among windows of nearly equal carbon the nearer
one is taken and the farther one left free. Measured in `bench/fleet_shift.py` (docs/carbon.md): more of the
offline optimum's savings and fewer deadlines missed on every seed. In a pool with room for everything, jobs are
planned on the forecast itself, so each keeps exactly its single-job plan; reported intensities always come from
the forecast itself.

Capacity prices (`arrivals`): given the pools' arrivals of the last two days, each pool's next 48 hours are priced
by the work expected to come (`fleet_prices.py`, a linear program through highspy; none without it), and placements
compare the forecast plus those prices. Without arrivals (the CLI's batch plans) nothing is priced.

Solver choice (`solver="auto"`): the greedy path always runs (under a second for 1,000 pending jobs); the
MILP runs as well when the fleet is small (at most `SMALL_MILP_VARIABLES` variables) or the greedy plan misses a
deadline (up to `MAX_MILP_VARIABLES`), within `milp_time_limit` seconds. `"greedy"` and `"milp"` force one path.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta

from llmasos.planning.timing import fleet_milp
from llmasos.planning.timing.capacity import MICRO, Usage, capacity_violations
from llmasos.planning.timing.carbon_window import Segment
from llmasos.planning.timing.fleet_greedy import fewer_late_or_cheaper, place_greedy
from llmasos.planning.timing.fleet_improve import improve
from llmasos.planning.timing.fleet_prices import HORIZON_HOURS, Arrival, priced, prices_by_pool
from llmasos.planning.timing.fleet_types import (
    MICROSECOND,
    Assignment,
    FleetJob,
    FleetPlan,
    Placement,
    PoolCapacity,
    Prepared,
    Reservation,
    Solver,
)
from llmasos.planning.timing.forecast import Forecast, ensure_utc, format_instant
from llmasos.planning.timing.timeline import DEFAULT_UNKNOWN_PREMIUM, Timeline, TimelinePiece, build_timeline

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SMALL_MILP_VARIABLES = 4_000
MAX_MILP_VARIABLES = 40_000
MIN_SLOT = timedelta(minutes=5)
MAX_SLOT = timedelta(hours=1)
DEFAULT_LEAD_PRICE = 0.1  # per 24 h ahead; measured in bench/fleet_shift.py (docs/carbon.md)


def plan_fleet(
    jobs: Iterable[FleetJob],
    pools: Iterable[PoolCapacity],
    reservations: Iterable[Reservation],
    forecasts: Mapping[str, Forecast],
    now: datetime,
    *,
    solver: Solver = "auto",
    headroom: float = 0.0,
    milp_time_limit: float = 2.0,
    unknown_premium: float = DEFAULT_UNKNOWN_PREMIUM,
    lead_price: float = DEFAULT_LEAD_PRICE,
    arrivals: Iterable[Arrival] = (),
) -> FleetPlan:
    """Plan every pending job at `now` (module docstring). `forecasts` maps a carbon zone to its forecast.

    `headroom` is the share of each pool's GPUs a placement leaves free unless it needs them to meet its deadline.
    `lead_price` raises the intensity a placement is compared on by that share per 24 h ahead (module docstring);
    0 compares on the forecast alone. `arrivals` (the pools' recent arrivals, finished jobs included) add the
    capacity prices of the work expected to come (fleet_prices.py); none: no prices.
    Raises ValueError for a job naming an unknown pool or larger than every pool it may use, or a reservation in
    an unknown pool.
    """
    now = ensure_utc(now)
    job_list = list(jobs)
    pool_map = {p.name: p for p in pools}
    caps = {name: p.gpus for name, p in pool_map.items()}
    _validate(job_list, pool_map)
    base = _reserved(reservations, caps, now)
    scarce = _scarce(job_list, caps, base) if lead_price else frozenset()
    history = list(arrivals)
    prices = _prices(job_list, history, pool_map, base, forecasts, now, unknown_premium) if history else {}
    prepared = _prepare(job_list, pool_map, forecasts, now, unknown_premium, lead_price, scarce, prices)
    spare = {name: int(headroom * cap) for name, cap in caps.items()}

    placed: dict[str, Placement] = {}
    used, gap = "greedy", None
    if solver in ("auto", "greedy"):
        placed, usage = place_greedy(prepared, caps, base, spare)
        placed = improve(prepared, caps, usage, spare, placed)
    if solver != "greedy":
        slot = _slot(prepared, forecasts, pool_map)
        origin = -(_us(now - EPOCH) % slot)
        size = fleet_milp.count_variables(prepared, caps, slot, origin)
        missed = sum(1 for p in prepared if p.alone_feasible and p.job.id not in placed)
        wanted = solver == "milp" or size <= SMALL_MILP_VARIABLES or (missed and size <= MAX_MILP_VARIABLES)
        exact = fleet_milp.solve(prepared, caps, base, slot, origin, milp_time_limit) if wanted else None
        if exact is not None and _fits(exact.placements, prepared, caps, base) and (
            solver == "milp" or fewer_late_or_cheaper(exact.placements, placed)
        ):
            placed, used, gap = exact.placements, "milp", exact.gap
    return FleetPlan(_assign(prepared, placed, caps, base, now), used, gap)


def _validate(jobs: list[FleetJob], pools: Mapping[str, PoolCapacity]) -> None:
    seen: set[str] = set()
    for job in jobs:
        if job.id in seen:
            raise ValueError(f"job {job.id}: listed twice")
        seen.add(job.id)
        unknown = [p for p in job.pools if p not in pools]
        if unknown:
            raise ValueError(f"job {job.id}: unknown pool {', '.join(unknown)}")
        if all(pools[p].gpus < job.gpus for p in job.pools):
            sizes = ", ".join(f"{p} has {pools[p].gpus}" for p in job.pools)
            raise ValueError(f"job {job.id} needs {job.gpus} GPUs, more than its pool holds ({sizes})")


def _reserved(reservations: Iterable[Reservation], caps: Mapping[str, int], now: datetime) -> dict[str, Usage]:
    base = {name: Usage() for name in caps}
    for r in reservations:
        if r.pool not in caps:
            raise ValueError(f"reservation in unknown pool {r.pool}")
        if r.end > now:
            base[r.pool].add(_us(max(r.start, now) - now), _us(r.end - now), r.gpus)
    return base


def _us(delta: timedelta) -> int:
    return delta // MICROSECOND


def _prepare(
    jobs: list[FleetJob],
    pools: Mapping[str, PoolCapacity],
    forecasts: Mapping[str, Forecast],
    now: datetime,
    premium: float,
    lead_price: float = 0.0,
    scarce: frozenset[str] = frozenset(),
    prices: Mapping[str, list[float]] | None = None,
) -> list[Prepared]:
    """Each job in microseconds from `now`, with one timeline per forecast shared by every job that uses it (and the
    copy the solvers compare on: raised by `lead_price` in the `scarce` pools, plus the pools' capacity `prices`)."""
    prices = prices or {}
    horizon = max([*(j.deadline for j in jobs), *(j.earliest_start + j.duration for j in jobs), now], default=now)
    end = horizon + timedelta(hours=1)
    cache: dict[int, Timeline] = {}

    def timeline(forecast: Forecast | None) -> Timeline:
        key = id(forecast)
        if key not in cache:
            if forecast is None or not forecast.points:
                length = (end - now).total_seconds()
                cache[key] = Timeline.from_pieces(now, [TimelinePiece(0.0, length, 1.0, True)])
            else:
                cache[key] = build_timeline(forecast, now, end, premium)
        return cache[key]

    compared_cache: dict[tuple[int, str], Timeline] = {}

    def compared_line(line: Timeline, pool: str) -> Timeline:
        key = (id(line), pool)
        if key not in compared_cache:
            out = line
            if pool in scarce:
                out = Timeline.from_pieces(line.origin, [
                    TimelinePiece(p.start, p.end, p.intensity * (1 + lead_price * p.start / 86_400), p.estimated)
                    for p in line.pieces])
            compared_cache[key] = priced(out, prices[pool]) if pool in prices else out
        return compared_cache[key]

    out = []
    for job in jobs:
        lines = {p: timeline(job.forecast or forecasts.get(pools[p].zone)) for p in job.pools}
        lo = max(_us(job.earliest_start - now), 0)
        if scarce.isdisjoint(lines) and not any(p in prices for p in lines):
            out.append(Prepared(job, lo, _us(job.deadline - now), _us(job.duration), lines))
            continue
        compared = {p: compared_line(line, p) for p, line in lines.items()}
        out.append(Prepared(job, lo, _us(job.deadline - now), _us(job.duration), compared, lines))
    return out


def _prices(jobs: list[FleetJob], arrivals: list[Arrival], pools: Mapping[str, PoolCapacity],
            base: Mapping[str, Usage], forecasts: Mapping[str, Forecast], now: datetime,
            premium: float) -> dict[str, list[float]]:
    """The capacity prices of every pool whose zone has a forecast (fleet_prices.py)."""
    end = now + timedelta(hours=HORIZON_HOURS)
    lines = {name: build_timeline(forecasts[p.zone], now, end, premium)
             for name, p in pools.items() if p.zone in forecasts and forecasts[p.zone].points}
    return prices_by_pool(jobs, arrivals, {n: p.gpus for n, p in pools.items()}, base, lines, now)


def _scarce(jobs: list[FleetJob], caps: Mapping[str, int], base: Mapping[str, Usage]) -> frozenset[str]:
    """The pools that cannot hold all the jobs that may use them at once, on top of their reservations' peak."""
    wanted = dict.fromkeys(caps, 0)
    for job in jobs:
        for pool in job.pools:
            wanted[pool] += job.gpus
    return frozenset(name for name, cap in caps.items()
                     if wanted[name] + base[name].peak(-(2**62), 2**62) > cap)


def _slot(prepared: list[Prepared], forecasts: Mapping[str, Forecast], pools: Mapping[str, PoolCapacity]) -> int:
    """The MILP's slot: the finest forecast step in use, between 5 minutes and an hour."""
    steps = [f.step for f in forecasts.values() if f.points]
    steps += [p.job.forecast.step for p in prepared if p.job.forecast is not None and p.job.forecast.points]
    step = min(steps, default=MAX_SLOT)
    return _us(min(max(step, MIN_SLOT), MAX_SLOT))


def _fits(
    placed: Mapping[str, Placement], prepared: list[Prepared], caps: Mapping[str, int], base: Mapping[str, Usage]
) -> bool:
    """Whether `placed` keeps every pool within capacity and every job within its window (a check of the MILP)."""
    usage = {name: base[name].copy() for name in caps}
    by_id = {p.job.id: p for p in prepared}
    for jid, pl in placed.items():
        job = by_id[jid]
        if pl.spans[0][0] < job.lo or pl.end > job.deadline or sum(b - a for a, b in pl.spans) != job.dur:
            return False
        for a, b in pl.spans:
            usage[pl.pool].add(a, b, job.job.gpus)
    return all(usage[name].peak(-(2**62), 2**62) <= cap for name, cap in caps.items())


def _assign(
    prepared: list[Prepared],
    placed: Mapping[str, Placement],
    caps: Mapping[str, int],
    base: Mapping[str, Usage],
    now: datetime,
) -> tuple[Assignment, ...]:
    usage = {name: base[name].copy() for name in caps}
    for p in prepared:
        if p.job.id in placed:
            for a, b in placed[p.job.id].spans:
                usage[placed[p.job.id].pool].add(a, b, p.job.gpus)
    late: dict[str, Placement] = {}
    for p in sorted((p for p in prepared if p.job.id not in placed), key=Prepared.order_key):
        late[p.job.id] = earliest_placement(p, caps, usage)
        for a, b in late[p.job.id].spans:
            usage[late[p.job.id].pool].add(a, b, p.job.gpus)
    out = []
    for p in prepared:
        on_time = p.job.id in placed
        pl = placed[p.job.id] if on_time else late[p.job.id]
        segments = tuple(Segment(now + a * MICROSECOND, now + b * MICROSECOND) for a, b in pl.spans)
        if on_time:
            kind = "window" if len(segments) == 1 else f"{len(segments)} segments"
            reason = f"lowest-carbon {kind} with free GPUs in {pl.pool} before the deadline"
            line = p.forecast_lines.get(pl.pool)
            cost = pl.cost if line is None else p.job.gpus * sum(line.integral(a / MICRO, b / MICRO)
                                                                 for a, b in pl.spans)
            intensity = cost / (p.job.gpus * p.dur / MICRO)
            out.append(Assignment(p.job.id, pl.pool, segments, True, reason, intensity))
            continue
        end = segments[-1].end
        if not p.alone_feasible:
            why = f"cannot finish by the deadline {format_instant(p.job.deadline)} even when started at once"
        else:
            why = (
                f"not enough free GPUs in {', '.join(p.job.pools)} to finish by the deadline "
                f"{format_instant(p.job.deadline)}"
            )
        reason = f"{why}; earliest feasible end {format_instant(end)}"
        out.append(Assignment(p.job.id, pl.pool, segments, False, reason, None, end))
    return tuple(out)


def earliest_placement(job: Prepared, caps: Mapping[str, int], usage: Mapping[str, Usage]) -> Placement:
    """As early as capacity allows, deadline or not: the pool where the job ends first (interruptible jobs fill
    the earliest free stretches, none shorter than minSegment unless it finishes the job)."""
    best: Placement | None = None
    min_seg = _us(job.job.min_segment)
    for pool in job.job.pools:
        room = caps[pool] - job.job.gpus
        if room < 0:
            continue
        spans: list[tuple[int, int]] = []
        left = job.dur
        for a, b in usage[pool].free(job.lo, None, room):
            if not job.job.interruptible:
                if b - a >= job.dur:
                    spans = [(a, a + job.dur)]
                    break
                continue
            take = min(b - a, left)
            if take >= min(min_seg, left):
                spans.append((a, a + take))
                left -= take
            if left == 0:
                break
        candidate = Placement(pool, tuple(spans), 0.0)
        if best is None or candidate.end < best.end:
            best = candidate
    assert best is not None, "a job larger than every pool is refused by _validate"
    return best


def violations(
    plan: FleetPlan, jobs: Iterable[FleetJob], pools: Iterable[PoolCapacity], reservations: Iterable[Reservation]
) -> list[str]:
    """`capacity_violations` of a plan together with the reservations it was made against."""
    gpus = {j.id: j.gpus for j in jobs}
    used = [(r.pool, r.start, r.end, r.gpus) for r in reservations]
    used += [(a.pool, s.start, s.end, gpus[a.job_id]) for a in plan.assignments for s in a.segments]
    return capacity_violations({p.name: p.gpus for p in pools}, used)
