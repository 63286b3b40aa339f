"""The pods of one pass, listed at most once per label selector.

Two steps of a pass may need the same attempt's pods: the served-time ledger of an interruptible job (the pods say
when its gang became ready, handlers/gate.observe_run) and WorkersReady (the pods say why workers are not ready,
handlers/worker_health). While such a job's run is not yet open, both ask in the same pass; one list answers both.
The memo lives as long as the pass (`steps.Pass.pods`), so a later pass always lists afresh.
"""

from __future__ import annotations

from typing import Any

from llmasos.cluster.kube import PODS, KubeClient


class PodLists:
    """Pod lists by (namespace, label selector), each asked of the API server once."""

    def __init__(self) -> None:
        self._lists: dict[tuple[str, str], list[dict[str, Any]]] = {}

    async def list(self, kube: KubeClient, namespace: str, selector: str) -> list[dict[str, Any]]:
        key = (namespace, selector)
        if key not in self._lists:
            self._lists[key] = list(await kube.list(PODS, namespace=namespace, label_selector=selector))
        return self._lists[key]
