"""`llmasos plan -f FILE`: plan every LLMJob of a manifest as the operator would, and print the plans.

`-f -` reads the manifest from stdin; a multi-document manifest (a Namespace and two LLMJobs, say) plans each LLMJob
in turn. `-o` picks the format as kubectl does: `table` (default), `wide` (every pool considered), `json`, `yaml`;
`--output-file FILE` writes the same text to a file instead of stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from llmasos.api.clock import utc_now
from llmasos.api.manifest_yaml import load_document, load_documents
from llmasos.api.spec import DEFAULT_EXPECTED_DURATION, LLMJobSpec, parse_manifest
from llmasos.carbon.base import IntensitySource
from llmasos.carbon.fallback import FallbackSource, default_chain
from llmasos.carbon.static import StaticSource
from llmasos.carbon.trace import TraceSource, shipped_trace_files
from llmasos.carbon.zones import check_zone
from llmasos.commands import InputError, write_text
from llmasos.commands.plan_output import PlannedJob, render, span_text
from llmasos.errors import CarbonSourceError, SpecError
from llmasos.gpus.products import REFERENCE_PRODUCT
from llmasos.planning.placement.pool_choice import PoolEstimate, PoolOption, choose_pool, estimate_pool
from llmasos.planning.timing.carbon_spec import carbon_job
from llmasos.planning.timing.carbon_window import CarbonJob, window_bounds
from llmasos.planning.timing.forecast import Forecast, format_instant, parse_instant
from llmasos.settings import Settings

TOKEN_ENV = ("LLMASOS_ELECTRICITYMAPS_TOKEN", "ELECTRICITYMAPS_TOKEN")
FORMATS = ("table", "wide", "json", "yaml")
LOCAL_POOLS = "e2e/node-pools.yaml"


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
        docs = [d for d in load_documents(text) if d]
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
        raw = load_document(text) or {}
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
        try:
            zone = check_zone(str(p["carbonZone"]))  # the same check and normalisation as --zone (de is DE)
        except ValueError as exc:
            raise InputError(f"{at}: {exc}") from None
        pools.append(PoolOption(str(p["name"]), str(p["gpuProduct"]), gpus, zone))
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
    """One LLMJob's plan, on the same code paths as the operator's (handlers/gate.py: `job_for`, the pools' PUE,
    `choose_pool`); without pools, the zone's plan on the reference GPU through the same `estimate_pool`."""
    meta = manifest.get("metadata") or {}
    name = str(meta.get("name") or (args.file.stem if str(args.file) != "-" else "llmjob"))
    spec = parse_manifest(manifest, now)
    stamp = str(meta.get("creationTimestamp") or "")
    created = parse_instant(stamp, "creationTimestamp") if stamp else now
    job = carbon_job(spec.carbon, created, default_duration=spec.planned_duration)
    deadline_note = check_deadline(name, spec, job, created, bool(stamp), now)
    gpus = spec.parallelism.nodes * spec.parallelism.gpus_per_node
    pue = spec.pue or Settings.default_pue
    pools = load_pools(args.pools, spec.node_pools) if args.pools else []
    zone = check_zone(args.zone or spec.carbon.zone)
    if pools and not zone:
        zones = sorted({p.zone for p in pools})
    elif zone:
        zones = [zone]
    else:
        raise InputError(no_zone_message(name))
    pools = [PoolOption(p.name, p.gpu_product, p.free_gpus, zone or p.zone, pue) for p in pools]
    forecasts = asyncio.run(_forecasts(args.source, zones, now))
    if pools:
        choice = choose_pool(job, gpus, pools, {z: f for z, (f, _) in forecasts.items()}, now)
        estimate, note = choice.chosen, forecasts[choice.pool.zone][1]
    else:
        choice = None
        reference = PoolOption("", REFERENCE_PRODUCT, gpus, zone, pue)
        estimate, note = estimate_pool(job, gpus, reference, forecasts[zone][0], now), forecasts[zone][1]
    return PlannedJob(name, estimate, estimate.pool.zone, note, gpus, job.deadline, deadline_note,
                      duration_text(spec, estimate), latest_start_text(job, estimate, now), choice)


def check_deadline(name: str, spec: LLMJobSpec, job: CarbonJob, created: datetime, stamped: bool,
                   now: datetime) -> str:
    """Where the deadline comes from, in words; SpecError (exit 2) when it has already passed at `now`."""
    carbon = spec.carbon
    if job.deadline is None:
        return f"none: policy {carbon.policy} sets no deadline"
    if carbon.max_delay is not None:
        since = "the LLMJob's creation" if stamped else "now; the manifest has no creationTimestamp"
        origin, field = f"maxDelay {span_text(carbon.max_delay)} after {since}", "spec.carbon.maxDelay"
    else:
        origin, field = "spec.carbon.deadline", "spec.carbon.deadline"
    if job.deadline <= now:
        raise SpecError(f"LLMJob {name}: its deadline {format_instant(job.deadline)} ({origin}) has already passed "
                        f"at {format_instant(now)}, so no start time can meet it; set a later deadline, or pass "
                        "--now to plan as of an earlier time", field)
    return origin


def duration_text(spec: LLMJobSpec, estimate: PoolEstimate) -> str:
    """The run time planned, and how it was derived, in words."""
    plan = estimate.plan
    rescaled = plan.duration_note if plan is not None else ""
    if spec.carbon.expected_duration is not None:
        return rescaled or f"{span_text(estimate.run_time)}, expectedDuration as written"
    if spec.max_runtime is not None:
        how = f"spec.maxRuntime ({span_text(spec.max_runtime)}) is used, as the operator does"
    else:
        how = (f"the operator's default of {span_text(DEFAULT_EXPECTED_DURATION)} is used "
               "(set spec.carbon.expectedDuration)")
    text = f"{span_text(estimate.run_time)}, assumed: no expectedDuration is set, so {how}"
    return f"{text}; {rescaled}" if rescaled else text


def latest_start_text(job: CarbonJob, estimate: PoolEstimate, now: datetime) -> str:
    """The last start that meets the deadline; when it has passed, say so rather than print the fail-safe start."""
    plan = estimate.plan
    if plan is None or plan.feasible:
        return ""
    _, latest, _ = window_bounds(replace(job, duration=estimate.run_time), now)
    return (f"{format_instant(latest)}, already passed: started at once, the job ends after its deadline "
            f"{format_instant(job.deadline) if job.deadline else ''}").rstrip()


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
