"""How many CPU threads each rank may use: the container's CPU budget divided by the ranks on this node.

Why: torch sizes its intra-op pool to every core it can see. In a pod that is the node's cores, not the pod's
share, so each rank of an 8-GPU pod would start one thread per node core and spin them between kernels. Measured on
an H200 (issue #24): 16 intra-op threads burnt 34 CPU-seconds where one thread needed 3.6, for the same 300 steps,
and ran no faster. torchrun avoids the worst of it by setting OMP_NUM_THREADS=1 whenever it starts more than one
process per node; this module does the same arithmetic with the real budget:

- the budget is the smallest of: the CPUs this process may run on (``sched_getaffinity``), the cgroup CPU quota
  (v2 ``cpu.max``, v1 ``cpu.cfs_quota_us / cpu.cfs_period_us``, the tightest of the process's cgroup and its
  ancestors) and the LLMJob's CPU request, which the operator passes as ``LLMASOS_CPU_REQUEST`` (the quota only
  exists when a limit is set; the request is what the scheduler reserved for the pod);
- each rank gets ``floor(budget / local ranks)`` threads, at least one; a CUDA rank only prepares small batches and
  launches kernels, so it gets one (:data:`CUDA_RANK_THREADS`);
- an explicit ``OMP_NUM_THREADS`` in the environment (what torchrun sets, or what a user puts in ``spec.env``)
  wins over that, and the task config's ``threads`` / ``interop_threads`` win over everything.

Everything but :func:`apply_threads` is torch-free and reads files under a root it is given, so the tests build
fake cgroup trees in a temporary directory.
"""

from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_SELF_CGROUP = Path("/proc/self/cgroup")
CUDA_RANK_THREADS = 1  # host threads of a rank that computes on a GPU (issue #24: 1 thread beat 16, 1.33x vs 1.27x)


@dataclass(frozen=True)
class CpuBudget:
    """The CPUs this process may use, and what set the figure (``affinity``, ``cgroup`` or ``request``)."""

    cores: float
    source: str
    affinity: int
    cgroup: float | None = None
    request: float | None = None


@dataclass(frozen=True)
class ThreadPlan:
    intra: int
    interop: int
    source: str  # "task config", "OMP_NUM_THREADS", "budget" or "cuda rank"
    budget: CpuBudget
    local_ranks: int

    def describe(self) -> dict[str, object]:
        """For the worker's ``start`` event."""
        return {"intra_op": self.intra, "inter_op": self.interop, "source": self.source,
                "local_ranks": self.local_ranks, "cpu_budget": self.budget.cores,
                "budget_source": self.budget.source, "affinity": self.budget.affinity,
                "cgroup_quota": self.budget.cgroup, "cpu_request": self.budget.request}


def affinity_cpus() -> int:
    """CPUs the scheduler lets this process run on (cpusets, ``taskset``, the kubelet's static CPU manager)."""
    getaffinity = getattr(os, "sched_getaffinity", None)
    if getaffinity is not None:
        return max(1, len(getaffinity(0)))
    return os.cpu_count() or 1


def cgroup_cpu_limit(root: Path = CGROUP_ROOT, self_cgroup: str | None = None) -> float | None:
    """The tightest CPU quota (in cores) over this process's cgroups and their ancestors; None if unlimited.

    ``self_cgroup`` is the text of ``/proc/self/cgroup``: ``0::/path`` for cgroup v2, ``N:cpu,cpuacct:/path`` for
    v1. Inside a container with its own cgroup namespace the path is ``/`` and the mount is the container's own
    cgroup; without one the host path may not exist under the mount, and the mount root is read instead.
    """
    if self_cgroup is None:
        try:
            self_cgroup = PROC_SELF_CGROUP.read_text()
        except OSError:
            return None
    limits: list[float] = []
    for line in self_cgroup.splitlines():
        parts = line.strip().split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy, controllers, path = parts
        if hierarchy == "0" and controllers == "":
            limits += [v for d in _chain(root, path) if (v := _read_v2(d)) is not None]
        elif "cpu" in controllers.split(","):
            for name in (controllers, "cpu", "cpu,cpuacct", "cpuacct,cpu"):
                if (root / name).is_dir():
                    limits += [v for d in _chain(root / name, path) if (v := _read_v1(d)) is not None]
                    break
    return min(limits) if limits else None


def _chain(base: Path, path: str) -> list[Path]:
    """The process's cgroup directory under ``base`` and its ancestors up to ``base`` itself."""
    here = base / path.strip("/") if path.strip("/") else base
    if not here.is_dir():
        return [base]
    chain = [here]
    while chain[-1] != base and base in chain[-1].parents:
        chain.append(chain[-1].parent)
    return chain


def _read_v2(directory: Path) -> float | None:
    try:
        quota, period = (directory / "cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    return _ratio(quota, period)


def _read_v1(directory: Path) -> float | None:
    try:
        quota = (directory / "cpu.cfs_quota_us").read_text().strip()
        period = (directory / "cpu.cfs_period_us").read_text().strip()
    except OSError:
        return None
    return _ratio(quota, period)


def _ratio(quota: str, period: str) -> float | None:
    try:
        q, p = int(quota), int(period)
    except ValueError:
        return None
    return q / p if q > 0 and p > 0 else None  # v1 writes -1 for "no quota"


def cpu_budget(request: float | None = None, *, affinity: int | None = None, root: Path = CGROUP_ROOT,
               self_cgroup: str | None = None) -> CpuBudget:
    """The smallest of affinity, cgroup quota and the LLMJob's CPU request (cores)."""
    cpus = affinity_cpus() if affinity is None else affinity
    quota = cgroup_cpu_limit(root, self_cgroup)
    candidates = [(float(cpus), "affinity")]
    if quota is not None:
        candidates.append((quota, "cgroup"))
    if request is not None and request > 0:
        candidates.append((request, "request"))
    cores, source = min(candidates, key=lambda c: c[0])
    return CpuBudget(cores=cores, source=source, affinity=cpus, cgroup=quota, request=request)


def plan_threads(budget: CpuBudget, local_ranks: int, *, cuda: bool, threads: int = 0, interop_threads: int = 0,
                 omp_num_threads: str | None = None) -> ThreadPlan:
    """Intra- and inter-op threads of one rank; ``threads``/``interop_threads`` are the task config's (0 = auto)."""
    ranks = max(1, local_ranks)
    share = max(1, math.floor(budget.cores / ranks + 1e-9))
    if threads > 0:
        intra, source = threads, "task config"
    elif omp_num_threads and omp_num_threads.strip().isdigit() and int(omp_num_threads) > 0:
        intra, source = int(omp_num_threads), "OMP_NUM_THREADS"
    elif cuda:
        intra, source = min(share, CUDA_RANK_THREADS), "cuda rank"
    else:
        intra, source = share, "budget"
    # Inter-op threads run independent ops side by side (torch.jit.fork and the like): never more than intra-op.
    interop = interop_threads if interop_threads > 0 else intra
    return ThreadPlan(intra=intra, interop=interop, source=source, budget=budget, local_ranks=ranks)


def apply_threads(plan: ThreadPlan) -> tuple[int, int]:
    """Set torch's pools; returns the (intra, inter) counts in force. Call before the rank runs any torch op."""
    import torch

    torch.set_num_threads(plan.intra)
    if torch.get_num_interop_threads() != plan.interop:
        # Raises once the pool has started (only when imported as a library): its size is then reported as it is.
        with contextlib.suppress(RuntimeError):
            torch.set_num_interop_threads(plan.interop)
    return torch.get_num_threads(), torch.get_num_interop_threads()
