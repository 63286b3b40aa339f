"""Totals of a set of jobs: overall, by namespace, team, model and day; savings per lever kept apart.

Savings are never netted into one number: time shifting (run-now minus actual), pool choice (first listed pool minus
chosen, scaled to the actual) and power caps (uncapped minus capped energy, valued at the job's intensity and PUE)
answer different questions, and a negative one (waiting made it worse) must stay visible. Offset costs are summed
per currency, never across currencies.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from llmasos.report.model import JOULES_PER_KWH, JobRecord


@dataclass
class Totals:
    jobs: int = 0
    estimated_jobs: int = 0
    energy_kwh: float = 0.0
    facility_kwh: float = 0.0
    grams: float = 0.0
    run_now_grams: float = 0.0
    time_shift_g: float = 0.0
    pool_choice_g: float = 0.0
    power_cap_g: float = 0.0
    power_cap_kwh: float = 0.0
    tokens: float = 0.0
    token_energy_kwh: float = 0.0  # energy of the jobs that reported tokens (energy per token divides these two)
    offset_tonnes: float = 0.0
    cost_by_currency: dict[str, float] = field(default_factory=dict)

    def add(self, job: JobRecord) -> None:
        self.jobs += 1
        self.estimated_jobs += int(job.is_estimated)
        self.energy_kwh += job.energy_kwh
        self.facility_kwh += job.facility_kwh
        self.grams += job.grams
        self.run_now_grams += job.run_now_grams
        self.time_shift_g += job.time_shift_saved_g
        self.pool_choice_g += job.pool_choice_saved_g
        self.power_cap_g += job.power_cap_saved_g
        self.power_cap_kwh += job.power_cap_saved_kwh
        if job.tokens:
            self.tokens += job.tokens
            self.token_energy_kwh += job.energy_kwh
        self.offset_tonnes += job.offset_tonnes
        if job.offset_cost is not None:
            key = job.currency or "?"
            self.cost_by_currency[key] = self.cost_by_currency.get(key, 0.0) + job.offset_cost

    @property
    def joules_per_token(self) -> float | None:
        return self.token_energy_kwh * JOULES_PER_KWH / self.tokens if self.tokens else None

    @property
    def average_intensity(self) -> float | None:
        return self.grams / self.facility_kwh if self.facility_kwh > 0 else None

    @property
    def time_shift_percent(self) -> float | None:
        return 100.0 * self.time_shift_g / self.run_now_grams if self.run_now_grams > 0 else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "jobs": self.jobs,
            "estimatedJobs": self.estimated_jobs,
            "energyKWh": round(self.energy_kwh, 6),
            "facilityEnergyKWh": round(self.facility_kwh, 6),
            "gCO2e": round(self.grams, 3),
            "averageIntensity": _r(self.average_intensity, 2),
            "runNowGCO2e": round(self.run_now_grams, 3),
            "savings": {
                "timeShiftGCO2e": round(self.time_shift_g, 3),
                "timeShiftPercent": _r(self.time_shift_percent, 2),
                "poolChoiceGCO2e": round(self.pool_choice_g, 3),
                "powerCapGCO2e": round(self.power_cap_g, 3),
                "powerCapKWh": round(self.power_cap_kwh, 6),
            },
            "tokens": self.tokens or None,
            "joulesPerToken": _r(self.joules_per_token, 6),
            "offset": {"tonnes": round(self.offset_tonnes, 6),
                       "cost": {k: round(v, 2) for k, v in sorted(self.cost_by_currency.items())}},
        }


def _r(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


@dataclass
class Report:
    generated_at: datetime
    jobs: list[JobRecord]
    without_accounting: list[JobRecord]
    totals: Totals
    groups: dict[str, dict[str, Totals]]  # dimension (namespace, team, model, day) -> key -> totals
    sources: dict[str, int]
    factor_types: dict[str, int]
    pue_range: tuple[float, float] | None
    period: tuple[str, str] | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "generatedAt": self.generated_at.isoformat().replace("+00:00", "Z"),
            "period": {"from": self.period[0], "to": self.period[1]} if self.period else None,
            "totals": self.totals.to_dict(),
            **{f"by{dim.capitalize()}": {k: t.to_dict() for k, t in groups.items()}
               for dim, groups in self.groups.items()},
            "sources": self.sources,
            "emissionFactorTypes": self.factor_types,
            "pue": {"min": round(self.pue_range[0], 4), "max": round(self.pue_range[1], 4)} if self.pue_range else None,
            "jobsWithoutAccounting": [f"{j.namespace}/{j.name}" for j in self.without_accounting],
            "jobs": [job_row(j) for j in self.jobs],
            "energyPerToken": {f"by{dim.capitalize()}": [row.to_dict() for row in energy_per_token(self.jobs, dim)]
                               for dim in TOKEN_DIMENSIONS},
        }


DIMENSIONS = ("namespace", "team", "model", "day")


def _key(job: JobRecord, dimension: str) -> str:
    if dimension == "day":
        return (job.start or job.created or "unknown")[:10]
    return str(getattr(job, dimension))


def build_report(records: Iterable[JobRecord], generated_at: datetime) -> Report:
    jobs: list[JobRecord] = []
    without: list[JobRecord] = []
    for r in records:
        (jobs if r.has_carbon else without).append(r)
    jobs.sort(key=lambda j: (j.namespace, j.name))
    totals = Totals()
    groups: dict[str, dict[str, Totals]] = {d: {} for d in DIMENSIONS}
    sources: dict[str, int] = {}
    factors: dict[str, int] = {}
    for job in jobs:
        totals.add(job)
        for dim in DIMENSIONS:
            groups[dim].setdefault(_key(job, dim), Totals()).add(job)
        sources[job.source or "unknown"] = sources.get(job.source or "unknown", 0) + 1
        factors[job.emission_factor_type or "unknown"] = factors.get(job.emission_factor_type or "unknown", 0) + 1
    for dim in DIMENSIONS:
        order = sorted(groups[dim]) if dim == "day" else sorted(groups[dim], key=lambda k: -groups[dim][k].grams)
        groups[dim] = {k: groups[dim][k] for k in order}
    pues = [p for j in jobs if (p := j.pue) is not None]
    starts = [j.start for j in jobs if j.start]
    ends = [j.completion for j in jobs if j.completion]
    period = (min(starts), max(ends) if ends else "") if starts else None
    return Report(generated_at, jobs, without, totals, groups, dict(sorted(sources.items())),
                  dict(sorted(factors.items())), (min(pues), max(pues)) if pues else None, period)


CSV_COLUMNS = (
    "namespace", "name", "team", "model", "task", "phase", "pool", "gpuProduct", "zone", "start", "completion",
    "energyKWh", "facilityEnergyKWh", "pue", "gCO2e", "averageIntensity", "runNowGCO2e", "timeShiftSavedGCO2e",
    "poolChoiceSavedGCO2e", "powerCapSavedKWh", "powerCapSavedGCO2e", "tokens", "joulesPerToken", "source",
    "emissionFactorType", "isEstimated", "offsetTonnes", "offsetCost", "currency",
)


def job_row(j: JobRecord) -> dict[str, Any]:
    """One job as a flat row (CSV) / object (JSON), columns in CSV_COLUMNS order."""
    values = (
        j.namespace, j.name, j.team, j.model, j.task, j.phase, j.pool, j.gpu_product, j.zone, j.start, j.completion,
        round(j.energy_kwh, 6), round(j.facility_kwh, 6), _r(j.pue, 4), round(j.grams, 3),
        _r(j.average_intensity, 2), round(j.run_now_grams, 3), round(j.time_shift_saved_g, 3),
        round(j.pool_choice_saved_g, 3), round(j.power_cap_saved_kwh, 6), round(j.power_cap_saved_g, 3), j.tokens,
        _r(j.joules_per_token, 6), j.source, j.emission_factor_type, j.is_estimated, round(j.offset_tonnes, 6),
        j.offset_cost, j.currency,
    )
    return dict(zip(CSV_COLUMNS, values, strict=True))


TOKEN_DIMENSIONS = ("model", "namespace")


@dataclass(frozen=True)
class TokenEnergy:
    """Energy per token of one model or namespace, over the jobs whose workers counted tokens."""

    key: str
    jobs: int  # jobs of the group with accounting
    token_jobs: int  # of which reported tokens (status.carbon.tokens)
    tokens: float
    energy_kwh: float  # IT energy of the token-reporting jobs only
    lowest: float | None  # the lowest and highest J/token of one job in the group
    highest: float | None

    @property
    def joules_per_token(self) -> float | None:
        """Energy over tokens: the token-weighted mean of the jobs' status.carbon.joulesPerToken."""
        return self.energy_kwh * JOULES_PER_KWH / self.tokens if self.tokens else None

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "jobs": self.jobs, "jobsWithTokens": self.token_jobs, "tokens": self.tokens or None,
                "energyKWh": round(self.energy_kwh, 6), "joulesPerToken": _r(self.joules_per_token, 6),
                "lowestJoulesPerToken": _r(self.lowest, 6), "highestJoulesPerToken": _r(self.highest, 6)}


def energy_per_token(jobs: Iterable[JobRecord], dimension: str) -> list[TokenEnergy]:
    """Energy per token per ``dimension`` ("model" or "namespace"), most tokens first.

    Why a table of its own: a group's J/token divides the energy of the jobs that counted tokens by their tokens
    (``status.carbon.tokens``, which the operator fills from the workers' progress endpoints), so jobs that counted
    none (custom commands, pods without a worker) neither dilute nor inflate it; how many jobs stand behind the
    figure, and the spread between its best and worst job, are shown next to it.
    """
    groups: dict[str, list[JobRecord]] = {}
    for job in jobs:
        groups.setdefault(_key(job, dimension), []).append(job)
    rows = []
    for key, members in groups.items():
        counted = [j for j in members if j.tokens]
        per_job = [v for j in counted if (v := j.joules_per_token) is not None]
        rows.append(TokenEnergy(
            key=key, jobs=len(members), token_jobs=len(counted), tokens=sum(j.tokens or 0.0 for j in counted),
            energy_kwh=sum(j.energy_kwh for j in counted), lowest=min(per_job) if per_job else None,
            highest=max(per_job) if per_job else None))
    return sorted(rows, key=lambda r: (-r.tokens, r.key))
