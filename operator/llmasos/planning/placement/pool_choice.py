"""Where to run a job: the node pool with the lowest expected emissions among those that finish in time.

Emissions = GPUs x average power x run time x grid intensity over the chosen window. A faster GPU shortens the
run (and its window), a cleaner zone lowers the intensity, a frugal GPU lowers the power; the best pool balances
all three, so each pool is planned with its own zone's forecast and its own run time, then compared in grams.

The GPU catalog (`llmasos.gpus.products`) gives each GPU product a training throughput relative to an A100 80GB and
an average board power under training load (its NVML default limit); operators override both through settings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from llmasos.errors import PlacementError
from llmasos.gpus.products import DEFAULT_CATALOG, REFERENCE_PRODUCT, GpuProfile, normalize
from llmasos.planning.timing.carbon_window import CarbonJob, Plan, plan_start
from llmasos.planning.timing.forecast import Forecast


@dataclass(frozen=True, slots=True)
class PoolOption:
    """A node pool as the planner sees it: its GPU product, how many GPUs are free now, its carbon zone."""

    name: str
    gpu_product: str
    free_gpus: int
    zone: str
    pue: float = 1.0


@dataclass(frozen=True)
class PoolEstimate:
    """One pool's plan and its expected energy and emissions; `reason` says why it was ruled out, if it was."""

    pool: PoolOption
    run_time: timedelta
    plan: Plan | None
    energy_kwh: float
    expected_grams: float | None
    run_now_grams: float | None
    reason: str = ""

    @property
    def eligible(self) -> bool:
        """Capacity is free and the plan finishes before the deadline (intensity data may still be missing)."""
        return self.plan is not None and self.plan.feasible and not self.reason


@dataclass(frozen=True)
class PoolChoice:
    """The chosen pool (with its plan) and every pool's estimate, for status messages and `llmasos plan`."""

    chosen: PoolEstimate
    estimates: tuple[PoolEstimate, ...]

    @property
    def pool(self) -> PoolOption:
        return self.chosen.pool

    @property
    def plan(self) -> Plan:
        assert self.chosen.plan is not None
        return self.chosen.plan


def run_time_on(
    reference_duration: timedelta, product: str, catalog: Mapping[str, GpuProfile], reference: str = REFERENCE_PRODUCT
) -> timedelta:
    """Expected run time on `product` of work that takes `reference_duration` on the `reference` GPU."""
    target = catalog.get(normalize(product))
    ref = catalog.get(normalize(reference))
    if target is None:
        raise KeyError(f"GPU product {product!r} is not in the catalog")
    if ref is None:
        raise KeyError(f"reference GPU {reference!r} is not in the catalog")
    return reference_duration * (ref.relative_throughput / target.relative_throughput)


def duration_note(written: timedelta, run_time: timedelta, product: str, reference: str = REFERENCE_PRODUCT) -> str:
    """Why the planned run time differs from expectedDuration: it is read as time on the reference GPU."""
    return (f"expectedDuration {_minutes(written)} is read as run time on the reference GPU ({reference}) and "
            f"rescaled to {_minutes(run_time)} on {product} by their relative throughput (docs/carbon.md)")


def _minutes(d: timedelta) -> str:
    total = round(d.total_seconds() / 60)
    return f"{total // 60}h{total % 60:02d}m" if total >= 60 else f"{total}m"


def estimate_pool(
    job: CarbonJob,
    gpus: int,
    pool: PoolOption,
    forecast: Forecast | None,
    now: datetime,
    catalog: Mapping[str, GpuProfile] = DEFAULT_CATALOG,
    reference: str = REFERENCE_PRODUCT,
) -> PoolEstimate:
    """Plan `job` (whose duration is measured on `reference`) on `pool`; a pool that cannot host it says why."""
    profile = catalog.get(normalize(pool.gpu_product))
    if profile is None:
        return PoolEstimate(pool, timedelta(0), None, 0.0, None, None, f"unknown GPU product {pool.gpu_product!r}")
    run_time = run_time_on(job.duration, pool.gpu_product, catalog, reference)
    energy_kwh = gpus * profile.power_watts * pool.pue * run_time.total_seconds() / 3.6e6
    if pool.free_gpus < gpus:
        return PoolEstimate(pool, run_time, None, energy_kwh, None, None, f"{pool.free_gpus} of {gpus} GPUs free")
    plan = plan_start(replace(job, duration=run_time), forecast or Forecast((), zone=pool.zone), now)
    if run_time != job.duration:
        plan = replace(plan, duration_note=duration_note(job.duration, run_time, pool.gpu_product, reference))
    if not plan.feasible:
        return PoolEstimate(pool, run_time, plan, energy_kwh, None, None, "cannot finish before the deadline")
    grams = energy_kwh * plan.expected_intensity if plan.expected_intensity is not None else None
    now_grams = energy_kwh * plan.run_now_intensity if plan.run_now_intensity is not None else None
    return PoolEstimate(pool, run_time, plan, energy_kwh, grams, now_grams)


def choose_pool(
    job: CarbonJob,
    gpus: int,
    pools: list[PoolOption] | tuple[PoolOption, ...],
    forecasts: Mapping[str, Forecast],
    now: datetime,
    catalog: Mapping[str, GpuProfile] = DEFAULT_CATALOG,
    reference: str = REFERENCE_PRODUCT,
) -> PoolChoice:
    """The pool with the lowest expected gCO2e that can finish before the deadline; ties go to the earlier end.

    `forecasts` is keyed by zone. Pools whose zone has no data at all are only chosen when no pool has data, and
    then by energy alone (every zone equally unknown). Raises PlacementError (reason `NoFeasiblePool`) when no
    pool qualifies, with each pool's reason in the message.
    """
    if gpus < 1:
        raise ValueError("a job needs at least one GPU")
    if not pools:
        raise PlacementError("no node pools to choose from", "NoNodePools")
    estimates = tuple(estimate_pool(job, gpus, p, forecasts.get(p.zone), now, catalog, reference) for p in pools)
    eligible = [e for e in estimates if e.eligible]
    if not eligible:
        why = "; ".join(f"{e.pool.name}: {e.reason}" for e in estimates)
        raise PlacementError(f"no node pool can run the job in time ({why})", "NoFeasiblePool")
    with_data = [e for e in eligible if e.expected_grams is not None]
    best = min(
        with_data or eligible,
        key=lambda e: (
            round(e.expected_grams if e.expected_grams is not None else e.energy_kwh, 6),
            e.plan.end_at if e.plan else now,
            e.pool.name,
        ),
    )
    return PoolChoice(best, estimates)
