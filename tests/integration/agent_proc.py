"""Run `llmasos node-agent` as real processes, one per fake GPU node, with the simulated GPU backend.

The simulated GPUs keep their power limits in a hardware file that outlives the agent process (as a real GPU's
limit outlives a crashed agent), so tests can check exactly which GPU is capped, including after SIGKILL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from e2e.localcluster import LocalCluster
from tests.integration.operator_proc import free_port


class AgentProcess:
    def __init__(self, cluster: LocalCluster, node: str, product: str, workdir: Path, namespace: str,
                 gpus: int = 8, kubeconfig: Path | None = None) -> None:
        self.node, self.workdir = node, workdir
        self.hardware = workdir / f"hw-{node}.json"
        self.state = workdir / f"state-{node}.json"
        self.log_path = workdir / f"agent-{node}.log"
        self.metrics_port = free_port()
        self.argv = [sys.executable, "-m", "llmasos.cli", "node-agent", "--node-name", node, "--gpu-backend", "sim",
                     "--sim-product", product, "--sim-gpus", str(gpus), "--sim-hardware-file", str(self.hardware),
                     "--state-file", str(self.state), "--interval", "0.5", "--report-interval", "2",
                     "--metrics-port", str(self.metrics_port), "--metrics-addr", "127.0.0.1",
                     "--gpu-mapping", "fallback"]
        self.env = {**os.environ, "KUBECONFIG": str(kubeconfig or cluster.paths.kubeconfig),
                    "POD_NAMESPACE": namespace, "PYTHONUNBUFFERED": "1"}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> AgentProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        log.close()
        return self

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> int | None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode if self.proc else None

    def limits_mw(self) -> dict[str, int]:
        """GPU uuid -> current power limit (mW), as the simulated hardware holds it."""
        return dict(json.loads(self.hardware.read_text())) if self.hardware.exists() else {}

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:] if self.log_path.exists() else ""
