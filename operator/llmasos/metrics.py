"""Every Prometheus collector of the operator, behind recorder functions (the metrics facade).

Handlers call `record_*` functions and never touch prometheus_client directly. Collectors live in an
:class:`OperatorMetrics` instance with its own registry (injected, no module globals), so tests can read values.
Names follow Prometheus conventions: `llmasos_` prefix, base units, `_total` for counters, bounded label sets
(phase, namespace, reason — never a job name).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from llmasos.api.schema import PHASES


class OperatorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
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

    def record_error(self, kind: str) -> None:
        self.reconcile_errors.labels(kind).inc()

    def record_created(self, kind: str) -> None:
        self.children_created.labels(kind).inc()

    def serve(self, port: int, addr: str = "0.0.0.0") -> None:
        if port:
            start_http_server(port, addr=addr, registry=self.registry)
