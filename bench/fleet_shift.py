"""Benchmark: carbon-aware timing for a fleet that shares pools, where capacity (not only carbon) decides.

Six pools of 32 GPUs, one per shipped grid zone. For five days, deadline jobs arrive on the hour (GPUs 1, 2, 4 or 8;
1-8 h; slack 0-30 h; a third of the jobs with 12 h of slack or more interruptible), as many as make the pools' mean
utilisation `--utilisation` (63 %). Every hour a fresh 48 h forecast is issued (the trace's future with the per-zone
day-ahead error, `forecast_error.DAY_AHEAD_SIGMA`, seeded). The plans run on the capacity that exists, in 15-minute
steps: a job whose plan says "run" takes its GPUs if they are free, in queue order (first come, first served);
otherwise it waits. Strategies, all judged on the true series:

  asap      every job wants to run from its arrival (what a plain queue does)
  blind     today's single-job planner (`plan_start`; `replan_remaining` for interruptible jobs, as the operator),
            re-planned hourly until a job's plan starts within the hour; then it waits in the queue
  fleet     `planning.timing.fleet.plan_fleet` every hour over all pending jobs, with the running non-interruptible
            jobs as reservations and the last 48 h of arrivals for the capacity prices (as the operator; off with
            --no-prices); interruptible jobs may yield at the hour
  optimum   offline, perfect knowledge of every job and of the true series: the fleet MILP per pool, solved once

Figures: emissions saved against asap (GPU-hour weighted), deadlines missed, plans over capacity, planning time.
Prints figures; asserts nothing. Usage:

    .venv/bin/python -m bench.fleet_shift [--seeds 1,2,3] [--days 5] [--headroom 0] [--solver auto|greedy]
        [--lead-price 0.1] [--no-prices]
    .venv/bin/python -m bench.fleet_shift --timing 1000      # plan 1,000 pending jobs at once, timed
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))

from llmasos.carbon.trace import TraceSource, shipped_trace_files
from llmasos.planning.timing.carbon_window import CarbonJob, plan_start
from llmasos.planning.timing.fleet import DEFAULT_LEAD_PRICE, plan_fleet, violations
from llmasos.planning.timing.fleet_prices import HISTORY, Arrival
from llmasos.planning.timing.fleet_types import FleetJob, FleetPlan, PoolCapacity, Reservation, Solver
from llmasos.planning.timing.forecast import Forecast
from llmasos.planning.timing.forecast_error import DAY_AHEAD_SIGMA, ForecastErrorModel
from llmasos.planning.timing.replan import replan_remaining

STEP = timedelta(minutes=15)
PER_HOUR = 4
HISTORY_STEPS = HISTORY // STEP
GPU_CHOICES = (1, 2, 4, 8)


@dataclass(frozen=True)
class Job:
    id: str
    zone: str
    gpus: int
    arrival: int  # step
    dur: int  # steps
    deadline: int  # step
    interruptible: bool


def job_stream(zones: list[str], cap: int, days: int, utilisation: float, seed: int) -> list[Job]:
    mean_gpu_hours = statistics.mean(GPU_CHOICES) * 4.5
    per_zone = round(utilisation * cap * days * 24 / mean_gpu_hours)
    jobs = []
    for zone in zones:
        rng = random.Random(f"fleet:{zone}:{seed}")
        for i in range(per_zone):
            arrival, dur, slack = rng.randrange(days * 24), rng.randint(1, 8), rng.randint(0, 30)
            interruptible = slack >= 12 and rng.random() < 1 / 3
            jobs.append(
                Job(f"{zone}-{i}", zone, rng.choice(GPU_CHOICES), arrival * PER_HOUR, dur * PER_HOUR,
                    (arrival + dur + slack) * PER_HOUR, interruptible)
            )
    return sorted(jobs, key=lambda j: (j.arrival, j.id))


class World:
    """Time, the true series and the hourly forecasts of one run."""

    def __init__(self, zones: list[str], start: datetime, steps: int, seed: int, sigma_scale: float = 1.0) -> None:
        self.zones, self.start, self.steps = zones, start, steps
        self.sources = {
            z: TraceSource(offset=timedelta(0), horizon=timedelta(hours=48),
                           error_model=ForecastErrorModel(sigma_at_24h=sigma_scale * DAY_AHEAD_SIGMA[z], seed=seed))
            for z in zones
        }
        self.truth: dict[str, list[float]] = {}
        for z in zones:
            series = self.sources[z].series(z)
            values, last = [], 0.0
            for k in range(steps):
                v = series.value_at(self.at(k))
                last = last if v is None else v
                values.append(last)
            self.truth[z] = values

    def at(self, k: int) -> datetime:
        return self.start + k * STEP

    def step_of(self, moment: datetime) -> int:
        k, rest = divmod(moment - self.start, STEP)
        assert not rest, f"{moment} is not on the 15-minute grid"
        return int(k)

    def forecast(self, zone: str, k: int) -> Forecast:
        return self.sources[zone].forecast_at(zone, self.at(k))

    def truth_between(self, zone: str, a: int, b: int) -> Forecast:
        series = self.sources[zone].series(zone)
        return series.between(self.at(a), self.at(b))


@dataclass
class Run:
    """What one strategy did: steps served per job, finishing step, planning figures."""

    served: dict[str, int]
    done: dict[str, int]
    ran: dict[str, list[int]]
    plan_seconds: list[float]
    over_capacity: int = 0
    queued: int = 0


Want = Callable[[int, Run], dict[str, int]]  # step -> {job id: queue key}


def execute(world: World, jobs: list[Job], cap: int, replan: Callable[[int, Run], None], want: Want) -> Run:
    """Run the fleet step by step: running non-interruptible jobs continue; others run when they want to and their
    pool has room, in queue order. `replan` is called on the hour before the step runs."""
    run = Run({j.id: 0 for j in jobs}, {}, {j.id: [] for j in jobs}, [])
    by_id = {j.id: j for j in jobs}
    running: set[str] = set()
    for k in range(world.steps):
        if k % PER_HOUR == 0:
            replan(k, run)
        wanted = want(k, run)
        free = dict.fromkeys(world.zones, cap)
        now_running: set[str] = set()
        keep = [j for j in running if not by_id[j].interruptible or j in wanted]
        for jid in keep:
            free[by_id[jid].zone] -= by_id[jid].gpus
            now_running.add(jid)
        for jid in sorted((j for j in wanted if j not in now_running), key=lambda j: (wanted[j], j)):
            job = by_id[jid]
            if free[job.zone] >= job.gpus:
                free[job.zone] -= job.gpus
                now_running.add(jid)
            else:
                run.queued += 1
        for jid in now_running:
            run.served[jid] += 1
            run.ran[jid].append(k)
            if run.served[jid] == by_id[jid].dur:
                run.done[jid] = k + 1
        running = {j for j in now_running if j not in run.done}
    return run


def asap(world: World, jobs: list[Job], cap: int) -> Run:
    def want(k: int, run: Run) -> dict[str, int]:
        return {j.id: j.arrival for j in jobs if j.arrival <= k and j.id not in run.done}

    return execute(world, jobs, cap, lambda k, run: None, want)


def blind(world: World, jobs: list[Job], cap: int) -> Run:
    """Today's planner, one job at a time, blind to capacity; committed jobs queue for GPUs."""
    committed: dict[str, int] = {}  # non-interruptible: planned start step
    pieces: dict[str, set[int]] = {}  # interruptible: steps it wants this hour
    since: dict[str, int] = {}

    def replan(k: int, run: Run) -> None:
        t0 = time.perf_counter()
        forecasts: dict[str, Forecast] = {}
        for j in jobs:
            if j.arrival > k or j.id in run.done or j.id in committed:
                continue
            f = forecasts.setdefault(j.zone, world.forecast(j.zone, k))
            cj = CarbonJob(j.dur * STEP, world.at(j.arrival), world.at(j.deadline), j.interruptible,
                           min_segment=timedelta(0))
            if j.interruptible:
                plan = replan_remaining(cj, run.served[j.id] * STEP, f, world.at(k))
                steps: set[int] = set()
                for s in plan.segments if plan else ():
                    steps.update(range(max(world.step_of(s.start), k), min(world.step_of(s.end), k + PER_HOUR)))
                pieces[j.id] = steps
            else:
                start = world.step_of(plan_start(cj, f, world.at(k)).start_at)
                if start < k + PER_HOUR:
                    committed[j.id] = max(start, k)
        run.plan_seconds.append(time.perf_counter() - t0)

    def want(k: int, run: Run) -> dict[str, int]:
        out = {}
        for jid, start in committed.items():
            if start <= k and jid not in run.done:
                out[jid] = since.setdefault(jid, start)
        for jid, steps in pieces.items():
            if k in steps and jid not in run.done:
                out[jid] = since.setdefault(jid, k)
            else:
                since.pop(jid, None)
        return out

    return execute(world, jobs, cap, replan, want)


def fleet(world: World, jobs: list[Job], cap: int, headroom: float, solver: Solver,
          lead_price: float = DEFAULT_LEAD_PRICE, known_ahead: int = 0, prices: bool = True) -> Run:
    """`plan_fleet` on the hour over every pending job; the plan is followed for the hour. `known_ahead` > 0 is an
    oracle (bench/fleet_gap.py): jobs arriving within that many steps are planned too, from their arrival.
    `prices`: pass the arrivals of the last 48 h, as the operator does, for the capacity prices (fleet_prices.py)."""
    plan_steps: dict[str, set[int]] = {}
    pools = [PoolCapacity(z, cap, z) for z in world.zones]
    by_id = {j.id: j for j in jobs}

    def replan(k: int, run: Run) -> None:
        started = {jid for jid, steps in run.ran.items() if steps and jid not in run.done}
        pending, reservations = [], []
        for j in jobs:
            if j.arrival > k + known_ahead or j.id in run.done:
                continue
            left = j.dur - run.served[j.id]
            if j.id in started and not j.interruptible:
                reservations.append(Reservation(j.zone, world.at(k), world.at(k + left), j.gpus))
                continue
            pending.append(FleetJob(j.id, j.gpus, (j.zone,), left * STEP, world.at(max(j.arrival, k)),
                                    world.at(j.deadline), j.interruptible, min_segment=timedelta(0)))
        forecasts = {z: world.forecast(z, k) for z in world.zones}
        arrived = [Arrival(j.zone, world.at(j.arrival), j.gpus, j.dur * STEP, (j.deadline - j.arrival) * STEP)
                   for j in jobs if k - HISTORY_STEPS < j.arrival <= k] if prices else []
        t0 = time.perf_counter()
        plan = plan_fleet(pending, pools, reservations, forecasts, world.at(k), solver=solver, headroom=headroom,
                          lead_price=lead_price, arrivals=arrived)
        run.plan_seconds.append(time.perf_counter() - t0)
        run.over_capacity += bool(violations(plan, pending, pools, reservations))
        plan_steps.clear()
        for a in plan.assignments:
            plan_steps[a.job_id] = {
                x for s in a.segments for x in range(world.step_of(s.start), world.step_of(s.end))
            }

    def want(k: int, run: Run) -> dict[str, int]:
        return {jid: 0 for jid, steps in plan_steps.items()
                if k in steps and jid not in run.done and by_id[jid].arrival <= k}

    return execute(world, jobs, cap, replan, want)


def optimum(world: World, jobs: list[Job], cap: int, time_limit: float,
            solver: Solver = "milp") -> tuple[Run, list[str], dict[str, float]]:
    """The fleet MILP on the true series with every job known in advance, one pool at a time; also each pool's
    relative gap to the MILP's proven bound (a time limit can stop it short of the optimum). `solver="greedy"`
    plans the same whole trace with the greedy path instead (bench/fleet_gap.py)."""
    run = Run({j.id: j.dur for j in jobs}, {}, {j.id: [] for j in jobs}, [])
    notes, gaps = [], {}
    for zone in world.zones:
        mine = [j for j in jobs if j.zone == zone]
        fj = [FleetJob(j.id, j.gpus, (zone,), j.dur * STEP, world.at(j.arrival), world.at(j.deadline),
                       j.interruptible, min_segment=timedelta(0)) for j in mine]
        truth = world.truth_between(zone, 0, world.steps)
        t0 = time.perf_counter()
        plan: FleetPlan = plan_fleet(fj, [PoolCapacity(zone, cap, zone)], [], {zone: truth}, world.start,
                                     solver=solver, milp_time_limit=time_limit, unknown_premium=0.0, lead_price=0.0)
        seconds = time.perf_counter() - t0
        run.plan_seconds.append(seconds)
        gaps[zone] = plan.milp_gap if plan.milp_gap is not None else 1.0
        gap = f"gap {100 * plan.milp_gap:.2f}%" if plan.milp_gap is not None else "no MILP solution"
        notes.append(f"{zone} {seconds:.0f} s {gap}")
        for a in plan.assignments:
            steps = [x for s in a.segments for x in range(world.step_of(s.start), world.step_of(s.end))]
            run.ran[a.job_id] = steps
            run.done[a.job_id] = steps[-1] + 1
    return run, notes, gaps


def figures(world: World, jobs: list[Job], run: Run) -> dict[str, tuple[float, int]]:
    """Per zone (and "all"): (gCO2e/kWh x GPU-hours, deadlines missed)."""
    out: dict[str, tuple[float, int]] = {}
    for j in jobs:
        grams = sum(world.truth[j.zone][k] for k in run.ran[j.id]) * j.gpus / PER_HOUR
        missed = int(run.done.get(j.id, world.steps + 1) > j.deadline)
        for key in (j.zone, "all"):
            g, m = out.get(key, (0.0, 0))
            out[key] = (g + grams, m + missed)
    return out


def one_seed(args: argparse.Namespace, seed: int) -> dict[str, dict[str, tuple[float, int]]]:
    zones = args.zones.split(",")
    rng = random.Random(f"fleet-start:{seed}")
    start = datetime(2020, 1, 15, tzinfo=UTC) + timedelta(days=rng.randrange(320))
    jobs = job_stream(zones, args.gpus, args.days, args.utilisation, seed)
    steps = (args.days * 24 + 8 + 30 + 2) * PER_HOUR
    world = World(zones, start, steps, seed, args.sigma_scale)
    results: dict[str, dict[str, tuple[float, int]]] = {}
    t0 = time.perf_counter()
    runs = {"asap": asap(world, jobs, args.gpus), "blind": blind(world, jobs, args.gpus)}
    runs["fleet"] = fleet(world, jobs, args.gpus, args.headroom, args.solver, args.lead_price,
                          prices=not args.no_prices)
    opt, notes, gaps = optimum(world, jobs, args.gpus, args.milp_seconds)
    runs["optimum"] = opt
    for name, run in runs.items():
        results[name] = figures(world, jobs, run)
    f = runs["fleet"]
    busy = sum(j.gpus * j.dur for j in jobs) / (len(zones) * args.gpus * args.days * 24 * PER_HOUR)
    print(f"\n## seed {seed}: {len(jobs)} jobs from {start:%Y-%m-%d}, {args.days} days, utilisation {busy:.0%}, "
          f"headroom {args.headroom:.0%}, lead price {args.lead_price}, capacity prices {not args.no_prices}, "
          f"solver {args.solver} "
          f"({time.perf_counter() - t0:.0f} s)")
    print(f"fleet: plans over capacity {f.over_capacity} of {len(f.plan_seconds)}, job-steps queued {f.queued}, "
          f"plan time mean {statistics.mean(f.plan_seconds):.2f} s max {max(f.plan_seconds):.2f} s; "
          f"blind job-steps queued {runs['blind'].queued}; optimum MILP {', '.join(notes)}")
    print(f"{'zone':<12} {'blind':>14} {'fleet':>14} {'optimum':>14} {'capture':>8} {'bound':>6}  (saved vs asap, "
          "missed; bound: the most the optimum could save, from the MILP's gap)")
    for zone in [*zones, "all"]:
        base = results["asap"][zone][0]
        cells = []
        for name in ("blind", "fleet", "optimum"):
            g, m = results[name][zone]
            cells.append(f"{100 * (base - g) / base:>6.1f}% {m:>3} ")
        fs, os_ = (base - results[k][zone][0] for k in ("fleet", "optimum"))
        capture = f"{100 * fs / os_:.0f}%" if os_ > 0 else "-"
        opt_g = results["optimum"][zone][0]
        lost = sum(gaps[z] * results["optimum"][z][0] for z in (zones if zone == "all" else [zone]))
        bound = 100 * (base - opt_g + lost) / base
        print(f"{zone:<12} {cells[0]:>14} {cells[1]:>14} {cells[2]:>14} {capture:>8} {bound:>5.1f}%  asap missed "
              f"{results['asap'][zone][1]}")
    return results


def timing(count: int, solver: Solver, load: float) -> None:
    """Plan `count` pending jobs at once on six pools sized so that their GPU-hours fill `load` of 30 hours, with
    as many arrivals in the last 48 h pricing the pools' capacity (the jobs themselves, arrived at random hours)."""
    zones = list(shipped_trace_files())
    now = datetime(2020, 6, 1, tzinfo=UTC)
    rng = random.Random(f"timing:{count}")
    gpus = round(count * statistics.mean(GPU_CHOICES) * 4.5 / (len(zones) * load * 30))
    pools = [PoolCapacity(z, gpus, z) for z in zones]
    forecasts = {z: TraceSource(offset=timedelta(0), horizon=timedelta(hours=48)).forecast_at(z, now) for z in zones}
    jobs = []
    for i in range(count):
        zone, dur, slack = rng.choice(zones), rng.randint(1, 8), rng.randint(0, 30)
        early = now + timedelta(hours=rng.randrange(12))
        jobs.append(FleetJob(f"j{i}", rng.choice(GPU_CHOICES), (zone,), timedelta(hours=dur), early,
                             early + timedelta(hours=dur + slack), slack >= 12 and rng.random() < 1 / 3))
    arrivals = [Arrival(j.pools[0], now - timedelta(hours=rng.randrange(48)), j.gpus, j.duration,
                        j.deadline - j.earliest_start) for j in jobs]
    t0 = time.perf_counter()
    plan = plan_fleet(jobs, pools, [], forecasts, now, solver=solver, arrivals=arrivals)
    seconds = time.perf_counter() - t0
    print(f"{count} pending jobs, 6 pools of {gpus} GPUs (load {load:.0%} of 30 h), solver {solver} -> "
          f"{plan.solver}: {seconds:.2f} s, "
          f"{len(plan.at_risk)} at risk, {len(violations(plan, jobs, pools, []))} capacity violations")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seeds", default="1")
    parser.add_argument("--days", type=int, default=5)
    parser.add_argument("--gpus", type=int, default=32, help="GPUs per pool")
    parser.add_argument("--utilisation", type=float, default=0.63)
    parser.add_argument("--headroom", type=float, default=0.0, help="share of each pool kept for urgent work")
    parser.add_argument("--solver", default="auto", choices=("auto", "greedy"))
    parser.add_argument("--lead-price", type=float, default=DEFAULT_LEAD_PRICE,
                        help="the fleet plan's lead price per 24 h ahead (0: compare on the forecast alone)")
    parser.add_argument("--no-prices", action="store_true",
                        help="plan without the capacity prices of expected arrivals (fleet_prices.py)")
    parser.add_argument("--milp-seconds", type=float, default=120.0, help="time limit of each offline MILP")
    parser.add_argument("--sigma-scale", type=float, default=1.0,
                        help="forecast error as a multiple of the per-zone day-ahead error (0: perfect forecasts)")
    parser.add_argument("--zones", default=",".join(shipped_trace_files()))
    parser.add_argument("--timing", type=int, help="only time planning this many pending jobs at once")
    args = parser.parse_args(argv)
    if args.timing:
        for load in (0.6, 0.9, 1.2):
            for solver in ("greedy", "auto"):
                timing(args.timing, solver, load)
        return 0
    all_results = [one_seed(args, int(s)) for s in args.seeds.split(",")]
    if len(all_results) > 1:
        print("\n## over seeds: saved vs asap (mean, min-max), deadlines missed (total)")
        for zone in [*args.zones.split(","), "all"]:
            cells = []
            for name in ("blind", "fleet", "optimum"):
                saved = [100 * (r["asap"][zone][0] - r[name][zone][0]) / r["asap"][zone][0] for r in all_results]
                missed = sum(r[name][zone][1] for r in all_results)
                cells.append(f"{name} {statistics.mean(saved):.1f}% ({min(saved):.1f}-{max(saved):.1f}) {missed}")
            print(f"{zone:<12} " + " | ".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
