"""Start NPROC_PER_NODE rank processes on this node with torchrun's environment, and relay signals to them.

Why not torchrun itself: the pod's main process must turn Kubernetes' SIGTERM into "every rank checkpoints, then
exit 75" within the grace period. torchrun's agent treats SIGTERM as a failure, tears workers down on its own
timetable and exits non-zero with a traceback. This launcher only forwards the signal, waits, and exits with the
ranks' status, so the operator's podFailurePolicy can tell "suspended" from "broken". Each child gets RANK,
LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, GROUP_RANK, MASTER_ADDR and MASTER_PORT, exactly as torchrun sets them;
running ``llmasos-worker`` under torchrun instead also works (it then skips this launcher).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from types import FrameType

from llmasos.api.worker_contract import EXIT_PEER_LOST, EXIT_SUSPENDED, WorkerEnv

POLL_SECONDS = 0.05
KILL_AFTER_SECONDS = 10.0  # peers of a failed rank get this long to exit after SIGTERM


def rank_env(env: WorkerEnv, local_rank: int, base: Mapping[str, str]) -> dict[str, str]:
    child = dict(base)
    child.update({
        "RANK": str(env.node_rank * env.nproc_per_node + local_rank),
        "LOCAL_RANK": str(local_rank),
        "WORLD_SIZE": str(env.world_size),
        "LOCAL_WORLD_SIZE": str(env.nproc_per_node),
        "GROUP_RANK": str(env.node_rank),
        "NODE_RANK": str(env.node_rank),
        "MASTER_ADDR": env.master_addr,
        "MASTER_PORT": str(env.master_port),
    })
    return child


def launch(env: WorkerEnv, argv: list[str] | None = None) -> int:
    """Run the ranks of this node to completion; the first failing rank's code wins (a rank that only lost its group
    yields to one that failed on its own), then suspension, then 0."""
    cmd = argv or [sys.executable, "-m", "llmasos_worker"]
    procs = [subprocess.Popen(cmd, env=rank_env(env, i, os.environ)) for i in range(env.nproc_per_node)]

    def forward(signum: int, frame: FrameType | None) -> None:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        codes: dict[int, int] = {}
        failures: list[int] = []  # the ranks that failed before this launcher began to end the others
        kill_at: float | None = None
        while len(codes) < len(procs):
            for i, p in enumerate(procs):
                if i in codes or p.poll() is None:
                    continue
                codes[i] = p.returncode
                if kill_at is None and p.returncode not in (0, EXIT_SUSPENDED):
                    failures.append(p.returncode)
            if failures and kill_at is None:
                # A dead rank leaves its peers blocked in a collective: end them rather than hang.
                kill_at = time.monotonic() + KILL_AFTER_SECONDS
                for other in procs:
                    if other.poll() is None:
                        other.terminate()
            if kill_at is not None and time.monotonic() > kill_at:
                for other in procs:
                    if other.poll() is None:
                        other.kill()
            time.sleep(POLL_SECONDS)
        return _combine(failures) if failures else _combine(list(codes.values()))
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _combine(codes: list[int]) -> int:
    """The pod's status from its ranks' (in the order they ended): the first failure that is not only a lost group,
    else a lost group, else suspension, else 0. A rank killed by a signal (negative code) fails with 1."""
    failures = [c if c > 0 else 1 for c in codes if c not in (0, EXIT_SUSPENDED)]
    if failures:
        return next((c for c in failures if c != EXIT_PEER_LOST), failures[0])
    return EXIT_SUSPENDED if EXIT_SUSPENDED in codes else 0
