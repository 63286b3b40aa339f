"""Benchmark: energyOptimal on a multi-node job, one search per node against one search per job; prints figures,
asserts nothing.

A data-parallel job on two nodes (one simulated GPU each, the measured curves, 1 % noise) runs in lockstep: every
step waits for the slower GPU, so both progress at the slower one's pace, and the faster GPU spends the rest of each
step waiting at its idle power (`LockstepSim`, a coupling of the agent's simulator made for this benchmark). Two
real agents with one clock control the two pods (5 s passes, maxSlowdown 1.10):

- `per node`: each agent searches for its own pod (the agent without a leader source, as before);
- `per job`: the first pod's agent searches, the other follows its limit through the leader node's report
  (parsed with the operator's parser, as the API adapter reads it).

Columns: the final limits; the job's run time over its time at the default limit ("slowdown run"); both GPUs'
energy over the same job at the default limit ("energy"), and over the job at the best common limit in hindsight
within the bound ("E/best").

Run: .venv/bin/python -m bench.agent_multinode [--hours 2] [--seeds 3] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
from dataclasses import dataclass

from llmasos.agent.clock import ManualClock
from llmasos.agent.controller import AgentSettings, PowerAgent
from llmasos.agent.leader import LeaderView, leader_view
from llmasos.agent.mapping import FallbackMapper
from llmasos.agent.pods import NodePod, NodePodView
from llmasos.agent.power_policy import PowerSpec
from llmasos.agent.sim import SimBackend, SimProgressReader, _SimGpu
from llmasos.agent.state import MemoryStateStore
from llmasos.api.node_report import parse_node_report
from llmasos.gpus.curves import load_product

SLOWDOWN = 1.10
PRODUCTS = ("nvidia-a100-80gb", "nvidia-h100-80gb", "nvidia-l4")


class LockstepSim(SimBackend):
    """One node's GPU in a lockstep job: it works at the pace of the slowest GPU of the job and, for the part of
    each step it waits, draws its idle power."""

    peers: list[LockstepSim]

    def own_rates(self) -> tuple[float, float]:
        return SimBackend._rates(self, self._gpus[0])

    def _rates(self, gpu: _SimGpu) -> tuple[float, float]:
        power, rate = SimBackend._rates(self, gpu)
        if gpu.workload is None or rate <= 0:
            return power, rate
        pace = min(p.own_rates()[1] for p in self.peers)
        busy = pace / rate
        idle = min(gpu.limit_mw / 1000, self._idle_fraction * gpu.info.max_limit_mw / 1000)
        return power * busy + idle * (1 - busy), pace

    def set_power_limit_mw(self, index: int, milliwatts: int) -> None:
        for p in self.peers:  # the interval so far ran at the old limits on every node
            p.work_done(0)
        super().set_power_limit_mw(index, milliwatts)


class _Pods:
    def __init__(self, pod: NodePod) -> None:
        self.pod = pod

    def list_node_pods(self) -> list[NodePod]:
        return [self.pod]


class _Sink:
    def __init__(self) -> None:
        self.body: dict[str, object] | None = None

    def publish(self, body: object) -> None:
        self.body = dict(body)  # type: ignore[call-overload]


class _Leader:
    def __init__(self, sink: _Sink, name: str) -> None:
        self.sink, self.name = sink, name

    def leader_of(self, pod: NodePodView) -> LeaderView | None:
        if self.sink.body is None:
            return None
        return leader_view(parse_node_report(self.sink.body), pod.namespace, self.name)


@dataclass(frozen=True)
class Run:
    mode: str
    limits: tuple[float, float]
    slowdown_run: float
    energy: float  # over the job at the default limit
    e_best: float  # over the job at the best common limit


def best_common(product: str, workload: str) -> tuple[float, float, float]:
    """(default energy per work, best energy per work, its limit) for a lockstep pair at one common limit, true."""
    clock = ManualClock()
    sim = SimBackend(product, 1, clock)
    sim.set_workload(0, workload)
    p = sim.product

    def at(w: float) -> tuple[float, float]:
        sim.set_power_limit_mw(0, round(w * 1000))
        return sim.true_rates(0)

    base_p, base_r = at(p.default_w)
    feasible = [(w, *at(w)) for w in range(int(p.min_w), int(p.max_w) + 1)]
    feasible = [(w, pw, r) for w, pw, r in feasible if base_r / r <= SLOWDOWN]
    w, pw, r = min(feasible, key=lambda t: t[1] / t[2])
    return base_p / base_r, pw / r, float(w)


def run_job(product: str, workload: str, hours: float, seed: int, per_job: bool) -> Run:
    clock = ManualClock()
    spec = PowerSpec("energyOptimal", max_slowdown=SLOWDOWN)
    sims = [LockstepSim(product, 1, clock, seed=seed, node_name=f"n{i}") for i in range(2)]
    for s in sims:
        s.peers = sims
        s.set_workload(0, workload)
    pods = [NodePod(f"job-a0-{i}", "bench", f"uid-{i}", "job", 1, power=spec, attempt="0", rank=i, nnodes=2)
            for i in range(2)]  # fmt: skip
    sinks = [_Sink(), _Sink()]
    leaders = _Leader(sinks[0], pods[0].name) if per_job else None
    agents = [
        PowerAgent(AgentSettings(f"n{i}"), sims[i], _Pods(pods[i]), FallbackMapper(), SimProgressReader(sims[i]),
                   MemoryStateStore(), clock, report_sink=sinks[i], leaders=leaders)
        for i in range(2)
    ]
    for a in agents:
        a.start()
    base_rate = sims[0].own_rates()[1]
    work_total = hours * 3600 * base_rate
    t0 = clock.time()
    while min(s.work_done(0) for s in sims) < work_total:
        for a in agents:
            a.tick()
        clock.advance(5.0)
        for s in sims:
            s.work_done(0)  # integrate the pass at the limits it ran with
    energy = sum(s.true_energy_j(0) for s in sims)
    default_epw, best_epw, _ = best_common(product, workload)
    limits = (sims[0].power_limit_mw(0) / 1000, sims[1].power_limit_mw(0) / 1000)
    return Run(
        mode="per job" if per_job else "per node",
        limits=limits,
        slowdown_run=(clock.time() - t0) / (work_total / base_rate),
        energy=energy / (2 * work_total * default_epw),
        e_best=energy / (2 * work_total * best_epw),
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, default=2.0, help="job length at full speed")
    ap.add_argument("--seeds", type=int, default=3, help="noisy runs per workload")
    ap.add_argument("--quick", action="store_true", help="one product, 1 h jobs, one seed")
    args = ap.parse_args()
    hours = 1.0 if args.quick else args.hours
    products = PRODUCTS[:1] if args.quick else PRODUCTS
    seeds = 1 if args.quick else args.seeds
    print(f"## energyOptimal on a 2-node lockstep job (maxSlowdown {SLOWDOWN}), {hours:g} h of work, {seeds} seeds\n")
    print("| product | workload | mode | final limits W (seed 0) | slowdown run | energy / default | E / best |")
    print("|---|---|---|---|---|---|---|")
    summary: dict[str, list[Run]] = {"per node": [], "per job": []}
    for product in products:
        for w in load_product(product).workloads:
            best_w = best_common(product, w.name)[2]
            for per_job in (False, True):
                runs = [run_job(product, w.name, hours, seed, per_job) for seed in range(seeds)]
                summary[runs[0].mode] += runs
                print(f"| {product} | {w.name} (best {best_w:.0f} W) | {runs[0].mode} "
                      f"| {runs[0].limits[0]:.0f} / {runs[0].limits[1]:.0f} "
                      f"| {statistics.mean(r.slowdown_run for r in runs):.4f} "
                      f"(max {max(r.slowdown_run for r in runs):.4f}) "
                      f"| {statistics.mean(r.energy for r in runs):.4f} "
                      f"| {statistics.mean(r.e_best for r in runs):.4f} |")
    print()
    for mode, runs in summary.items():
        print(f"{mode}: energy / default mean {statistics.mean(r.energy for r in runs):.4f}, E / best mean "
              f"{statistics.mean(r.e_best for r in runs):.4f} (max {max(r.e_best for r in runs):.4f}), slowdown run "
              f"max {max(r.slowdown_run for r in runs):.4f}, runs over {SLOWDOWN}: "
              f"{sum(r.slowdown_run > SLOWDOWN for r in runs)}/{len(runs)}")


if __name__ == "__main__":
    main()
