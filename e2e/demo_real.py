"""The real node's part of `make demo`: reading what the workers really did, and the interruptible job's suspension.

Rank 0 of a worker group prints JSON lines (`start`, `step`, `suspended`, `done`); the demo reads them with
`kubectl logs`, as a user would. The interruptible job is suspended by hand once rank 0 has trained a few hundred
steps (the operator does the same at the end of a carbon segment; tests/integration/test_real_segments.py checks
that path): the Job controller deletes the pods, the kubelet sends SIGTERM, rank 0 saves the step it reached to the
job's volume and exits; resumed, the new rank 0 starts from that step. `kubectl logs -f` follows the first rank 0,
because its pod, and with it its log, is gone once it exits.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from e2e.localcluster import LocalCluster

INDEX = "batch.kubernetes.io/job-completion-index"


def worker_events(text: str) -> list[dict[str, Any]]:
    """The worker's JSON lines in a log (anything else, such as torch's warnings, skipped)."""
    events = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(event, dict) and "event" in event:
                events.append(event)
    return events


def rank0_pod(cluster: LocalCluster, ns: str, job: str, running: bool = True) -> str:
    """The live rank-0 pod of an LLMJob ("" if none yet)."""
    out = cluster.kubectl("get", "pods", "-n", ns, "-l", f"llmasos.io/llmjob={job}", "-o", "json", check=False)
    if out.returncode != 0:
        return ""
    for pod in json.loads(out.stdout)["items"]:
        meta = pod["metadata"]
        if meta.get("annotations", {}).get(INDEX) == "0" and not meta.get("deletionTimestamp") and \
                (not running or pod["status"].get("phase") == "Running"):
            return str(meta["name"])
    return ""


def rank0_events(cluster: LocalCluster, ns: str, pod: str) -> list[dict[str, Any]]:
    return worker_events(cluster.kubectl("logs", "-n", ns, pod, check=False).stdout)


def loss_line(events: list[dict[str, Any]]) -> str:
    """"loss 5.52 at step 10 -> 2.31 at step 200" from a rank 0's step events ("" without two of them)."""
    steps = [e for e in events if e.get("event") == "step"]
    if len(steps) < 2:
        return ""
    first, last = steps[0], steps[-1]
    return f"loss {first['loss']:.2f} at step {first['step']} -> {last['loss']:.2f} at step {last['step']}"


class Follower:
    """`kubectl logs -f` of one pod in a thread; `events` grows as rank 0 prints. When the stream ends (the container
    exited, or the stream broke), the whole log is read once more while the pod still exists, for lines a broken
    stream missed; `describe()` says what the follower saw, for a test's failure message."""

    def __init__(self, cluster: LocalCluster, ns: str, pod: str) -> None:
        self.cluster, self.ns, self.pod = cluster, ns, pod
        self.events: list[dict[str, Any]] = []
        self.reread = False
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed in close(), after the thread)
        self._proc = subprocess.Popen([cluster.binary("kubectl"), f"--kubeconfig={cluster.paths.kubeconfig}",
                                       "logs", "-f", "-n", ns, pod], stdout=subprocess.PIPE,
                                      stderr=self._stderr, text=True)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            self.events.extend(worker_events(line))
        again = rank0_events(self.cluster, self.ns, self.pod)
        if len(again) > len(self.events):
            self.events, self.reread = again, True

    def last(self, kind: str) -> dict[str, Any] | None:
        return next((e for e in reversed(self.events) if e.get("event") == kind), None)

    def describe(self) -> str:
        code = self._proc.poll()
        self._stderr.seek(0)
        err = self._stderr.read().decode(errors="replace").strip()[-500:]
        return (f"kubectl logs -f {self.pod}: {'running' if code is None else f'exited {code}'}, "
                f"{len(self.events)} events{' (read again)' if self.reread else ''}, last {self.events[-2:]}; "
                f"stderr: {err or '-'}")

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.terminate()
        self._proc.wait(timeout=10)
        self._thread.join(timeout=10)
        if self._proc.stdout is not None:
            self._proc.stdout.close()
        self._stderr.close()


@dataclass
class Interruption:
    """Suspend a real-node job once rank 0 passed `at_step`, resume it `pause` seconds after it is Suspended,
    and say what the workers did. `advance` is called on every round of the demo's watch loop; it never blocks."""

    cluster: LocalCluster
    ns: str
    job: str
    patch: Callable[[bool], None]
    say: Callable[[str], None]
    note: Callable[[str], None]
    at_step: int = 300
    pause: float = 10.0
    state: str = "waiting"
    follower: Follower | None = None
    suspended: dict[str, Any] | None = None
    resumed_pod: str = ""
    suspended_since: float = 0.0
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.state in ("resumed", "skipped")

    def advance(self, phase: str) -> None:
        if self.state == "waiting" and phase == "Running":
            pod = rank0_pod(self.cluster, self.ns, self.job)
            if pod:
                self.follower = Follower(self.cluster, self.ns, pod)
                self.state = "training"
        elif self.state == "training" and self.follower is not None:
            step = self.follower.last("step")
            if self.follower.last("done") is not None:
                self.say(f"{self.job} finished before it reached step {self.at_step}: no suspension to show")
                self.state = "skipped"
            elif step is not None and step["step"] >= self.at_step:
                self.say(f"suspending {self.job} (real node): rank 0 is at step {step['step']}, loss "
                         f"{step['loss']:.2f}; `kubectl patch llmjob {self.job} -n {self.ns} --type merge -p "
                         "'{\"spec\":{\"suspend\":true}}'` (what the operator does at the end of a carbon segment)")
                self.patch(True)
                self.state = "suspending"
        elif self.state == "suspending" and self.follower is not None:
            self.suspended = self.follower.last("suspended")
            if self.suspended is not None and phase == "Suspended":
                self.follower.close()
                s = self.suspended
                self.note(f"the kubelet sent SIGTERM to {self.follower.pod}: rank 0 stopped at step {s['step']} and "
                          f"wrote {s['checkpoint']} in {s['checkpoint_seconds']:.1f} s (the grace period is 120 s), "
                          "on the job's local PersistentVolume; the pods are gone, the Job stays (suspended)")
                self.figures.update(suspended_step=s["step"], checkpoint_seconds=s["checkpoint_seconds"])
                self.suspended_since = time.monotonic()
                self.state = "held"
        elif self.state == "held" and time.monotonic() - self.suspended_since >= self.pause:
            self.say(f"resuming {self.job}: the same Job, new pods, training continues from the checkpoint")
            self.patch(False)
            self.state = "resuming"
        elif self.state == "resuming" and self.suspended is not None:
            pod = rank0_pod(self.cluster, self.ns, self.job, running=False)
            start = next((e for e in rank0_events(self.cluster, self.ns, pod) if e["event"] == "start"), None) \
                if pod else None
            if start is not None:
                self.note(f"{pod}: rank 0 resumed from step {start['resumed_from']} (suspended at step "
                          f"{self.suspended['step']}) of {start['steps']}")
                self.figures.update(resumed_from=start["resumed_from"])
                self.resumed_pod = pod
                self.state = "resumed"
