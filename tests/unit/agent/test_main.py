"""The `node-agent` command as a real process (sim backend, pods file): SIGTERM, SIGKILL + restart, /metrics."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


def pod_object(name: str, gpus: int, power: dict[str, object] | None) -> dict[str, object]:
    annotations = {"llmasos.io/power": json.dumps(power)} if power else {}
    return {
        "metadata": {
            "name": name,
            "namespace": "default",
            "uid": f"uid-{name}",
            "labels": {"llmasos.io/llmjob": "job"},
            "annotations": annotations,
        },
        "spec": {"containers": [{"name": "w", "resources": {"limits": {"nvidia.com/gpu": str(gpus)}}}]},
        "status": {"phase": "Running"},
    }


class AgentProcess:
    def __init__(self, tmp: Path, metrics_port: int = 0) -> None:
        self.tmp = tmp
        self.hardware = tmp / "gpus.json"
        self.pods_file = tmp / "pods.json"
        self.report = tmp / "report.json"
        self.metrics_port = metrics_port
        self.proc: subprocess.Popen[bytes] | None = None

    def write_pods(self, *pods: dict[str, object]) -> None:
        tmp = self.pods_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"items": list(pods)}))
        os.replace(tmp, self.pods_file)

    def start(self) -> None:
        cmd = [sys.executable, "-m", "llmasos.cli", "node-agent", "--node-name", "gpu-l4-000"]
        cmd += ["--gpu-backend", "sim", "--sim-product", "nvidia-l4", "--sim-gpus", "4"]
        cmd += ["--sim-hardware-file", str(self.hardware), "--pods-file", str(self.pods_file)]
        cmd += ["--state-file", str(self.tmp / "state.json"), "--report-file", str(self.report)]
        cmd += ["--interval", "0.1", "--report-interval", "0.2", "--metrics-port", str(self.metrics_port)]
        cmd += ["--gpu-mapping", "fallback", "--log-level", "WARNING"]
        env = dict(os.environ, PYTHONPATH=str(REPO / "operator"))
        self.proc = subprocess.Popen(cmd, env=env, cwd=self.tmp)

    def limits(self) -> list[int]:
        if not self.hardware.exists():
            return []
        data = json.loads(self.hardware.read_text())
        return [data[k] // 1000 for k in sorted(data, key=lambda u: int(u.split("-")[2], 16))]

    def stop(self, sig: int) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=30)


def wait_for(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[AgentProcess]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    a = AgentProcess(tmp_path, metrics_port=port)
    yield a
    if a.proc is not None and a.proc.poll() is None:
        a.proc.kill()
        a.proc.wait(timeout=30)


def test_sigterm_restores_defaults_and_reports(agent: AgentProcess) -> None:
    agent.write_pods(pod_object("w0", 2, {"policy": "fraction", "fraction": 0.8}), pod_object("w1", 1, None))
    agent.start()
    wait_for(lambda: agent.limits() == [58, 58, 72, 72])  # 0.8 x 72 W = 57.6 -> 58 W on exactly GPUs 0-1
    wait_for(lambda: agent.report.exists())
    with urllib.request.urlopen(f"http://127.0.0.1:{agent.metrics_port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    assert (
        'llmasos_gpu_power_limit_watts{gpu="0",llmjob="job",namespace="default",node="gpu-l4-000",pod="w0"} 58.0'
        in text
    )
    assert "llmasos_gpu_energy_joules_total" in text
    assert agent.stop(signal.SIGTERM) == 0
    assert agent.limits() == [72, 72, 72, 72]
    assert json.loads((agent.tmp / "state.json").read_text())["caps"] == []
    report = json.loads(json.loads(agent.report.read_text())["data"]["report.json"])
    assert {p["name"]: p["gpus"] for p in report["pods"]} == {"w0": [0, 1], "w1": [2]}


def test_sigkill_then_restart_restores_a_stranded_cap(agent: AgentProcess) -> None:
    agent.write_pods(pod_object("w0", 3, {"policy": "limit", "limitWatts": 50}))
    agent.start()
    wait_for(lambda: agent.limits() == [50, 50, 50, 72])
    agent.stop(signal.SIGKILL)
    assert agent.limits() == [50, 50, 50, 72]  # stranded: nobody is left to undo it
    agent.write_pods()  # the pod was deleted while the agent was down
    agent.start()
    wait_for(lambda: agent.limits() == [72, 72, 72, 72])
    assert agent.stop(signal.SIGTERM) == 0
