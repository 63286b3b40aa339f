"""One LLMJob as the report sees it: identity, team, model, and the numbers of its `status.carbon`.

Reading is forgiving on purpose: a report over hundreds of jobs must not die on one odd object, so a job without
`status.carbon` is kept (counted, not totalled) and a non-numeric field reads as absent, never as zero.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from llmasos.api.manifest_yaml import load_documents

TEAM_LABEL = "llmasos.io/team"
JOULES_PER_KWH = 3.6e6


@dataclass(frozen=True)
class JobRecord:
    namespace: str
    name: str
    team: str
    model: str
    task: str
    phase: str
    pool: str
    gpu_product: str
    zone: str
    created: str
    start: str
    completion: str
    has_carbon: bool
    energy_kwh: float = 0.0
    facility_kwh: float = 0.0
    grams: float = 0.0
    run_now_grams: float = 0.0
    time_shift_saved_g: float = 0.0
    pool_choice_saved_g: float = 0.0
    power_cap_saved_kwh: float = 0.0
    average_intensity: float | None = None
    source: str = ""
    emission_factor_type: str = ""
    is_estimated: bool = False
    offset_tonnes: float = 0.0
    offset_cost: float | None = None
    currency: str = ""
    tokens: float | None = None

    @property
    def pue(self) -> float | None:
        return self.facility_kwh / self.energy_kwh if self.energy_kwh > 0 else None

    @property
    def power_cap_saved_g(self) -> float:
        """The energy caps saved, valued at the job's own PUE and achieved intensity."""
        if self.average_intensity is None:
            return 0.0
        return self.power_cap_saved_kwh * (self.pue or 1.0) * self.average_intensity

    @property
    def joules_per_token(self) -> float | None:
        return self.energy_kwh * JOULES_PER_KWH / self.tokens if self.tokens and self.energy_kwh > 0 else None


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def model_name(spec: Mapping[str, Any]) -> str:
    model = _map(spec.get("model"))
    for key in ("builtin", "hfRepo", "path"):
        if model.get(key):
            return str(model[key])
    return "unknown"


def parse_llmjob(obj: Mapping[str, Any]) -> JobRecord:
    """An LLMJob object (as the API returns it) -> JobRecord. Team: spec.accounting.team, else the label."""
    meta, spec, status = _map(obj.get("metadata")), _map(obj.get("spec")), _map(obj.get("status"))
    team = str(_map(spec.get("accounting")).get("team") or _map(meta.get("labels")).get(TEAM_LABEL) or "unassigned")
    carbon = _map(status.get("carbon"))
    offset = _map(carbon.get("offset"))
    # The operator writes the workers' token count into status.carbon; status.progress is the older place.
    tokens = _num(carbon.get("tokens"))
    if tokens is None:
        tokens = _num(_map(status.get("progress")).get("tokens"))

    def f(key: str) -> float:
        return _num(carbon.get(key)) or 0.0

    grams = f("gCO2e")
    run_now = _num(carbon.get("runNowGCO2e"))
    return JobRecord(
        namespace=str(meta.get("namespace") or "default"),
        name=str(meta.get("name") or "?"),
        team=team,
        model=model_name(spec),
        task=str(spec.get("task") or ""),
        phase=str(status.get("phase") or ""),
        pool=str(status.get("pool") or ""),
        gpu_product=str(status.get("gpuProduct") or ""),
        zone=str(status.get("zone") or ""),
        created=str(meta.get("creationTimestamp") or ""),
        start=str(status.get("startTime") or ""),
        completion=str(status.get("completionTime") or ""),
        has_carbon=bool(carbon),
        energy_kwh=f("energyKWh"),
        facility_kwh=f("facilityEnergyKWh"),
        grams=grams,
        run_now_grams=run_now if run_now is not None else grams,
        time_shift_saved_g=f("savedGCO2e"),
        pool_choice_saved_g=f("poolChoiceSavedGCO2e"),
        power_cap_saved_kwh=f("powerCapSavedKWh"),
        average_intensity=_num(carbon.get("averageIntensity")),
        source=str(carbon.get("source") or ""),
        emission_factor_type=str(carbon.get("emissionFactorType") or ""),
        is_estimated=bool(carbon.get("isEstimated", False)),
        offset_tonnes=_num(offset.get("tonnes")) or grams / 1e6,
        offset_cost=_num(offset.get("cost")),
        currency=str(offset.get("currency") or ""),
        tokens=tokens if tokens and tokens > 0 else None,
    )


EXPECTED = "expected a List with `items` (kubectl get llmjobs -A -o yaml), a list of LLMJobs, or one LLMJob"


def objects_of(document: Any) -> list[Any]:
    """Every object of a `kubectl get ... -o json|yaml` List, a bare list, or a single object, of any kind."""
    if isinstance(document, Mapping) and ("items" in document or "metadata" in document):
        items = document.get("items", [document])
        items = [] if items is None else items  # `items: null`, as some tools write an empty list
    elif isinstance(document, list):
        items = document
    else:
        raise ValueError(EXPECTED)
    if not isinstance(items, list):
        raise ValueError(f"`items` is not a list; {EXPECTED}")
    return items


def only_llmjobs(objects: Iterable[Any]) -> list[Mapping[str, Any]]:
    """The LLMJobs among `objects` (items of an API list carry no kind: they are LLMJobs)."""
    return [i for i in objects if isinstance(i, Mapping) and i.get("kind", "LLMJob") == "LLMJob"]


def items_of(document: Any) -> list[Mapping[str, Any]]:
    """The LLMJobs of a `kubectl get llmjobs -A -o json|yaml` List, a bare list, or a single object."""
    return only_llmjobs(objects_of(document))


def parse_export(text: str, where: str) -> list[Any]:
    """The documents of an export: JSON (`-o json`), or one or more YAML documents (`-o yaml`, `---` separated)."""
    try:
        return [json.loads(text)]
    except json.JSONDecodeError:
        pass
    try:
        docs = [d for d in load_documents(text) if d is not None]
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "parse error"
        raise ValueError(f"{where}: neither JSON nor YAML ({first}); export LLMJobs with "
                         "`kubectl get llmjobs -A -o yaml`") from None
    if not docs:
        raise ValueError(f"{where} is empty")
    return docs


def load_file(path: Path) -> list[JobRecord]:
    """LLMJobs from an export file (`-` reads stdin), JSON or YAML."""
    if str(path) == "-":
        text, where = sys.stdin.read(), "stdin"
    else:
        text, where = path.read_text(encoding="utf-8"), str(path)
    try:
        objects = [o for doc in parse_export(text, where) for o in objects_of(doc)]
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    jobs = only_llmjobs(objects)
    if objects and not jobs:  # the wrong export would otherwise read as a report of no jobs
        kinds = sorted({str(o.get("kind")) if isinstance(o, Mapping) else type(o).__name__ for o in objects})
        raise ValueError(f"{where}: no LLMJob among its {len(objects)} object(s) (kind {', '.join(kinds)}); "
                         "export LLMJobs with `kubectl get llmjobs -A -o yaml`")
    return [parse_llmjob(i) for i in jobs]
