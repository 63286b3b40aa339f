"""Where a machine's CPU went while a benchmark variant ran: CPU-seconds by group of processes, read from /proc.

bench/real_node.py compares the same DDP job in pods and as bare processes. On a small machine the pods receive
less CPU time than the bare processes while doing the same work per CPU-second, so the question is who else used
the CPU while they ran: the kubelet, containerd and its shims, the chart's operator and agent, the control plane. A
`Census` is taken before and after a variant; `used` is the CPU each group spent in between (processes that started
meanwhile count from zero; those that ended meanwhile are lost, which is why the machine's total busy time from
/proc/stat is given as well).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
TICKS = os.sysconf("SC_CLK_TCK")
# (group, names): a process belongs to the first group one of whose names is its program (argv[0]'s file name) or,
# for interpreters (python, tini), one of the words of its command line.
GROUPS = (
    ("workers", ("llmasos_worker", "llmasos-worker")),
    ("chart operator+agent", ("llmasos.cli", "llmasos")),
    ("kubelet", ("kubelet",)),
    ("containerd+shims+runc", ("containerd", "containerd-shim-runc-v2", "runc")),
    ("control plane", ("kube-apiserver", "etcd", "kube-controller-manager", "kube-scheduler", "kwok", "coredns")),
)


@dataclass(frozen=True)
class Census:
    at: float  # time.monotonic() of the reading
    busy: float  # the machine's busy CPU-seconds since boot (all but idle and iowait), /proc/stat
    by_pid: dict[int, tuple[str, float]]  # pid -> (group, CPU-seconds of the process so far)


def group_of(argv: list[str]) -> str:
    if not argv:
        return "other"  # a kernel thread
    program = Path(argv[0]).name
    words = {program} | ({Path(a).name for a in argv[1:]} if program.startswith(("python", "tini")) else set())
    return next((name for name, names in GROUPS if words & set(names)), "other")


def take(now: float) -> Census:
    by_pid: dict[int, tuple[str, float]] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # after the command name: state is field 3 of the man page, utime 14 and stime 15
        by_pid[int(entry.name)] = (group_of(argv), (int(fields[11]) + int(fields[12])) / TICKS)
    first = (PROC / "stat").read_text().splitlines()[0].split()[1:]
    jiffies = [int(v) for v in first]
    busy = (sum(jiffies[:8]) - jiffies[3] - jiffies[4]) / TICKS  # user..steal, less idle and iowait
    return Census(now, busy, by_pid)


def used(before: Census, after: Census) -> dict[str, float]:
    """CPU cores (CPU-seconds per wall second) by group between two readings, and `machine` for the total."""
    wall = max(after.at - before.at, 1e-9)
    out: dict[str, float] = {name: 0.0 for name, _ in GROUPS} | {"other": 0.0}
    for pid, (group, seconds) in after.by_pid.items():
        previous = before.by_pid.get(pid)
        base = previous[1] if previous is not None and previous[0] == group else 0.0
        out[group] += max(seconds - base, 0.0)
    cores = {k: v / wall for k, v in out.items()}
    cores["machine"] = (after.busy - before.busy) / wall
    return cores
