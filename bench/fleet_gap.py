"""Benchmark: where the fleet plan's savings fall short of the offline optimum (bench/fleet_shift.py's setting).

The hourly fleet plan (greedy path, lead price as shipped) is replayed with one handicap removed at a time, each
scored as capture = its savings over asap / the offline optimum's:

  forecast        the benchmark's own case: forecasts with the per-zone day-ahead error, jobs known on arrival
  true series     the true series as the forecast
  true + ahead    the true series, and every job known `--ahead` hours before it arrives (planned from its arrival)
  ahead           forecasts with error, jobs known `--ahead` hours early
  true + all      the true series, and every job of the trace known from the start (planned from its arrival)
  whole trace     not online: one greedy plan of the whole trace with every job and the true series known

The first row against the others says what the forecast error and the unknown arrivals cost; the last says how far
the greedy path is from the exact MILP even with nothing unknown. One table for the whole fleet, then one per zone.
Prints figures; asserts nothing. Usage:

    .venv/bin/python -m bench.fleet_gap [--seeds 1,2,3] [--ahead 24]
"""

from __future__ import annotations

import argparse
import random
import sys
from datetime import UTC, datetime, timedelta

from bench.fleet_shift import PER_HOUR, World, asap, figures, fleet, job_stream, optimum
from llmasos.carbon.trace import shipped_trace_files

CAP = 32


Row = tuple[str, dict[str, tuple[float, int]]]  # strategy, {zone or "all": (capture, missed)}


def one_seed(seed: int, ahead: int, milp_seconds: float) -> list[Row]:
    zones = list(shipped_trace_files())
    start = datetime(2020, 1, 15, tzinfo=UTC) + timedelta(days=random.Random(f"fleet-start:{seed}").randrange(320))
    jobs = job_stream(zones, CAP, 5, 0.63, seed)
    steps = (5 * 24 + 8 + 30 + 2) * PER_HOUR
    noisy, true = World(zones, start, steps, seed), World(zones, start, steps, seed, sigma_scale=0.0)
    base = figures(true, jobs, asap(true, jobs, CAP))
    best = figures(true, jobs, optimum(true, jobs, CAP, milp_seconds)[0])
    runs = {
        "forecast": (noisy, fleet(noisy, jobs, CAP, 0.0, "greedy")),
        "true series": (true, fleet(true, jobs, CAP, 0.0, "greedy")),
        "true + ahead": (true, fleet(true, jobs, CAP, 0.0, "greedy", known_ahead=ahead * PER_HOUR)),
        "ahead": (noisy, fleet(noisy, jobs, CAP, 0.0, "greedy", known_ahead=ahead * PER_HOUR)),
        "true + all": (true, fleet(true, jobs, CAP, 0.0, "greedy", known_ahead=steps)),
        "whole trace": (true, optimum(true, jobs, CAP, milp_seconds, solver="greedy")[0]),
    }
    rows = []
    for name, (world, run) in runs.items():
        got = figures(world, jobs, run)
        rows.append((name, {key: (_capture(base[key][0], grams, best[key][0]), missed)
                            for key, (grams, missed) in got.items()}))
    return rows


def _capture(base: float, grams: float, best: float) -> float:
    """Savings over asap as a share of the optimum's (NaN where the optimum saves nothing)."""
    return (base - grams) / (base - best) if base > best else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--ahead", type=int, default=24, help="hours before arrival that the oracle rows know a job")
    parser.add_argument("--milp-seconds", type=float, default=120.0, help="time limit of each offline MILP")
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    table = {seed: one_seed(seed, args.ahead, args.milp_seconds) for seed in seeds}
    for key in ["all", *shipped_trace_files()]:
        print(f"\n{'all zones' if key == 'all' else key}: hourly fleet plan (greedy path), capture and missed")
        print(f"{'':<16} " + " ".join(f"{'seed ' + str(s):>16}" for s in seeds))
        for i, (name, _) in enumerate(table[seeds[0]]):
            cells = " ".join(f"{100 * table[s][i][1][key][0]:>10.1f}% {table[s][i][1][key][1]:>4}" for s in seeds)
            print(f"{name:<16} {cells}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
