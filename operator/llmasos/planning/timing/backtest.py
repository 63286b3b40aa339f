"""Replaying jobs over a real intensity series to measure what carbon-aware timing actually saves.

Shared by `llmasos simulate` and `bench/carbon_shift.py`, so the documented figures come from the same code users
run. Strategies, all judged on the *true* series:

* ``run_now``  - start at submission (the reference every saving is measured against).
* ``planner``  - what the operator does: re-plan on every newly issued forecast until the job starts (the job
  starts when its plan starts before the next forecast is issued). A started non-interruptible job is never
  re-planned; a started interruptible one is re-planned on every new forecast until its run time is served, running
  only the part of each plan that falls before the next forecast (model-predictive control: `replan_remaining`, which
  the operator's `segment_gate.py` calls with the run time its child Job served; with `max_segments`, each re-plan
  gets only the segments the runs made leave, and once they are used the rest runs at once, as the operator
  does). The replay has no resync lag and
  `minSegment` 0, so a re-plan at a segment boundary on the same forecast (the operator's other re-plan) changes
  nothing here. ``replan_after_start=False`` is the operator's former behaviour: a started interruptible job follows
  the segments of the plan it started with (`--follow-plan` in `llmasos simulate` and `bench/carbon_shift.py`).
* ``baseline`` - the Carbon Aware SDK's rolling-window rule, decided once at submission: the job-length window with
  the lowest mean over windows fully covered by the forecast and ending by the deadline; run now if none fits.
* ``optimum``  - perfect knowledge: the planner given the true series up to the deadline (contiguous, or split
  without limits for interruptible jobs).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from llmasos.planning.timing.carbon_window import CarbonJob, Plan, Segment, plan_start
from llmasos.planning.timing.forecast import Forecast
from llmasos.planning.timing.replan import replan_remaining, replan_within_segments
from llmasos.planning.timing.timeline import DEFAULT_UNKNOWN_PREMIUM

ForecastAt = Callable[[datetime], Forecast]
STRATEGIES = ("run_now", "planner", "baseline", "optimum")


@dataclass(frozen=True)
class BacktestJob:
    """A job of the replayed stream; times are on the series' clock."""

    id: str
    submitted_at: datetime
    duration: timedelta
    deadline: datetime
    interruptible: bool = False

    def carbon_job(self, safety_margin: timedelta = timedelta(0)) -> CarbonJob:
        return CarbonJob(
            duration=self.duration,
            earliest_start=self.submitted_at,
            deadline=self.deadline,
            interruptible=self.interruptible,
            safety_margin=safety_margin,
            min_segment=timedelta(0),
        )


@dataclass(frozen=True)
class Outcome:
    """What one strategy did with one job: its segments and the true mean intensity over them."""

    job_id: str
    strategy: str
    segments: tuple[Segment, ...]
    intensity: float
    missed_deadline: bool

    @property
    def run_time(self) -> timedelta:
        return sum((s.duration for s in self.segments), timedelta(0))


def true_intensity(truth: Forecast, segments: Iterable[Segment]) -> float:
    """Time-weighted mean of the true series over `segments`; raises if the series does not cover them."""
    total = seconds = 0.0
    for seg in segments:
        for piece in truth.pieces_between(seg.start, seg.end):
            value = piece.intensity
            if value is None:  # a gap in the record: carry the last known value over it
                value = truth.value_at(piece.start - truth.step)
                if value is None:
                    raise ValueError(f"the series does not cover {piece.start.isoformat()}")
            total += value * piece.seconds
            seconds += piece.seconds
    return total / seconds


def _outcome(job: BacktestJob, strategy: str, segments: tuple[Segment, ...], truth: Forecast) -> Outcome:
    missed = segments[-1].end > job.deadline
    return Outcome(job.id, strategy, segments, true_intensity(truth, segments), missed)


def run_now(job: BacktestJob, truth: Forecast) -> Outcome:
    return _outcome(job, "run_now", (Segment(job.submitted_at, job.submitted_at + job.duration),), truth)


def optimum(job: BacktestJob, truth: Forecast, split: bool | None = None) -> Outcome:
    """Perfect knowledge of the series up to the deadline (`split` defaults to the job's interruptibility)."""
    carbon_job = replace(job.carbon_job(), interruptible=job.interruptible if split is None else split)
    window = truth.between(job.submitted_at - truth.step, job.deadline + truth.step)
    plan = plan_start(carbon_job, window, job.submitted_at, unknown_premium=0.0)
    return _outcome(job, "optimum", plan.segments, truth)


def planner(
    job: BacktestJob,
    truth: Forecast,
    forecast_at: ForecastAt,
    tick: timedelta = timedelta(hours=1),
    safety_margin: timedelta = timedelta(0),
    max_segments: int | None = None,
    unknown_premium: float = DEFAULT_UNKNOWN_PREMIUM,
    *,
    replan_after_start: bool = True,
) -> Outcome:
    """The operator's behaviour: re-plan on each newly issued forecast until the job starts, and an interruptible
    job's remaining run time after it (module docstring; `replan_after_start=False`: follow the started plan).

    Forecasts are issued every `tick`; the next one is due `tick` after the current forecast's `issued_at` (after
    `now` when it has none), which is when the operator would next see a different plan.
    """
    base = job.carbon_job(safety_margin)
    if max_segments is not None:
        base = replace(base, max_segments=max_segments)
    now = job.submitted_at
    done: list[Segment] = []
    served = timedelta(0)
    while served < job.duration:
        forecast = forecast_at(now)
        remaining = job.duration - served
        if job.interruptible and replan_after_start and done and base.max_segments is not None:
            limited = _within_max_segments(base, served, forecast, now, done, unknown_premium)
            if limited is None:  # maxSegments used: the rest runs at once, as the operator never holds it again
                done.append(Segment(now, now + remaining))
                break
            plan = limited
        else:
            replanned = replan_remaining(base, served, forecast, now, unknown_premium=unknown_premium)
            assert replanned is not None
            plan = replanned
        following = _next_issue(forecast, now, tick)
        starts = plan.segments[0].start < following or not plan.feasible
        if not job.interruptible:
            if starts:
                done.append(Segment(plan.segments[0].start, plan.segments[0].start + remaining))
                break
        elif not replan_after_start:
            if starts:  # the operator's former behaviour: follow the plan it started with
                done.extend(plan.segments)
                break
        else:
            # Run every planned piece before the next forecast; skipping one could make the rest infeasible.
            for seg in plan.segments:
                end = min(seg.end, following) if plan.feasible else seg.end
                if seg.start < end:
                    done.append(Segment(seg.start, end))
                    served += end - seg.start
        now = following
    return _outcome(job, "planner", _merged(done), truth)


def _within_max_segments(base: CarbonJob, served: timedelta, forecast: Forecast, now: datetime,
                         done: list[Segment], unknown_premium: float) -> Plan | None:
    """As the operator's gate (`segment_gate.py`): a re-plan gets maxSegments minus the runs made, the run ending
    now being the first of them when the plan continues it; None once every segment is used."""
    assert base.max_segments is not None
    runs = _merged(done)
    left = base.max_segments - len(runs)
    if left <= 0:
        return None
    return replan_within_segments(base, served, forecast, now, left, open_run=runs[-1].end == now,
                                  unknown_premium=unknown_premium)


def _next_issue(forecast: Forecast, now: datetime, tick: timedelta) -> datetime:
    if forecast.issued_at is not None and now < forecast.issued_at + tick <= now + tick:
        return forecast.issued_at + tick
    return now + tick


def rolling_window_baseline(job: BacktestJob, truth: Forecast, forecast: Forecast) -> Outcome:
    """Carbon Aware SDK style: lowest mean over windows fully covered by `forecast` and ending by the deadline."""
    now = job.submitted_at
    starts = [now, *(p.start for p in forecast.points if p.start > now)]
    best: tuple[float, datetime] | None = None
    for start in starts:
        end = start + job.duration
        if end > job.deadline:
            break
        mean = forecast.mean_between(start, end)
        if mean is not None and (best is None or mean < best[0] - 1e-9):
            best = (mean, start)
    start = best[1] if best is not None else now
    return _outcome(job, "baseline", (Segment(start, start + job.duration),), truth)


def _merged(segments: list[Segment]) -> tuple[Segment, ...]:
    out: list[Segment] = []
    for seg in sorted(segments, key=lambda s: s.start):
        if out and seg.start <= out[-1].end:
            out[-1] = Segment(out[-1].start, max(out[-1].end, seg.end))
        else:
            out.append(seg)
    return tuple(out)


@dataclass(frozen=True)
class Summary:
    """Savings of each strategy against running at submission, energy-weighted (constant power per job)."""

    jobs: int
    savings_percent: dict[str, float]
    missed_deadlines: dict[str, int]

    @property
    def capture_percent(self) -> float:
        """The planner's savings as a share of the optimum's."""
        best = self.savings_percent.get("optimum", 0.0)
        return 100.0 * self.savings_percent.get("planner", 0.0) / best if best > 0 else 100.0


def summarize(outcomes: Iterable[Outcome]) -> Summary:
    """Savings per strategy; every job must have a run_now outcome."""
    by_strategy: dict[str, float] = {}
    missed: dict[str, int] = {}
    job_ids: set[str] = set()
    for o in outcomes:
        hours = o.run_time.total_seconds() / 3600.0
        by_strategy[o.strategy] = by_strategy.get(o.strategy, 0.0) + o.intensity * hours
        missed[o.strategy] = missed.get(o.strategy, 0) + int(o.missed_deadline)
        job_ids.add(o.job_id)
    reference = by_strategy.get("run_now")
    if not reference:
        raise ValueError("summarize needs run_now outcomes")
    savings = {k: 100.0 * (reference - v) / reference for k, v in by_strategy.items()}
    return Summary(len(job_ids), savings, missed)
