"""Simulated GPUs whose power and throughput answer the power limit as the measured curves say (see `curves`).

It lets the whole agent (capping, energyOptimal search, metering, restore) run on machines and fake nodes without
a GPU, deterministically: given the seed and the same sequence of calls, every reading is the same. Time comes
from the injected clock; state advances lazily, on each call, by integrating from the previous call.

Model per GPU: a busy GPU runs one workload curve; at limit L (fraction f = L / max) it draws
`power_at_max x max x rel_power(f)` watts and does `base_rate x rel_throughput(f)` work units per second, each
segment perturbed by multiplicative Gaussian noise (`noise`). An idle GPU draws `idle_fraction x max` (an assumption:
the curves have no idle data). The energy counter can be made to reset every `counter_reset_every_s` (driver reload)
or to be absent (`has_energy_counter=False`, like pre-Volta GPUs).

`hardware_file` makes the power limits outlive the process, as a real GPU's do: tests of "kill -9 the agent, start
it again" on fake nodes read it to see a stranded cap and its restoration.
"""

from __future__ import annotations

import json
import os
import random
import zlib
from dataclasses import dataclass
from pathlib import Path

from llmasos.agent.backend import GpuBackendError, GpuInfo, check_limit
from llmasos.agent.clock import Clock
from llmasos.agent.pods import NodePodView
from llmasos.agent.progress import DEFAULT_PROGRESS_METRICS, TOKENS_METRIC, ProgressReading, parse_progress
from llmasos.gpus.curves import Product, WorkloadCurve, load_product


@dataclass
class _SimGpu:
    info: GpuInfo
    limit_mw: int
    workload: WorkloadCurve | None = None
    energy_mj: float = 0.0
    true_energy_j: float = 0.0  # never resets: the ground truth tests compare metering with
    since_reset_s: float = 0.0
    work: float = 0.0
    last_power_w: float = 0.0


class SimBackend:
    """GpuBackend over simulated GPUs of one product (one node)."""

    def __init__(
        self,
        product: str,
        count: int,
        clock: Clock,
        *,
        seed: int = 0,
        node_name: str = "sim",
        noise: float = 0.01,
        idle_fraction: float = 0.12,
        base_rate: float = 1.0,
        has_energy_counter: bool = True,
        counter_reset_every_s: float | None = None,
        hardware_file: Path | None = None,
    ) -> None:
        self.product: Product = load_product(product)
        self._clock = clock
        self._rng = random.Random(zlib.crc32(f"{seed}/{node_name}/{self.product.key}".encode()))
        self._noise = noise
        self._idle_fraction = idle_fraction
        self._base_rate = base_rate
        self._reset_every = counter_reset_every_s
        self._has_counter = has_energy_counter
        self._last_t = clock.time()
        self.resets = 0
        p = self.product
        self._gpus = [
            _SimGpu(
                info=GpuInfo(
                    index=i,
                    uuid=sim_gpu_uuid(seed, node_name, i),
                    name=p.nvml_name,
                    min_limit_mw=round(p.min_w * 1000),
                    max_limit_mw=round(p.max_w * 1000),
                    default_limit_mw=round(p.default_w * 1000),
                    has_energy_counter=has_energy_counter,
                ),
                limit_mw=round(p.default_w * 1000),
            )
            for i in range(count)
        ]
        self._hardware_file = hardware_file
        if hardware_file is not None and hardware_file.exists():
            limits = json.loads(hardware_file.read_text())
            for gpu in self._gpus:
                gpu.limit_mw = int(limits.get(gpu.info.uuid, gpu.limit_mw))

    # ------------------------------------------------------------------------------------------- GpuBackend
    def device_count(self) -> int:
        return len(self._gpus)

    def info(self, index: int) -> GpuInfo:
        return self._gpu(index).info

    def power_limit_mw(self, index: int) -> int:
        return self._gpu(index).limit_mw

    def set_power_limit_mw(self, index: int, milliwatts: int) -> None:
        gpu = self._gpu(index)
        check_limit(gpu.info, milliwatts)
        self._advance()
        gpu.limit_mw = int(milliwatts)
        if self._hardware_file is not None:
            tmp = self._hardware_file.with_suffix(".tmp")
            tmp.write_text(json.dumps({g.info.uuid: g.limit_mw for g in self._gpus}, indent=1))
            os.replace(tmp, self._hardware_file)

    def power_usage_mw(self, index: int) -> int:
        self._advance()
        return round(self._gpu(index).last_power_w * 1000)

    def total_energy_mj(self, index: int) -> int | None:
        self._advance()
        return int(self._gpu(index).energy_mj) if self._has_counter else None

    def close(self) -> None:
        self._advance()

    # ------------------------------------------------------------------------------------------- simulation
    def set_workload(self, index: int, workload: str | None) -> None:
        """Run `workload` (a curve name of this product) on the GPU from now on; None makes it idle."""
        self._advance()
        self._gpu(index).workload = None if workload is None else self.product.workload(workload)

    def workload_for(self, key: str) -> str:
        """A workload of this product chosen deterministically from `key` (e.g. a pod uid)."""
        names = [w.name for w in self.product.workloads]
        return names[zlib.crc32(key.encode()) % len(names)]

    def work_done(self, index: int) -> float:
        """Cumulative work units the GPU has done (the worker's progress counter in the simulation)."""
        self._advance()
        return self._gpu(index).work

    def reset_energy_counter(self, index: int) -> None:
        """What a driver reload or GPU reset does to NVML's counter."""
        self._advance()
        self._gpu(index).energy_mj = 0.0
        self.resets += 1

    def true_energy_j(self, index: int) -> float:
        """Energy the GPU really drew since the simulation began (counter resets do not touch it)."""
        self._advance()
        return self._gpu(index).true_energy_j

    def true_rates(self, index: int) -> tuple[float, float]:
        """(power W, work units/s) without noise at the current limit: the ground truth for tests and benchmarks."""
        return self._rates(self._gpu(index))

    def _gpu(self, index: int) -> _SimGpu:
        if not 0 <= index < len(self._gpus):
            raise GpuBackendError(f"no simulated GPU {index} (have {len(self._gpus)})", permanent=True)
        return self._gpus[index]

    def _rates(self, gpu: _SimGpu) -> tuple[float, float]:
        max_w = gpu.info.max_limit_mw / 1000
        limit_w = gpu.limit_mw / 1000
        if gpu.workload is None:
            return min(limit_w, self._idle_fraction * max_w), 0.0
        rel_thr, rel_power = gpu.workload.response(limit_w / max_w)
        power = min(limit_w, gpu.workload.power_at_max * max_w * rel_power)
        return power, self._base_rate * rel_thr

    def _advance(self) -> None:
        now = self._clock.time()
        dt = now - self._last_t
        if dt <= 0:
            return
        self._last_t = now
        for gpu in self._gpus:
            power, rate = self._rates(gpu)
            power *= max(0.0, 1.0 + self._rng.gauss(0.0, self._noise))
            rate *= max(0.0, 1.0 + self._rng.gauss(0.0, self._noise))
            gpu.last_power_w = power
            gpu.work += rate * dt
            gpu.energy_mj += power * dt * 1000
            gpu.true_energy_j += power * dt
            gpu.since_reset_s += dt
            if self._reset_every is not None and gpu.since_reset_s >= self._reset_every:
                # The counter restarts from zero; what was drawn since the reset instant is all it holds.
                gpu.since_reset_s %= self._reset_every
                gpu.energy_mj = power * gpu.since_reset_s * 1000
                self.resets += 1


def sim_gpu_uuid(seed: int, node: str, index: int) -> str:
    """The UUID of simulated GPU `index` on `node`: stable, NVML-shaped, and unique per (seed, node, index).

    The one derivation: the fake-GPU device plugin of the local real node (e2e/deviceplugin) advertises these as its
    device ids, so the ids the kubelet hands out (and PodResources reports) are the UUIDs this backend reports.
    """
    h = f"{zlib.crc32(f'{seed}/{node}/{index}'.encode()):08x}"
    return f"GPU-{h}-{index:04x}-4000-8000-{zlib.crc32(node.encode()):012x}"


class SimProgressReader:
    """A simulated worker's /metrics, read as the agent reads a real one (same text format, same parser).

    Steps are the mean work done by the pod's GPUs (they run in lockstep: one work unit is one optimizer step).
    With `tokens_per_step` > 0 the simulated worker also exports `llmasos_worker_tokens_total` = steps x tokens per
    step, as the real worker does for a global batch of that many tokens; that figure is an input of the
    simulation (`--sim-tokens-per-step`), stated where it is used, not a measurement.
    """

    def __init__(self, sim: SimBackend, tokens_per_step: float = 0.0,
                 metric_names: tuple[str, ...] = DEFAULT_PROGRESS_METRICS) -> None:
        if tokens_per_step < 0:
            raise ValueError(f"tokens_per_step must be >= 0, got {tokens_per_step}")
        self._sim, self._tokens_per_step, self._names = sim, tokens_per_step, metric_names

    def metrics_text(self, gpus: tuple[int, ...]) -> str:
        """What the simulated worker of a pod on these GPUs serves on its progress port."""
        steps = sum(self._sim.work_done(i) for i in gpus) / len(gpus)
        lines = ["# TYPE llmasos_worker_step gauge", f"llmasos_worker_step {steps!r}"]
        if self._tokens_per_step > 0:
            lines += [f"# TYPE {TOKENS_METRIC} counter", f"{TOKENS_METRIC} {steps * self._tokens_per_step!r}"]
        return "\n".join(lines) + "\n"

    def read(self, pod: NodePodView, gpus: tuple[int, ...]) -> ProgressReading | None:
        if not gpus:
            return None
        return parse_progress(self.metrics_text(gpus), self._names)
