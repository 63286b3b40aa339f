"""The Kubernetes side of the node agent: which pods are on my node, where my node's report goes, and what the
leader pod of a multi-node job runs at.

The agent core (llmasos.agent) only knows its `PodLister`, `ReportSink` and `LeaderSource` Protocols; this module
implements them on the API server with the agent's own ServiceAccount: list pods with `spec.nodeName=<node>`
(read-only), create-or-replace one ConfigMap `llmasos-power-<node>` in the agent's namespace, and read another
node's ConfigMap there (see docs/power.md for the API load this implies). API trouble is reported as
TransientError, on which the agent keeps its current caps.

Why a watch beside the list: a pod that a Job controller deletes (a suspended worker group) is gone moments after its
containers end, often between two of the agent's lists, and with it the worker's last count in its termination
message. The DELETED event of a watch of the node's pods carries the pod's last status, so the next list also
returns such a pod, once, as ended.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from llmasos.agent.kube_sync import SyncKubeClient
from llmasos.agent.leader import LeaderView, group_of, leader_view
from llmasos.agent.pods import ATTEMPT_LABEL, INDEX_ANNOTATION, LLMJOB_LABEL, NodePodView, node_pod_from_object
from llmasos.api.node_report import parse_node_report, report_name
from llmasos.api.phase import POD_TERMINAL
from llmasos.errors import KubeApiError, TransientError
from llmasos.kube.config import load_credentials
from llmasos.kube.resources import PODS, Resource

log = logging.getLogger(__name__)
CONFIGMAPS = Resource("", "v1", "configmaps")
WATCH_RETRY_SECONDS = 5.0
DEFAULT_NAMESPACE = "llmasos-system"


def agent_namespace() -> str:
    return os.environ.get("POD_NAMESPACE", "") or DEFAULT_NAMESPACE


class ApiPodLister:
    """The node's pods from a list per call, plus, once, each pod deleted since the last list whose containers left
    a count in their termination message (from a watch in a daemon thread; `watch=False`: the list only)."""

    def __init__(self, client: SyncKubeClient, node: str, watch: bool = True) -> None:
        self._client, self._node = client, node
        self._departed: dict[str, dict[str, Any]] = {}  # uid -> the pod's last object, as its DELETED event gave it
        self._lock = threading.Lock()
        self._stop = threading.Event()
        if watch:
            threading.Thread(target=self._watch, name="pod-watch", daemon=True).start()

    def list_node_pods(self) -> Sequence[NodePodView]:
        try:
            pods = self._client.list(PODS, field_selector=f"spec.nodeName={self._node}")
        except KubeApiError as exc:
            raise TransientError(f"cannot list pods on node {self._node}: {exc}") from exc
        listed = {str((p.get("metadata") or {}).get("uid", "")) for p in pods}
        with self._lock:
            departed = [o for uid, o in self._departed.items() if uid not in listed]
            self._departed.clear()
        return [node_pod_from_object(p) for p in [*pods, *departed]]

    def close(self) -> None:
        self._stop.set()

    def _watch(self) -> None:
        version = ""
        while not self._stop.is_set():
            try:
                for event in self._client.watch(PODS, f"spec.nodeName={self._node}", version):
                    obj = event.get("object") or {}
                    if event.get("type") == "ERROR":  # e.g. 410 Gone: the version is too old; start afresh
                        version = ""
                        break
                    version = str((obj.get("metadata") or {}).get("resourceVersion", "") or version)
                    if event.get("type") == "DELETED":
                        self._keep(obj)
                    if self._stop.is_set():
                        return
            except (KubeApiError, ValueError) as exc:  # no answer, a refusal, or a line that is not JSON
                log.warning("watch of pods on %s failed (%s); retrying in %.0f s", self._node, exc,
                            WATCH_RETRY_SECONDS)
                self._stop.wait(WATCH_RETRY_SECONDS)

    def _keep(self, obj: dict[str, Any]) -> None:
        """A deleted pod whose containers left a count: kept, as ended, for the next list (at most 1,024)."""
        if node_pod_from_object(obj).final_progress is None:
            return
        status = dict(obj.get("status") or {})
        if status.get("phase") not in POD_TERMINAL:  # deleted, so no longer running, whatever its last phase said
            status["phase"] = "Failed"
        with self._lock:
            if len(self._departed) < 1024:
                self._departed[str(obj["metadata"]["uid"])] = {**obj, "status": status}


class ConfigMapReportSink:
    def __init__(self, client: SyncKubeClient, namespace: str) -> None:
        self._client, self._namespace = client, namespace

    def publish(self, body: Mapping[str, object]) -> None:
        obj: dict[str, Any] = dict(body)
        meta = dict(obj.get("metadata") or {})
        meta["namespace"] = meta.get("namespace") or self._namespace
        obj["metadata"] = meta
        try:
            self._client.apply_replace(CONFIGMAPS, obj, meta["namespace"])
        except KubeApiError as exc:
            raise TransientError(f"cannot publish node report: {exc}") from exc


class ApiLeaderSource:
    """A follower's leader: the pod with index 0 of the same attempt (found once by label and then remembered),
    as the report of the node it runs on shows it. One GET of that report per read; the pod list only when the
    leader is not known yet or left its node's report (rescheduled, replaced)."""

    def __init__(self, client: SyncKubeClient, namespace: str, max_groups: int = 1024) -> None:
        self._client, self._namespace, self._max = client, namespace, max_groups
        self._leaders: dict[tuple[str, str, str], tuple[str, str]] = {}  # group -> (leader pod name, its node)

    def leader_of(self, pod: NodePodView) -> LeaderView | None:
        group = group_of(pod)
        found = self._leaders.get(group) or self._find(pod)
        if found is None:
            return None
        name, node = found
        try:
            configmap = self._client.get(CONFIGMAPS, report_name(node), self._namespace)
            view = leader_view(parse_node_report(configmap), pod.namespace, name)
        except KubeApiError as exc:
            if not exc.not_found:  # no report yet: the leader's agent has not written one
                raise TransientError(f"cannot read the power report of node {node}: {exc}") from exc
            view = None
        except (ValueError, KeyError, TypeError) as exc:
            raise TransientError(f"the power report of node {node} is not readable: {exc}") from exc
        if view is None or view.limit_w is None:
            # Not in its node's report, or ended there: look again next time (the Job controller may have
            # recreated index 0 on another node, in the same attempt).
            self._leaders.pop(group, None)
        return view

    def _find(self, pod: NodePodView) -> tuple[str, str] | None:
        selector = f"{LLMJOB_LABEL}={pod.llmjob},{ATTEMPT_LABEL}={pod.attempt}"
        try:
            pods = self._client.list(PODS, pod.namespace, label_selector=selector)
        except KubeApiError as exc:
            raise TransientError(f"cannot list the pods of {pod.namespace}/{pod.llmjob}: {exc}") from exc
        for p in pods:
            meta, spec = p.get("metadata") or {}, p.get("spec") or {}
            phase = (p.get("status") or {}).get("phase", "")
            index = (meta.get("annotations") or {}).get(INDEX_ANNOTATION)
            if index == "0" and spec.get("nodeName") and phase not in POD_TERMINAL:
                if len(self._leaders) >= self._max:
                    self._leaders.clear()
                self._leaders[group_of(pod)] = found = (str(meta.get("name")), str(spec["nodeName"]))
                return found
        return None


class AgentApi:
    """Lazily connects once and hands out the lister and sink factories the agent CLI expects."""

    def __init__(self, kubeconfig: str | None = None) -> None:
        self._kubeconfig = kubeconfig
        self._client: SyncKubeClient | None = None

    def client(self) -> SyncKubeClient:
        if self._client is None:
            self._client = SyncKubeClient(load_credentials(self._kubeconfig))
        return self._client

    def pod_lister(self, node: str) -> ApiPodLister:
        return ApiPodLister(self.client(), node)

    def report_sink(self, node: str) -> ConfigMapReportSink:
        return ConfigMapReportSink(self.client(), agent_namespace())

    def leader_source(self) -> ApiLeaderSource:
        return ApiLeaderSource(self.client(), agent_namespace())
