"""Why a job's workers crashed or cannot get their volumes, in words that say what to fix (pure; no I/O).

Two faults the pods' waiting reasons (worker_health.py) do not show:

- **A worker that exits non-zero.** Worker pods run with restartPolicy Never (a gang: one failed worker fails the
  whole Job, and the operator restarts the whole group, up to spec.backoffLimit), so the kubelet never restarts a
  worker in place and never reports CrashLoopBackOff for it. A crash loop is the same exit, attempt after attempt.
  The Job's own condition only says "failed with exit code N matching FailJob rule"; the pod says more: the
  container's terminated reason (Error, OOMKilled, StartError, ...), its exit code and, because the worker container
  sets terminationMessagePolicy FallbackToLogsOnError, the last lines of its log (the traceback). The failed
  attempt's pods are deleted with its Job when the group restarts, so this is read in the pass that sees the failure.
- **A volume that cannot be mounted.** A pod whose ConfigMap or Secret volume does not exist is scheduled and then
  waits in ContainerCreating for ever: only the kubelet's FailedMount events say why. The operator lists a pod's
  events only once it has been creating for longer than `CREATING_GRACE_SECONDS`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from llmasos.api import conditions as cond
from llmasos.api.clock import parse_instant_or_none
from llmasos.api.conditions import Condition
from llmasos.api.worker_contract import EXIT_CONFIG_ERROR, EXIT_PEER_LOST, EXIT_SUSPENDED
from llmasos.planning.lifecycle.decision import ObservedJob

CREATING_GRACE_SECONDS = 10.0
MOUNT_REASONS = ("FailedMount", "FailedAttachVolume")
_TAIL_CHARS = 400
_MOUNT_HINT = ("a volume in spec.volumes cannot be mounted: create the ConfigMap, Secret or PersistentVolumeClaim "
               "it names in the LLMJob's namespace, or fix spec.volumes")


def _exit_hint(reason: str, code: int, pod: str, namespace: str) -> str:
    if reason == "OOMKilled":
        return "the worker ran out of memory: raise spec.resources.memory or lower taskConfig.batch_size"
    if code == 137:
        return "the worker was killed (SIGKILL): it is restarted with the group within spec.backoffLimit"
    if code in (126, 127) or reason in ("StartError", "ContainerCannotRun"):
        return "the command could not run: check spec.command and spec.args (the executable must be in the image)"
    if code == EXIT_PEER_LOST:
        return ("this worker lost its connection to the other workers, and none of them failed first: check the "
                "nodes and the network between them; the group is restarted within spec.backoffLimit")
    if code == EXIT_CONFIG_ERROR:
        return "the worker rejected its configuration: check spec.taskConfig and spec.model"
    return (f"read the worker's last log lines above (kubectl logs -n {namespace} {pod}, while the pod exists) and "
            "fix the model, data or taskConfig it names")


@dataclass(frozen=True)
class WorkerExit:
    """The first worker container of an attempt that exited non-zero: the culprit, not the peers the Job stopped."""

    pod: str
    namespace: str
    reason: str  # the container's terminated reason: Error, OOMKilled, StartError, ContainerCannotRun, ...
    exit_code: int
    tail: str  # the last lines of its log (FallbackToLogsOnError), shortened

    def describe(self) -> str:
        text = f"pod {self.pod}: container {self.reason}, exit code {self.exit_code}"
        return text + (f": {self.tail}" if self.tail else "")

    def condition(self) -> Condition:
        hint = _exit_hint(self.reason, self.exit_code, self.pod, self.namespace)
        return Condition(cond.WORKERS_READY, "False", self.reason or cond.WORKER_FAILED,
                         f"{self.describe()}. To fix: {hint}")


def _tail(message: str) -> str:
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    text = " | ".join(lines[-3:])
    return text if len(text) <= _TAIL_CHARS else "..." + text[-_TAIL_CHARS:]


def observe_worker_exit(pods: Iterable[dict[str, Any]]) -> WorkerExit | None:
    """The earliest non-zero exit among `pods` (core/v1 Pods of one attempt), or None. A worker that checkpointed on
    SIGTERM (EXIT_SUSPENDED) did not fail. A worker that only lost its group (EXIT_PEER_LOST) is a victim: any other
    failed worker is named first, since exit times have one-second steps and the victims often share the culprit's."""
    found: list[tuple[bool, str, WorkerExit]] = []
    for pod in pods:
        meta = pod.get("metadata") or {}
        for cs in (pod.get("status") or {}).get("containerStatuses") or []:
            term = (cs.get("state") or {}).get("terminated") or ((cs.get("lastState") or {}).get("terminated")
                                                                    or {})
            code = term.get("exitCode")
            if code is None or int(code) in (0, EXIT_SUSPENDED):
                continue
            found.append((int(code) == EXIT_PEER_LOST, str(term.get("finishedAt") or "~"),
                          WorkerExit(str(meta.get("name", "")), str(meta.get("namespace", "")),
                                     str(term.get("reason") or ""), int(code), _tail(str(term.get("message") or "")))))
    return min(found, key=lambda item: item[:2])[2] if found else None


def with_worker_exit(observed: Sequence[ObservedJob], exited: WorkerExit | None) -> list[ObservedJob]:
    """The observed Jobs, the failed newest one's message extended by what its failed container said: the
    Restarting and Failed conditions and their Events then carry the reason, the exit code and the log's tail."""
    if exited is None or not observed:
        return list(observed)
    newest = max(observed, key=lambda j: j.attempt)
    if not newest.is_failed:
        return list(observed)
    message = f"{newest.failed_message}; {exited.describe()}" if newest.failed_message else exited.describe()
    return [replace(j, failed_message=message) if j is newest else j for j in observed]


def _age_seconds(ts: object, now: datetime) -> float | None:
    then = parse_instant_or_none(ts)
    return (now - then).total_seconds() if then is not None else None


def stuck_creating(pods: Iterable[dict[str, Any]], now: datetime,
                   grace: float = CREATING_GRACE_SECONDS) -> list[str]:
    """Pods scheduled more than `grace` seconds ago whose containers still wait in ContainerCreating (or have no
    status yet): the ones whose events may say that a volume cannot be mounted."""
    stuck = []
    for pod in pods:
        status = pod.get("status") or {}
        if status.get("phase") != "Pending":
            continue
        scheduled = next((c for c in status.get("conditions") or []
                          if c.get("type") == "PodScheduled" and c.get("status") == "True"), None)
        age = _age_seconds(scheduled.get("lastTransitionTime"), now) if scheduled else None
        if age is None or age < grace:
            continue
        waiting = [((cs.get("state") or {}).get("waiting") or {}).get("reason")
                   for cs in status.get("containerStatuses") or []]
        if all(reason in (None, "ContainerCreating") for reason in waiting):
            stuck.append(str((pod.get("metadata") or {}).get("name", "")))
    return stuck


@dataclass(frozen=True)
class MountFailure:
    """The kubelet's latest FailedMount (or FailedAttachVolume) event of a pod that waits in ContainerCreating."""

    pod: str
    reason: str
    detail: str

    def condition(self) -> Condition:
        return Condition(cond.WORKERS_READY, "False", self.reason,
                         f"pod {self.pod}: {self.reason}: {self.detail}. To fix: {_MOUNT_HINT}")


def observe_mount_failure(pod: str, events: Iterable[dict[str, Any]]) -> MountFailure | None:
    """The newest mount failure among `events` (core/v1 Events whose involvedObject is `pod`), or None."""
    failures = [e for e in events if e.get("reason") in MOUNT_REASONS
                and (e.get("involvedObject") or {}).get("name") == pod]
    if not failures:
        return None
    latest = max(failures, key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""))
    return MountFailure(pod, str(latest["reason"]), str(latest.get("message", "")).strip())
