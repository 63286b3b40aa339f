"""When to run a job: the carbon window (or interruptible segments) for one job and one forecast.

`plan_start(job, forecast, now)` is a pure function; the operator, `llmasos plan`, `llmasos simulate` and the
benchmark all call it, so what users preview is what the operator does. Policies:

* ``immediate`` - start now.
* ``deadline``  - the window (or, when interruptible, the set of segments) with the lowest expected emissions that
  ends no later than ``deadline - safetyMargin``.
* ``threshold`` - start at the first moment the forecast is at or below ``maxIntensity``, at the latest start
  otherwise; interruptible jobs run whenever it is clean and run straight through once they must.

Emissions are intensity integrated over the run time (power is constant for one job on one pool). The exact
contiguous optimum lies on a breakpoint of a piecewise-linear cost, so only those candidates are evaluated. "Now" is
always a candidate and ties go to the earlier start, so a plan is never worse than running now on its own forecast.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from llmasos.api.schema import CARBON_NEEDS, CARBON_POLICIES, CarbonPolicy, unmet_need
from llmasos.planning.timing.forecast import Forecast, ensure_utc, format_instant
from llmasos.planning.timing.segments import EPS, Span, enforce_limits, greedy_split, merge
from llmasos.planning.timing.timeline import DEFAULT_UNKNOWN_PREMIUM, Timeline, build_timeline

Policy = CarbonPolicy
POLICIES = CARBON_POLICIES
REL_TOL = 1e-9


@dataclass(frozen=True)
class CarbonJob:
    """What the planner needs to know about a job; every time UTC-aware.

    `deadline` is when the job must have finished (the CRD's `maxDelay` is converted into one); it is needed
    unless the policy is ``immediate``. `min_segment` and
    `max_segments` bound how an interruptible job is split (each resume costs a checkpoint restore).
    """

    duration: timedelta
    earliest_start: datetime
    deadline: datetime | None = None
    interruptible: bool = False
    policy: Policy = "deadline"
    max_intensity: float | None = None
    safety_margin: timedelta = timedelta(0)
    min_segment: timedelta = timedelta(minutes=15)
    max_segments: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "earliest_start", ensure_utc(self.earliest_start, "earliest start"))
        if self.deadline is not None:
            object.__setattr__(self, "deadline", ensure_utc(self.deadline, "deadline"))
        if self.duration <= timedelta(0):
            raise ValueError(f"duration must be positive, got {self.duration}")
        if self.policy not in POLICIES:
            raise ValueError(f"unknown policy {self.policy!r}; expected one of {', '.join(POLICIES)}")
        present = {"expectedDuration", *(("deadline",) if self.deadline is not None else ()),
                   *(("maxIntensity",) if self.max_intensity is not None else ())}
        need = unmet_need(CARBON_NEEDS, self.policy, present)  # the spec's rule, one source
        if need is not None:
            raise ValueError(need.message(self.policy))
        if self.safety_margin < timedelta(0):
            raise ValueError("safetyMargin must not be negative")
        if self.max_segments is not None and self.max_segments < 1:
            raise ValueError("max_segments must be at least 1")


@dataclass(frozen=True, slots=True)
class Segment:
    """One stretch of run time, [start, end), UTC."""

    start: datetime
    end: datetime

    @property
    def duration(self) -> timedelta:
        return self.end - self.start

    def to_dict(self) -> dict[str, str]:
        return {"start": format_instant(self.start), "end": format_instant(self.end)}


# The trace source (carbon/trace.py takes its name from here) replays 2020-21 measurements shifted to today: its
# "forecast" is history, and every plan made on it says so (status.plan, `llmasos plan`, the report).
REPLAY_SOURCE = "trace"
REPLAY_NOTE = "historical replay, not a forecast: hourly intensities measured in 2020-21, shifted to today"


@dataclass(frozen=True)
class Plan:
    """The planner's decision and its expected effect; intensities are time-weighted means in gCO2e/kWh."""

    policy: Policy
    segments: tuple[Segment, ...]
    latest_start: datetime
    latest_end: datetime | None
    expected_intensity: float | None
    run_now_intensity: float | None
    feasible: bool = True
    estimated_fraction: float = 0.0
    reason: str = ""
    zone: str = ""
    source: str = ""
    forecast_issued_at: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)
    # How the run time was derived when it is not expectedDuration as written (e.g. rescaled to the pool's GPU).
    duration_note: str = ""

    @property
    def replay(self) -> bool:
        """True when the plan was made on replayed history (the trace source), not on a forecast."""
        return self.source == REPLAY_SOURCE

    @property
    def start_at(self) -> datetime:
        return self.segments[0].start

    @property
    def end_at(self) -> datetime:
        return self.segments[-1].end

    @property
    def run_time(self) -> timedelta:
        return sum((s.duration for s in self.segments), timedelta(0))

    @property
    def expected_savings_percent(self) -> float | None:
        """Savings against starting now, on the same forecast; None without a usable forecast."""
        if self.expected_intensity is None or not self.run_now_intensity:
            return None
        return 100.0 * (self.run_now_intensity - self.expected_intensity) / self.run_now_intensity

    def segment_at(self, moment: datetime) -> Segment | None:
        """The segment running at `moment`, if any (the operator suspends the job between segments)."""
        moment = ensure_utc(moment)
        return next((s for s in self.segments if s.start <= moment < s.end), None)

    def next_boundary(self, moment: datetime) -> datetime | None:
        """The next segment start or end after `moment` (when the operator should wake up)."""
        moment = ensure_utc(moment)
        edges = sorted({e for s in self.segments for e in (s.start, s.end) if e > moment})
        return edges[0] if edges else None

    def to_dict(self) -> dict[str, Any]:
        """camelCase, JSON-ready; the shape `llmasos plan -o json` prints and status.plan borrows."""
        savings = self.expected_savings_percent
        return {
            "policy": self.policy,
            "startAt": format_instant(self.start_at),
            "endAt": format_instant(self.end_at),
            "segments": [s.to_dict() for s in self.segments],
            "latestStart": format_instant(self.latest_start),
            "zone": self.zone,
            "source": self.source,
            "forecastIssuedAt": format_instant(self.forecast_issued_at) if self.forecast_issued_at else None,
            "expectedIntensity": _round(self.expected_intensity),
            "runNowIntensity": _round(self.run_now_intensity),
            "expectedSavingsPercent": _round(savings),
            "feasible": self.feasible,
            "estimatedFraction": round(self.estimated_fraction, 3),
            "reason": self.reason,
            **({"dataKind": "replay", "dataNote": REPLAY_NOTE} if self.replay else {}),
            **({"durationNote": self.duration_note} if self.duration_note else {}),
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def window_bounds(job: CarbonJob, now: datetime) -> tuple[datetime, datetime, datetime | None]:
    """(earliest, latest_start, latest_end) for `job` at `now`; latest_start < earliest means it cannot make it."""
    earliest = max(ensure_utc(now), job.earliest_start)
    latest_end = job.deadline - job.safety_margin if job.deadline is not None else None
    latest_start = latest_end - job.duration if latest_end is not None else earliest
    return earliest, latest_start, latest_end


def latest_start(job: CarbonJob, now: datetime) -> datetime:
    """The last moment the job can start and still finish in time: the operator's fail-safe start."""
    earliest, latest, _ = window_bounds(job, now)
    return max(earliest, latest)


def plan_start(
    job: CarbonJob, forecast: Forecast, now: datetime, *, unknown_premium: float = DEFAULT_UNKNOWN_PREMIUM
) -> Plan:
    """Decide when `job` runs, given `forecast` as known at `now`. Pure; never raises for an empty forecast."""
    earliest, latest, latest_end = window_bounds(job, now)
    d = job.duration
    meta: dict[str, Any] = {
        "zone": forecast.zone,
        "source": forecast.source,
        "forecast_issued_at": forecast.issued_at,
    }
    feasible = latest >= earliest
    if not feasible or job.policy == "immediate" or not forecast.points:
        if not feasible:
            reason = f"cannot finish by the deadline even when started now (latest start {format_instant(latest)})"
        elif job.policy == "immediate":
            reason = "policy immediate: start now"
        else:
            reason = "no forecast data: start now"
        timeline = build_timeline(forecast, earliest, earliest + d, unknown_premium) if forecast.points else None
        spans = [Span(0.0, d.total_seconds())]
        return _make_plan(
            job, timeline, earliest, spans, spans, max(latest, earliest), latest_end, feasible, reason, meta
        )

    assert latest_end is not None
    timeline = build_timeline(forecast, earliest, max(latest_end, earliest + d), unknown_premium)
    lo, hi, dur = 0.0, timeline.offset(latest), d.total_seconds()
    now_spans = [Span(0.0, dur)]
    if job.policy == "threshold":
        assert job.max_intensity is not None
        spans = _threshold(timeline, hi, dur, job.max_intensity, job.interruptible)
        reason = f"threshold {job.max_intensity:g} g/kWh"
    else:
        start, best = best_contiguous(timeline, lo, hi, dur)
        spans = [Span(start, start + dur)]
        reason = "lowest-carbon window before the deadline"
        if job.interruptible:
            split = greedy_split(timeline, lo, hi + dur, dur)
            split = enforce_limits(timeline, split, job.min_segment.total_seconds(), job.max_segments)
            split_cost = sum(timeline.integral(s.start, s.end) for s in split)
            if len(split) > 1 and split_cost < best * (1 - REL_TOL) - EPS:
                spans = split
                reason = f"lowest-carbon {len(split)} segments before the deadline"
    return _make_plan(job, timeline, earliest, spans, now_spans, latest, latest_end, True, reason, meta)


def best_contiguous(timeline: Timeline, lo: float, hi: float, duration: float) -> tuple[float, float]:
    """(start, cost) of the cheapest window of `duration` starting in [lo, hi]; ties go to the earliest start."""
    candidates = {lo, hi}
    candidates.update(timeline.breakpoints(lo, hi))
    candidates.update(b - duration for b in timeline.breakpoints(lo + duration, hi + duration))
    best_start, best_cost = lo, timeline.integral(lo, lo + duration)
    for s in sorted(candidates):
        if s < lo or s > hi:
            continue
        c = timeline.integral(s, s + duration)
        if c < best_cost - max(abs(best_cost) * REL_TOL, EPS):
            best_start, best_cost = s, c
    return best_start, best_cost


def _threshold(timeline: Timeline, hi: float, dur: float, limit: float, interruptible: bool) -> list[Span]:
    """Run while known intensity <= limit; start (or keep running) at the latest moment that still finishes."""
    end = hi + dur
    cuts = sorted({0.0, hi, end, *timeline.breakpoints(0.0, end)})

    def clean(x: float) -> bool:
        return not timeline.is_estimated_at(x) and timeline.value_at(x) <= limit + EPS

    if not interruptible:
        start = next((c for c in cuts if c <= hi and clean(c)), hi)
        return [Span(start, start + dur)]
    spans: list[Span] = []
    remaining = dur
    for a, b in itertools.pairwise(cuts):
        if remaining <= EPS:
            break
        forced = end - remaining
        if a >= forced - EPS:
            spans.append(Span(a, a + remaining))
            remaining = 0.0
        elif clean((a + b) / 2):
            take = min(b - a, remaining)
            spans.append(Span(a, a + take))
            remaining -= take
        elif b > forced:
            spans.append(Span(forced, forced + remaining))
            remaining = 0.0
    return merge(spans)


def _make_plan(
    job: CarbonJob,
    timeline: Timeline | None,
    earliest: datetime,
    spans: list[Span],
    now_spans: list[Span],
    latest: datetime,
    latest_end: datetime | None,
    feasible: bool,
    reason: str,
    meta: dict[str, Any],
) -> Plan:
    limit = latest_end if feasible and latest_end is not None else None
    segments = to_segments(earliest, spans, job.duration, limit)
    expected = run_now = None
    estimated = 0.0
    if timeline is not None:
        dur = sum(s.length for s in spans)
        expected = sum(timeline.integral(s.start, s.end) for s in spans) / dur
        run_now = sum(timeline.integral(s.start, s.end) for s in now_spans) / dur
        estimated = sum(timeline.estimated_seconds(s.start, s.end) for s in spans) / dur
        if estimated > 0:
            reason += f"; {estimated:.0%} of the run lies beyond the forecast (estimated, will re-plan)"
    return Plan(
        policy=job.policy,
        segments=segments,
        latest_start=latest,
        latest_end=latest_end,
        expected_intensity=expected,
        run_now_intensity=run_now,
        feasible=feasible,
        estimated_fraction=estimated,
        reason=reason,
        zone=str(meta["zone"]),
        source=str(meta["source"]),
        forecast_issued_at=meta["forecast_issued_at"],
    )


def to_segments(
    origin: datetime, spans: list[Span], duration: timedelta, limit: datetime | None
) -> tuple[Segment, ...]:
    """Spans (float seconds) to UTC segments in whole microseconds: total exactly `duration`, none past `limit`."""
    total_us = duration // timedelta(microseconds=1)
    starts = [round(s.start * 1e6) for s in spans]
    lengths = [round(s.length * 1e6) for s in spans]
    longest = max(range(len(lengths)), key=lambda i: lengths[i])
    lengths[longest] += total_us - sum(lengths)
    bound = (limit - origin) // timedelta(microseconds=1) if limit is not None else None
    ends = [a + n for a, n in zip(starts, lengths, strict=True)]
    for i in range(len(spans) - 1, -1, -1):
        cap = starts[i + 1] if i + 1 < len(spans) else bound
        if cap is not None and ends[i] > cap:
            ends[i] = cap
            starts[i] = cap - lengths[i]
    if any(e - a <= 0 for a, e in zip(starts, ends, strict=True)) or any(
        starts[i + 1] < ends[i] for i in range(len(spans) - 1)
    ):
        raise AssertionError(f"internal error: overlapping or empty segments {spans}")
    micro = timedelta(microseconds=1)
    return tuple(Segment(origin + a * micro, origin + e * micro) for a, e in zip(starts, ends, strict=True))
