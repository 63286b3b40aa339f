"""Small builders for agent tests: a node of simulated GPUs, pods, and an agent wired to them with a manual clock."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from llmasos.agent.clock import ManualClock
from llmasos.agent.controller import AgentSettings, PowerAgent
from llmasos.agent.leader import LeaderSource
from llmasos.agent.mapping import FallbackMapper
from llmasos.agent.pods import NodePod, NodePodView
from llmasos.agent.power_policy import PowerSpec, SearchSettings
from llmasos.agent.sim import SimBackend, SimProgressReader
from llmasos.agent.state import MemoryStateStore, StateStore, Store
from llmasos.errors import TransientError


def pod(name: str, gpus: int = 1, policy: str = "none", phase: str = "Running", **power: object) -> NodePod:
    spec = PowerSpec.from_mapping({"policy": policy, **power})
    return NodePod(name, "default", f"uid-{name}", llmjob=f"job-{name}", gpu_request=gpus, phase=phase, power=spec)


class Pods:
    """A mutable PodLister; `down=True` makes it fail like an unreachable API server."""

    def __init__(self, *pods: NodePod) -> None:
        self.pods = list(pods)
        self.down = False

    def list_node_pods(self) -> list[NodePodView]:
        if self.down:
            raise TransientError("API server unreachable")
        return list(self.pods)

    def remove(self, name: str) -> None:
        self.pods = [p for p in self.pods if p.name != name]

    def replace(self, new: NodePod) -> None:
        self.pods = [new if p.name == new.name else p for p in self.pods]


class Sink:
    def __init__(self) -> None:
        self.bodies: list[Mapping[str, object]] = []

    def publish(self, body: Mapping[str, object]) -> None:
        self.bodies.append(body)


@dataclass
class Node:
    """Simulated hardware that outlives agents (as a real GPU does), plus whatever agent runs on it now."""

    clock: ManualClock
    sim: SimBackend
    pods: Pods
    store: Store
    sink: Sink = field(default_factory=Sink)
    workload: str = "gpt3-xl"
    tokens_per_step: float = 0.0  # > 0: the simulated workers also export a token counter
    name: str = "node-1"

    def agent(self, leaders: LeaderSource | None = None, **settings: object) -> PowerAgent:
        search = SearchSettings(warmup_s=5, window_s=30, recheck_s=1e9)
        cfg = AgentSettings(node_name=self.name, search=search, **settings)  # type: ignore[arg-type]

        def on_assign(assignment: Mapping[str, tuple[int, ...]], live: Mapping[str, NodePodView]) -> None:
            busy = {i for gpus in assignment.values() for i in gpus}
            for i in range(self.sim.device_count()):
                self.sim.set_workload(i, self.workload if i in busy else None)

        return PowerAgent(
            cfg, self.sim, self.pods, FallbackMapper(), SimProgressReader(self.sim, self.tokens_per_step), self.store,
            self.clock, report_sink=self.sink, on_assign=on_assign, leaders=leaders,
        )  # fmt: skip

    def run(self, agent: PowerAgent, seconds: float, step: float = 5.0) -> None:
        for _ in range(round(seconds / step)):
            agent.tick()
            self.clock.advance(step)

    def limits_w(self) -> list[float]:
        return [self.sim.power_limit_mw(i) / 1000 for i in range(self.sim.device_count())]


def make_node(
    *pods: NodePod,
    product: str = "nvidia-a100-80gb",
    gpus: int = 8,
    state_file: Path | None = None,
    seed: int = 0,
    name: str = "node-1",
    clock: ManualClock | None = None,
    **sim: object,
) -> Node:
    clock = clock or ManualClock()
    backend = SimBackend(product, gpus, clock, seed=seed, node_name=name, **sim)  # type: ignore[arg-type]
    store: Store = StateStore(state_file) if state_file is not None else MemoryStateStore()
    return Node(clock=clock, sim=backend, pods=Pods(*pods), store=store, name=name)
