"""Experiment: is the planner's capture shortfall a weak decision rule, or missing information?

`bench/carbon_shift.py` measures the planner against the perfect-knowledge optimum. Where it captures under 90 %
of the optimum's savings (SE, PJM, ISNE, ERCOT with per-zone measured forecast error), this script asks whether a
better *rule* on the same forecasts would close the gap. It replays a seeded job stream on a simplified, hourly
copy of the benchmark (jobs aligned to the hour, whole-hour durations 1-24 h, slack 0-48 h, 30 % interruptible,
forecasts from the same `TraceSource` and `ForecastErrorModel`, issued hourly, 72 h ahead) with these rules:

  ce         the shipped rule (certainty equivalence): plan on the forecast as if it were the truth, start (or run
             this hour, for an interruptible job) when the plan says so, re-plan on the next forecast
  rollout    one-step Monte-Carlo rollout that knows the forecaster's error statistics exactly (the model's sigma,
             growth with lead, correlation time and revision share): for each decision it samples `--scenarios`
             true series consistent with the forecast, simulates the `ce` rule on later forecasts drawn from the
             same model, and acts now only when acting now costs no more in expectation than waiting
  know:H     the `ce` rule on a forecast whose first H hours are replaced by the truth: how much capture more
             information buys (an upper reference, not an achievable rule)

Vectorised with numpy so that a rollout decision (tens of scenarios x every later hour x every start) is cheap.
Only the hourly series are replayed (DE's 15-minute series passes the target already). Prints figures; asserts
nothing. Usage:

    .venv/bin/python -m bench.carbon_policy_bound [--zones SE,US-MIDA-PJM] [--jobs 400] [--rules ce,rollout,know:6]
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))

from llmasos.carbon.trace import TraceSource
from llmasos.planning.timing.forecast_error import DAY_AHEAD_SIGMA, ForecastErrorModel

HORIZON_H = 72
Array = np.ndarray
ForecastFrom = Callable[[int], Array]  # hour index j -> (scenarios, n) forecasts issued at j


@dataclass(frozen=True)
class Job:
    submitted: int  # hour index into the series
    duration: int  # hours
    slack: int  # hours
    interruptible: bool

    @property
    def deadline(self) -> int:
        return self.submitted + self.duration + self.slack


@dataclass(frozen=True)
class ErrorStats:
    """What the rollout rule is told about the forecaster: the replay's own `ForecastErrorModel`, read from it."""

    model: ForecastErrorModel
    by_lead: Array = field(init=False, repr=False, compare=False)  # the model's sigma at 0..HORIZON_H hours

    def __post_init__(self) -> None:
        leads = [self.model.sigma(timedelta(hours=h)) for h in range(HORIZON_H + 1)]
        object.__setattr__(self, "by_lead", np.array(leads))

    def spread(self, n: int, issued: int = 0) -> Array:
        """Relative error spread at positions 0..n-1 for a forecast issued at position `issued`."""
        return self.by_lead[np.maximum(np.arange(n) - issued, 0)]

    def noise(self, rng: np.random.Generator, scenarios: int, n: int) -> Array:
        """Unit-variance Gaussian paths with an exponential correlation (an AR(1) on the hourly grid)."""
        phi = math.exp(-timedelta(hours=1) / self.model.correlation)
        innovations = rng.standard_normal((scenarios, n)) * math.sqrt(1.0 - phi * phi)
        out = np.empty((scenarios, n))
        out[:, 0] = rng.standard_normal(scenarios)
        for i in range(1, n):
            out[:, i] = phi * out[:, i - 1] + innovations[:, i]
        return out


def job_stream(hours: int, count: int, seed: int, zone: str) -> list[Job]:
    rng = random.Random(f"bound:{zone}:{seed}")
    jobs = []
    for _ in range(count):
        submitted = rng.randrange(hours - 24 * 5)
        jobs.append(Job(submitted, rng.randint(1, 24), rng.randint(0, 48), rng.random() < 0.3))
    return jobs


def window_sums(values: Array, length: int) -> Array:
    """Sums over every `length`-long window of the last axis."""
    c = np.concatenate([np.zeros((*values.shape[:-1], 1)), np.cumsum(values, axis=-1)], axis=-1)
    return c[..., length:] - c[..., :-length]


def ce_contiguous(forecast_from: ForecastFrom, truth: Array, first: int, latest: int, duration: int) -> Array:
    """Per scenario, the true cost of the `ce` rule for a non-interruptible job deciding at first..latest."""
    cost = np.zeros(truth.shape[0])
    waiting = np.ones(truth.shape[0], dtype=bool)
    for j in range(first, latest + 1):
        if j == latest:
            go = waiting
        else:
            windows = window_sums(forecast_from(j)[:, j : latest + duration], duration)
            go = waiting & (np.argmin(windows, axis=1) == 0)
        cost[go] = truth[go, j : j + duration].sum(axis=1)
        waiting &= ~go
        if not waiting.any():
            break
    return cost


def ce_quota(forecast_from: ForecastFrom, truth: Array, first: int, deadline: int, owed: int) -> Array:
    """Per scenario, the true cost of the `ce` rule for an interruptible job owing `owed` hours from `first`."""
    cost = np.zeros(truth.shape[0])
    need = np.full(truth.shape[0], owed)
    for j in range(first, deadline):
        forecast = forecast_from(j)[:, j:deadline]
        cleaner_later = (forecast[:, 1:] < forecast[:, :1]).sum(axis=1)
        run = (need > 0) & ((need >= deadline - j) | (cleaner_later < need))
        cost[run] += truth[run, j]
        need -= run
    return cost


class Scenarios:
    """True series consistent with one forecast, and the later forecasts the model would issue for each."""

    def __init__(self, forecast: Array, stats: ErrorStats, rng: np.random.Generator, count: int) -> None:
        n = len(forecast)
        self.stats, self.rng, self.n = stats, rng, n
        self.error = stats.noise(rng, count, n)
        self.truth = np.maximum(forecast / (1.0 + stats.spread(n) * self.error), 0.0)
        self._later: dict[int, Array] = {}

    def forecast_from(self, j: int) -> Array:
        if j not in self._later:
            keep = 1.0 - self.stats.model.revision_share  # correlation of a later issue's error with this one's
            error = math.sqrt(keep) * self.error + math.sqrt(1.0 - keep) * self.stats.noise(
                self.rng, self.error.shape[0], self.n
            )
            self._later[j] = np.maximum(self.truth * (1.0 + self.stats.spread(self.n, j) * error), 0.0)
        return self._later[j]


class Replay:
    def __init__(self, zone: str, error_model: ForecastErrorModel) -> None:
        self.source = TraceSource(offset=timedelta(0), horizon=timedelta(hours=HORIZON_H), error_model=error_model)
        series = self.source.series(zone)
        if series.step != timedelta(hours=1) or series.has_gaps() or series.start is None:
            raise SystemExit(f"{zone}: only gap-free hourly series are replayed here")
        self.zone, self.stats, self.start = zone, ErrorStats(error_model), series.start
        self.truth = np.array([p.intensity for p in series.points], dtype=float)
        self._issued: dict[int, Array] = {}

    def forecast(self, hour: int) -> Array:
        """The forecast issued at `hour`, position 0 being that hour (exact: the step in progress)."""
        if hour not in self._issued:
            issued = self.source.forecast_at(self.zone, self.start + timedelta(hours=hour))
            self._issued[hour] = np.array([p.intensity for p in issued.points], dtype=float)
        return self._issued[hour]

    def decide(self, rule: str, rng: np.random.Generator, scenarios: int, job: Job, hour: int, owed: int) -> bool:
        """Whether the job starts (or, interruptible, runs this hour) at `hour`."""
        n = job.deadline - hour
        forecast = self.forecast(hour)[:n].copy()
        if rule.startswith("know:"):
            known = min(int(rule.split(":", 1)[1]), n)
            forecast[:known] = self.truth[hour : hour + known]
        if not job.interruptible:
            latest = n - job.duration
            if rule == "rollout":
                drawn = Scenarios(forecast, self.stats, rng, scenarios)
                now = drawn.truth[:, : job.duration].sum(axis=1).mean()
                wait = ce_contiguous(drawn.forecast_from, drawn.truth, 1, latest, job.duration).mean()
                return bool(now <= wait)
            return bool(np.argmin(window_sums(forecast[: latest + job.duration], job.duration)) == 0)
        if rule == "rollout":
            drawn = Scenarios(forecast, self.stats, rng, scenarios)
            run = forecast[0] + ce_quota(drawn.forecast_from, drawn.truth, 1, n, owed - 1).mean()
            skip = ce_quota(drawn.forecast_from, drawn.truth, 1, n, owed).mean()
            return bool(run <= skip)
        return bool((forecast[1:] < forecast[0]).sum() < owed)

    def cost(self, rule: str, rng: np.random.Generator, scenarios: int, job: Job) -> float:
        t = self.truth
        if not job.interruptible:
            latest = job.submitted + job.slack
            for hour in range(job.submitted, latest):
                if self.decide(rule, rng, scenarios, job, hour, job.duration):
                    return float(t[hour : hour + job.duration].sum())
            return float(t[latest : latest + job.duration].sum())
        owed, total = job.duration, 0.0
        for hour in range(job.submitted, job.deadline):
            if owed == 0:
                break
            if owed >= job.deadline - hour or self.decide(rule, rng, scenarios, job, hour, owed):
                total += float(t[hour])
                owed -= 1
        return total

    def optimum(self, job: Job) -> float:
        span = self.truth[job.submitted : job.deadline]
        if job.interruptible:
            return float(np.sort(span)[: job.duration].sum())
        return float(window_sums(span, job.duration).min())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--zones", default="SE,US-MIDA-PJM,US-NE-ISNE,US-TEX-ERCO")
    parser.add_argument("--jobs", type=int, default=400)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rules", default="ce,rollout,know:6,know:24")
    parser.add_argument("--scenarios", type=int, default=64)
    parser.add_argument("--sigma", type=float, help="relative error at 24 h (default: the zone's measured value)")
    args = parser.parse_args(argv)
    print(
        f"## hourly replay, {args.jobs} jobs/zone, seed {args.seed}, {HORIZON_H} h forecasts issued hourly, "
        f"{args.scenarios} rollout scenarios; capture = rule's savings / optimum's savings (all, non-interruptible, "
        "interruptible)"
    )
    print(f"{'zone':<12} {'sigma':>5} {'rule':<8} {'capture':>8} {'contig':>7} {'interr':>7} {'secs':>5}")
    for zone in args.zones.split(","):
        sigma = args.sigma if args.sigma is not None else DAY_AHEAD_SIGMA[zone]
        replay = Replay(zone, ForecastErrorModel(sigma_at_24h=sigma, seed=args.seed))
        jobs = job_stream(len(replay.truth), args.jobs, args.seed, zone)
        for rule in args.rules.split(","):
            rng = np.random.default_rng(args.seed)
            began = time.perf_counter()
            saved = {"all": [0.0, 0.0], "contig": [0.0, 0.0], "interr": [0.0, 0.0]}
            for job in jobs:
                now = float(replay.truth[job.submitted : job.submitted + job.duration].sum())
                got, best = now - replay.cost(rule, rng, args.scenarios, job), now - replay.optimum(job)
                for key in ("all", "interr" if job.interruptible else "contig"):
                    saved[key][0] += got
                    saved[key][1] += best
            share = {k: 100.0 * v[0] / v[1] if v[1] > 0 else 100.0 for k, v in saved.items()}
            print(
                f"{zone:<12} {sigma:>5.3f} {rule:<8} {share['all']:>7.1f}% {share['contig']:>6.1f}% "
                f"{share['interr']:>6.1f}% {time.perf_counter() - began:>5.0f}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
