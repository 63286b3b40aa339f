"""Which GPUs belong to which pod: the kubelet's PodResources answer where the socket is mounted, else a fallback.

Fallback (fake nodes, or a node without the socket): a sticky, deterministic allocation. A pod keeps the indices it
was given for as long as it lives (they are also persisted in the state file, so an agent restart keeps them);
pods seen for the first time are served in (namespace, name, uid) order, each taking the lowest free indices, as
many as its `nvidia.com/gpu` request. On kwok nodes this *is* the allocation (there is no device plugin). On a real
node it is only right when one GPU pod holds the node or pods take whole nodes, because the device plugin may pick
other devices; `make_mapper("auto")` therefore uses PodResources whenever the socket exists.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

from llmasos.agent.backend import GpuInfo
from llmasos.agent.podresources import DEFAULT_SOCKET, PodResourcesClient
from llmasos.agent.pods import GPU_RESOURCE, TERMINAL_PHASES, NodePodView

log = logging.getLogger(__name__)
Assignment = dict[str, tuple[int, ...]]  # pod uid -> GPU indices


class GpuMapper(Protocol):
    name: str

    def assign(
        self, pods: Sequence[NodePodView], gpus: Sequence[GpuInfo], previous: Mapping[str, tuple[int, ...]]
    ) -> Assignment:
        """GPU indices of every live GPU pod. May raise GpuBackendError when the truth is unavailable right now."""
        ...


def is_gpu_pod(pod: NodePodView) -> bool:
    return pod.gpu_request > 0 and pod.phase not in TERMINAL_PHASES


def assign_fallback(pods: Sequence[NodePodView], gpu_count: int, previous: Mapping[str, tuple[int, ...]]) -> Assignment:
    """Sticky lowest-free-index allocation (see the module docstring). Pods that do not fit get nothing."""
    live = [p for p in pods if is_gpu_pod(p)]
    out: Assignment = {}
    used: set[int] = set()
    for pod in sorted(live, key=lambda p: (p.namespace, p.name, p.uid)):
        kept = previous.get(pod.uid, ())
        if len(kept) == pod.gpu_request and all(0 <= i < gpu_count for i in kept) and not used.intersection(kept):
            out[pod.uid] = tuple(kept)
            used.update(kept)
    for pod in sorted(live, key=lambda p: (p.namespace, p.name, p.uid)):
        if pod.uid in out:
            continue
        free = [i for i in range(gpu_count) if i not in used]
        if len(free) < pod.gpu_request:
            log.warning("pod %s/%s wants %d GPUs, only %d free", pod.namespace, pod.name, pod.gpu_request, len(free))
            continue
        out[pod.uid] = tuple(free[: pod.gpu_request])
        used.update(out[pod.uid])
    return out


class FallbackMapper:
    name = "fallback"

    def assign(
        self, pods: Sequence[NodePodView], gpus: Sequence[GpuInfo], previous: Mapping[str, tuple[int, ...]]
    ) -> Assignment:
        return assign_fallback(pods, len(gpus), previous)


class PodResourcesMapper:
    """Maps the kubelet's device ids (GPU UUIDs, or indices under the device plugin's index strategy) to indices."""

    name = "podresources"

    def __init__(self, client: PodResourcesClient, resource: str = GPU_RESOURCE) -> None:
        self._client = client
        self._resource = resource

    def assign(
        self, pods: Sequence[NodePodView], gpus: Sequence[GpuInfo], previous: Mapping[str, tuple[int, ...]]
    ) -> Assignment:
        by_id = {g.uuid: g.index for g in gpus} | {str(g.index): g.index for g in gpus}
        devices = {(p.namespace, p.name): p.device_ids(self._resource) for p in self._client.list()}
        out: Assignment = {}
        for pod in pods:
            if not is_gpu_pod(pod):
                continue
            ids = devices.get((pod.namespace, pod.name), ())
            unknown = [d for d in ids if d not in by_id]
            if unknown:  # MIG instances or devices of another node's view: never cap what we cannot name
                log.warning("pod %s/%s has devices %s that are not whole GPUs here", pod.namespace, pod.name, unknown)
            indices = tuple(sorted(by_id[d] for d in ids if d in by_id))
            if indices:
                out[pod.uid] = indices
        return out


def make_mapper(mode: str, socket: Path = DEFAULT_SOCKET) -> GpuMapper:
    """`auto`: PodResources when the socket exists, else the fallback; `podresources` / `fallback` force one."""
    if mode == "podresources" or (mode == "auto" and socket.exists()):
        return PodResourcesMapper(PodResourcesClient(socket))
    if mode in ("auto", "fallback"):
        return FallbackMapper()
    raise ValueError(f"unknown GPU mapping mode {mode!r} (auto, podresources, fallback)")
