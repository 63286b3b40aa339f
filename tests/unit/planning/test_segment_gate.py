"""Re-planning started interruptible jobs: the served-time ledger, the gate's rules, and the whole loop's properties.

The property test plays the operator: a pass every 5 minutes, a forecast issued every hour (the true series blurred
by a new random error per issue), the child Job suspended and resumed exactly as the gate says. Whatever the
forecasts, the job serves its duration, ends by `deadline - safetyMargin` (plus at most one pass of lag), and no run
is suspended before it lasted `minSegment`.
"""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from random import Random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from llmasos.planning.carbon_gate import gate_before_start, plan_status
from llmasos.planning.carbon_window import CarbonJob, plan_start
from llmasos.planning.forecast import Forecast, format_instant
from llmasos.planning.segment_gate import gate_interruptible, is_newer
from llmasos.planning.served import Ledger, RunState, ledger_from
from tests.unit.planning.builders import T0, make_forecast, make_job

H = timedelta(hours=1)
M = timedelta(minutes=1)
SOURCE = ("test", False, "")


def status_plan(job: CarbonJob, forecast: Forecast, now: datetime) -> dict[str, Any]:
    return plan_status(plan_start(job, forecast, now), *SOURCE)


# -- the ledger ----------------------------------------------------------------------------------------------------

def test_a_run_opens_at_the_jobs_start_time_and_closes_when_suspended() -> None:
    ledger = Ledger().observe(RunState(True, False, T0 + 2 * M), T0 + 5 * M)
    assert ledger.running_since == T0 + 2 * M
    assert ledger.served_at(T0 + 10 * M) == 8 * M
    closed = ledger.close(T0 + 32 * M)
    assert (closed.served, closed.running_since, closed.suspended_at) == (30 * M, None, T0 + 32 * M)
    assert closed.observe(RunState(True, True, T0 + 2 * M), T0 + H) == closed, "suspended: nothing runs"
    # Resumed, but the Job's startTime still shows the first run: count from the pass, never across the gap.
    resumed = closed.observe(RunState(True, False, T0 + 2 * M), T0 + H)
    assert resumed.running_since == T0 + H
    assert resumed.observe(RunState(True, True, T0 + H), T0 + H + 10 * M).served == 40 * M, "user suspend closes"
    assert ledger_from({**resumed.to_fields(), "startAt": "x"}) == resumed
    assert ledger_from(None) == Ledger()


# -- the gate's rules ----------------------------------------------------------------------------------------------

def dip_forecast(dip: int, issued: datetime) -> Forecast:
    """12 hours at 400 g/kWh from T0, clean (50) in the first hour and in hour `dip`."""
    values = [400.0] * 12
    values[0] = values[dip] = 50.0
    return make_forecast(values, issued_at=issued)


def started(job: CarbonJob, forecast: Forecast) -> dict[str, Any]:
    """The plan the job started with at T0, with the ledger of the run since T0."""
    plan = status_plan(job, forecast, T0)
    return {**plan, **Ledger(running_since=T0).to_fields()}


def test_follows_the_plan_in_force_until_a_newer_forecast_moves_a_later_segment() -> None:
    job = make_job("2h").deadline("12h").interruptible(min_segment="15m").build()
    first = dip_forecast(6, T0)
    plan = started(job, first)
    assert [s["start"] for s in plan["segments"]] == [format_instant(T0), format_instant(T0 + 6 * H)]
    running = RunState(True, False, T0)

    inside = gate_interruptible(plan, job, running, first, SOURCE, T0 + 30 * M)
    assert not inside.hold
    assert inside.plan == plan, "same forecast, inside a segment: no re-plan, no status change"

    at_end = gate_interruptible(plan, job, running, first, SOURCE, T0 + H)
    assert at_end.hold
    assert at_end.resume_at == format_instant(T0 + 6 * H)
    assert at_end.announce
    assert at_end.plan is not None
    assert at_end.plan["servedSeconds"] == 3600
    assert at_end.plan["runningSince"] is None

    held = RunState(True, True, T0)
    newer = dip_forecast(9, T0 + 2 * H)
    assert is_newer(at_end.plan, newer, "test")
    moved = gate_interruptible(at_end.plan, job, held, newer, SOURCE, T0 + 2 * H, at_end.resume_at)
    assert moved.hold
    assert moved.resume_at == format_instant(T0 + 9 * H), "the owed hour follows the newer forecast's dip"
    assert moved.announce, "a moved resume time is announced"
    assert moved.plan is not None
    assert moved.plan["servedSeconds"] == 3600
    assert sum((datetime.fromisoformat(s["end"][:-1]) - datetime.fromisoformat(s["start"][:-1])
                for s in moved.plan["segments"]), timedelta(0)) == H, "served + owed == duration"
    again = gate_interruptible(moved.plan, job, held, newer, SOURCE, T0 + 3 * H, moved.resume_at)
    assert again.hold
    assert not again.announce
    resumed = gate_interruptible(moved.plan, job, held, newer, SOURCE, T0 + 9 * H, moved.resume_at)
    assert not resumed.hold


def test_a_young_run_is_not_suspended() -> None:
    job = make_job("3h").deadline("12h").interruptible(min_segment="30m").build()
    plan = {**status_plan(job, dip_forecast(6, T0), T0), **Ledger(running_since=T0 + 50 * M).to_fields()}
    dirtier_now = make_forecast([900.0, *[400.0] * 5, 50.0, 50.0, 50.0, *[400.0] * 3], issued_at=T0 + H)
    young = gate_interruptible(plan, job, RunState(True, False, T0 + 50 * M), dirtier_now, SOURCE, T0 + 70 * M)
    assert not young.hold, "resumed 20 minutes ago: runs on until minSegment"
    old = gate_interruptible(plan, job, RunState(True, False, T0 + 50 * M), dirtier_now, SOURCE, T0 + 80 * M)
    assert old.hold


def test_nothing_owed_is_never_held_and_a_late_job_runs_at_once() -> None:
    job = make_job("2h").deadline("4h").interruptible().build()
    f = dip_forecast(3, T0)
    done = {**status_plan(job, f, T0), **Ledger(served=2 * H, suspended_at=T0 + 2 * H).to_fields()}
    assert not gate_interruptible(done, job, RunState(True, True, T0), f, SOURCE, T0 + 150 * M).hold
    # One hour owed, held, and only one hour left before the deadline: a newer forecast cannot hold it.
    late = {**status_plan(job, f, T0), **Ledger(served=H, suspended_at=T0 + H).to_fields()}
    gate = gate_interruptible(late, job, RunState(True, True, T0), dip_forecast(3, T0 + 3 * H), SOURCE, T0 + 3 * H)
    assert not gate.hold


def test_every_source_down_runs_the_rest_now() -> None:
    job = make_job("2h").deadline("12h").interruptible().build()
    plan = {**started(job, dip_forecast(6, T0)), **Ledger(served=H, suspended_at=T0 + H).to_fields()}
    gate = gate_interruptible(plan, job, RunState(True, True, T0), Forecast(()), ("none", True, "down"), T0 + 2 * H)
    assert not gate.hold
    assert gate.plan is not None
    assert gate.plan["source"] == "none"


# -- the loop's properties -----------------------------------------------------------------------------------------

TICK = 5 * M


def noisy(truth: Forecast, issued: datetime, rng: Random, sigma: float) -> Forecast:
    pairs = [(p.start, max(p.intensity * (1 + rng.gauss(0, sigma)), 0.0))
             for p in truth.points if p.start + truth.step > issued]
    return Forecast.from_pairs(pairs, truth.step, issued_at=issued, source="test")


def operate(job: CarbonJob, truth: Forecast, seed: int, sigma: float) -> list[tuple[datetime, datetime]]:
    """The operator's passes; returns the Job's runs, the last one ending when the duration is served."""
    rng, issues = Random(seed), {}
    previous: dict[str, Any] | None = None
    run, held_until, since = RunState(), "", T0
    runs: list[tuple[datetime, datetime]] = []
    now = T0
    while now < T0 + 72 * H:
        issued = now.replace(minute=0)
        forecast = issues.setdefault(issued, noisy(truth, issued, rng, sigma))
        if not run.exists:
            gate = gate_before_start(status_plan(job, forecast, now), previous, now)
            if not gate.hold:
                run, since = RunState(True, False, now), now
        else:
            gate = gate_interruptible(previous, job, run, forecast, SOURCE, now, held_until)
            if gate.hold and not run.suspended:
                runs.append((since, now))
                run = RunState(True, True, since)
            elif not gate.hold and run.suspended:
                run, since = RunState(True, False, now), now  # Kubernetes resets the Job's startTime on resume
        previous, held_until = gate.plan, (gate.start_at if gate.hold else "")
        served = sum((b - a for a, b in runs), timedelta(0))
        if run.exists and not run.suspended and since + (job.duration - served) <= now + TICK:
            ledger = ledger_from(previous)
            assert ledger.served_at(now) == served + (now - since) or not ledger.running, "ledger matches the runs"
            return [*runs, (since, since + job.duration - served)]
        now += TICK
    raise AssertionError("the job never finished")


@st.composite
def jobs(draw: st.DrawFn) -> tuple[CarbonJob, Forecast, int, float]:
    duration = draw(st.integers(2, 72)) * TICK
    slack = draw(st.integers(0, 36)) * 10 * M
    margin = draw(st.sampled_from([timedelta(0), 15 * M]))
    job = CarbonJob(duration=duration, earliest_start=T0, deadline=T0 + duration + slack + margin,
                    interruptible=True, safety_margin=margin,
                    min_segment=draw(st.sampled_from([timedelta(0), 15 * M, H])),
                    max_segments=draw(st.sampled_from([None, 2, 4])))
    values = draw(st.lists(st.integers(20, 800).map(float), min_size=30, max_size=30))
    truth = make_forecast(values)
    return job, truth, draw(st.integers(0, 2**16)), draw(st.sampled_from([0.0, 0.1, 0.3]))


@settings(max_examples=80, deadline=None)
@given(jobs())
def test_replanned_jobs_serve_their_duration_in_time_and_keep_min_segments(
        case: tuple[CarbonJob, Forecast, int, float]) -> None:
    job, truth, seed, sigma = case
    runs = operate(job, truth, seed, sigma)
    assert job.deadline is not None
    assert sum((b - a for a, b in runs), timedelta(0)) == job.duration
    assert runs[-1][1] <= job.deadline - job.safety_margin + TICK, "never later than one pass after the deadline"
    for (a, b), (c, _) in itertools.pairwise(runs):
        assert b - a >= job.min_segment, "a suspended run lasted at least minSegment"
        assert c > b
