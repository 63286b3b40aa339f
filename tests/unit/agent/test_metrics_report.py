"""Prometheus exposition of the agent's snapshot, and the node report's shape and round trip."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from llmasos.agent.energy import EnergyLedger, PodRef
from llmasos.agent.metrics import build_registry
from llmasos.agent.node_report import build_node_report
from llmasos.agent.snapshot import GpuStatus, PodStatus, Snapshot
from llmasos.api.node_report import REPORT_LABEL, parse_node_report, report_name

POD = PodRef("team-a", "llm-w-0", "uid-0", "llm")


def snapshot() -> Snapshot:
    gpus = (
        GpuStatus(0, "GPU-0", "NVIDIA L4", 55.5, 60.0, 72.0, 40.0, 72.0, POD, True),
        GpuStatus(1, "GPU-1", "NVIDIA L4", 12.0, 72.0, 72.0, 40.0, 72.0, None, True),
    )
    pods = (PodStatus(POD, (0,), "energyOptimal", 60.0, "Settled", 5000.0, chosen_w=60.0, slowdown=1.08),)
    ledger = EnergyLedger({(0, POD): 5000.0, (1, None): 700.0})
    return Snapshot("gpu-l4-000", 1_700_000_000.0, "fallback", gpus, pods, ledger, (("restores", 2),))


def samples() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(build_registry(snapshot)).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def test_gpu_metrics_with_pod_labels() -> None:
    got = samples()
    owned = (("gpu", "0"), ("llmjob", "llm"), ("namespace", "team-a"), ("node", "gpu-l4-000"), ("pod", "llm-w-0"))
    idle = (("gpu", "1"), ("llmjob", ""), ("namespace", ""), ("node", "gpu-l4-000"), ("pod", ""))
    assert got[("llmasos_gpu_power_watts", owned)] == 55.5
    assert got[("llmasos_gpu_power_limit_watts", owned)] == 60.0
    assert got[("llmasos_gpu_power_limit_watts", idle)] == 72.0
    assert got[("llmasos_gpu_energy_joules_total", owned)] == 5000.0
    assert got[("llmasos_gpu_energy_joules_total", idle)] == 700.0
    assert got[("llmasos_gpu_default_power_limit_watts", (("gpu", "0"), ("node", "gpu-l4-000")))] == 72.0
    assert got[("llmasos_agent_events_total", (("event", "restores"), ("node", "gpu-l4-000")))] == 2.0


def test_registries_are_independent() -> None:
    a, b = build_registry(snapshot), build_registry(lambda: Snapshot("other", 0.0, "fallback"))
    assert b"gpu-l4-000" in generate_latest(a)
    assert b"gpu-l4-000" not in generate_latest(b)


def test_report_round_trip() -> None:
    body = build_node_report(snapshot(), namespace="llmasos-system")
    meta = body["metadata"]
    assert isinstance(meta, dict)
    assert meta["name"] == "llmasos-power-gpu-l4-000"
    assert meta["labels"] == {REPORT_LABEL: "true"}
    (r,) = parse_node_report(body)
    assert (r.node, r.namespace, r.name, r.llmjob, r.gpus, r.limit_w, r.energy_j) == (
        "gpu-l4-000", "team-a", "llm-w-0", "llm", ("GPU-0",), 60.0, 5000.0,
    )  # fmt: skip
    assert r.reported_at == "2023-11-14T22:13:20Z"


def test_report_name_stays_a_valid_length() -> None:
    long = "n" * 253
    assert len(report_name(long)) <= 253
    assert report_name(long) != report_name(long[:-1] + "m")
