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

from llmasos.api.status import PlanStatus
from llmasos.planning.timing.carbon_gate import gate_before_start, plan_status
from llmasos.planning.timing.carbon_window import CarbonJob, plan_start
from llmasos.planning.timing.forecast import Forecast, format_instant
from llmasos.planning.timing.segment_gate import gate_interruptible, is_newer
from llmasos.planning.timing.served import RunLedger, RunState, ledger_from
from tests.unit.planning.builders import T0, make_forecast, make_job

H = timedelta(hours=1)
M = timedelta(minutes=1)
S = timedelta(seconds=1)
SOURCE = ("test", False, "")


def status_plan(job: CarbonJob, forecast: Forecast, now: datetime) -> PlanStatus:
    return plan_status(plan_start(job, forecast, now), *SOURCE)


# -- the ledger ----------------------------------------------------------------------------------------------------

def test_a_run_opens_when_the_gang_is_ready_and_closes_when_suspended() -> None:
    pending = RunLedger().observe(RunState(True, False, ready=False), T0 + 2 * M)
    assert pending == RunLedger(), "a Pending gang serves nothing"
    ledger = RunLedger().observe(RunState(True, False), T0 + 5 * M)
    assert (ledger.running_since, ledger.runs) == (T0 + 5 * M, 1), "opened at the pass that sees the gang ready"
    assert ledger.served_at(T0 + 10 * M) == 5 * M
    closed = ledger.close(T0 + 35 * M)
    assert (closed.served, closed.running_since, closed.suspended_at, closed.runs) == (30 * M, None, T0 + 35 * M, 1)
    assert closed.observe(RunState(True, True), T0 + H) == closed, "suspended: nothing runs"
    assert closed.observe(RunState(True, False, ready=False), T0 + H) == closed, "resumed, pods still Pending"
    resumed = closed.observe(RunState(True, False), T0 + H)
    assert (resumed.running_since, resumed.runs) == (T0 + H, 2)
    assert resumed.observe(RunState(True, True), T0 + H + 10 * M).served == 40 * M, "user suspend closes"
    assert resumed.observe(RunState(True, False, ready=False), T0 + H + 10 * M).served == 40 * M, "a worker lost"
    assert ledger_from({**resumed.to_fields(), "startAt": "2026-11-25T12:00:00Z"}) == resumed
    assert ledger_from(None) == RunLedger()
    legacy = {k: v for k, v in resumed.to_fields().items() if k != "runs"}
    assert ledger_from(legacy).runs == 1, "a ledger written before runs were counted: at least the open run"


# -- the gate's rules ----------------------------------------------------------------------------------------------

def dip_forecast(dip: int, issued: datetime) -> Forecast:
    """12 hours at 400 g/kWh from T0, clean (50) in the first hour and in hour `dip`."""
    values = [400.0] * 12
    values[0] = values[dip] = 50.0
    return make_forecast(values, issued_at=issued)


def started(job: CarbonJob, forecast: Forecast) -> dict[str, Any]:
    """The plan the job started with at T0, with the ledger of the run since T0."""
    plan = status_plan(job, forecast, T0)
    return {**plan, **RunLedger(running_since=T0, runs=1).to_fields()}


def test_follows_the_plan_in_force_until_a_newer_forecast_moves_a_later_segment() -> None:
    job = make_job("2h").deadline("12h").interruptible(min_segment="15m").build()
    first = dip_forecast(6, T0)
    plan = started(job, first)
    assert [s["start"] for s in plan["segments"]] == [format_instant(T0), format_instant(T0 + 6 * H)]
    running = RunState(True, False)

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

    held = RunState(True, True)
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
    plan = {**status_plan(job, dip_forecast(6, T0), T0), **RunLedger(running_since=T0 + 50 * M).to_fields()}
    dirtier_now = make_forecast([900.0, *[400.0] * 5, 50.0, 50.0, 50.0, *[400.0] * 3], issued_at=T0 + H)
    young = gate_interruptible(plan, job, RunState(True, False), dirtier_now, SOURCE, T0 + 70 * M)
    assert not young.hold, "resumed 20 minutes ago: runs on until minSegment"
    old = gate_interruptible(plan, job, RunState(True, False), dirtier_now, SOURCE, T0 + 80 * M)
    assert old.hold


def test_nothing_owed_is_never_held_and_a_late_job_runs_at_once() -> None:
    job = make_job("2h").deadline("4h").interruptible().build()
    f = dip_forecast(3, T0)
    done = {**status_plan(job, f, T0), **RunLedger(served=2 * H, suspended_at=T0 + 2 * H).to_fields()}
    assert not gate_interruptible(done, job, RunState(True, True), f, SOURCE, T0 + 150 * M).hold
    # One hour owed, held, and only one hour left before the deadline: a newer forecast cannot hold it.
    late = {**status_plan(job, f, T0), **RunLedger(served=H, suspended_at=T0 + H).to_fields()}
    gate = gate_interruptible(late, job, RunState(True, True), dip_forecast(3, T0 + 3 * H), SOURCE, T0 + 3 * H)
    assert not gate.hold


def test_every_source_down_runs_the_rest_now() -> None:
    job = make_job("2h").deadline("12h").interruptible().build()
    plan = {**started(job, dip_forecast(6, T0)), **RunLedger(served=H, suspended_at=T0 + H).to_fields()}
    gate = gate_interruptible(plan, job, RunState(True, True), Forecast(()), ("none", True, "down"), T0 + 2 * H)
    assert not gate.hold
    assert gate.plan is not None
    assert gate.plan["source"] == "none"


def planned(plan: Any) -> timedelta:
    return sum((datetime.fromisoformat(s["end"][:-1]) - datetime.fromisoformat(s["start"][:-1])
                for s in plan["segments"]), timedelta(0))


def test_the_ledger_keeps_the_workers_pace_when_a_run_closes() -> None:
    ledger = RunLedger(running_since=T0, runs=1)
    assert ledger.paced_owed_at(T0 + 10 * M) is None, "the workers never said"
    closed = ledger.observe(RunState(True, True), T0 + H, paced=90 * M)
    assert (closed.served, closed.paced_owed) == (H, 90 * M)
    assert ledger_from(closed.to_fields()) == closed
    assert closed.to_fields()["pacedOwedSeconds"] == 5400
    resumed = closed.observe(RunState(True, False), T0 + 2 * H)
    assert resumed.paced_owed_at(T0 + 2 * H + 10 * M) == 80 * M, "less the open run, until the workers report"
    assert resumed.paced_owed_at(T0 + 2 * H + 10 * M, live=70 * M) == 70 * M, "a live reading wins"
    assert resumed.close(T0 + 2 * H + 20 * M).paced_owed == 70 * M, "no live reading at the close: the kept one"
    assert ledger.close(T0 + H).paced_owed is None


def test_a_slower_pace_than_expected_is_planned_on_and_a_faster_one_keeps_the_plan() -> None:
    job = make_job("2h").deadline("12h").interruptible(min_segment="15m").build()
    f = dip_forecast(6, T0)
    plan = started(job, f)  # [T0, T0+1h) and [T0+6h, T0+7h)
    running = RunState(True, False)
    faster = gate_interruptible(plan, job, running, f, SOURCE, T0 + 30 * M, paced=40 * M)
    assert faster.plan == plan, "1 h 30 min still planned, 40 min needed: the owner's room is kept"
    near = gate_interruptible(plan, job, running, f, SOURCE, T0 + 30 * M, paced=99 * M)
    assert near.plan == plan, "within a tenth (9 min here, at least a minute) of the plan: no re-plan"
    beyond = gate_interruptible(plan, job, running, f, SOURCE, T0 + 30 * M, paced=99 * M + S)
    assert beyond.plan is not None
    assert planned(beyond.plan) == 99 * M + S
    slower = gate_interruptible(plan, job, running, f, SOURCE, T0 + 30 * M, paced=3 * H)
    assert slower.plan is not None
    assert not slower.hold
    assert planned(slower.plan) == 3 * H, "the 3 h the workers need, not the 1 h 30 min expected"

    assert [s["end"] for s in slower.plan["segments"]] == [format_instant(T0 + 150 * M), format_instant(T0 + 7 * H)]

    # 2 h 30 min served, more than expected: only the workers' pace still owes anything, so the dip is kept.
    at_end = gate_interruptible(slower.plan, job, running, f, SOURCE, T0 + 150 * M, paced=H)
    assert at_end.hold
    assert at_end.resume_at == format_instant(T0 + 6 * H)
    assert at_end.plan is not None
    assert (at_end.plan["servedSeconds"], at_end.plan["pacedOwedSeconds"]) == (9000, 3600)
    held = RunState(True, True)
    moved = gate_interruptible(at_end.plan, job, held, dip_forecast(8, T0 + 3 * H), SOURCE, T0 + 3 * H,
                               at_end.resume_at)
    assert moved.resume_at == format_instant(T0 + 8 * H)
    assert moved.plan is not None
    assert planned(moved.plan) == H, "re-planned while suspended on what the workers said at the close"


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
                run, since = RunState(True, False), now
        else:
            gate = gate_interruptible(previous, job, run, forecast, SOURCE, now, held_until)
            if gate.hold and not run.suspended:
                runs.append((since, now))
                run = RunState(True, True)
            elif not gate.hold and run.suspended:
                run, since = RunState(True, False), now
        if run.running and since == now:
            # The gang becomes ready at once, and its readiness triggers a pass (the child Job's fingerprint).
            held = gate.start_at if gate.hold else ""
            gate = gate_interruptible(gate.plan, job, run, forecast, SOURCE, now, held)
            assert not gate.hold, "a run is not suspended as it opens"
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
    assert job.max_segments is None or len(runs) <= job.max_segments, "no more runs than maxSegments"


def test_max_segments_counts_the_runs_made_and_once_used_the_job_runs_to_the_end() -> None:
    job = make_job("3h").deadline("12h").interruptible(min_segment="15m", max_segments=2).build()
    f = make_forecast([50.0, 400.0, 400.0, 50.0, 400.0, 400.0, 50.0, *[400.0] * 5], issued_at=T0)
    # The second run (of two) is open and the plan in force would suspend it: it runs on instead.
    plan = {**status_plan(job, f, T0), **RunLedger(served=H, running_since=T0 + 3 * H, suspended_at=T0 + H,
                                                runs=2).to_fields()}
    plan["segments"] = [{"start": format_instant(T0), "end": format_instant(T0 + H)},
                        {"start": format_instant(T0 + 3 * H), "end": format_instant(T0 + 4 * H)},
                        {"start": format_instant(T0 + 6 * H), "end": format_instant(T0 + 7 * H)}]
    gate = gate_interruptible(plan, job, RunState(True, False), f, SOURCE, T0 + 4 * H)
    assert not gate.hold, "maxSegments used: never suspended again"
    newer = make_forecast([50.0, 400.0, 400.0, 50.0, 900.0, 400.0, 50.0, *[400.0] * 5], issued_at=T0 + 4 * H)
    assert not gate_interruptible(plan, job, RunState(True, False), newer, SOURCE, T0 + 4 * H).hold
    # One run made and held: the re-plan may use one more segment only, so the two clean hours left are not split.
    held = {**plan, **RunLedger(served=H, suspended_at=T0 + H, runs=1).to_fields()}
    replanned = gate_interruptible(held, job, RunState(True, True), newer, SOURCE, T0 + 2 * H)
    assert replanned.plan is not None
    assert len(replanned.plan["segments"]) == 1, "maxSegments 2, one run made: one segment left"


def test_repeated_passes_with_the_same_inputs_write_nothing() -> None:
    job = make_job("3h").deadline("12h").interruptible(min_segment="15m").build()
    f = dip_forecast(6, T0)
    plan = {**status_plan(job, f, T0), **RunLedger(served=30 * M, suspended_at=T0 + 30 * M, runs=1).to_fields()}

    def passes(run: RunState, user_suspended: bool, start: datetime) -> list[dict[str, Any] | None]:
        previous: dict[str, Any] | None = plan
        out = []
        for i in range(6):
            gate = gate_interruptible(previous, job, run, f, SOURCE, start + i * 30 * timedelta(seconds=1),
                                      user_suspended=user_suspended)
            previous = gate.plan
            out.append(previous)
        return out

    # Suspended by the user inside a segment (the plan says run): the plan in force stands.
    suspended = passes(RunState(True, True), True, T0 + 40 * M)
    assert all(p == suspended[0] for p in suspended), "spec.suspend: no re-plan, no status write per resync"
    assert suspended[0] is not None
    assert suspended[0]["segments"] == plan["segments"]
    # Resumed, its gang still Pending (no GPUs yet): not running, nothing served, nothing re-planned.
    pending = passes(RunState(True, False, ready=False), False, T0 + 40 * M)
    assert all(p == pending[0] for p in pending)
    assert pending[0] is not None
    assert pending[0]["servedSeconds"] == 1800


def test_a_job_runs_in_no_more_segments_than_max_segments_through_hourly_replans() -> None:
    """Seeded cases of the loop above with maxSegments 2 and noisy hourly forecasts (about a fifth of such cases ran
    in more than 2 segments when each re-plan was allowed maxSegments again)."""
    rng = Random(1)
    for _ in range(100):
        duration = rng.randint(2, 72) * TICK
        job = CarbonJob(duration=duration, earliest_start=T0, deadline=T0 + duration + rng.randint(0, 36) * 10 * M,
                        interruptible=True, min_segment=rng.choice([timedelta(0), 15 * M]), max_segments=2)
        truth = make_forecast([float(rng.randint(20, 800)) for _ in range(30)])
        runs = operate(job, truth, rng.randint(0, 9999), rng.choice([0.1, 0.3]))
        assert len(runs) <= 2, runs
        assert sum((b - a for a, b in runs), timedelta(0)) == job.duration
