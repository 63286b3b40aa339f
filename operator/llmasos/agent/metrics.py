"""The agent's Prometheus metrics, rendered from the latest Snapshot by a collector in the agent's own registry.

A collector (rather than Gauge/Counter objects mutated by the loop) keeps the label sets exactly those of the
current snapshot: when a pod's retention ends its series disappear, with no stale-label bookkeeping, and there is
no global registry. Metrics (labels node, gpu, namespace, pod, llmjob; pod labels empty for an unowned GPU):

- llmasos_gpu_power_watts: power draw at the last sample;
- llmasos_gpu_power_limit_watts: the power limit in force;
- llmasos_gpu_energy_joules_total: energy attributed to (GPU, pod) since the agent first saw it (the idle bucket
  has empty pod labels; totals survive agent restarts through the state file);
- llmasos_gpu_default_power_limit_watts (node, gpu): NVML's default limit, for the "cap left behind" alert;
- llmasos_gpu_info (node, gpu, uuid, name, default/min/max limits): 1;
- llmasos_agent_events_total{node, event}: restores, caps_applied, cap_errors, counter_resets, energy_gaps, ...;
- llmasos_agent_last_pass_timestamp_seconds{node}: for a "GPU cap not restored / agent stuck" alert.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from llmasos.agent.energy import PodRef
from llmasos.agent.snapshot import Snapshot

LABELS = ["node", "gpu", "namespace", "pod", "llmjob"]


def _labels(node: str, gpu: int, pod: PodRef | None) -> list[str]:
    if pod is None:
        return [node, str(gpu), "", "", ""]
    return [node, str(gpu), pod.namespace, pod.name, pod.llmjob]


class AgentCollector(Collector):
    def __init__(self, snapshot: Callable[[], Snapshot]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        snap = self._snapshot()
        power = GaugeMetricFamily("llmasos_gpu_power_watts", "GPU power draw at the last sample.", labels=LABELS)
        limit = GaugeMetricFamily("llmasos_gpu_power_limit_watts", "GPU power limit in force.", labels=LABELS)
        info = GaugeMetricFamily(
            "llmasos_gpu_info",
            "GPUs the agent manages.",
            labels=["node", "gpu", "uuid", "name", "default_limit_watts", "min_limit_watts", "max_limit_watts"],
        )
        default = GaugeMetricFamily(
            "llmasos_gpu_default_power_limit_watts", "NVML default power limit.", labels=["node", "gpu"]
        )
        for g in snap.gpus:
            default.add_metric([snap.node, str(g.index)], g.default_w)
            power.add_metric(_labels(snap.node, g.index, g.pod), g.power_w)
            limit.add_metric(_labels(snap.node, g.index, g.pod), g.limit_w)
            info.add_metric(
                [snap.node, str(g.index), g.uuid, g.name, f"{g.default_w:g}", f"{g.min_w:g}", f"{g.max_w:g}"], 1.0
            )
        energy = CounterMetricFamily(
            "llmasos_gpu_energy_joules", "GPU energy attributed to the pod holding the GPU.", labels=LABELS
        )
        for (gpu, pod), joules in sorted(snap.ledger.gpu_pod_joules.items(), key=lambda kv: (kv[0][0], str(kv[0][1]))):
            energy.add_metric(_labels(snap.node, gpu, pod), joules)
        events = CounterMetricFamily("llmasos_agent_events", "Agent events by kind.", labels=["node", "event"])
        for name, count in snap.counters:
            events.add_metric([snap.node, name], float(count))
        last = GaugeMetricFamily(
            "llmasos_agent_last_pass_timestamp_seconds", "When the agent's last control pass ran.", labels=["node"]
        )
        last.add_metric([snap.node], snap.t)
        yield from (power, limit, default, energy, info, events, last)


def build_registry(snapshot: Callable[[], Snapshot]) -> CollectorRegistry:
    """A fresh registry holding only the agent's collector (no process-global state)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AgentCollector(snapshot))
    return registry


def serve_metrics(registry: CollectorRegistry, port: int, addr: str = "0.0.0.0") -> tuple[Any, threading.Thread]:
    """Serve /metrics on `port` in a daemon thread; returns (server, thread) so the caller can shut it down."""
    server, thread = start_http_server(port, addr=addr, registry=registry)
    return server, thread
