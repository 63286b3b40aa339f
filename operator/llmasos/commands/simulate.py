"""`llmasos simulate`: backtest a job stream over a shipped intensity trace with the operator's planning loop.

Every job of the CSV is replayed by `llmasos.planning.timing.backtest.planner`, the loop `bench/carbon_shift.py`
measures with: a forecast is issued every hour (the trace's future with a seeded error growing with lead time), the job
is re-planned on each one until it starts, and a started interruptible job has the run time it still owes re-planned on
every newer forecast, as the operator's `planning/timing/segment_gate.py` does. Jobs dated outside the trace are moved
onto it by whole 52-week years (same weekday and hour) and every output is moved back: the user sees their own dates.
The chart is drawn by the report's SVG module (`llmasos.report.svg`)."""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape
from pathlib import Path
from typing import Any

from llmasos.api.durations import parse_duration
from llmasos.api.units import moment_text
from llmasos.carbon.trace import TraceSource, shipped_trace_files
from llmasos.commands import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, InputError, OutputError, write_text
from llmasos.commands.progress import Progress
from llmasos.errors import CarbonSourceError, LLMasOSError
from llmasos.planning.timing import backtest
from llmasos.planning.timing.carbon_window import Segment
from llmasos.planning.timing.forecast import Forecast, format_instant, parse_instant
from llmasos.planning.timing.forecast_error import ForecastErrorModel
from llmasos.report.html import CSP, CSS
from llmasos.report.svg import Lane, timeline

DESCRIPTION = """\
Replay a stream of jobs over a real grid-intensity trace and see what carbon-aware timing would have saved: each
job is planned the way the operator plans it, on hourly forecasts with a realistic error, and compared with running
it at submission and with a perfect-knowledge optimum. Writes a chart (SVG) and a page (HTML) into --out.

Jobs CSV, one job per row (a header line first):
  id,submitted_at,duration,deadline,interruptible
  train-1,2026-03-02T08:00:00Z,6h,2026-03-03T08:00:00Z,false
Instead of a deadline column, a slack column gives the time allowed beyond the duration (e.g. 12h). Durations are
Go-style (90m, 6h) or seconds; interruptible is true/false (also yes/no, 1/0; empty means false).
Jobs dated outside the trace (2020-2021 data) are moved onto it by whole 52-week years, keeping weekday and hour,
and every output shows your own dates.

exit codes: 0 done; 1 a file could not be written; 2 bad flags or bad input.
"""

TRUE_WORDS, FALSE_WORDS = ("true", "yes", "1"), ("false", "no", "0", "")


def forecast_error(text: str) -> float:
    """--forecast-error: a fraction (0.1) or a percentage with its sign (10%); a bare number above 1 is refused."""
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (use a fraction like 0.1, or 10%)") from None
    if not raw.endswith("%") and value > 1:
        raise argparse.ArgumentTypeError(
            f"{text} would mean {value:.0%}: give a fraction (0.1 is 10%) or a percentage with its sign ({text}%)")
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text} must be between 0 and 1 (0% and 100%)")
    return value


def register(subparsers: Any) -> None:
    """Add `simulate` to the `llmasos` command (an argparse subparsers action)."""
    sim = subparsers.add_parser(
        "simulate", help="replay a job stream over a real grid-intensity trace and chart the savings",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    sim.add_argument("--zone", required=True,
                     help=f"the grid zone whose trace to replay: {', '.join(sorted(shipped_trace_files()))}")
    sim.add_argument("--jobs", type=Path, required=True, metavar="CSV", help="the job stream (see above)")
    sim.add_argument("--out", type=Path, metavar="DIR", default=Path("llmasos-simulate"),
                     help="output directory, created if missing; gets simulate.svg and simulate.html "
                     "(default: %(default)s)")
    sim.add_argument("--horizon", default="24h", help="how far each forecast looks ahead (default 24h)")
    sim.add_argument("--forecast-error", type=forecast_error, default=0.10, metavar="FRACTION",
                     help="forecast error at 24 h ahead, as a fraction (0.1) or a percentage (10%%); default 0.1")
    sim.add_argument("--seed", type=int, default=0, help="seed of the forecast error (same seed, same result)")
    sim.add_argument(
        "--follow-plan",
        action="store_true",
        help="started interruptible jobs keep the segments of the plan they started with (how the operator used to "
        "behave); default: the run time still owed is re-planned on every newer forecast, as the operator does",
    )
    sim.set_defaults(func=run_simulate)


@dataclass(frozen=True)
class SimulatedJob:
    """One job's row on the chart and in the table: where the planner ran it and where running at submission would."""

    id: str
    planned: tuple[Segment, ...]
    run_now: tuple[Segment, ...]
    savings_percent: float


@dataclass(frozen=True)
class Simulation:
    """What the outputs show: the true intensity around the jobs, every job's windows, and the summary lines."""

    title: str
    series: Forecast
    jobs: tuple[SimulatedJob, ...]
    notes: tuple[str, ...] = ()


def read_jobs_csv(path: Path) -> list[dict[str, str]]:
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {path}: {exc.strerror if isinstance(exc, OSError) else exc}") from None
    if not rows:
        raise InputError(f"{path} has no jobs")
    return rows


def _interruptible(text: str) -> bool:
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError(f"interruptible must be true or false (or yes/no, 1/0), got {text!r}")


def user_jobs(rows: list[dict[str, str]]) -> list[backtest.BacktestJob]:
    """CSV rows to jobs on the user's own dates; InputError naming the line on any bad value."""
    jobs = []
    first_line: dict[str, int] = {}  # id -> the line that used it first: results are keyed by id
    for lineno, row in enumerate(rows, start=2):
        try:
            submitted = parse_instant(row.get("submitted_at") or "", "submitted_at")
            duration = _duration_field(row.get("duration") or "")
            if duration <= timedelta(0):
                raise ValueError(f"duration must be longer than 0, got {row.get('duration')!r}")
            if row.get("deadline"):
                deadline = parse_instant(row["deadline"], "deadline")
            elif row.get("slack"):
                deadline = submitted + duration + _duration_field(row["slack"])
            else:
                raise ValueError("needs a deadline or a slack column")
            if deadline <= submitted:
                raise ValueError(f"deadline {format_instant(deadline)} is not after submitted_at "
                                 f"{format_instant(submitted)}")
            if deadline < submitted + duration:
                raise ValueError(f"cannot finish by its deadline {format_instant(deadline)} even if it starts at "
                                 f"submission ({format_instant(submitted)} + {row.get('duration')})")
            interruptible = _interruptible(row.get("interruptible") or "")
        except ValueError as exc:
            raise InputError(f"jobs line {lineno}: {exc}") from None
        job_id = row.get("id") or f"job-{lineno - 1}"
        if job_id in first_line:
            raise InputError(f"jobs line {lineno}: id {job_id!r} is already used on line {first_line[job_id]} "
                             "(each job needs its own id)")
        first_line[job_id] = lineno
        jobs.append(backtest.BacktestJob(job_id, submitted, duration, deadline, interruptible))
    return jobs


def stream_offset(jobs: list[backtest.BacktestJob], source: TraceSource, zone: str) -> timedelta:
    """trace time - the user's time for the whole stream: zero if it lies inside the trace, else whole 52-week
    years from the first submission (one offset for every job, so the chart has one time axis)."""
    trace = source.series(zone)
    first, last = min(j.submitted_at for j in jobs), max(j.deadline for j in jobs)
    if trace.start is not None and trace.end is not None and trace.start <= first and last + timedelta(days=1) <= \
            trace.end:
        return timedelta(0)
    return source.offset_for(zone, first)


def simulation_jobs(rows: list[dict[str, str]], source: TraceSource, zone: str) -> list[backtest.BacktestJob]:
    """CSV rows to jobs on the trace's clock (a stream outside the trace is moved by whole 52-week years)."""
    jobs = user_jobs(rows)
    try:
        offset = stream_offset(jobs, source, zone)
    except CarbonSourceError as exc:
        raise InputError(str(exc)) from None
    return [backtest.BacktestJob(j.id, j.submitted_at + offset, j.duration, j.deadline + offset, j.interruptible)
            for j in jobs]


def _duration_field(text: str) -> timedelta:
    text = text.strip()
    return timedelta(seconds=float(text)) if text.replace(".", "", 1).isdigit() else parse_duration(text)


def replay_jobs(
    jobs: list[backtest.BacktestJob],
    truth: Forecast,
    forecast_at: backtest.ForecastAt,
    *,
    follow_plan: bool = False,
    on_job: Callable[[], None] = lambda: None,
) -> tuple[list[backtest.Outcome], list[SimulatedJob]]:
    """run_now, planner and optimum outcomes of every job (judged on `truth`), and the chart's row per job.

    `forecast_at(t)` is the forecast the operator would see at `t`; no I/O, so tests can inject a scenario.
    `on_job()` is called after each job (the progress bar).
    """
    outcomes: list[backtest.Outcome] = []
    chart_jobs: list[SimulatedJob] = []
    for job in jobs:
        now_o = backtest.run_now(job, truth)
        plan_o = backtest.planner(job, truth, forecast_at, replan_after_start=not follow_plan)
        outcomes += [now_o, plan_o, backtest.optimum(job, truth)]
        saved = 100.0 * (now_o.intensity - plan_o.intensity) / now_o.intensity if now_o.intensity else 0.0
        chart_jobs.append(SimulatedJob(job.id, plan_o.segments, now_o.segments, saved))
        on_job()
    return outcomes, chart_jobs


def run_simulate(args: argparse.Namespace) -> int:
    """Entry point of `llmasos simulate`; returns the exit code."""
    try:
        return _simulate(args)
    except (InputError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (OutputError, LLMasOSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILURE


def _simulate(args: argparse.Namespace) -> int:
    horizon = parse_duration(args.horizon)
    if horizon <= timedelta(0):
        raise InputError(f"--horizon must be longer than 0, got {args.horizon!r} (e.g. 24h, 72h)")
    source = TraceSource(
        horizon=horizon,
        error_model=ForecastErrorModel(args.forecast_error, seed=args.seed),
    )
    try:
        truth = source.series(args.zone)
    except CarbonSourceError:
        raise InputError(f"no trace for zone {args.zone!r}: choose one of "
                         f"{', '.join(sorted(shipped_trace_files()))}") from None
    pinned = TraceSource(
        {args.zone: truth}, offset=timedelta(0), horizon=source.horizon, error_model=source.error_model
    )
    mine = user_jobs(read_jobs_csv(args.jobs))
    offset = stream_offset(mine, source, args.zone)
    jobs = [backtest.BacktestJob(j.id, j.submitted_at + offset, j.duration, j.deadline + offset, j.interruptible)
            for j in mine]
    for job in jobs:
        if truth.start is None or truth.end is None or job.deadline + timedelta(days=1) > truth.end:
            first = format_instant(min(j.submitted_at for j in mine))
            raise InputError(f"job {job.id} runs past the end of the {args.zone} trace: a stream from {first} can "
                             "span at most about a year")

    def forecast_at(t: datetime) -> Forecast:
        return pinned.forecast_at(args.zone, t)

    with Progress("simulate", total=len(jobs)) as bar:  # stderr, on a terminal only
        outcomes, chart_jobs = replay_jobs(jobs, truth, forecast_at, follow_plan=args.follow_plan,
                                           on_job=bar.advance)
    summary = backtest.summarize(outcomes)
    start = min(j.submitted_at for j in jobs) - timedelta(hours=6)
    end = max(j.deadline for j in jobs) + timedelta(hours=6)
    after_start = (
        "started interruptible jobs follow their first plan (--follow-plan)"
        if args.follow_plan
        else "started interruptible jobs re-planned on every newer forecast"
    )
    notes = [
        f"{summary.jobs} jobs; savings vs running at submission: planner {summary.savings_percent['planner']:.1f}%, "
        f"perfect-knowledge optimum {summary.savings_percent['optimum']:.1f}% "
        f"(planner captures {summary.capture_percent:.0f}%)",
        f"forecast horizon {args.horizon}, error {args.forecast_error:.0%} at 24 h, seed {args.seed}; "
        f"{after_start}; missed deadlines: {summary.missed_deadlines.get('planner', 0)}",
    ]
    if offset:
        notes.append(f"grid intensity: the {args.zone} trace of {format_instant(start)[:10]} .. "
                     f"{format_instant(end)[:10]} (historical data), shown on your dates "
                     f"({-offset.days // 7} weeks later, same weekday and hour)")
    data = Simulation(
        f"{args.zone}: planner saves {summary.savings_percent['planner']:.1f}%",
        truth.between(start, end).shifted(-offset),
        tuple(_moved(j, -offset) for j in chart_jobs),
        tuple(notes),
    )
    svg, page = args.out / "simulate.svg", args.out / "simulate.html"
    write_text(svg, render_svg(data))
    write_text(page, render_html(data))
    for line in notes:
        print(line)
    print(f"wrote {svg} and {page}")
    return EXIT_OK


def _moved(job: SimulatedJob, delta: timedelta) -> SimulatedJob:
    def move(segments: tuple[Segment, ...]) -> tuple[Segment, ...]:
        return tuple(Segment(s.start + delta, s.end + delta) for s in segments)

    return SimulatedJob(job.id, move(job.planned), move(job.run_now), job.savings_percent)


def render_svg(data: Simulation) -> str:
    """The chart: true intensity (a step line), the planned windows shaded over it, and one lane per job with its
    run-now and planned segments."""
    step = data.series.step
    pieces = [(p.start, p.start + step, p.intensity) for p in data.series.points]
    lanes = [Lane(j.id, (_spans(j.planned), _spans(j.run_now))) for j in data.jobs]
    return timeline(data.title, "gCO2e/kWh", ("grid intensity", pieces), ("planned", "run now"), lanes, shade=0)


def render_html(data: Simulation) -> str:
    """A self-contained page (the report's CSS and Content-Security-Policy): the chart, the notes, a row per job."""
    rows = "".join(
        f"<tr><td>{escape(j.id)}</td><td>{escape(', '.join(_span(s) for s in j.planned))}</td>"
        f"<td>{escape(', '.join(_span(s) for s in j.run_now))}</td><td>{j.savings_percent:.1f}%</td></tr>"
        for j in data.jobs
    )
    notes = "".join(f"<li>{escape(n)}</li>" for n in data.notes)
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}"><title>{escape(data.title)}</title>'
        f"<style>{CSS}</style></head><body><h1>{escape(data.title)}</h1><figure>{render_svg(data)}</figure>"
        f'<p class="meta">Blue: grid intensity. Green: windows the planner chose (shaded over the intensity, and '
        f"in each job's lane). Red: running at submission.</p><ul>{notes}</ul>"
        f"<table><tr><th>job</th><th>planned</th><th>run now</th><th>saved</th></tr>{rows}</table></body></html>\n"
    )


def _spans(segments: tuple[Segment, ...]) -> tuple[tuple[datetime, datetime], ...]:
    return tuple((s.start, s.end) for s in segments)


def _span(seg: Segment) -> str:
    """The report's one time format for people (`api.units.moment_text`), as the chart's tooltips use it."""
    return f"{moment_text(seg.start)} .. {moment_text(seg.end)}"
