"""The Kubernetes side of the node agent: which pods are on my node, and where my node's report goes.

The agent core (llmasos.agent) only knows its `PodLister` and `ReportSink` Protocols; this module implements them
on the API server with the agent's own ServiceAccount: list pods with `spec.nodeName=<node>` (read-only) and
create-or-replace one ConfigMap `llmasos-power-<node>` in the agent's namespace (see docs/power.md for the API
load this implies). API trouble is reported as TransientError, on which the agent keeps its current caps.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from llmasos.agent.kube_sync import SyncKubeClient
from llmasos.agent.pods import NodePodView, node_pod_from_object
from llmasos.errors import KubeApiError, TransientError
from llmasos.kube.config import load_credentials
from llmasos.kube.resources import PODS, Resource

CONFIGMAPS = Resource("", "v1", "configmaps")
DEFAULT_NAMESPACE = "llmasos-system"


def agent_namespace() -> str:
    return os.environ.get("POD_NAMESPACE", "") or DEFAULT_NAMESPACE


class ApiPodLister:
    def __init__(self, client: SyncKubeClient, node: str) -> None:
        self._client, self._node = client, node

    def list_node_pods(self) -> Sequence[NodePodView]:
        try:
            pods = self._client.list(PODS, field_selector=f"spec.nodeName={self._node}")
        except KubeApiError as exc:
            raise TransientError(f"cannot list pods on node {self._node}: {exc}") from exc
        return [node_pod_from_object(p) for p in pods]


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
