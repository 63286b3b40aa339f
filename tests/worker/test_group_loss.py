"""A pod whose peer died exits with EXIT_PEER_LOST, not 1, so the operator names the worker that failed first.

Two 'pods' (each its own launcher, NNODES=2) train DDP over gloo on 127.0.0.1; pod 1's whole process tree is
SIGKILLed mid-run, as `crictl stop --timeout=0` or the kernel's OOM killer ends a container. Pod 0's rank fails in
its next collective with gloo's transport error, and its launcher passes EXIT_PEER_LOST through.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from llmasos.api.worker_contract import EXIT_PEER_LOST
from tests.worker.helpers import WORKER, parse, worker_env


def test_the_survivor_of_a_killed_pod_exits_with_peer_lost(tmp_path: Path) -> None:
    base = worker_env("train", nproc=1, dp=2, config={"steps": 100_000, "batch_size": 4, "log_every": 5},
                      NNODES="2")
    pods: dict[int, tuple[subprocess.Popen[bytes], Path, Path]] = {}
    for index in (0, 1):
        out, err = tmp_path / f"pod{index}.out", tmp_path / f"pod{index}.err"
        with out.open("wb") as o, err.open("wb") as e:
            pods[index] = (subprocess.Popen(WORKER, env={**base, "JOB_COMPLETION_INDEX": str(index)}, stdout=o,
                                            stderr=e, start_new_session=True), out, err)
    survivor, out, err = pods[0]
    try:
        deadline = time.monotonic() + 120
        while not any(e["event"] == "step" for e in parse(out.read_text())):
            assert survivor.poll() is None, err.read_text()[-3000:]
            assert time.monotonic() < deadline, "no training step within 120 s"
            time.sleep(0.2)
        os.killpg(pods[1][0].pid, signal.SIGKILL)
        assert survivor.wait(timeout=60) == EXIT_PEER_LOST, err.read_text()[-3000:]
        assert "rank 0 lost its group" in err.read_text()
    finally:
        for proc, _, _ in pods.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
