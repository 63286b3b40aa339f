"""bench/cpu_census.py: processes land in the right group, and CPU is counted from each process's own start."""

from __future__ import annotations

import os
import time

import pytest

from bench.cpu_census import Census, group_of, take, used


@pytest.mark.parametrize(("argv", "group"), [
    (["/usr/local/bin/python", "-m", "llmasos_worker"], "workers"),
    (["/usr/bin/tini", "--", "llmasos-worker"], "workers"),
    (["/usr/local/bin/python3", "/usr/local/bin/llmasos", "agent"], "chart operator+agent"),
    ([".venv/bin/python", "-m", "llmasos.cli", "operator"], "chart operator+agent"),
    (["/cache/kubelet", "--container-runtime-endpoint=unix:///run/containerd.sock"], "kubelet"),
    (["/cache/kube-apiserver", "--kubelet-client-certificate=/pki/kubelet.crt"], "control plane"),
    (["/cache/containerd-shim-runc-v2", "-namespace", "k8s.io"], "containerd+shims+runc"),
    (["/bin/bash", "-c", "llmasos_worker"], "other"),
    ([], "other"),
])
def test_group_of_a_command_line(argv: list[str], group: str) -> None:
    assert group_of(argv) == group


def test_used_counts_new_processes_from_zero_and_gives_cores() -> None:
    before = Census(10.0, 100.0, {1: ("kubelet", 50.0), 2: ("workers", 5.0)})
    after = Census(12.0, 103.0, {1: ("kubelet", 50.5), 2: ("workers", 7.0), 3: ("workers", 1.0)})
    cores = used(before, after)
    assert cores["kubelet"] == pytest.approx(0.25)
    assert cores["workers"] == pytest.approx(1.5)
    assert cores["machine"] == pytest.approx(1.5)
    assert cores["control plane"] == 0.0


def test_a_reading_of_this_machine_counts_this_process_cpu() -> None:
    before = take(time.monotonic())
    spin_until = time.process_time() + 0.3
    while time.process_time() < spin_until:
        pass
    after = take(time.monotonic())
    mine = os.getpid()
    assert after.by_pid[mine][1] - before.by_pid[mine][1] >= 0.2
    assert after.busy - before.busy >= 0.2
