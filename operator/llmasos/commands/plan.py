"""`llmasos plan` and `llmasos simulate`: the operator's planner, run by hand, on the same code paths.

* `llmasos plan -f job.yaml [-o json]` plans an LLMJob manifest with the configured carbon source (Electricity Maps
  when ELECTRICITYMAPS_TOKEN is set, else the shipped traces, else static values) and prints the plan.
* `llmasos plan --batch IN.jsonl --output OUT.jsonl` plans many jobs, each with its own forecast, for tooling.
  Input line: {"id","zone","submitted_at","duration_seconds","deadline","interruptible","forecast":[{"datetime",
  "carbonIntensity"}]} (forecast points mark the start of each step); output line: {"id","segments":[{"start","end"}]},
  ISO-8601 UTC, one segment unless interruptible. Bad lines are reported by number and nothing is written.
  With `--capacity CAP.json` lines may also carry "gpus" and "pool", and no pool is ever over-subscribed
  (`plan_capacity.py` has the contract).
* `llmasos simulate --zone ZONE --jobs jobs.csv` backtests a job stream over a shipped trace and writes an SVG chart
  and an HTML page (`simulate.py`; registered here, with `plan`, so that `llmasos` registers both in one call).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from llmasos.api.spec import parse_spec
from llmasos.carbon.base import IntensitySource, utc_now
from llmasos.carbon.fallback import FallbackSource, default_chain
from llmasos.carbon.static import StaticSource
from llmasos.carbon.trace import TraceSource
from llmasos.commands import InputError, simulate
from llmasos.commands.plan_capacity import fleet_fields, load_capacity, plan_with_capacity
from llmasos.errors import CarbonSourceError, LLMasOSError, SpecError
from llmasos.planning.placement.pool_choice import PoolOption, choose_pool
from llmasos.planning.timing.carbon_spec import carbon_job
from llmasos.planning.timing.carbon_window import CarbonJob, Plan, plan_start
from llmasos.planning.timing.fleet_types import FleetJob
from llmasos.planning.timing.forecast import Forecast, format_instant, parse_instant

TOKEN_ENV = ("LLMASOS_ELECTRICITYMAPS_TOKEN", "ELECTRICITYMAPS_TOKEN")


def register(subparsers: Any) -> None:
    """Add `plan` and `simulate` to the `llmasos` command (an argparse subparsers action)."""
    plan = subparsers.add_parser("plan", help="preview when (and where) an LLMJob would run", description=__doc__)
    what = plan.add_mutually_exclusive_group(required=True)
    what.add_argument("-f", "--file", type=Path, help="LLMJob manifest (YAML)")
    what.add_argument("--batch", type=Path, help="JSON Lines of jobs with their forecasts")
    plan.add_argument("--output", type=Path, help="--batch: write JSON Lines here (default: stdout)")
    plan.add_argument(
        "--capacity",
        type=Path,
        help='--batch: pools\' GPUs and reservations ({"pools": {"<pool>": {"gpus": N, "reserved": [...]}}}); '
        "plans never over-subscribe a pool",
    )
    plan.add_argument("-o", dest="format", choices=("table", "json"), default="table", help="-f: output format")
    plan.add_argument("--source", choices=("auto", "electricitymaps", "trace", "static"), default="auto")
    plan.add_argument("--zone", help="carbon zone (overrides spec.carbon.zone)")
    plan.add_argument(
        "--pools",
        type=Path,
        help="node pools YAML (pools: [{name, gpuProduct, count, gpusPerNode, carbonZone}]) to choose a pool from",
    )
    plan.add_argument("--now", help="plan as if it were this time (RFC 3339); default: now")
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
        return 1
    text = "".join(f"{line}\n" for line in out)
    if args.output is None or str(args.output) == "-":
        sys.stdout.write(text)
    else:
        tmp = args.output.with_name(args.output.name + ".tmp")
        tmp.write_text(text, "utf-8")
        tmp.replace(args.output)
    return 0


# -- plan -f ------------------------------------------------------------------------------------------------------
def load_manifest(path: Path) -> dict[str, Any]:
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text("utf-8")) if d]
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"cannot read {path}: {exc}") from None
    jobs = [d for d in docs if isinstance(d, dict) and d.get("kind") == "LLMJob"]
    if not jobs:
        raise InputError(f"{path} holds no LLMJob")
    if not isinstance(jobs[0].get("spec"), dict):
        raise InputError(f"{path}: the LLMJob has no spec")
    return jobs[0]


def load_pools(path: Path, allowed: tuple[str, ...]) -> list[PoolOption]:
    try:
        raw = yaml.safe_load(path.read_text("utf-8")) or {}
        pools = [
            PoolOption(
                str(p["name"]),
                str(p["gpuProduct"]),
                int(p.get("count", 1)) * int(p.get("gpusPerNode", 1)),
                str(p["carbonZone"]),
            )
            for p in raw.get("pools", [])
        ]
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InputError(f"cannot read node pools from {path}: {exc!r}") from None
    return [p for p in pools if not allowed or p.name in allowed]


def _sources(kind: str, now: datetime) -> list[IntensitySource]:
    def clock() -> datetime:
        return now

    token = next((os.environ[k] for k in TOKEN_ENV if os.environ.get(k)), None)
    if kind == "electricitymaps" and not token:
        raise InputError(f"--source electricitymaps needs a token in {TOKEN_ENV[1]}")
    if kind == "trace":
        return [TraceSource(clock=clock)]
    if kind == "static":
        return [StaticSource(clock=clock)]
    chain = default_chain(token, clock=clock)
    return list(chain.sources[:1] if kind == "electricitymaps" else chain.sources)


async def _forecasts(kind: str, zones: list[str], now: datetime) -> dict[str, tuple[Forecast, str]]:
    sources = _sources(kind, now)
    chain = FallbackSource(sources)
    out: dict[str, tuple[Forecast, str]] = {}
    try:
        for zone in zones:
            try:
                answer = await chain.forecast(zone)
                out[zone] = (answer.value, answer.message)
            except CarbonSourceError as exc:
                out[zone] = (Forecast((), zone=zone), f"no carbon data ({exc}); planning to start at once")
    finally:
        await chain.aclose()
    return out


def _run_file(args: argparse.Namespace) -> int:
    manifest = load_manifest(args.file)
    spec = parse_spec(manifest["spec"])
    now = parse_instant(args.now, "--now") if args.now else utc_now()
    meta = manifest.get("metadata") or {}
    created = (
        parse_instant(str(meta["creationTimestamp"]), "creationTimestamp") if meta.get("creationTimestamp") else now
    )
    job = carbon_job(spec.carbon, created)
    gpus = spec.parallelism.nodes * spec.parallelism.gpus_per_node
    pools = load_pools(args.pools, spec.node_pools) if args.pools else []
    zone = args.zone or spec.carbon.zone
    if pools and not args.zone and not spec.carbon.zone:
        zones = sorted({p.zone for p in pools})
    elif zone:
        zones = [zone]
        pools = [PoolOption(p.name, p.gpu_product, p.free_gpus, zone) for p in pools]
    else:
        raise InputError("no carbon zone: set spec.carbon.zone, or pass --zone or --pools")
    forecasts = asyncio.run(_forecasts(args.source, zones, now))
    pool_name = ""
    if pools:
        choice = choose_pool(job, gpus, pools, {z: f for z, (f, _) in forecasts.items()}, now)
        plan, pool_name, zone = choice.plan, choice.pool.name, choice.pool.zone
    else:
        plan = plan_start(job, forecasts[zone][0], now)
    name = str(meta.get("name", args.file.stem))
    print_plan(name, plan, pool_name, zone, forecasts[zone][1], args.format)
    return 0


def print_plan(name: str, plan: Plan, pool: str, zone: str, source_note: str, fmt: str) -> None:
    data = plan.to_dict() | {"name": name, "pool": pool or None, "zone": zone, "sourceNote": source_note}
    if fmt == "json":
        print(json.dumps(data, indent=2))
        return
    savings = plan.expected_savings_percent
    rows = [
        ("LLMJob", name),
        ("Policy", plan.policy),
        ("Pool", pool or "-"),
        ("Zone", f"{zone} ({source_note})"),
        ("Start at", format_instant(plan.start_at)),
        ("Segments", ", ".join(f"{s['start']} .. {s['end']}" for s in data["segments"])),
        ("Latest start", format_instant(plan.latest_start)),
        (
            "Intensity",
            f"{data['expectedIntensity']} gCO2e/kWh expected, {data['runNowIntensity']} if run now"
            if plan.expected_intensity is not None
            else "unknown",
        ),
        ("Savings", f"{savings:.1f}%" if savings is not None else "-"),
        ("Forecast", f"issued {data['forecastIssuedAt'] or '-'} by {plan.source or '-'}"),
        ("Reason", plan.reason),
    ]
    for key, value in rows:
        print(f"{key:<13} {value}")


def run_plan(args: argparse.Namespace) -> int:
    """Entry point of `llmasos plan`; returns the exit code (errors are one line on stderr)."""
    try:
        return _run_batch(args) if args.batch else _run_file(args)
    except (InputError, LLMasOSError, ValueError) as exc:
        where = f" ({exc.field})" if isinstance(exc, SpecError) else ""
        print(f"error: {exc}{where}", file=sys.stderr)
        return 1
