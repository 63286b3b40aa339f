"""Every Prometheus collector of the operator, behind recorder functions (the metrics facade).

Handlers call `record_*` functions and never touch prometheus_client directly. Collectors live in an
:class:`OperatorMetrics` instance with its own registry (injected, no module globals), so tests can read values.
Names follow Prometheus conventions: `llmasos_` prefix, base units, `_total` for counters, bounded label sets
(phase, namespace, kind, source, zone). One deliberate exception: `llmasos_llmjob_deferred_timestamp_seconds` names
the job, because "which job is waiting, until when" is the question its dashboard and alert answer; its series exist
only while a job is deferred (`clear_deferred` on start or deletion), so they are bounded by the deferred jobs.

Accounting counters are fed from `status.carbon` deltas (`record_carbon(namespace, previous, current)`): the handler
passes the value it read and the one it wrote (`api.energy_status.CarbonStatus`), so an operator restart neither
re-counts history nor needs memory.
Savings are exported as counterfactual emissions (run now, first pool, uncapped) next to the actual ones, so a
negative saving is not lost to a counter that cannot go down: saved = increase(counterfactual) - increase(actual).

Per-zone carbon-data series (data time, intensity, degraded) exist only while the zone is in use: a zone whose
forecast nobody asked for during `zone_ttl_s` (no job left to plan there) is dropped at the next scrape, so neither
its data age nor a fallback it once needed keeps an alert firing for a zone that is no longer used.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric

from llmasos.api import conditions as cond
from llmasos.api.energy_status import CarbonStatus
from llmasos.api.schema import PHASES

JOULES_PER_KWH = 3.6e6
DEFERRAL_BUCKETS = (0, 60, 300, 900, 1800, 3600, 7200, 14400, 28800, 43200, 86400, 172800, 604800)
INTENSITY_BUCKETS = (25, 50, 100, 150, 200, 300, 400, 500, 600, 800, 1000)
SCENARIOS = ("run_now", "first_pool", "uncapped")
DEADLINE_WARNING_REASONS = (cond.DEADLINE_TOO_CLOSE, cond.NO_CAPACITY_BEFORE_DEADLINE, cond.PROJECTED_LATE,
                            cond.DEADLINE_MISSED)
ZONE_TTL_SECONDS = 3600.0  # a zone nobody planned in for an hour is no longer in use


@dataclass
class _ZoneData:
    source: str
    updated_at: float
    intensity: float | None
    degraded: bool
    seen: float  # when a pass last asked for this zone's data (the operator's clock, Unix seconds)


class _ZoneCollector:
    """The three per-zone gauges, rendered at scrape time from the zones still in use (see the module docstring)."""

    def __init__(self, clock: Callable[[], float], ttl_s: float) -> None:
        self._clock, self._ttl = clock, ttl_s
        self._zones: dict[str, _ZoneData] = {}
        self._lock = threading.Lock()  # recorded on the event loop, collected on the metrics server's thread

    def record(self, zone: str, source: str, updated_at: float, intensity: float | None, degraded: bool) -> None:
        with self._lock:
            old = self._zones.get(zone)
            if intensity is None and old is not None and old.source == source:
                intensity = old.intensity  # an answer without a value keeps the last one of the same source
            self._zones[zone] = _ZoneData(source, updated_at, intensity, degraded, self._clock())

    def touch(self, zone: str) -> None:
        with self._lock:
            if zone in self._zones:
                self._zones[zone].seen = self._clock()

    def current(self) -> dict[str, _ZoneData]:
        """The zones in use; the others are forgotten here."""
        horizon = self._clock() - self._ttl
        with self._lock:
            for zone in [z for z, d in self._zones.items() if d.seen < horizon]:
                del self._zones[zone]
            return dict(self._zones)

    def describe(self) -> list[Metric]:
        return []  # names are fixed; no collect() at registration

    def collect(self) -> Iterator[Metric]:
        zones = self.current()
        data_time = GaugeMetricFamily(
            "llmasos_carbon_data_timestamp_seconds",
            "Time of the newest carbon-intensity data in use per zone (updatedAt); age = time() - this.",
            labels=["zone", "source"])
        intensity = GaugeMetricFamily("llmasos_carbon_intensity_grams_per_kwh",
                                      "Latest carbon intensity per zone (gCO2e/kWh).", labels=["zone", "source"])
        degraded = GaugeMetricFamily("llmasos_carbon_source_degraded",
                                     "1 while a zone's data comes from a fallback source (an earlier source failed).",
                                     labels=["zone"])
        for zone, d in sorted(zones.items()):
            data_time.add_metric([zone, d.source], d.updated_at)
            if d.intensity is not None:
                intensity.add_metric([zone, d.source], d.intensity)
            degraded.add_metric([zone], 1.0 if d.degraded else 0.0)
        yield from (data_time, intensity, degraded)


class OperatorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None, *, clock: Callable[[], float] = time.time,
                 zone_ttl_s: float = ZONE_TTL_SECONDS) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self._zones = _ZoneCollector(clock, zone_ttl_s)
        self.jobs_by_phase = Gauge("llmasos_llmjobs", "LLMJobs known to this operator, by phase.",
                                   ["phase"], registry=r)
        self.reconcile_seconds = Histogram(
            "llmasos_reconcile_duration_seconds", "Time spent in one reconcile pass of an LLMJob.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10), registry=r)
        self.reconcile_errors = Counter("llmasos_reconcile_errors_total",
                                        "Reconcile passes that ended in an error, by kind.", ["kind"], registry=r)
        self.transitions = Counter("llmasos_llmjob_transitions_total", "Phase transitions of LLMJobs.",
                                   ["phase"], registry=r)
        self.children_created = Counter("llmasos_children_created_total", "Child objects created.", ["kind"],
                                        registry=r)
        self._phase_of: dict[str, str] = {}
        for phase in PHASES:
            self.jobs_by_phase.labels(phase).set(0)
        self.leader = Gauge("llmasos_operator_leader",
                            "1 while this replica reconciles (peering leader, or standalone), 0 while it stands by.",
                            registry=r)
        self._init_carbon(r)
        self._init_admission_check(r)

    def _init_admission_check(self, r: CollectorRegistry) -> None:
        """The Kueue carbon AdmissionCheck (handlers/admission_check.py)."""
        self.check_decisions = Counter(
            "llmasos_admission_check_decisions_total",
            "Verdicts the carbon AdmissionCheck wrote on Kueue workloads, by state and reason.",
            ["state", "reason"], registry=r)
        self.check_hold_seconds = Histogram(
            "llmasos_admission_check_hold_seconds",
            "Per carbon-timed Kueue workload let through: time from its job's submission to the check's Ready.",
            buckets=DEFERRAL_BUCKETS, registry=r)

    def record_admission_check(self, state: str, reason: str, held_seconds: float | None = None) -> None:
        """A verdict written on a workload; `held_seconds` once, when a carbon-timed one is let through."""
        self.check_decisions.labels(state, reason).inc()
        if held_seconds is not None:
            self.check_hold_seconds.observe(max(held_seconds, 0.0))

    def _init_carbon(self, r: CollectorRegistry) -> None:
        self.deferral_seconds = Histogram(
            "llmasos_llmjob_deferral_seconds", "Time from submission to the first start of an LLMJob.",
            buckets=DEFERRAL_BUCKETS, registry=r)
        self.intensity = Histogram(
            "llmasos_llmjob_intensity_grams_per_kwh",
            "Per finished LLMJob: planned, achieved and run-now average grid intensity (gCO2e/kWh).",
            ["kind"], buckets=INTENSITY_BUCKETS, registry=r)
        self.energy = Counter("llmasos_energy_joules", "IT energy of LLMJobs (GPU energy metered by the agents).",
                              ["namespace"], registry=r)
        self.facility_energy = Counter("llmasos_facility_energy_joules", "Facility energy of LLMJobs (IT x PUE).",
                                       ["namespace"], registry=r)
        self.emissions = Counter("llmasos_emissions_grams", "Location-based emissions of LLMJobs (gCO2e).",
                                 ["namespace"], registry=r)
        self.counterfactual = Counter(
            "llmasos_counterfactual_emissions_grams",
            "Emissions had LLMJobs run now / on the first listed pool / uncapped (gCO2e); minus the actual = saved.",
            ["namespace", "scenario"], registry=r)
        self.deferred = Gauge(
            "llmasos_llmjob_deferred_timestamp_seconds",
            "Deferred LLMJobs: planned start, latest start and deadline (Unix time); only while deferred.",
            ["namespace", "llmjob", "bound"], registry=r)
        self.source_errors = Counter("llmasos_carbon_source_errors", "Failed requests to a carbon-intensity source.",
                                     ["source"], registry=r)
        self.deadline_warnings = Counter(
            "llmasos_llmjob_deadline_warnings",
            "Warning Events posted on LLMJobs' deadlines, by reason: at risk (DeadlineTooClose, "
            "NoCapacityBeforeDeadline, ProjectedLate: running too slowly to finish by it) or missed "
            "(DeadlineMissed: not finished by its deadline).",
            ["reason"], registry=r)
        r.register(self._zones)  # a custom collector (collect/describe)
        # Known label values start at 0, so rate()/increase() also count their first increment.
        for phase in PHASES:
            self.transitions.labels(phase)
        for kind in ("api", "placement", "carbon"):
            self.reconcile_errors.labels(kind)
        for kind in ("Job", "Service"):
            self.children_created.labels(kind)
        for source in ("electricitymaps", "trace", "static", "fallback"):
            self.source_errors.labels(source)
        for kind in ("planned", "achieved", "run_now"):
            self.intensity.labels(kind)
        for reason in DEADLINE_WARNING_REASONS:
            self.deadline_warnings.labels(reason)

    def record_phase(self, uid: str, phase: str) -> None:
        old = self._phase_of.get(uid)
        if old == phase:
            return
        if old:
            self.jobs_by_phase.labels(old).dec()
        self.jobs_by_phase.labels(phase).inc()
        self.transitions.labels(phase).inc()
        self._phase_of[uid] = phase

    def forget(self, uid: str) -> None:
        old = self._phase_of.pop(uid, None)
        if old:
            self.jobs_by_phase.labels(old).dec()

    def record_reconcile(self, seconds: float) -> None:
        self.reconcile_seconds.observe(seconds)

    def record_leader(self, leading: bool) -> None:
        self.leader.set(1 if leading else 0)

    def record_error(self, kind: str) -> None:
        self.reconcile_errors.labels(kind).inc()

    def record_created(self, kind: str) -> None:
        self.children_created.labels(kind).inc()

    # -- carbon accounting -------------------------------------------------------------------------------------
    def record_carbon(self, namespace: str, previous: CarbonStatus | None, current: CarbonStatus) -> None:
        """Add what changed between two `status.carbon` values of one job (previous None: a new job)."""
        before, after = _carbon_values(previous or CarbonStatus()), _carbon_values(current)
        delta = {k: max(after[k] - before[k], 0.0) for k in after}
        self.energy.labels(namespace).inc(delta["energy"])
        self.facility_energy.labels(namespace).inc(delta["facility"])
        self.emissions.labels(namespace).inc(delta["grams"])
        for scenario in SCENARIOS:
            self.counterfactual.labels(namespace, scenario).inc(delta[scenario])

    def record_deferral(self, seconds: float) -> None:
        """Once per job, when it first starts: how long it waited for its window."""
        self.deferral_seconds.observe(max(seconds, 0.0))

    def record_intensities(self, *, planned: float | None, achieved: float | None, run_now: float | None) -> None:
        """Once per finished job: the plan's expected intensity, the achieved average, and run-now's."""
        for kind, value in (("planned", planned), ("achieved", achieved), ("run_now", run_now)):
            if value is not None:
                self.intensity.labels(kind).observe(value)

    def record_deferred(
        self, namespace: str, llmjob: str, *, planned_start: datetime, latest_start: datetime,
        deadline: datetime | None,
    ) -> None:
        for bound, moment in (("planned_start", planned_start), ("latest_start", latest_start), ("deadline", deadline)):
            if moment is not None:
                self.deferred.labels(namespace, llmjob, bound).set(moment.timestamp())

    def record_deadline_warning(self, reason: str) -> None:
        """A DeadlineAtRisk Warning Event was posted (once per change of the condition, not once per pass)."""
        self.deadline_warnings.labels(reason).inc()

    def clear_deferred(self, namespace: str, llmjob: str) -> None:
        """The job started or was deleted: drop its series."""
        for bound in ("planned_start", "latest_start", "deadline"):
            with contextlib.suppress(KeyError):
                self.deferred.remove(namespace, llmjob, bound)

    def record_carbon_data(
        self, source: str, zone: str, *, updated_at: datetime, intensity: float | None, degraded: bool
    ) -> None:
        """After a successful fetch for `zone` (through the fallback chain): which source, how fresh, what value.
        A zone that moved to another source loses the old source's series; one not asked for within the TTL, all."""
        self._zones.record(zone, source, updated_at.timestamp(), intensity, degraded)

    def zone_in_use(self, zone: str) -> None:
        """A pass asked for `zone`'s data and every source failed: its (ageing) series stay, so the alert can fire."""
        self._zones.touch(zone)

    def current_zones(self) -> list[str]:
        return sorted(self._zones.current())

    def record_carbon_error(self, source: str) -> None:
        self.source_errors.labels(source).inc()

    def serve(self, port: int, addr: str = "127.0.0.1") -> None:
        if port:
            start_http_server(port, addr=addr, registry=self.registry)


def _carbon_values(carbon: CarbonStatus) -> dict[str, float]:
    """Joules and grams of one `status.carbon`, with the three counterfactuals derived from its savings (a number
    missing from an older operator's status counts as 0)."""

    def num(value: float | None) -> float:
        return 0.0 if value is None else float(value)

    energy_kwh, facility_kwh, grams = num(carbon.energy_kwh), num(carbon.facility_energy_kwh), num(carbon.grams)
    pue = facility_kwh / energy_kwh if energy_kwh > 0 else 1.0
    cap_grams = num(carbon.power_cap_saved_kwh) * pue * num(carbon.average_intensity)
    return {
        "energy": energy_kwh * JOULES_PER_KWH,
        "facility": facility_kwh * JOULES_PER_KWH,
        "grams": grams,
        "run_now": grams if carbon.run_now_grams is None else float(carbon.run_now_grams),
        "first_pool": grams + num(carbon.pool_choice_saved_grams),
        "uncapped": grams + cap_grams,
    }
