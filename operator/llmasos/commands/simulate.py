"""`llmasos simulate`: backtest a job stream over a shipped intensity trace with the operator's planning loop.

Every job of the CSV is replayed by `llmasos.planning.timing.backtest.planner`, the loop `bench/carbon_shift.py`
measures with: a forecast is issued every hour (the trace's future with a seeded error growing with lead time), the job
is re-planned on each one until it starts, and a started interruptible job has the run time it still owes re-planned on
every newer forecast, as the operator's `planning/timing/segment_gate.py` does (a started non-interruptible job runs to
the end). `--follow-plan` replays the operator's former behaviour instead (a started interruptible job follows the
segments of the plan it started with), to show what re-planning is worth. It prints the savings against running every
job at submission and the perfect-knowledge optimum's, and writes the chart as an SVG file and an HTML page (the same
SVG inline, the notes and a table of jobs), drawn by the report's SVG module (`llmasos.report.svg`)."""

from __future__ import annotations

import argparse
import csv
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape
from pathlib import Path
from typing import Any

from llmasos.api.durations import parse_duration
from llmasos.carbon.trace import TraceSource
from llmasos.commands import InputError
from llmasos.errors import CarbonSourceError, LLMasOSError
from llmasos.planning.timing import backtest
from llmasos.planning.timing.carbon_window import Segment
from llmasos.planning.timing.forecast import Forecast, format_instant, parse_instant
from llmasos.planning.timing.forecast_error import ForecastErrorModel
from llmasos.report.html import CSP, CSS
from llmasos.report.svg import Lane, timeline


def register(subparsers: Any) -> None:
    """Add `simulate` to the `llmasos` command (an argparse subparsers action)."""
    sim = subparsers.add_parser(
        "simulate", help="backtest a job stream over a shipped intensity trace", description=__doc__
    )
    sim.add_argument("--zone", required=True, help="a shipped trace zone: DE, SE, US-CAL-CISO, ...")
    sim.add_argument(
        "--jobs",
        type=Path,
        required=True,
        help="CSV: id,submitted_at,duration,deadline|slack,interruptible (durations like 2h)",
    )
    sim.add_argument("--out", type=Path, help="output prefix (default: simulate-ZONE) for .svg and .html")
    sim.add_argument("--horizon", default="24h", help="forecast horizon (default 24h)")
    sim.add_argument("--forecast-error", type=float, default=0.10, help="relative error at 24 h (default 0.10)")
    sim.add_argument("--seed", type=int, default=0)
    sim.add_argument(
        "--follow-plan",
        action="store_true",
        help="started interruptible jobs follow the segments of the plan they started with (the operator's former "
        "behaviour); default: the run time still owed is re-planned on every newer forecast, as the operator does",
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
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc}") from None
    if not rows:
        raise InputError(f"{path} has no jobs")
    return rows


def simulation_jobs(rows: list[dict[str, str]], source: TraceSource, zone: str) -> list[backtest.BacktestJob]:
    """CSV rows to jobs on the trace's clock (times outside the trace are mapped by whole 52-week years)."""
    jobs = []
    for lineno, row in enumerate(rows, start=2):
        try:
            submitted = parse_instant(row.get("submitted_at") or "", "submitted_at")
            duration = _duration_field(row.get("duration") or "")
            if row.get("deadline"):
                deadline = parse_instant(row["deadline"], "deadline")
            elif row.get("slack"):
                deadline = submitted + duration + _duration_field(row["slack"])
            else:
                raise ValueError("needs a deadline or a slack column")
            interruptible = (row.get("interruptible") or "false").strip().lower() in ("1", "true", "yes")
            trace = source.series(zone)
            inside = trace.start is not None and trace.end is not None and trace.start <= submitted
            offset = (
                timedelta(0)
                if inside and deadline + timedelta(days=1) <= (trace.end or deadline)
                else (source.offset_for(zone, submitted))
            )
        except (ValueError, CarbonSourceError) as exc:
            raise InputError(f"jobs line {lineno}: {exc}") from None
        job_id = row.get("id") or f"job-{lineno - 1}"
        jobs.append(backtest.BacktestJob(job_id, submitted + offset, duration, deadline + offset, interruptible))
    return jobs


def _duration_field(text: str) -> timedelta:
    text = text.strip()
    return timedelta(seconds=float(text)) if text.replace(".", "", 1).isdigit() else parse_duration(text)


def replay_jobs(
    jobs: list[backtest.BacktestJob],
    truth: Forecast,
    forecast_at: backtest.ForecastAt,
    *,
    follow_plan: bool = False,
) -> tuple[list[backtest.Outcome], list[SimulatedJob]]:
    """run_now, planner and optimum outcomes of every job (judged on `truth`), and the chart's row per job.

    `forecast_at(t)` is the forecast the operator would see at `t`; no I/O, so tests can inject a scenario.
    """
    outcomes: list[backtest.Outcome] = []
    chart_jobs: list[SimulatedJob] = []
    for job in jobs:
        now_o = backtest.run_now(job, truth)
        plan_o = backtest.planner(job, truth, forecast_at, replan_after_start=not follow_plan)
        outcomes += [now_o, plan_o, backtest.optimum(job, truth)]
        saved = 100.0 * (now_o.intensity - plan_o.intensity) / now_o.intensity if now_o.intensity else 0.0
        chart_jobs.append(SimulatedJob(job.id, plan_o.segments, now_o.segments, saved))
    return outcomes, chart_jobs


def run_simulate(args: argparse.Namespace) -> int:
    """Entry point of `llmasos simulate`; returns the exit code."""
    try:
        return _simulate(args)
    except (InputError, LLMasOSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _simulate(args: argparse.Namespace) -> int:
    source = TraceSource(
        horizon=parse_duration(args.horizon),
        error_model=ForecastErrorModel(args.forecast_error, seed=args.seed),
    )
    try:
        truth = source.series(args.zone)
    except CarbonSourceError as exc:
        raise InputError(str(exc)) from None
    pinned = TraceSource(
        {args.zone: truth}, offset=timedelta(0), horizon=source.horizon, error_model=source.error_model
    )
    jobs = simulation_jobs(read_jobs_csv(args.jobs), source, args.zone)
    for job in jobs:
        if truth.end is None or job.deadline + timedelta(days=1) > truth.end:
            raise InputError(f"job {job.id} runs past the end of the {args.zone} trace")

    def forecast_at(t: datetime) -> Forecast:
        return pinned.forecast_at(args.zone, t)

    outcomes, chart_jobs = replay_jobs(jobs, truth, forecast_at, follow_plan=args.follow_plan)
    summary = backtest.summarize(outcomes)
    start = min(j.submitted_at for j in jobs) - timedelta(hours=6)
    end = max(j.deadline for j in jobs) + timedelta(hours=6)
    after_start = (
        "started interruptible jobs follow their first plan (--follow-plan)"
        if args.follow_plan
        else "started interruptible jobs re-planned on every newer forecast"
    )
    notes = (
        f"{summary.jobs} jobs; savings vs running at submission: planner {summary.savings_percent['planner']:.1f}%, "
        f"perfect-knowledge optimum {summary.savings_percent['optimum']:.1f}% "
        f"(planner captures {summary.capture_percent:.0f}%)",
        f"forecast horizon {args.horizon}, error {args.forecast_error:.0%} at 24 h, seed {args.seed}; "
        f"{after_start}; missed deadlines: {summary.missed_deadlines.get('planner', 0)}",
    )
    data = Simulation(
        f"{args.zone}: planner saves {summary.savings_percent['planner']:.1f}%",
        truth.between(start, end),
        tuple(chart_jobs),
        notes,
    )
    prefix = args.out or Path(f"simulate-{args.zone}")
    svg, page = prefix.with_name(prefix.name + ".svg"), prefix.with_name(prefix.name + ".html")
    svg.write_text(render_svg(data), "utf-8")
    page.write_text(render_html(data), "utf-8")
    for line in notes:
        print(line)
    print(f"wrote {svg} and {page}")
    return 0


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
    return f"{format_instant(seg.start)} .. {format_instant(seg.end)}"
