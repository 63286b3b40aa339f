"""Why a job's workers are not running, in words that say what to fix (the LLMJob's WorkersReady condition).

A worker that cannot start leaves its Job "active" but never ready: the Job's status says nothing about why. The
reason is in the pods: a container waiting on an image that cannot be found or pulled, a configuration the kubelet
cannot build (a missing Secret or ConfigMap key), a crash, or a pod the scheduler cannot place (a missing volume
claim, too little CPU). This module turns what the pods say into one condition; the handler lists a job's pods only
while its Job has workers that are not ready, so a healthy job costs no extra request.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from llmasos.api import conditions as cond
from llmasos.api.conditions import Condition

# Container waiting reasons that are problems (not ContainerCreating / PodInitializing), most telling first.
_HINTS = {
    "ErrImageNeverPull": "the image is not on the node and imagePullPolicy is Never: load the image onto the "
                         "node, or set spec.image to one it has",
    "InvalidImageName": "spec.image is not a valid image reference",
    "ImagePullBackOff": "the image cannot be pulled: check spec.image (name and tag), the registry, and "
                        "imagePullSecrets",
    "ErrImagePull": "the image cannot be pulled: check spec.image (name and tag), the registry, and "
                    "imagePullSecrets",
    "CreateContainerConfigError": "a Secret or ConfigMap that spec.env or spec.volumes refers to is missing, or "
                                  "lacks the key: create it in the LLMJob's namespace",
    "CreateContainerError": "the container could not be created: check spec.command and spec.volumeMounts",
    "RunContainerError": "the container could not start: check spec.command (the executable must exist in the "
                         "image)",
    "CrashLoopBackOff": "the worker keeps crashing: read its logs (kubectl logs) for the error",
}
_ORDER = tuple(_HINTS)


@dataclass(frozen=True)
class WorkerProblem:
    """The most telling problem among a job's pods: what the kubelet or the scheduler says, and about which pod."""

    reason: str
    detail: str
    pod: str
    exit_code: int | None = None

    def condition(self) -> Condition:
        hint = _HINTS.get(self.reason, "")
        if self.reason == cond.WORKER_UNSCHEDULABLE:
            hint = ("the workers cannot be placed on a node: a volume claim that does not exist, or more CPU, "
                    "memory or GPUs than the nodes of the pool have")
        parts = [f"pod {self.pod}: {self.reason}"]
        if self.exit_code is not None:
            parts.append(f"(last exit code {self.exit_code})")
        text = " ".join(parts) + (f": {self.detail}" if self.detail else "")
        return Condition(cond.WORKERS_READY, "False", self.reason, f"{text}. To fix: {hint}" if hint else text)


def observe_worker_problem(pods: Iterable[dict[str, Any]]) -> WorkerProblem | None:
    """The most telling problem among `pods` (core/v1 Pod objects of one Job), or None when none is stuck."""
    found: list[tuple[int, WorkerProblem]] = []
    for pod in pods:
        name = str(pod.get("metadata", {}).get("name", ""))
        status = pod.get("status") or {}
        for cs in status.get("containerStatuses") or []:
            waiting = (cs.get("state") or {}).get("waiting") or {}
            reason = str(waiting.get("reason", ""))
            if reason in _HINTS:
                last = ((cs.get("lastState") or {}).get("terminated") or {}).get("exitCode")
                problem = WorkerProblem(reason, str(waiting.get("message", "")), name,
                                        int(last) if last is not None else None)
                found.append((_ORDER.index(reason), problem))
        for c in status.get("conditions") or []:
            if c.get("type") == "PodScheduled" and c.get("status") == "False" and c.get("reason") == "Unschedulable":
                found.append((len(_ORDER), WorkerProblem(cond.WORKER_UNSCHEDULABLE, str(c.get("message", "")), name)))
    return min(found, key=lambda item: item[0])[1] if found else None


def workers_ready_condition(problem: WorkerProblem | None, all_ready: bool) -> Condition | None:
    """WorkersReady: False with the problem, True once every worker is ready, None while merely starting."""
    if problem is not None:
        return problem.condition()
    if all_ready:
        return Condition(cond.WORKERS_READY, "True", cond.WORKERS_RUNNING, "every worker is running")
    return None
