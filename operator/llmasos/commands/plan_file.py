"""`llmasos plan -f FILE`: plan every LLMJob of a manifest as the operator would, and print the plans.

`-f -` reads the manifest from stdin; a multi-document manifest (a Namespace and two LLMJobs, say) plans each LLMJob
in turn. `-o` picks the format as kubectl does: `table` (default), `wide` (every pool considered), `json`, `yaml`;
`--output-file FILE` writes the same text to a file instead of stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from llmasos.api.clock import utc_now
from llmasos.api.spec import parse_manifest
from llmasos.carbon.base import IntensitySource
from llmasos.carbon.fallback import FallbackSource, default_chain
from llmasos.carbon.static import StaticSource
from llmasos.carbon.trace import TraceSource, shipped_trace_files
from llmasos.carbon.zones import check_zone
from llmasos.commands import InputError, write_text
from llmasos.errors import CarbonSourceError
from llmasos.planning.placement.pool_choice import PoolChoice, PoolOption, choose_pool
from llmasos.planning.timing.carbon_spec import carbon_job
from llmasos.planning.timing.carbon_window import Plan, plan_start
from llmasos.planning.timing.forecast import Forecast, format_instant, parse_instant

TOKEN_ENV = ("LLMASOS_ELECTRICITYMAPS_TOKEN", "ELECTRICITYMAPS_TOKEN")
FORMATS = ("table", "wide", "json", "yaml")
LOCAL_POOLS = "e2e/node-pools.yaml"


@dataclass(frozen=True)
class PlannedJob:
    """One LLMJob's plan, ready to print."""

    name: str
    plan: Plan
    pool: str
    zone: str
    source_note: str
    choice: PoolChoice | None = None

    def to_dict(self) -> dict[str, Any]:
        return self.plan.to_dict() | {
            "name": self.name, "pool": self.pool or None, "zone": self.zone, "sourceNote": self.source_note}


# -- input --------------------------------------------------------------------------------------------------------
def read_input(path: Path) -> tuple[str, str]:
    """(text, name to show) of a file, or of stdin for `-`."""
    if str(path) == "-":
        return sys.stdin.read(), "stdin"
    try:
        return path.read_text("utf-8"), str(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {path}: {exc.strerror if isinstance(exc, OSError) else exc}") from None


def load_manifests(path: Path) -> list[dict[str, Any]]:
    """Every LLMJob of a (multi-document) manifest, in order; other kinds (a Namespace, say) are skipped."""
    text, where = read_input(path)
    try:
        docs = [d for d in yaml.safe_load_all(text) if d]
    except yaml.YAMLError as exc:
        raise InputError(f"{where} is not valid YAML: {exc}".replace("\n", " ")) from None
    if docs and all(isinstance(d, dict) and d.get("kind") == "List" for d in docs):  # kubectl get -o yaml
        docs = [i for d in docs for i in d.get("items") or []]
    jobs = [d for d in docs if isinstance(d, dict) and d.get("kind") == "LLMJob"]
    if not jobs:
        kinds = sorted({str(d.get("kind")) for d in docs if isinstance(d, dict)})
        found = f" (found: {', '.join(kinds)})" if kinds else ""
        raise InputError(f"{where} holds no LLMJob{found}")
    for n, job in enumerate(jobs):
        if not isinstance(job.get("spec"), dict):
            name = (job.get("metadata") or {}).get("name") or f"#{n + 1}"
            raise InputError(f"{where}: LLMJob {name} has no spec")
    return jobs


def load_pools(path: Path, allowed: tuple[str, ...]) -> list[PoolOption]:
    """Node pools from a YAML file shaped like e2e/node-pools.yaml; a missing key is named, never a KeyError."""
    text, where = read_input(path)
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise InputError(f"{where} is not valid YAML: {exc}".replace("\n", " ")) from None
    items = raw.get("pools") if isinstance(raw, dict) else None
    if not isinstance(items, list) or not items:
        raise InputError(f"{where}: expected `pools:` with a list of pools (see {LOCAL_POOLS})")
    pools: list[PoolOption] = []
    for n, p in enumerate(items):
        at = f"{where}: pools[{n}]"
        if not isinstance(p, dict):
            raise InputError(f"{at} must be a mapping with name, gpuProduct and carbonZone")
        if p.get("name"):
            at += f" ({p['name']})"
        missing = [k for k in ("name", "gpuProduct", "carbonZone") if not p.get(k)]
        if missing:
            raise InputError(f"{at} has no {' or '.join(missing)}: every pool needs name, gpuProduct and "
                             f"carbonZone (an Electricity Maps zone key such as DE), as in {LOCAL_POOLS}")
        try:
            gpus = int(p.get("count", 1)) * int(p.get("gpusPerNode", 1))
        except (TypeError, ValueError):
            raise InputError(f"{at}: count and gpusPerNode must be whole numbers") from None
        pools.append(PoolOption(str(p["name"]), str(p["gpuProduct"]), gpus, str(p["carbonZone"])))
    chosen = [p for p in pools if not allowed or p.name in allowed]
    if not chosen:
        raise InputError(f"{where} has none of the pools the LLMJob allows (spec.placement.nodePools: "
                         f"{', '.join(allowed)}); it has {', '.join(p.name for p in pools)}")
    return chosen


def no_zone_message(name: str) -> str:
    return (f"LLMJob {name}: no carbon zone to plan for. Set spec.carbon.zone, pass --zone ZONE (an Electricity Maps "
            f"zone key; hourly traces ship for {', '.join(sorted(shipped_trace_files()))}, other zones get an annual "
            f"average), or pass --pools FILE to choose among node pools ({LOCAL_POOLS} describes the local "
            "cluster's)")


# -- planning -----------------------------------------------------------------------------------------------------
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
    chain = FallbackSource(_sources(kind, now))
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


def plan_manifest(manifest: dict[str, Any], args: argparse.Namespace, now: datetime) -> PlannedJob:
    """One LLMJob's plan, on the same code paths as the operator's."""
    meta = manifest.get("metadata") or {}
    name = str(meta.get("name") or (args.file.stem if str(args.file) != "-" else "llmjob"))
    spec = parse_manifest(manifest, now)
    created = (
        parse_instant(str(meta["creationTimestamp"]), "creationTimestamp") if meta.get("creationTimestamp") else now
    )
    job = carbon_job(spec.carbon, created)
    gpus = spec.parallelism.nodes * spec.parallelism.gpus_per_node
    pools = load_pools(args.pools, spec.node_pools) if args.pools else []
    zone = check_zone(args.zone or spec.carbon.zone)
    if pools and not zone:
        zones = sorted({p.zone for p in pools})
    elif zone:
        zones = [zone]
        pools = [PoolOption(p.name, p.gpu_product, p.free_gpus, zone) for p in pools]
    else:
        raise InputError(no_zone_message(name))
    forecasts = asyncio.run(_forecasts(args.source, zones, now))
    if pools:
        choice = choose_pool(job, gpus, pools, {z: f for z, (f, _) in forecasts.items()}, now)
        return PlannedJob(name, choice.plan, choice.pool.name, choice.pool.zone, forecasts[choice.pool.zone][1],
                          choice)
    return PlannedJob(name, plan_start(job, forecasts[zone][0], now), "", zone, forecasts[zone][1])


def run_file(args: argparse.Namespace) -> int:
    fmt = args.output or "table"
    if fmt not in FORMATS:
        raise InputError(f"-o/--output takes a format ({', '.join(FORMATS)}), not {fmt!r}; to write the plan to a "
                         "file use --output-file FILE (with --batch, --output is the JSON Lines file)")
    now = parse_instant(args.now, "--now") if args.now else utc_now()
    planned = [plan_manifest(m, args, now) for m in load_manifests(args.file)]
    text = render(planned, fmt)
    if args.output_file:
        write_text(args.output_file, text)
    else:
        sys.stdout.write(text)
    return 0


# -- output -------------------------------------------------------------------------------------------------------
def render(planned: list[PlannedJob], fmt: str) -> str:
    """The plans in `fmt`; one job is one object in json/yaml, several are a kubectl-style List."""
    if fmt in ("json", "yaml"):
        data: dict[str, Any] | list[Any] = (
            planned[0].to_dict() if len(planned) == 1
            else {"apiVersion": "v1", "kind": "List", "items": [p.to_dict() for p in planned]})
        if fmt == "json":
            return json.dumps(data, indent=2) + "\n"
        return yaml.safe_dump(data, sort_keys=False)
    return "\n".join(_table(p, wide=fmt == "wide") for p in planned)


def _table(job: PlannedJob, *, wide: bool) -> str:
    plan = job.plan
    data = job.to_dict()
    savings = plan.expected_savings_percent
    rows = [
        ("LLMJob", job.name),
        ("Policy", plan.policy),
        ("Pool", job.pool or "-"),
        ("Zone", f"{job.zone} ({job.source_note})"),
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
        ("Forecast", f"{data['dataNote']} (trace, {data['forecastIssuedAt'] or '-'})" if data.get("dataNote")
         else f"issued {data['forecastIssuedAt'] or '-'} by {plan.source or '-'}"),
        *((("Duration", str(data["durationNote"])),) if data.get("durationNote") else ()),
        ("Reason", plan.reason),
    ]
    if wide:
        rows.append(("Estimated", f"{100 * plan.estimated_fraction:.0f}% of the window priced on estimated values"))
        if job.choice is not None:
            rows += [("Pool " + e.pool.name, _estimate(e)) for e in job.choice.estimates]
    return "".join(f"{key:<13} {value}\n" for key, value in rows)


def _estimate(e: Any) -> str:
    hours = e.run_time.total_seconds() / 3600
    head = f"{e.pool.gpu_product} in {e.pool.zone}, {e.pool.free_gpus} GPUs, runs {hours:.1f} h, {e.energy_kwh:.1f} kWh"
    if e.reason:
        return f"{head}; ruled out: {e.reason}"
    grams = f"{e.expected_grams / 1000:.2f} kgCO2e expected" if e.expected_grams is not None else "intensity unknown"
    return f"{head}, {grams}"
