"""Benchmark: how much carbon does deadline-aware shifting save, against a baseline and the perfect-knowledge optimum?

For every shipped intensity series, a seeded stream of deadline-bound jobs (1-24 h long, 0-48 h of slack, a share
of them interruptible) is replayed with `llmasos.planning.timing.backtest`:

  planner   the operator's behaviour: re-plan on each hourly forecast (seeded error growing with lead time) until
            the job starts; a started interruptible job's remaining run time is re-planned on every newer forecast
            (`planning/timing/segment_gate.py`); `--follow-plan` keeps a started job's segments instead (the operator
            before it re-planned started jobs)
  baseline  Carbon Aware SDK rolling window: lowest mean over job-length windows fully inside the forecast, decided
            once at submission (contiguous only)
  optimum   perfect knowledge of the true series (contiguous, and split for interruptible jobs)

Savings are against starting every job at submission, energy-weighted. Targets: planner >= 90 % of the optimum's
savings, planner > baseline, no missed deadline. Prints figures; asserts nothing. By default it runs a small
matrix of forecast horizons (72 h, 24 h) and errors: `dacf` (per-zone error measured on real day-ahead forecasts,
`forecast_error.DAY_AHEAD_SIGMA`) and uniform 0-20 % at 24 h; `--horizon/--sigma` pick one. Usage:

    .venv/bin/python bench/carbon_shift.py [--jobs 300] [--seed 1] [--horizon 72 --sigma dacf|0.10] [--zones SE,DE]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))

from llmasos.carbon.trace import TraceSource, shipped_trace_files
from llmasos.planning.timing import backtest
from llmasos.planning.timing.forecast import Forecast
from llmasos.planning.timing.forecast_error import DAY_AHEAD_SIGMA, ForecastErrorModel

Sigma = float | str  # a relative error at 24 h, or "dacf" for the per-zone measured value
CONFIGS: tuple[tuple[int, Sigma], ...] = (
    (72, "dacf"),
    (24, "dacf"),
    (72, 0.05),
    (72, 0.10),
    (72, 0.20),
    (72, 0.0),
    (24, 0.0),
)


def zone_sigma(zone: str, sigma: Sigma) -> float:
    if sigma == "dacf":
        return DAY_AHEAD_SIGMA[zone]
    return float(sigma)


def job_stream(truth: Forecast, count: int, seed: int, interruptible_share: float) -> list[backtest.BacktestJob]:
    """Seeded jobs: submission uniform over the series (on 5-minute marks), 1-24 h long, 0-48 h of slack."""
    assert truth.start is not None
    assert truth.end is not None
    rng = random.Random(f"jobs:{truth.zone}:{seed}")
    span_minutes = int((truth.end - truth.start - timedelta(hours=24 + 48 + 24)) / timedelta(minutes=5))
    jobs = []
    for i in range(count):
        submitted = truth.start + timedelta(minutes=5 * rng.randrange(span_minutes))
        duration = timedelta(minutes=15 * rng.randint(4, 96))
        slack = timedelta(minutes=15 * rng.randint(0, 192))
        jobs.append(
            backtest.BacktestJob(
                id=f"{truth.zone}-{i}",
                submitted_at=submitted,
                duration=duration,
                deadline=submitted + duration + slack,
                interruptible=rng.random() < interruptible_share,
            )
        )
    return jobs


def run_zone(
    zone: str,
    count: int,
    seed: int,
    horizon_h: int,
    sigma: float,
    interruptible_share: float,
    replan_interruptible: bool = True,
) -> dict[str, object]:
    source = TraceSource(
        offset=timedelta(0),
        horizon=timedelta(hours=horizon_h),
        error_model=ForecastErrorModel(sigma_at_24h=sigma, seed=seed),
    )
    truth = source.series(zone)
    outcomes: list[backtest.Outcome] = []
    started = time.perf_counter()
    for job in job_stream(truth, count, seed, interruptible_share):
        outcomes.append(backtest.run_now(job, truth))
        outcomes.append(
            backtest.planner(job, truth, lambda t: source.forecast_at(zone, t), replan_after_start=replan_interruptible)
        )
        outcomes.append(backtest.rolling_window_baseline(job, truth, source.forecast_at(zone, job.submitted_at)))
        outcomes.append(backtest.optimum(job, truth))
        contiguous = backtest.optimum(job, truth, split=False)
        outcomes.append(
            backtest.Outcome(
                job.id, "optimum_contiguous", contiguous.segments, contiguous.intensity, contiguous.missed_deadline
            )
        )
    summary = backtest.summarize(outcomes)
    mean_now = sum(o.intensity for o in outcomes if o.strategy == "run_now") / count
    return {
        "zone": zone,
        "horizon_hours": horizon_h,
        "sigma_at_24h": sigma,
        "jobs": summary.jobs,
        "run_now_mean_g_per_kwh": round(mean_now, 1),
        "savings_percent": {k: round(v, 2) for k, v in sorted(summary.savings_percent.items())},
        "capture_percent": round(summary.capture_percent, 1),
        "replan_interruptible": replan_interruptible,
        "missed_deadlines": summary.missed_deadlines,
        "seconds": round(time.perf_counter() - started, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--jobs", type=int, default=300, help="jobs per zone")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--sigma", help="relative forecast error (std) at 24 h lead, or 'dacf' for the per-zone measured value"
    )
    parser.add_argument("--horizon", type=int, help="forecast horizon in hours (one config)")
    parser.add_argument("--interruptible", type=float, default=0.3, help="share of interruptible jobs")
    parser.add_argument("--zones", default=",".join(shipped_trace_files()))
    parser.add_argument(
        "--follow-plan",
        action="store_true",
        help="started interruptible jobs follow the segments they started with (the operator's former behaviour)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = parser.parse_args(argv)
    configs = CONFIGS
    if args.sigma is not None or args.horizon is not None:
        sigma: Sigma = "dacf" if args.sigma is None else args.sigma
        if sigma != "dacf":
            sigma = float(sigma)
        configs = ((args.horizon or 72, sigma),)

    results = []
    for horizon_h, sigma in configs:
        error = "per-zone (DACF-measured)" if sigma == "dacf" else f"{float(sigma):.0%}"
        after = "following their plan once started" if args.follow_plan else "re-planned after start"
        print(
            f"\n## forecast horizon {horizon_h} h, error {error} at 24 h (sqrt-growing), {args.jobs} jobs/zone, "
            f"seed {args.seed}, {args.interruptible:.0%} interruptible ({after}), hourly re-planning until start"
        )
        print(
            f"{'zone':<12} {'sigma':>5} {'g/kWh now':>9} {'planner':>8} {'baseline':>8} {'optimum':>8} "
            f"{'opt-contig':>10} {'capture':>8} {'missed':>6} {'secs':>6}"
        )
        for zone in args.zones.split(","):
            r = run_zone(
                zone,
                args.jobs,
                args.seed,
                horizon_h,
                zone_sigma(zone, sigma),
                args.interruptible,
                not args.follow_plan,
            )
            results.append(r)
            s = r["savings_percent"]
            missed = r["missed_deadlines"]
            assert isinstance(s, dict)
            assert isinstance(missed, dict)
            print(
                f"{zone:<12} {zone_sigma(zone, sigma):>5.3f} {r['run_now_mean_g_per_kwh']:>9} "
                f"{s['planner']:>7.1f}% {s['baseline']:>7.1f}% "
                f"{s['optimum']:>7.1f}% {s['optimum_contiguous']:>9.1f}% {r['capture_percent']:>7.1f}% "
                f"{sum(missed.get(k, 0) for k in ('planner', 'baseline', 'optimum')):>6} {r['seconds']:>6}"
            )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"seed": args.seed, "jobs": args.jobs, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
