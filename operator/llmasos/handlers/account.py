"""`status.carbon` for an LLMJob: the energy ledger from the node reports, the zone's intensity history, and the pure
accounting (planning/accounting/integral.py, planning/accounting/carbon_status.py). Written at most once a minute while
running and once more, final, after the job ended (reports arrive at a low rate, so the final numbers can follow the
completion by a minute). Also the namespace's monthly carbon budget, applied to a job before it starts
(`apply_budget`)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from functools import cache
from typing import Any

from llmasos.api import conditions as cond
from llmasos.api.clock import parse_instant
from llmasos.api.conditions import Condition
from llmasos.api.energy_status import CarbonStatus, PowerStatus
from llmasos.api.spec import LLMJobSpec
from llmasos.errors import AccountingInputError, CarbonSourceError
from llmasos.gpus.curves import load_product
from llmasos.handlers.context import OperatorContext
from llmasos.planning.accounting.budget import month_key, used_grams, verdict
from llmasos.planning.accounting.carbon_status import CarbonInputs, build_carbon_status, job_tokens, should_write_carbon
from llmasos.planning.accounting.energy_ledger import advance_ledger, ledger_intervals
from llmasos.planning.accounting.integral import AccountingError
from llmasos.planning.accounting.power_cap import GpuCurves, cap_records

# Electricity Maps publishes lifecycle factors by default and the static tables (CodeCarbon, cloud coefficients)
# are lifecycle-based; the shipped traces (DACF, vessim) are direct (combustion-only) emission factors.
FACTOR_TYPE = {"electricitymaps": "lifecycle", "static": "lifecycle", "trace": "direct"}


async def carbon_accounting(ctx: OperatorContext, spec: LLMJobSpec, body: dict[str, Any], power: PowerStatus | None,
                            previous: CarbonStatus | None, zone: str, final: bool,
                            start_time: str = "") -> CarbonStatus | None:
    """The new status.carbon, or None to keep the previous one (nothing new, throttled, or no data). `previous` is
    the status.carbon the pass read."""
    status = body.get("status") or {}
    if power is None or not zone:
        return None
    submitted = parse_instant(str(body["metadata"]["creationTimestamp"]), "metadata.creationTimestamp")
    # A pod's first reading covers its energy since the group started (this pass's start time when it just did).
    first = start_time or status.get("startTime")
    started = parse_instant(str(first), "status.startTime") if first else ctx.clock()
    ledger = advance_ledger(previous.ledger if previous is not None else None, power, started)
    intervals = ledger_intervals(ledger)
    if not intervals:
        return None
    span = intervals[-1].end - intervals[0].start
    lo = min(submitted, intervals[0].start) - timedelta(hours=1)
    hi = max(intervals[-1].end, submitted + span) + timedelta(hours=1)
    try:
        series = await ctx.carbon.history(zone, lo, hi)
    except CarbonSourceError as exc:
        ctx.metrics.record_carbon_error(exc.source)
        return None
    pods = power.pods
    try:
        caps = cap_records(pods, gpu_curves(str(status.get("gpuProduct") or "")))
        carbon = build_carbon_status(CarbonInputs(
            intervals=intervals, series=series.value, submitted_at=submitted,
            pue=spec.pue or ctx.settings.default_pue, source=series.source,
            emission_factor_type=FACTOR_TYPE.get(series.source, "lifecycle"), source_estimated=series.degraded,
            price_per_tonne=ctx.settings.carbon_price_per_tonne or None,
            currency=ctx.settings.carbon_price_currency, cap_records=caps, tokens=job_tokens(pods)))
    except AccountingError as exc:
        raise AccountingInputError(str(exc)) from exc
    carbon = replace(carbon, ledger=ledger)
    now = ctx.clock()
    last_written = previous.updated_at if previous is not None else None
    if not should_write_carbon(previous, carbon, last_written, now, final=final):
        return None
    carbon = replace(carbon, updated_at=now.replace(microsecond=0))
    ctx.metrics.record_carbon(str(body["metadata"]["namespace"]), previous, carbon)
    return carbon


@cache
def gpu_curves(product: str) -> GpuCurves | None:
    """The measured power-limit curves of a pool's GPU product (docs/power.md), or None for a product without any."""
    try:
        p = load_product(product)
    except KeyError:
        return None
    return GpuCurves(p.max_w, p.default_w, tuple(w.energy_per_work for w in p.workloads))


def apply_budget(ctx: OperatorContext, spec: LLMJobSpec, namespace: str,
                  usage_index: Any) -> tuple[LLMJobSpec, Condition | None]:
    """Over its monthly budget, a namespace's new jobs are rejected, or held to their lowest-carbon window."""
    budget = ctx.budgets.get(namespace)
    if budget is None:
        return spec, None
    used = used_grams(usage_index.get(namespace, ()), month_key(ctx.clock()))
    what = verdict(budget, used)
    if what == "ok":
        return spec, Condition(cond.CARBON_BUDGET, "False", cond.BUDGET_OK,
                               f"namespace {namespace} used {used:.0f} of {budget.monthly_grams:.0f} gCO2e this month")
    message = f"namespace {namespace} used {used:.0f} of its {budget.monthly_grams:.0f} gCO2e monthly budget"
    if what == "reject":
        return spec, Condition(cond.CARBON_BUDGET, "True", cond.BUDGET_REJECTED, message + "; new jobs are rejected")
    if spec.carbon.policy == "immediate":
        held = replace(spec.carbon, policy="deadline", deadline=None, max_delay=timedelta(hours=24),
                       expected_duration=spec.planned_duration)
        spec = replace(spec, carbon=held)
    return spec, Condition(cond.CARBON_BUDGET, "True", cond.BUDGET_EXCEEDED,
                           message + "; new jobs only run in their lowest-carbon window within a day")
