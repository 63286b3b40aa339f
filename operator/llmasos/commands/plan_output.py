"""What `llmasos plan -f` prints: one PlannedJob as a table (`-o table`/`wide`) or as data (`-o json`/`yaml`).

The table is built from the same dict that `-o json` prints, so both carry the same fields: the deadline and where
it comes from, the run time planned and how it was derived (as written, rescaled to a pool's GPU, or a default),
and the expected energy and emissions of the chosen plan and of running now. Energy and emissions are the planner's
own estimate (`planning.placement.pool_choice.estimate_pool`, what the operator compares pools by), not a second
formula.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import yaml

from llmasos.api.units import energy_text, mass_text
from llmasos.gpus.products import DEFAULT_CATALOG, normalize
from llmasos.planning.placement.pool_choice import PoolChoice, PoolEstimate
from llmasos.planning.timing.carbon_window import Plan
from llmasos.planning.timing.forecast import format_instant


def span_text(d: timedelta) -> str:
    """"45m", "2h00m", "1d02h00m"."""
    minutes = round(d.total_seconds() / 60)
    days, rest = divmod(minutes, 24 * 60)
    text = f"{rest // 60}h{rest % 60:02d}m" if rest >= 60 or days else f"{rest}m"
    return f"{days}d{text}" if days else text


@dataclass(frozen=True)
class PlannedJob:
    """One LLMJob's plan and the estimate it was chosen on, ready to print."""

    name: str
    estimate: PoolEstimate
    zone: str
    source_note: str
    gpus: int
    deadline: datetime | None = None
    deadline_note: str = ""
    duration_note: str = ""
    latest_start_note: str = ""
    choice: PoolChoice | None = None

    @property
    def plan(self) -> Plan:
        assert self.estimate.plan is not None
        return self.estimate.plan

    @property
    def pool(self) -> str:
        return self.estimate.pool.name

    def to_dict(self) -> dict[str, Any]:
        e = self.estimate
        saved = (e.run_now_grams - e.expected_grams
                 if e.run_now_grams is not None and e.expected_grams is not None else None)
        return self.plan.to_dict() | {
            "name": self.name, "pool": self.pool or None, "zone": self.zone, "sourceNote": self.source_note,
            "deadline": format_instant(self.deadline) if self.deadline else None,
            "deadlineNote": self.deadline_note,
            "runTimeSeconds": round(e.run_time.total_seconds()),
            "durationNote": self.duration_note,
            "gpus": self.gpus, "gpuProduct": e.pool.gpu_product, "gpuWatts": _watts(e), "pue": e.pool.pue,
            "expectedEnergyKWh": round(e.energy_kwh, 3),
            "expectedGCO2e": _round(e.expected_grams), "runNowGCO2e": _round(e.run_now_grams),
            "savedGCO2e": _round(saved),
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _watts(e: PoolEstimate) -> float | None:
    """The average board power under training load the estimate used for this GPU (the catalog's)."""
    profile = DEFAULT_CATALOG.get(normalize(e.pool.gpu_product))
    return profile.power_watts if profile else None


def render(planned: list[PlannedJob], fmt: str) -> str:
    """The plans in `fmt`; one job is one object in json/yaml, several are a kubectl-style List."""
    if fmt in ("json", "yaml"):
        data: dict[str, Any] | list[Any] = (
            planned[0].to_dict() if len(planned) == 1
            else {"apiVersion": "v1", "kind": "List", "items": [p.to_dict() for p in planned]})
        if fmt == "json":
            return json.dumps(data, indent=2) + "\n"
        return yaml.safe_dump(data, sort_keys=False)
    return "\n".join(table(p, wide=fmt == "wide") for p in planned)


def table(job: PlannedJob, *, wide: bool) -> str:
    plan = job.plan
    data = job.to_dict()
    savings = plan.expected_savings_percent
    rows = [
        ("LLMJob", job.name),
        ("Policy", plan.policy),
        ("Pool", job.pool or "-"),
        ("Zone", f"{job.zone} ({job.source_note})"),
        ("Deadline", f"{data['deadline']} ({job.deadline_note})" if data["deadline"] else job.deadline_note),
        ("Duration", job.duration_note),
        ("Start at", format_instant(plan.start_at)),
        ("Segments", ", ".join(f"{s['start']} .. {s['end']}" for s in data["segments"])),
        ("Latest start", job.latest_start_note or format_instant(plan.latest_start)),
        (
            "Intensity",
            f"{data['expectedIntensity']} gCO2e/kWh expected, {data['runNowIntensity']} if run now"
            if plan.expected_intensity is not None
            else "unknown",
        ),
        ("Energy", _energy(job, data)),
        ("Emissions", _emissions(data)),
        ("Savings", f"{savings:.1f}%" if savings is not None else "-"),
        ("Forecast", f"{data['dataNote']} (trace, {data['forecastIssuedAt'] or '-'})" if data.get("dataNote")
         else f"issued {data['forecastIssuedAt'] or '-'} by {plan.source or '-'}"),
        ("Reason", plan.reason),
    ]
    if wide:
        rows.append(("Estimated", f"{100 * plan.estimated_fraction:.0f}% of the window priced on estimated values"))
        if job.choice is not None:
            rows += [("Pool " + e.pool.name, _estimate(e)) for e in job.choice.estimates]
    return "".join(f"{key:<13} {value}\n" for key, value in rows)


def _energy(job: PlannedJob, data: dict[str, Any]) -> str:
    gpus = f"{data['gpus']} GPU{'' if data['gpus'] == 1 else 's'}"
    gpu = data["gpuProduct"] + ("" if job.pool else ", the reference GPU; --pools plans on your pools' GPUs")
    return (f"{energy_text(data['expectedEnergyKWh'])}: {gpus} x {data['gpuWatts'] or 0:.0f} W x "
            f"{span_text(timedelta(seconds=data['runTimeSeconds']))} x PUE {data['pue']} ({gpu})")


def _emissions(data: dict[str, Any]) -> str:
    if data["expectedGCO2e"] is None:
        return "unknown (no carbon intensity for the window)" if data["feasible"] else (
            "not estimated: the job cannot finish before its deadline")
    text = f"{mass_text(data['expectedGCO2e'])} CO2e expected"
    if data["runNowGCO2e"] is not None:
        text += f", {mass_text(data['runNowGCO2e'])} CO2e if run now (saves {mass_text(data['savedGCO2e'])})"
    return text


def _estimate(e: PoolEstimate) -> str:
    head = (f"{e.pool.gpu_product} in {e.pool.zone}, {e.pool.free_gpus} GPUs free, runs {span_text(e.run_time)}, "
            f"{energy_text(e.energy_kwh)}")
    if e.reason:
        return f"{head}; ruled out: {e.reason}"
    grams = f"{mass_text(e.expected_grams)} CO2e expected" if e.expected_grams is not None else "intensity unknown"
    return f"{head}, {grams}"
