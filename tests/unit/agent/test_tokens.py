"""Tokens for the operator's energy per token: read from the worker's /metrics for every pod the agent meters.

The HTTP path is checked against the real worker's progress server (llmasos_worker.progress) on loopback; the
simulated path against the simulated worker's counter (steps x tokens per step).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from llmasos.agent.clock import ManualClock
from llmasos.agent.controller import AgentSettings, PowerAgent
from llmasos.agent.mapping import FallbackMapper
from llmasos.agent.node_report import build_node_report
from llmasos.agent.pods import NodePod, NodePodView, node_pod_from_object
from llmasos.agent.progress import HttpProgressReader, ProgressReading, WorkerCountsOverlay
from llmasos.agent.sim import SimBackend, SimProgressReader
from llmasos.agent.state import MemoryStateStore
from llmasos.api.node_report import parse_node_report
from llmasos_worker.progress import NoEnergy, Progress, ProgressServer
from llmasos_worker.runtime import write_final_progress
from tests.unit.agent.builders import Sink, make_node, pod


def report_pods(sink: Sink) -> dict[str, dict[str, object]]:
    doc = json.loads(str(sink.bodies[-1]["data"]["report.json"]))  # type: ignore[index]
    return {p["name"]: p for p in doc["pods"]}


@pytest.fixture
def worker() -> Iterator[tuple[Progress, int]]:
    """The real worker's progress endpoint, on loopback, on a free port."""
    progress = Progress()
    server = ProgressServer(progress, NoEnergy(), {"job": "j"}, "127.0.0.1", 0).start()
    try:
        yield progress, server.port
    finally:
        server.stop()


def test_tokens_from_a_real_worker_endpoint_reach_the_report(worker: tuple[Progress, int]) -> None:
    progress, port = worker
    clock = ManualClock()
    sim = SimBackend("nvidia-a100-80gb", 8, clock, node_name="node-1")
    w = replace(pod("w", gpus=4, policy="fraction", fraction=0.8), pod_ip="127.0.0.1", progress_port=port)

    class Pods:
        pods: list[NodePodView] = [w]

        def list_node_pods(self) -> list[NodePodView]:
            return list(self.pods)

    sink, pods = Sink(), Pods()
    agent = PowerAgent(AgentSettings("node-1", report_interval_s=30), sim, pods, FallbackMapper(),
                       HttpProgressReader(timeout_s=2.0), MemoryStateStore(), clock, report_sink=sink)
    agent.start()
    progress.plan(100)
    progress.update(10, 40960)
    agent.tick()
    assert agent.snapshot.pod("w").tokens == 40960.0  # type: ignore[union-attr]
    clock.advance(5)
    progress.update(20, 81920)
    agent.tick()  # within progress_interval_s (10 s): not read again
    assert agent.snapshot.pod("w").tokens == 40960.0  # type: ignore[union-attr]
    clock.advance(30)
    agent.tick()
    assert report_pods(sink)["w"]["tokens"] == 81920.0
    assert (report_pods(sink)["w"]["step"], report_pods(sink)["w"]["plannedSteps"]) == (20.0, 100.0)
    assert report_pods(sink)["w"]["remainingSeconds"] is not None  # 80 steps at the pace of the last 10
    pods.pods = []  # the pod ended: its last count stays in the report with its energy
    clock.advance(30)
    agent.tick()
    ended = report_pods(sink)["w"]
    assert ended["state"] == "Ended"
    assert ended["tokens"] == 81920.0
    assert ended["remainingSeconds"] is None, "an ended pod has no run time left to estimate"
    parsed = parse_node_report(sink.bodies[-1])[0]
    assert (parsed.tokens, parsed.step, parsed.planned_steps) == (81920.0, 20.0, 100.0)
    assert parsed.default_w == 400.0


def test_real_workers_on_simulated_gpus_count_their_own_tokens_and_steps(worker: tuple[Progress, int]) -> None:
    """--sim-worker-metrics (the local real node): the simulated GPUs' work for the search, the worker's counts."""
    progress, port = worker
    clock = ManualClock()
    sim = SimBackend("nvidia-a100-80gb", 2, clock, node_name="node-1")
    reader = WorkerCountsOverlay(SimProgressReader(sim), HttpProgressReader(timeout_s=2.0))
    real = replace(pod("w", gpus=1), pod_ip="127.0.0.1", progress_port=port)
    sim.set_workload(0, sim.workload_for(real.uid))
    clock.advance(10)
    progress.plan(100)
    progress.update(7, 7 * 512)
    reading = reader.read(real, (0,))
    assert reading is not None
    assert reading.work == pytest.approx(sim.work_done(0)), "the search measures the simulated GPU's work"
    assert reading.work > 0
    assert (reading.tokens, reading.step, reading.planned_steps) == (3584.0, 7.0, 100.0), "the worker's own counts"
    assert reader.read(replace(real, pod_ip=""), (0,)) == SimProgressReader(sim).read(real, (0,)), "no endpoint"


def test_simulated_workers_export_steps_times_tokens_per_step() -> None:
    node = make_node(pod("plain", gpus=2), pod("opt", gpus=2, policy="energyOptimal"))
    node.tokens_per_step = 2048.0
    agent = node.agent(report_interval_s=10)
    agent.start()
    node.run(agent, 120)
    snap = agent.snapshot
    for name, gpus in (("plain", (0, 1)), ("opt", (2, 3))):
        tokens = snap.pod(name).tokens  # type: ignore[union-attr]
        steps = sum(node.sim.work_done(i) for i in gpus) / 2
        assert tokens is not None
        # Read at most every 10 s (energyOptimal: every pass) while the GPUs keep working.
        assert steps * 2048 * 0.85 <= tokens <= steps * 2048
    assert {p["name"]: p["tokens"] for p in report_pods(node.sink).values()}.keys() == {"plain", "opt"}


def test_no_tokens_without_a_token_counter() -> None:
    node = make_node(pod("p", gpus=1))
    agent = node.agent(report_interval_s=10)
    agent.start()
    node.run(agent, 30)
    assert agent.snapshot.pod("p").tokens is None  # type: ignore[union-attr]
    assert report_pods(node.sink)["p"]["tokens"] is None
    assert parse_node_report(node.sink.bodies[-1])[0].tokens is None
    assert parse_node_report(node.sink.bodies[-1])[0].planned_steps is None


def test_a_silent_worker_is_asked_ever_less_often() -> None:
    calls: list[float] = []
    clock = ManualClock()

    class Silent:
        def read(self, pod: NodePodView, gpus: tuple[int, ...]) -> ProgressReading | None:
            calls.append(clock.time())
            return None

    class Pods:
        def list_node_pods(self) -> list[NodePodView]:
            return [NodePod("w", "ns", "u", "j", gpu_request=1, pod_ip="10.0.0.9", progress_port=9401)]

    sim = SimBackend("nvidia-a100-80gb", 1, clock)
    agent = PowerAgent(AgentSettings("n", progress_interval_s=10, progress_max_backoff_s=80), sim, Pods(),
                       FallbackMapper(), Silent(), MemoryStateStore(), clock)
    agent.start()
    for _ in range(200):
        agent.tick()
        clock.advance(5)
    t0 = calls[0]
    assert [t - t0 for t in calls[:6]] == [0, 10, 30, 70, 150, 230]  # waits 10, 20, 40, 80, then capped at 80


def test_reports_of_older_agents_parse_without_tokens() -> None:
    node = make_node(pod("p", gpus=1))
    agent = node.agent()
    agent.start()
    agent.tick()
    body = build_node_report(agent.snapshot)
    doc = json.loads(str(body["data"]["report.json"]))  # type: ignore[index]
    for key in ("tokens", "slowdown", "defaultW"):
        for p in doc["pods"]:
            p.pop(key)
    old = {**body, "data": {"report.json": json.dumps(doc)}}
    parsed = parse_node_report(old)[0]
    assert (parsed.tokens, parsed.slowdown, parsed.default_w) == (None, None, None)


def k8s_worker_pod(phase: str, message: str | None, port: int) -> dict[str, object]:
    """A worker pod as the API returns it; `message` is the container's termination message, once it ended."""
    state = {"running": {}} if message is None else {"terminated": {"exitCode": 0, "reason": "Completed",
                                                                       "message": message}}
    return {"metadata": {"name": "w", "namespace": "default", "uid": "uid-w", "labels": {"llmasos.io/llmjob": "j"}},
            "spec": {"containers": [{"name": "worker", "resources": {"limits": {"nvidia.com/gpu": "2"}},
                                     "env": [{"name": "LLMASOS_PROGRESS_PORT", "value": str(port)}]}]},
            "status": {"phase": phase, "podIP": "127.0.0.1", "containerStatuses": [{"name": "worker",
                                                                                    "state": state}]}}


def test_the_steps_after_the_last_read_come_from_the_termination_message(
        worker: tuple[Progress, int], tmp_path: Path) -> None:
    """The agent reads /metrics every 10 s; a job's last steps (or all of a short job's) fall after the last read,
    and the endpoint is gone with the pod. The worker's termination message carries the final count, also to an
    agent that restarted after the pod ended (its state keeps energy, not readings)."""
    progress, port = worker
    clock, store = ManualClock(), MemoryStateStore()
    sim = SimBackend("nvidia-a100-80gb", 4, clock, node_name="node-1")

    class Pods:
        pods = [k8s_worker_pod("Running", None, port)]

        def list_node_pods(self) -> list[NodePodView]:
            return [node_pod_from_object(p) for p in self.pods]

    def agent(sink: Sink) -> PowerAgent:
        return PowerAgent(AgentSettings("node-1", report_interval_s=30), sim, pods, FallbackMapper(),
                          HttpProgressReader(timeout_s=2.0), store, clock, report_sink=sink)

    pods, sink = Pods(), Sink()
    first = agent(sink)
    first.start()
    progress.plan(60)
    progress.update(10, 40960)
    first.tick()
    clock.advance(5)
    progress.update(60, 245760)  # the last steps, within the 10 s between reads
    log = tmp_path / "termination-log"
    log.touch()
    assert write_final_progress(progress, str(log))  # as the worker does on its clean exit
    pods.pods = [k8s_worker_pod("Succeeded", log.read_text(), port)]
    first.tick()
    assert agent_tokens(first, "w") == 245760.0
    clock.advance(30)
    first.tick()
    assert report_pods(sink)["w"]["tokens"] == 245760.0
    assert (report_pods(sink)["w"]["step"], report_pods(sink)["w"]["plannedSteps"]) == (60, 60)
    assert report_pods(sink)["w"]["state"] == "Ended"

    restarted_sink = Sink()
    restarted = agent(restarted_sink)  # a new agent on the same node and state, the pod object still there
    restarted.start()
    restarted.tick()
    assert agent_tokens(restarted, "w") == 245760.0
    restarted_report = parse_node_report(restarted_sink.bodies[-1])[0]
    assert (restarted_report.tokens, restarted_report.step, restarted_report.planned_steps) == (245760.0, 60, 60)


def test_a_failed_workers_log_tail_is_no_count(worker: tuple[Progress, int]) -> None:
    _, port = worker
    failed = k8s_worker_pod("Failed", "Traceback (most recent call last):\n  ...\nValueError: corpus", port)
    assert node_pod_from_object(failed).final_progress is None
    assert node_pod_from_object(k8s_worker_pod("Running", None, port)).final_progress is None


def agent_tokens(agent: PowerAgent, name: str) -> float | None:
    pod = agent.snapshot.pod(name)
    assert pod is not None
    return pod.tokens
