"""`LLMJob.status.carbon`: the value the operator writes, built from the accounting in planning/accounting/integral.py.

Kept apart from the integral itself: this is the user-facing content (rounding, which fields are left out when
unknown, the offset price; the type and its JSON keys are `api.energy_status.CarbonStatus`) and the rule for how
often it is written (at most once a minute while running, always when final). Pure: no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from llmasos.api.energy_status import CarbonDisplay, CarbonStatus, Offset, PodPower
from llmasos.api.units import energy_text, mass_text
from llmasos.planning.accounting.integral import (
    AccountingError,
    CapRecord,
    EnergyInterval,
    PueSchedule,
    emissions,
    finite_nonneg,
    pool_choice_saved_grams,
    power_cap_saved_kwh,
    run_now_emissions,
    savings,
)
from llmasos.planning.timing.carbon_window import Segment
from llmasos.planning.timing.forecast import Forecast, ensure_utc

EMISSION_FACTOR_TYPES = ("lifecycle", "direct")
METHOD = "location-based"
WRITE_INTERVAL = timedelta(minutes=1)


def offset(grams: float, price_per_tonne: float | None, currency: str = "") -> Offset:
    """Tonnes CO2e and what offsetting them costs; cost and currency only when priced."""
    tonnes = grams / 1e6
    if price_per_tonne is None:
        return Offset(round(tonnes, 6))
    return Offset(round(tonnes, 6), round(tonnes * finite_nonneg(price_per_tonne, "price per tonne"), 4), currency)


@dataclass(frozen=True)
class CarbonInputs:
    """Everything `build_carbon_status` needs; the handler gathers it from the node reports, plan and source."""

    intervals: Sequence[EnergyInterval]
    series: Forecast
    submitted_at: datetime
    pue: float | PueSchedule
    source: str
    emission_factor_type: str
    source_estimated: bool = False
    run_spans: Sequence[Segment] | None = None
    gap_intensity: float | None = None
    cap_records: Sequence[CapRecord] = ()
    pool_choice: tuple[float, float] | None = None  # (chosen expected g, baseline expected g)
    price_per_tonne: float | None = None
    currency: str = ""
    tokens: float | None = None  # the job's tokens as its workers counted them (None: no worker reported any)


def build_carbon_status(inputs: CarbonInputs) -> CarbonStatus:
    """The `status.carbon` value (rounded; fields whose value is unknown are None, left out when rendered), without
    the ledger and the write time, which the caller adds."""
    if inputs.emission_factor_type not in EMISSION_FACTOR_TYPES:
        raise AccountingError(f"emissionFactorType must be lifecycle or direct, got {inputs.emission_factor_type!r}")
    kw: dict[str, Any] = {"run_spans": inputs.run_spans, "gap_intensity": inputs.gap_intensity}
    actual = emissions(inputs.intervals, inputs.series, inputs.pue, **kw)
    now_run = run_now_emissions(inputs.intervals, inputs.series, inputs.pue, inputs.submitted_at, **kw)
    saved, saved_pct = savings(actual.grams, now_run.grams)
    tokens = inputs.tokens or None
    return CarbonStatus(
        energy_kwh=round(actual.energy_kwh, 6),
        facility_energy_kwh=round(actual.facility_kwh, 6),
        grams=round(actual.grams, 3),
        average_intensity=_round(actual.average_intensity, 2),
        run_now_grams=round(now_run.grams, 3),
        saved_grams=round(saved, 3),
        saved_percent=_round(saved_pct, 2),
        power_cap_saved_kwh=round(power_cap_saved_kwh(inputs.cap_records), 6),
        method=METHOD,
        emission_factor_type=inputs.emission_factor_type,
        source=inputs.source,
        is_estimated=bool(inputs.source_estimated or actual.gap_energy_j > 0 or now_run.gap_energy_j > 0),
        offset=offset(actual.grams, inputs.price_per_tonne, inputs.currency),
        display=display(actual.energy_kwh, actual.grams, saved),
        tokens=round(finite_nonneg(tokens, "tokens")) if tokens else None,
        joules_per_token=_round_sig(actual.energy_j / tokens, 4) if tokens and actual.energy_j > 0 else None,
        pool_choice_saved_grams=round(pool_choice_saved_grams(actual.grams, *inputs.pool_choice), 3)
        if inputs.pool_choice is not None else None,
    )


def display(energy_kwh: float, grams: float, saved_grams: float) -> CarbonDisplay:
    """status.carbon.display: the same numbers scaled for people (kubectl's columns): "1.2 kWh", "340 g", "1.0 t"."""
    return CarbonDisplay(energy_text(energy_kwh), mass_text(grams), mass_text(saved_grams))


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _round_sig(value: float, digits: int) -> float:
    """Round to significant digits (joules per token span 1e-3 .. 1e2 across models and GPUs)."""
    return float(f"{value:.{digits}g}")


def job_tokens(pods: Iterable[PodPower]) -> float | None:
    """A job's tokens from its pods' counters (`status.power.pods[].tokens`): the largest, never the sum.

    The worker exports the job's global count (tokens of the global batch, cumulative across resumes), the same on
    every pod of a data-parallel group; summing would count the job once per pod. None when no pod reported any.
    """
    best = max((float(p.tokens) for p in pods if p.tokens is not None), default=0.0)
    return best if best > 0 else None


def should_write_carbon(
    previous: CarbonStatus | None,
    current: CarbonStatus,
    last_written: datetime | None,
    now: datetime,
    *,
    final: bool,
    min_interval: timedelta = WRITE_INTERVAL,
) -> bool:
    """Write `status.carbon` now? Never when unchanged (its write time aside); always when final (the job ended) or
    never written; otherwise at most once per `min_interval` (one minute) while the job runs."""
    if previous is not None and previous.comparable() == current.comparable():
        return False
    if final or last_written is None:
        return True
    return ensure_utc(now, "now") - ensure_utc(last_written, "last write") >= min_interval
