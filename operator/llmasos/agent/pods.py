"""What the agent needs to know about the pods bound to its node, as Protocols the Kubernetes adapter implements.

The agent never talks to the API server itself: `PodLister` (pods on my node) and `ReportSink` (publish my node's
report) are injected, so the agent runs the same against the real cluster, a pods file, or a test double.

A worker that ended cleanly, or was suspended after its checkpoint, leaves its last count in its termination message
(`final_progress`): the agent reads /metrics only every few seconds, and the pod's endpoint is gone once it exits.

Where the power policy comes from: the operator copies the LLMJob's `spec.power` onto each worker pod as the
annotation `llmasos.io/power` (JSON), so the agent reads pods only (one watch per node, no LLMJob access).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from llmasos.agent.power_policy import PowerSpec
from llmasos.api import constants
from llmasos.api.phase import POD_TERMINAL
from llmasos.api.worker_contract import FinalProgress, parse_final_progress
from llmasos.errors import SpecError, TransientError

POWER_ANNOTATION = constants.POWER_ANNOTATION
LLMJOB_LABEL = constants.LABEL_LLMJOB
ATTEMPT_LABEL = constants.LABEL_ATTEMPT
INDEX_ANNOTATION = constants.INDEX_ANNOTATION
GPU_RESOURCE = "nvidia.com/gpu"
# A pod's phase (core/v1 PodStatus.phase), not an LLMJob's: the two APIs happen to share these names.
TERMINAL_PHASES = POD_TERMINAL


class NodePodView(Protocol):
    """One pod bound to this node (spec.nodeName == the agent's node)."""

    @property
    def name(self) -> str: ...
    @property
    def namespace(self) -> str: ...
    @property
    def uid(self) -> str: ...
    @property
    def llmjob(self) -> str:
        """Value of the `llmasos.io/llmjob` label; empty for pods that are not LLMJob workers."""
        ...

    @property
    def gpu_request(self) -> int:
        """Sum of `nvidia.com/gpu` limits over the pod's containers (extended resources: request == limit)."""
        ...

    @property
    def phase(self) -> str: ...
    @property
    def power(self) -> PowerSpec:
        """The parsed `llmasos.io/power` annotation; PowerSpec() (policy none) when absent or invalid."""
        ...

    @property
    def pod_ip(self) -> str: ...
    @property
    def progress_port(self) -> int:
        """Port of the worker's progress endpoint (LLMASOS_PROGRESS_PORT); 0 when unknown."""
        ...

    @property
    def final_progress(self) -> FinalProgress | None:
        """The worker's last count from its termination message (written on a clean exit or a suspension, see
        `worker_contract.final_progress_message`); None while it runs, or when it wrote none."""
        ...

    @property
    def attempt(self) -> str:
        """Value of the `llmasos.io/attempt` label: which attempt of its LLMJob's worker group the pod belongs to."""
        ...

    @property
    def rank(self) -> int | None:
        """The pod's index in its Indexed Job (`batch.kubernetes.io/job-completion-index`); None outside one."""
        ...

    @property
    def nnodes(self) -> int:
        """Pods of the worker group (the worker's NNODES); 1 when unknown."""
        ...


class PodLister(Protocol):
    def list_node_pods(self) -> Sequence[NodePodView]:
        """Pods bound to this node now, any phase. Raise TransientError when the answer is unknown (API down):
        the agent then keeps its current caps rather than restoring GPUs of pods that may still run."""
        ...


class ReportSink(Protocol):
    def publish(self, body: Mapping[str, object]) -> None:
        """Create or replace the node's report object (see `report.build_node_report`). May raise TransientError."""
        ...


@dataclass(frozen=True)
class NodePod:
    """A plain NodePodView: what the adapter may return, and what tests and the pods file build."""

    name: str
    namespace: str
    uid: str
    llmjob: str = ""
    gpu_request: int = 0
    phase: str = "Running"
    power: PowerSpec = field(default_factory=PowerSpec)
    pod_ip: str = ""
    progress_port: int = 0
    final_progress: FinalProgress | None = None
    attempt: str = ""
    rank: int | None = None
    nnodes: int = 1

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def parse_power_annotation(raw: str | None) -> PowerSpec:
    """Parse `llmasos.io/power`; raise SpecError on malformed JSON or an invalid spec."""
    if not raw:
        return PowerSpec()
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise SpecError(f"annotation {POWER_ANNOTATION} is not JSON: {exc}", "metadata.annotations") from None
    if not isinstance(data, dict):
        raise SpecError(f"annotation {POWER_ANNOTATION} must be a JSON object", "metadata.annotations")
    return PowerSpec.from_mapping(data)


def node_pod_from_object(obj: Mapping[str, object]) -> NodePod:
    """Build a NodePod from a Kubernetes Pod object (a dict as the API returns it).

    An invalid power annotation yields policy none: a bad spec must never leave a GPU capped by surprise.
    """
    meta = _map(obj.get("metadata"))
    spec = _map(obj.get("spec"))
    status = _map(obj.get("status"))
    labels = _map(meta.get("labels"))
    annotations = _map(meta.get("annotations"))
    gpus = 0
    port = 0
    nnodes = 1
    containers = spec.get("containers")
    for c in containers if isinstance(containers, list) else []:
        limits = _map(_map(_map(c).get("resources")).get("limits"))
        gpus += int(str(limits.get(GPU_RESOURCE, 0)))
        env = _map(c).get("env")
        for e in env if isinstance(env, list) else []:
            if _map(e).get("name") == "LLMASOS_PROGRESS_PORT":
                port = int(str(_map(e).get("value", "0")))
            if _map(e).get("name") == "NNODES":
                nnodes = max(1, _int(_map(e).get("value")) or 1)
    try:
        power = parse_power_annotation(_str(annotations.get(POWER_ANNOTATION)))
    except SpecError:
        power = PowerSpec()
    return NodePod(
        name=_str(meta.get("name")),
        namespace=_str(meta.get("namespace")) or "default",
        uid=_str(meta.get("uid")),
        llmjob=_str(labels.get(LLMJOB_LABEL)),
        gpu_request=gpus,
        phase=_str(status.get("phase")) or "Pending",
        power=power,
        pod_ip=_str(status.get("podIP")),
        progress_port=port,
        final_progress=_final_progress(status),
        attempt=_str(labels.get(ATTEMPT_LABEL)),
        rank=_int(annotations.get(INDEX_ANNOTATION)),
        nnodes=nnodes,
    )


def _final_progress(status: Mapping[str, object]) -> FinalProgress | None:
    """The largest count (by tokens) any of the pod's terminated containers left in its termination message."""
    found = []
    statuses = status.get("containerStatuses")
    for cs in statuses if isinstance(statuses, list) else []:
        terminated = _map(_map(_map(cs).get("state")).get("terminated"))
        final = parse_final_progress(_str(terminated.get("message")))
        if final is not None:
            found.append(final)
    return max(found, key=lambda f: f.tokens, default=None)


class PodsFile:
    """PodLister over a JSON file (a Pod list, a list of pods, or `{"items": [...]}`), re-read on every call.

    For running the agent without an API server: local development, the benchmark and plain-process tests.
    """

    def __init__(self, path: Path) -> None:
        self._path = path

    def list_node_pods(self) -> Sequence[NodePodView]:
        if not self._path.exists():
            return []
        try:
            data = json.loads(self._path.read_text() or "[]")
        except (OSError, json.JSONDecodeError) as exc:  # half-written: keep the caps, retry next pass
            raise TransientError(f"pods file {self._path}: {exc}") from exc
        items = data.get("items", []) if isinstance(data, dict) else data
        return [node_pod_from_object(item) for item in items if isinstance(item, dict)]


def _map(value: object) -> Mapping[str, object]:
    return value if isinstance(value, Mapping) else {}


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def _int(value: object) -> int | None:
    """A decimal string as the API writes env values and annotations; None when absent or not a number."""
    text = _str(value)
    return int(text) if text.isdigit() else None
