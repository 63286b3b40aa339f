"""Progress and GPU energy on a small local HTTP ``/metrics`` endpoint (Prometheus text format).

Why this shape: the node agent (and Prometheus) read a pod's progress without any Kubernetes credentials, just an
HTTP GET on the pod IP at ``LLMASOS_PROGRESS_PORT``. The training loop only stores a few numbers under a lock
(nanoseconds per step); everything costly -- formatting, NVML energy reads -- happens on the scraper's thread when
a request arrives, so reporting cannot slow training measurably (bench/worker_ddp.py measures it).
Energy comes from NVML's cumulative counter (``nvmlDeviceGetTotalEnergyConsumption``) for this pod's own GPUs only:
those named by CUDA_VISIBLE_DEVICES (indices or UUIDs) or else every GPU NVML can see inside the container.
"""

from __future__ import annotations

import collections
import importlib
import inspect
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import ModuleType
from typing import Any, NoReturn, Protocol

# Rates (tokens/s, the remaining run time) are measured over the last 20 steps, or over the last 30 s when those took
# less: a small model's 20 steps can take a fraction of a second, and one pause there (the machine busy, a checkpoint
# written) then read as a pace several times slower, on which the operator would re-plan a job's carbon segments.
RATE_WINDOW = 20
RATE_SECONDS = 30.0
MAX_MARKS = 20_000  # at most this many updates kept (30 s of steps at over 600 steps/s)


@dataclass(frozen=True)
class Snapshot:
    step: int
    tokens: int
    tokens_per_second: float
    loss: float | None
    elapsed_seconds: float
    updated_at: float | None  # clock reading of the last update (monotonic: only differences mean anything)
    planned_steps: int | None = None  # the step the run ends at (None: the task has no planned total)
    remaining_seconds: float | None = None  # to reach planned_steps at the recent step rate (None: not known yet)


class Progress:
    """What the loop reports; safe to update from the training thread and read from the HTTP thread."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._start = clock()
        self._step = 0
        self._tokens = 0
        self._loss: float | None = None
        self._planned: int | None = None
        self._marks: collections.deque[tuple[float, int, int]] = collections.deque(maxlen=MAX_MARKS)

    def update(self, step: int, tokens: int, loss: float | None = None) -> None:
        now = self._clock()
        with self._lock:
            self._step, self._tokens = step, tokens
            if loss is not None:
                self._loss = loss
            marks = self._marks
            marks.append((now, tokens, step))
            while len(marks) > RATE_WINDOW + 1 and now - marks[1][0] >= RATE_SECONDS:
                marks.popleft()  # the window still holds 20 steps and 30 s without it

    def plan(self, steps: int) -> None:
        """The step the run ends at, so readers can tell how far along it is (`llmasos_worker_planned_steps`)."""
        with self._lock:
            self._planned = steps

    def snapshot(self) -> Snapshot:
        with self._lock:  # the window's two ends only: it may hold thousands of steps
            first, last = (self._marks[0], self._marks[-1]) if self._marks else (None, None)
            step, tokens, loss, planned = self._step, self._tokens, self._loss, self._planned
        rate = 0.0
        remaining: float | None = None
        if first is not None and last is not None and last[0] > first[0]:
            span = last[0] - first[0]
            rate = (last[1] - first[1]) / span
            steps_per_second = (last[2] - first[2]) / span
            if planned is not None and steps_per_second > 0:
                remaining = max(planned - step, 0) / steps_per_second
        return Snapshot(step, tokens, rate, loss, self._clock() - self._start, last[0] if last else None,
                        planned, remaining)


class EnergyMeter(Protocol):
    def joules(self) -> dict[str, float]:
        """Energy per device since the meter started, keyed by a stable device label."""
        ...


class NoEnergy:
    def joules(self) -> dict[str, float]:
        return {}


class NvmlEnergy:
    """Cumulative GPU energy of this pod's devices via NVML (millijoule counter since driver load)."""

    def __init__(self, nvml: Any, handles: dict[str, Any]) -> None:
        self._nvml = nvml
        self._handles = handles
        self._lock = threading.Lock()
        self._base = {label: self._read(h) for label, h in handles.items()}

    def _read(self, handle: Any) -> float:
        return float(self._nvml.nvmlDeviceGetTotalEnergyConsumption(handle)) / 1000.0

    def joules(self) -> dict[str, float]:
        with self._lock:
            return {label: self._read(h) - self._base[label] for label, h in self._handles.items()}


def energy_meter(visible: str | None = None) -> EnergyMeter:
    """NVML meter for our own GPUs when pynvml imports and finds one; otherwise a meter that reports nothing."""
    nvml = _import_nvml()
    if nvml is None:
        return NoEnergy()
    try:
        nvml.nvmlInit()
        count = int(nvml.nvmlDeviceGetCount())
        handles = {str(i): nvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)}
        uuids = {str(nvml.nvmlDeviceGetUUID(h)): i for i, h in handles.items()}
        chosen = _visible(handles, uuids, os.environ.get("CUDA_VISIBLE_DEVICES") if visible is None else visible)
        labelled = {uuid: handles[i] for uuid, i in uuids.items() if i in chosen}
        return NvmlEnergy(nvml, labelled) if labelled else NoEnergy()
    except Exception:  # NVMLError has many subclasses (no driver, no GPU, not supported): all mean "no energy"
        return NoEnergy()


def _import_nvml() -> ModuleType | None:
    try:
        module = importlib.import_module("pynvml")
    except ImportError:
        return None
    refuse_nvml_writes(module)
    return module


# NVML functions that only read (or set up the library). Every other ``nvml*`` function may change a GPU's state
# (power limits, clocks, persistence, compute or MIG mode, ECC counters, fan speed, ...): an allow-list, so a call
# added in a later pynvml is refused until it is known to be a read.
_NVML_READ = re.compile(r"Get|Query|^nvmlInit|^nvmlShutdown$|^nvmlErrorString$|^nvmlDeviceIs|^nvmlDeviceOnSameBoard$"
                        r"|^nvmlExceptionClass$|FriendlyObject")


class NvmlWriteRefused(PermissionError):
    """A call that would change a GPU's settings: the worker and its benchmarks read NVML only (the node agent
    alone sets power limits, docs/power.md)."""


def refuse_nvml_writes(nvml: Any) -> list[str]:
    """Replace every NVML function of ``nvml`` that is not a read with one that raises; returns their names.

    Idempotent, and applied to the module the worker imports, so nothing in a worker process (its energy meter,
    bench/worker_gpu.py, code a user runs next to it) can set a power limit, clock or mode by mistake.
    """
    refused = []
    for name in dir(nvml):
        value = getattr(nvml, name)
        if not name.startswith("nvml") or _NVML_READ.search(name) or not inspect.isfunction(value):
            continue
        if getattr(value, "_llmasos_refused", False):
            refused.append(name)
            continue

        def refuse(*args: object, _name: str = name, **kwargs: object) -> NoReturn:
            raise NvmlWriteRefused(f"{_name} refused: LLMasOS workers and benchmarks read NVML only")

        refuse._llmasos_refused = True  # type: ignore[attr-defined]
        setattr(nvml, name, refuse)
        refused.append(name)
    return refused


def _visible(handles: dict[str, Any], uuids: dict[str, str], spec: str | None) -> set[str]:
    if spec is None or spec.strip() == "":
        return set(handles) if spec is None else set()
    chosen: set[str] = set()
    for item in (s.strip() for s in spec.split(",")):
        if item in handles:
            chosen.add(item)
        else:
            chosen.update(i for uuid, i in uuids.items() if item and uuid.startswith(item))
    return chosen


def render(snap: Snapshot, energy: dict[str, float], labels: dict[str, str]) -> str:
    """Prometheus text exposition format 0.0.4."""
    base = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
    lines: list[str] = []

    def metric(name: str, kind: str, help_text: str, value: float, extra: str = "") -> None:
        if not any(line.startswith(f"# TYPE {name} ") for line in lines):
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} {kind}")
        lab = ",".join(x for x in (base, extra) if x)
        lines.append(f"{name}{{{lab}}} {value!r}")

    metric("llmasos_worker_step", "gauge", "Optimizer steps completed.", float(snap.step))
    if snap.planned_steps is not None:
        metric("llmasos_worker_planned_steps", "gauge", "The step the run ends at (the task's planned total).",
               float(snap.planned_steps))
    if snap.remaining_seconds is not None:
        metric("llmasos_worker_remaining_seconds", "gauge",
               "Run time to the planned steps at the step rate of the last 20 steps, or of the last 30 s when those "
               "took less.", snap.remaining_seconds)
    metric("llmasos_worker_tokens_total", "counter", "Tokens processed (global batch).", float(snap.tokens))
    metric("llmasos_worker_tokens_per_second", "gauge", "Recent throughput in tokens per second.",
           snap.tokens_per_second)
    if snap.updated_at is not None:
        # The node agent times throughput with this instead of its own coarse polling (see docs/power.md).
        metric("llmasos_worker_tokens_updated_timestamp_seconds", "gauge",
               "When tokens_total last advanced (monotonic clock, seconds).", snap.updated_at)
    metric("llmasos_worker_elapsed_seconds", "gauge", "Seconds since the worker started.", snap.elapsed_seconds)
    if snap.loss is not None:
        metric("llmasos_worker_loss", "gauge", "Last logged training loss (nats per token).", snap.loss)
    for device, joules in sorted(energy.items()):
        metric("llmasos_worker_gpu_energy_joules_total", "counter", "GPU energy since the worker started.",
               joules, f'gpu="{_escape(device)}"')
    return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class ProgressServer:
    """``GET /metrics`` (and ``/healthz``) served from a daemon thread."""

    def __init__(self, progress: Progress, energy: EnergyMeter, labels: dict[str, str],
                 host: str, port: int) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] == "/metrics":
                    body = outer.metrics_text().encode()
                    ctype = "text/plain; version=0.0.4; charset=utf-8"
                elif self.path == "/healthz":
                    body, ctype = b"ok\n", "text/plain"
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return

        self.progress = progress
        self.energy = energy
        self.labels = labels
        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="llmasos-progress", daemon=True)

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def metrics_text(self) -> str:
        return render(self.progress.snapshot(), self.energy.joules(), self.labels)

    def start(self) -> ProgressServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
