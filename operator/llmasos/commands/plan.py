"""`llmasos plan`: the operator's planner, run by hand on the same code paths, and its JSON Lines batch mode.

`plan -f` lives in `plan_file.py`; the batch contract under capacity in `plan_capacity.py`; `simulate` registers
itself from here so that `llmasos` adds every planning command in one call.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from llmasos.commands import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, InputError, OutputError, simulate
from llmasos.commands.plan_capacity import fleet_fields, load_capacity, plan_with_capacity
from llmasos.commands.plan_file import FORMATS, LOCAL_POOLS, run_file
from llmasos.errors import LLMasOSError, SpecError
from llmasos.planning.timing.carbon_window import CarbonJob, plan_start
from llmasos.planning.timing.fleet_types import FleetJob
from llmasos.planning.timing.forecast import Forecast, parse_instant

DESCRIPTION = """\
Preview when (and on which node pool) an LLMJob would run: the operator's own planner, on the same carbon data,
without a cluster. Nothing is created.

Carbon data: Electricity Maps when ELECTRICITYMAPS_TOKEN is set; else the hourly traces shipped in the package
(historical 2020-2021 grid data replayed on today's dates, for DE, SE, US-CAL-CISO, US-MIDA-PJM, US-NE-ISNE,
US-TEX-ERCO); else an annual average for the zone. Choose one with --source.

The carbon zone comes from spec.carbon.zone, or --zone, or the node pools of --pools (each pool has a carbonZone;
the LLMJob's spec.placement.nodePools picks among them).

The plan shows the deadline, the run time reserved (expectedDuration, rescaled to the chosen pool's GPU, or an
assumed default, said in words), when it would start, and the expected energy and emissions against running now.
A deadline that has already passed is an error (exit 2).
"""

EPILOG = f"""\
examples:
  llmasos plan -f examples/02-deadline-deferred.yaml --pools {LOCAL_POOLS}
  llmasos plan -f job.yaml --zone DE -o yaml
  kubectl get llmjob night-run -n ml -o yaml | llmasos plan -f - --zone SE -o json

batch mode (for tooling): one JSON object per line in IN.jsonl, one plan per line in OUT.jsonl:
  llmasos plan --batch IN.jsonl --output OUT.jsonl [--capacity CAP.json]
  input line:  {{"id": "job-1", "zone": "DE", "submitted_at": "2026-03-06T00:00:00Z", "duration_seconds": 7200,
                "deadline": "2026-03-06T06:00:00Z", "interruptible": false,
                "forecast": [{{"datetime": "2026-03-06T00:00:00Z", "carbonIntensity": 300}},
                             {{"datetime": "2026-03-06T01:00:00Z", "carbonIntensity": 120}}]}}
               (written on one line in the file)
  output line: {{"id": "job-1", "segments": [{{"start": "2026-03-06T02:00:00Z", "end": "2026-03-06T04:00:00Z"}}]}}
  Forecast points mark the start of each step; times are ISO-8601 UTC; one segment unless interruptible.
  With --capacity, lines may also carry "gpus" and "pool", and no pool is ever over-subscribed:
  CAP.json:    {{"pools": {{"a100": {{"gpus": 16, "reserved": [{{"start": "2026-03-06T00:00:00Z",
                "end": "2026-03-06T02:00:00Z", "gpus": 8}}]}}}}}}
  A bad line is reported by its number and nothing is written.

exit codes: 0 planned; 1 a failure while planning (a file could not be written); 2 bad flags or bad input.
"""


def register(subparsers: Any) -> None:
    """Add `plan` and `simulate` to the `llmasos` command (an argparse subparsers action)."""
    plan = subparsers.add_parser(
        "plan", help="preview when (and where) an LLMJob would run", description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    what = plan.add_mutually_exclusive_group(required=True)
    what.add_argument("-f", "--file", type=Path, metavar="FILE",
                      help="LLMJob manifest (YAML or JSON; `-` reads stdin); every LLMJob in it is planned")
    what.add_argument("--batch", type=Path, metavar="IN.jsonl", help="plan many jobs, each with its own forecast")
    plan.add_argument(
        "-o", "--output", metavar="FORMAT",
        help=f"with -f: output format, one of {', '.join(FORMATS)} (default table; wide adds every pool considered). "
        "With --batch: the JSON Lines file to write (default: stdout)")
    plan.add_argument("--output-file", type=Path, metavar="FILE",
                      help="with -f: write the output to FILE instead of stdout")
    plan.add_argument("--capacity", type=Path, metavar="CAP.json",
                      help="with --batch: the pools' GPUs and reservations; plans never over-subscribe a pool")
    plan.add_argument("--source", choices=("auto", "electricitymaps", "trace", "static"), default="auto",
                      help="carbon data to plan with (default auto: Electricity Maps with a token, else trace, "
                      "else static)")
    plan.add_argument("--zone", help="carbon zone, an Electricity Maps zone key such as DE (overrides "
                      "spec.carbon.zone and the pools' zones)")
    plan.add_argument("--pools", type=Path, metavar="FILE",
                      help=f"node pools to choose from, shaped like {LOCAL_POOLS} (pools: [{{name, gpuProduct, "
                      "count, gpusPerNode, carbonZone}])")
    plan.add_argument("--now", metavar="TIME", help="plan as if it were this time (RFC 3339); default: now")
    plan.set_defaults(func=run_plan)
    simulate.register(subparsers)


# -- plan --batch -------------------------------------------------------------------------------------------------
def parse_batch_line(text: str) -> tuple[str, CarbonJob, Forecast]:
    """One input line to (id, job, forecast); raises InputError with a readable reason."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON: {exc.msg} (column {exc.colno})") from None
    if not isinstance(raw, dict):
        raise InputError("expected a JSON object")
    missing = [k for k in ("id", "zone", "submitted_at", "duration_seconds", "deadline", "forecast") if k not in raw]
    if missing:
        raise InputError(f"missing field(s): {', '.join(missing)}")
    job_id, zone = raw["id"], raw["zone"]
    if not isinstance(job_id, str | int) or isinstance(job_id, bool) or str(job_id) == "":
        raise InputError("id must be a non-empty string")
    if not isinstance(zone, str):
        raise InputError("zone must be a string")
    seconds = raw["duration_seconds"]
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0 < seconds < 366 * 86400:
        raise InputError(f"duration_seconds must be a positive number, got {seconds!r}")
    interruptible = raw.get("interruptible", False)
    if not isinstance(interruptible, bool):
        raise InputError(f"interruptible must be true or false, got {interruptible!r}")
    try:
        submitted = parse_instant(raw["submitted_at"], "submitted_at")
        deadline = parse_instant(raw["deadline"], "deadline")
        forecast = _batch_forecast(raw["forecast"], zone)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    job = CarbonJob(
        duration=timedelta(seconds=seconds),
        earliest_start=submitted,
        deadline=deadline,
        interruptible=interruptible,
        policy="deadline",
    )
    return str(job_id), job, forecast


def _batch_forecast(rows: Any, zone: str) -> Forecast:
    if not isinstance(rows, list):
        raise ValueError("forecast must be a list of {datetime, carbonIntensity}")
    pairs: list[tuple[datetime, float]] = []
    for n, row in enumerate(rows):
        if not isinstance(row, dict) or "datetime" not in row or "carbonIntensity" not in row:
            raise ValueError(f"forecast[{n}] must be an object with datetime and carbonIntensity")
        value = row["carbonIntensity"]
        if value is None:
            continue  # a missing value is a gap, not zero
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"forecast[{n}].carbonIntensity must be a number or null, got {value!r}")
        pairs.append((parse_instant(row["datetime"], f"forecast[{n}].datetime"), float(value)))
    return Forecast.from_pairs(pairs, zone=zone, source="batch") if pairs else Forecast((), zone=zone)


def plan_batch(lines: list[str]) -> tuple[list[str], list[str], list[str]]:
    """(output lines, errors, warnings) for the input lines; line numbers are 1-based."""
    out: list[str] = []
    errors: list[str] = []
    warnings: list[str] = []
    for lineno, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            job_id, job, forecast = parse_batch_line(text)
            plan = plan_start(job, forecast, job.earliest_start)
        except (InputError, ValueError) as exc:
            errors.append(f"line {lineno}: {exc}")
            continue
        if not plan.feasible:
            warnings.append(f"line {lineno} ({job_id}): cannot finish by the deadline; planned to start at once")
        elif not forecast.points:
            warnings.append(f"line {lineno} ({job_id}): no forecast values; planned to start at once")
        out.append(json.dumps({"id": job_id, "segments": [s.to_dict() for s in plan.segments]}))
    return out, errors, warnings


def plan_batch_with_capacity(lines: list[str], capacity: Path) -> tuple[list[str], list[str], list[str]]:
    """`plan_batch` under capacity: lines may carry "gpus" and "pool" (`plan_capacity.py` has the contract)."""
    pools, reservations = load_capacity(capacity)
    parsed: list[tuple[int, str, FleetJob]] = []
    errors: list[str] = []
    for lineno, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            job_id, job, forecast = parse_batch_line(text)
            gpus, pool = fleet_fields(text, forecast.zone)
            fleet_job = FleetJob(
                str(lineno),
                gpus,
                (pool,),
                job.duration,
                job.earliest_start,
                job.deadline or job.earliest_start,
                interruptible=job.interruptible,
                min_segment=job.min_segment,
                forecast=forecast,
            )
        except (InputError, ValueError) as exc:
            errors.append(f"line {lineno}: {exc}")
            continue
        parsed.append((lineno, job_id, fleet_job))
    if errors:
        return [], errors, []
    return plan_with_capacity(parsed, pools, reservations, capacity)


def _run_batch(args: argparse.Namespace) -> int:
    try:
        lines = args.batch.read_text("utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {args.batch}: {exc}") from None
    if args.capacity is not None:
        out, errors, warnings = plan_batch_with_capacity(lines, args.capacity)
    else:
        out, errors, warnings = plan_batch(lines)
    for w in warnings:
        print(f"warning: {args.batch}: {w}", file=sys.stderr)
    if errors:
        for e in errors[:20]:
            print(f"error: {args.batch}: {e}", file=sys.stderr)
        if len(errors) > 20:
            print(f"error: ... and {len(errors) - 20} more bad lines", file=sys.stderr)
        print("error: nothing written", file=sys.stderr)
        return EXIT_USAGE
    text = "".join(f"{line}\n" for line in out)
    if args.output is None or str(args.output) == "-":
        sys.stdout.write(text)
    else:
        target = Path(args.output)
        tmp = target.with_name(target.name + ".tmp")
        try:
            tmp.write_text(text, "utf-8")
            tmp.replace(target)
        except OSError as exc:
            raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from None
    return EXIT_OK


def run_plan(args: argparse.Namespace) -> int:
    """Entry point of `llmasos plan`; returns the exit code (errors are one line on stderr)."""
    try:
        if args.batch:
            if args.output_file is not None:
                raise InputError("--output-file is for -f; with --batch, --output OUT.jsonl names the file")
            if args.output in FORMATS:
                raise InputError(f"with --batch, --output names the JSON Lines file to write, and {args.output!r} "
                                 f"looks like a format: the batch output is always JSON Lines (to write a file of "
                                 f"that name, pass --output ./{args.output})")
            return _run_batch(args)
        if args.capacity is not None:
            raise InputError("--capacity is for --batch")
        return run_file(args)
    except (InputError, SpecError, ValueError) as exc:
        where = f" ({exc.field})" if isinstance(exc, SpecError) else ""
        print(f"error: {exc}{where}", file=sys.stderr)
        return EXIT_USAGE
    except (OutputError, LLMasOSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
