"""Run ``llmasos-worker`` as real processes, the way a pod does, and read back its JSON-lines events.

Why subprocesses: the acceptance criteria are about processes (ranks, signals, exit codes), and torch.distributed
state must not leak between tests. Every run gets its own free port on 127.0.0.1 and one CPU thread per rank.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

WORKER = [sys.executable, "-m", "llmasos_worker"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def worker_env(task: str = "train", *, nproc: int = 1, dp: int = 1, tp: int = 1, pp: int = 1,
               strategy: str | None = None, config: dict[str, Any] | None = None, **extra: str) -> dict[str, str]:
    """The environment the operator would render for one pod, pointed at 127.0.0.1 and a free port."""
    if strategy is None:
        strategy = "hybrid" if dp > 1 and (tp > 1 or pp > 1) else "tensor" if tp > 1 else \
            "pipeline" if pp > 1 else "ddp"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMASOS_", "RANK", "LOCAL_RANK", "WORLD_SIZE"))}
    env.update({
        "LLMASOS_JOB_NAME": "test", "LLMASOS_TASK": task, "LLMASOS_STRATEGY": strategy,
        "NNODES": "1", "NPROC_PER_NODE": str(nproc), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()),
        "LLMASOS_DATA_PARALLEL": str(dp), "LLMASOS_TENSOR_PARALLEL": str(tp), "LLMASOS_PIPELINE_PARALLEL": str(pp),
        "LLMASOS_PROGRESS_PORT": "0", "LLMASOS_PROGRESS_BIND": "127.0.0.1",
        "LLMASOS_TASK_CONFIG": json.dumps(config or {}),
        "OMP_NUM_THREADS": "1", "RAY_USAGE_STATS_ENABLED": "0",
    })
    env.pop("JOB_COMPLETION_INDEX", None)
    env.pop("NODE_RANK", None)
    env.update(extra)
    return env


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    events: list[dict[str, Any]] = field(default_factory=list)

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("event") == kind]

    def one(self, kind: str) -> dict[str, Any]:
        found = self.of(kind)
        assert len(found) == 1, f"expected one {kind!r} event, got {len(found)}\n{self.stdout}\n{self.stderr}"
        return found[0]

    def losses(self) -> dict[int, float]:
        return {e["step"]: e["loss"] for e in self.of("step")}


def parse(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def run_worker(env: dict[str, str], timeout: float = 120, cwd: Path | None = None) -> Run:
    proc = subprocess.run(WORKER, env=env, capture_output=True, text=True, timeout=timeout, cwd=cwd, check=False)
    return Run(proc.returncode, proc.stdout, proc.stderr, parse(proc.stdout))


def start_worker(env: dict[str, str], stdout: Path, stderr: Path) -> subprocess.Popen[bytes]:
    with stdout.open("wb") as out, stderr.open("wb") as err:
        return subprocess.Popen(WORKER, env=env, stdout=out, stderr=err)


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    blob = torch.load(path, map_location="cpu", weights_only=True)
    assert blob["format"] == "llmasos-gpt/1"
    return dict(blob["state_dict"])
