"""`llmasos plan --batch IN.jsonl --output OUT.jsonl --capacity CAP.json`: the batch contract under capacity.

The contract is used by tooling, so it is kept exactly as issue 19 wrote it:

* Each input line may carry `"gpus"` (an integer >= 1, default 1) and `"pool"` (a string, default: the line's
  `zone`); every other field is as without `--capacity`.
* CAP.json is `{"pools": {"<pool>": {"gpus": <int>, "reserved": [{"start": ISO, "end": ISO, "gpus": <int>}]}}}`;
  `reserved` is capacity already taken in those intervals.
* Guarantee: at no instant does the sum of `gpus` over the planned segments in a pool, plus its reservations,
  exceed that pool's `gpus`.
* Output: the same lines as without it, plus `"error"` on a line whose deadline cannot be met; that line keeps its
  best capacity-respecting segments (the earliest the capacity left allows).
* Bad input (a pool missing from the capacity file, a job larger than its pool) is an error naming the line, and
  nothing is written. So is a capacity file the guarantee cannot hold for, or that a tool may have misspelled: a
  field the contract does not name (a misspelt `reserved` would otherwise be capacity silently counted as free), or
  reservations that alone take more GPUs than their pool has.

The plan is `planning.timing.fleet.plan_fleet` at the earliest `submitted_at`, each job no earlier than its own
`submitted_at` and priced on its own line's forecast, as without `--capacity`.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from llmasos.commands import InputError
from llmasos.planning.timing.capacity import capacity_violations
from llmasos.planning.timing.fleet import plan_fleet, violations
from llmasos.planning.timing.fleet_types import FleetJob, PoolCapacity, Reservation
from llmasos.planning.timing.forecast import parse_instant


def load_capacity(path: Path) -> tuple[list[PoolCapacity], list[Reservation]]:
    """Pools and reservations from CAP.json; InputError naming the file and the field on any problem."""
    try:
        raw = json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {path}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON: {exc.msg} (line {exc.lineno})") from None
    pools_raw = raw.get("pools") if isinstance(raw, dict) else None
    if not isinstance(pools_raw, dict):
        raise InputError(f'{path}: expected {{"pools": {{"<pool>": {{"gpus": <int>, "reserved": [...]}}}}}}')
    _only_known(raw, {"pools"}, str(path))
    pools: list[PoolCapacity] = []
    reservations: list[Reservation] = []
    for name, spec in pools_raw.items():
        where = f"{path}: pools.{name}"
        if not isinstance(spec, dict):
            raise InputError(f"{where} must be an object with gpus and reserved")
        _only_known(spec, {"gpus", "reserved"}, where)
        pools.append(PoolCapacity(name, _count(spec.get("gpus"), f"{where}.gpus", minimum=0)))
        reserved = spec.get("reserved", [])
        if not isinstance(reserved, list):
            raise InputError(f"{where}.reserved must be a list")
        for n, r in enumerate(reserved):
            at = f"{where}.reserved[{n}]"
            if not isinstance(r, dict) or not {"start", "end", "gpus"} <= r.keys():
                raise InputError(f"{at} must be an object with start, end and gpus")
            _only_known(r, {"start", "end", "gpus"}, at)
            try:
                start, end = parse_instant(r["start"], f"{at}.start"), parse_instant(r["end"], f"{at}.end")
            except ValueError as exc:
                raise InputError(str(exc)) from None
            if end <= start:
                raise InputError(f"{at}: end must be after start")
            reservations.append(Reservation(name, start, end, _count(r["gpus"], f"{at}.gpus", minimum=0)))
    taken = [(r.pool, r.start, r.end, r.gpus) for r in reservations]
    over = capacity_violations({p.name: p.gpus for p in pools}, taken)
    if over:  # no plan can keep the guarantee; say so before planning
        raise InputError(f"{path}: the reservations alone exceed their pool: {over[0]}")
    return pools, reservations


def _only_known(obj: dict[str, Any], known: set[str], where: str) -> None:
    unknown = sorted(set(obj) - known)
    if unknown:
        raise InputError(f"{where}: unknown field {unknown[0]!r} (the fields are {', '.join(sorted(known))})")


def _count(value: Any, what: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InputError(f"{what} must be an integer >= {minimum}, got {value!r}")
    return value


def fleet_fields(text: str, zone: str) -> tuple[int, str]:
    """(gpus, pool) of an input line, with the contract's defaults (1, the line's zone)."""
    raw = json.loads(text)
    gpus = _count(raw.get("gpus", 1), "gpus", minimum=1)
    pool = raw.get("pool", zone)
    if not isinstance(pool, str) or not pool:
        raise InputError(f"pool must be a non-empty string, got {pool!r}")
    return gpus, pool


def plan_with_capacity(
    parsed: list[tuple[int, str, FleetJob]],
    pools: list[PoolCapacity],
    reservations: list[Reservation],
    capacity_path: Path,
) -> tuple[list[str], list[str], list[str]]:
    """(output lines, errors, warnings) for the parsed lines (line number, id, job keyed by line number)."""
    errors: list[str] = []
    sizes = {p.name: p.gpus for p in pools}
    for lineno, _job_id, job in parsed:
        pool = job.pools[0]
        if pool not in sizes:
            errors.append(f"line {lineno}: pool {pool!r} is not in {capacity_path}")
        elif job.gpus > sizes[pool]:
            errors.append(f"line {lineno}: needs {job.gpus} GPUs, more than pool {pool!r} holds ({sizes[pool]})")
    if errors or not parsed:
        return [], errors, []
    now: datetime = min(job.earliest_start for _, _, job in parsed)
    jobs = [job for _, _, job in parsed]
    plan = plan_fleet(jobs, pools, reservations, {}, now)
    broken = violations(plan, jobs, pools, reservations)
    if broken:  # the planner's guarantee; never write a plan that breaks it
        return [], [f"internal error: the plan would over-subscribe a pool: {broken[0]}"], []
    out: list[str] = []
    warnings: list[str] = []
    by_id = plan.by_id()
    for lineno, job_id, job in parsed:
        a = by_id[job.id]
        line: dict[str, Any] = {"id": job_id, "segments": [s.to_dict() for s in a.segments]}
        if not a.feasible:
            line["error"] = a.reason
            warnings.append(f"line {lineno} ({job_id}): {a.reason}")
        elif job.forecast is None or not job.forecast.points:
            warnings.append(f"line {lineno} ({job_id}): no forecast values; planned as early as capacity allows")
        out.append(json.dumps(line))
    return out, [], warnings
