"""CPU threads per rank: the budget from fake cgroup trees (v1 and v2), affinity, the CPU request, division by local
ranks, overrides; and a real worker run that reports the plan it applied."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmasos.api.worker_contract import WorkerContractError, WorkerEnv, cpu_cores
from llmasos_worker.config import ConfigError, TaskConfig
from llmasos_worker.threads import CpuBudget, cgroup_cpu_limit, cpu_budget, plan_threads
from tests.worker.helpers import run_worker, worker_env


def write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.mark.parametrize(("cpu_max", "cores"), [("250000 100000\n", 2.5), ("max 100000\n", None),
                                                 ("50000 100000", 0.5)])
def test_cgroup_v2_cpu_max_in_a_cgroup_namespace(tmp_path: Path, cpu_max: str, cores: float | None) -> None:
    write(tmp_path, "cpu.max", cpu_max)  # a container sees its own cgroup at the mount root, path "/"
    assert cgroup_cpu_limit(tmp_path, "0::/\n") == cores


def test_cgroup_v2_tightest_of_the_cgroup_and_its_ancestors(tmp_path: Path) -> None:
    write(tmp_path, "cpu.max", "max 100000")
    write(tmp_path, "kubepods/pod1/cpu.max", "300000 100000")  # the pod's limit
    write(tmp_path, "kubepods/pod1/ctr/cpu.max", "max 100000")  # the container: no limit of its own
    assert cgroup_cpu_limit(tmp_path, "0::/kubepods/pod1/ctr\n") == 3.0
    # a path the mount does not show (no cgroup namespace, host path): the mount root is read
    assert cgroup_cpu_limit(tmp_path, "0::/elsewhere/ctr\n") is None


def test_cgroup_v1_cfs_quota_and_period(tmp_path: Path) -> None:
    write(tmp_path, "cpu,cpuacct/cpu.cfs_quota_us", "150000\n")
    write(tmp_path, "cpu,cpuacct/cpu.cfs_period_us", "100000\n")
    v1 = "12:memory:/x\n4:cpu,cpuacct:/\n1:name=systemd:/x\n"
    assert cgroup_cpu_limit(tmp_path, v1) == 1.5
    write(tmp_path, "cpu,cpuacct/cpu.cfs_quota_us", "-1\n")  # v1's "no quota"
    assert cgroup_cpu_limit(tmp_path, v1) is None


def test_cgroup_v1_mounted_as_cpu_and_nested(tmp_path: Path) -> None:
    write(tmp_path, "cpu/cpu.cfs_quota_us", "-1")
    write(tmp_path, "cpu/cpu.cfs_period_us", "100000")
    write(tmp_path, "cpu/kubepods/pod/cpu.cfs_quota_us", "400000")
    write(tmp_path, "cpu/kubepods/pod/cpu.cfs_period_us", "100000")
    assert cgroup_cpu_limit(tmp_path, "3:cpuacct,cpu:/kubepods/pod\n") == 4.0


def test_no_cgroup_files_means_no_quota(tmp_path: Path) -> None:
    assert cgroup_cpu_limit(tmp_path, "0::/\n") is None
    assert cgroup_cpu_limit(tmp_path, "") is None


def test_budget_is_the_smallest_of_affinity_quota_and_request(tmp_path: Path) -> None:
    write(tmp_path, "cpu.max", "600000 100000")
    assert cpu_budget(affinity=16, root=tmp_path, self_cgroup="0::/") == CpuBudget(6.0, "cgroup", 16, 6.0, None)
    assert cpu_budget(4.0, affinity=16, root=tmp_path, self_cgroup="0::/").source == "request"
    assert cpu_budget(32.0, affinity=3, root=tmp_path, self_cgroup="0::/").cores == 3.0
    assert cpu_budget(affinity=3, root=tmp_path / "none", self_cgroup="0::/").source == "affinity"


def test_real_affinity_is_used_when_none_is_given() -> None:
    import os

    assert cpu_budget(self_cgroup="").affinity == len(os.sched_getaffinity(0))


@pytest.mark.parametrize(("cores", "ranks", "threads"), [(16, 1, 16), (16, 8, 2), (6.5, 2, 3), (2, 4, 1),
                                                         (0.5, 1, 1), (12, 8, 1)])
def test_cpu_ranks_share_the_budget(cores: float, ranks: int, threads: int) -> None:
    plan = plan_threads(CpuBudget(cores, "request", 64), ranks, cuda=False)
    assert (plan.intra, plan.interop, plan.source) == (threads, threads, "budget")


def test_cuda_ranks_keep_one_host_thread() -> None:
    plan = plan_threads(CpuBudget(16, "affinity", 16), 1, cuda=True)
    assert (plan.intra, plan.source) == (1, "cuda rank")


def test_overrides_task_config_then_omp_num_threads() -> None:
    budget = CpuBudget(16, "affinity", 16)
    assert plan_threads(budget, 2, cuda=False, omp_num_threads="3").intra == 3  # torchrun's or spec.env's
    assert plan_threads(budget, 2, cuda=False, omp_num_threads="").intra == 8  # empty: not set
    plan = plan_threads(budget, 2, cuda=True, threads=5, interop_threads=2, omp_num_threads="1")
    assert (plan.intra, plan.interop, plan.source) == (5, 2, "task config")


def test_task_config_thread_keys_and_switches() -> None:
    cfg = TaskConfig.from_mapping({"threads": 4, "interop_threads": 1, "compile": True, "fused_adamw": False})
    assert (cfg.threads, cfg.interop_threads, cfg.compile, cfg.fused_adamw, cfg.cuda_graphs) == (4, 1, "on", "off",
                                                                                               "auto")
    for bad in ({"threads": -1}, {"threads": 1.5}, {"compile": "yes"}, {"cuda_graphs": 1}):
        with pytest.raises(ConfigError):
            TaskConfig.from_mapping(bad)


@pytest.mark.parametrize(("quantity", "cores"), [("2", 2.0), ("500m", 0.5), ("1.5", 1.5), ("6500m", 6.5)])
def test_cpu_request_quantities(quantity: str, cores: float) -> None:
    assert cpu_cores(quantity) == cores


def test_cpu_request_travels_in_the_contract() -> None:
    env = WorkerEnv(job_name="j", namespace="n", task="train", strategy="ddp", nnodes=1, nproc_per_node=2,
                    master_addr="h", data_parallel=2, cpu_request="3")
    rendered = env.to_env()
    assert rendered["LLMASOS_CPU_REQUEST"] == "3"
    assert WorkerEnv.from_env(rendered).cpu_request_cores == 3.0
    assert WorkerEnv.from_env({**rendered, "LLMASOS_CPU_REQUEST": ""}).cpu_request_cores is None
    for bad in ("two", "0", "-1"):
        with pytest.raises(WorkerContractError, match="LLMASOS_CPU_REQUEST"):
            WorkerEnv.from_env({**rendered, "LLMASOS_CPU_REQUEST": bad})


def test_worker_applies_its_share_of_the_cpu_request() -> None:
    """Two ranks and a request of 5 CPUs: 2 threads each (not OMP's default of every core), said in the start event."""
    env = worker_env("train", nproc=2, dp=2, config={"steps": 2, "batch_size": 4}, LLMASOS_CPU_REQUEST="5")
    env.pop("OMP_NUM_THREADS")
    run = run_worker(env)
    assert run.returncode == 0, run.stderr
    threads = run.one("start")["threads"]
    budget = min(5, threads["affinity"])
    assert threads["cpu_request"] == 5.0
    assert threads["intra_op"] == threads["inter_op"] == max(1, budget // 2)
    assert threads["source"] == "budget"


def test_task_config_threads_override_omp_num_threads() -> None:
    run = run_worker(worker_env("train", config={"steps": 2, "batch_size": 2, "threads": 3, "interop_threads": 2}))
    assert run.returncode == 0, run.stderr
    threads = run.one("start")["threads"]
    assert (threads["intra_op"], threads["inter_op"], threads["source"]) == (3, 2, "task config")
