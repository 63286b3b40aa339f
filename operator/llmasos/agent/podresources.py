"""Client of the kubelet PodResources API (`v1.PodResourcesLister/List` over the unix socket): which GPU devices the
kubelet gave each container. This is the truth about pod -> GPU on a real node; the fallback in `mapping` guesses.

No generated protobuf code: the request is empty and the response needs five fields, so a few lines over the shared
wire-format reader (`protowire`) decode it (field numbers from k8s.io/kubelet/pkg/apis/podresources/v1/api.proto):

    ListPodResourcesResponse { repeated PodResources pod_resources = 1; }
    PodResources             { string name = 1; string namespace = 2; repeated ContainerResources containers = 3; }
    ContainerResources       { string name = 1; repeated ContainerDevices devices = 2; ... }
    ContainerDevices         { string resource_name = 1; repeated string device_ids = 2; ... }

grpcio is imported lazily (it is only needed where the socket is mounted). Unknown fields are skipped, as protobuf
requires, so newer kubelets (cpu_ids, memory, dynamic_resources) decode fine.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmasos.agent.backend import GpuBackendError
from llmasos.agent.protowire import bytes_fields, ld, string, string_field, string_fields

DEFAULT_SOCKET = Path("/var/lib/kubelet/pod-resources/kubelet.sock")
LIST_METHOD = "/v1.PodResourcesLister/List"


@dataclass(frozen=True)
class PodDevices:
    namespace: str
    name: str
    devices: tuple[tuple[str, str], ...]  # (resource name, device id) over all containers

    def device_ids(self, resource: str) -> tuple[str, ...]:
        return tuple(d for r, d in self.devices if r == resource)


def decode_list_response(buf: bytes) -> list[PodDevices]:
    pods: list[PodDevices] = []
    for pod_buf in bytes_fields(buf, 1):
        devices = [
            pair
            for container in bytes_fields(pod_buf, 3)
            for device in bytes_fields(container, 2)
            for pair in _decode_devices(device)
        ]
        pods.append(PodDevices(string_field(pod_buf, 2), string_field(pod_buf, 1), tuple(devices)))
    return pods


def _decode_devices(buf: bytes) -> list[tuple[str, str]]:
    resource = string_field(buf, 1)
    return [(resource, i) for i in string_fields(buf, 2)]


# The encoder mirrors the decoder; the tests serve real gRPC answers built with it.
def encode_list_response(pods: list[PodDevices]) -> bytes:
    out = b""
    for p in pods:
        by_resource: dict[str, list[str]] = {}
        for r, d in p.devices:
            by_resource.setdefault(r, []).append(d)
        devices = b"".join(
            ld(2, string(1, r) + b"".join(ld(2, d.encode()) for d in ids)) for r, ids in by_resource.items()
        )
        container = string(1, "main") + devices
        out += ld(1, string(1, p.name) + string(2, p.namespace) + ld(3, container))
    return out


class PodResourcesClient:
    """Calls List on the kubelet socket; raises GpuBackendError (transient) when the kubelet does not answer."""

    def __init__(self, socket: Path = DEFAULT_SOCKET, timeout_s: float = 5.0) -> None:
        self.socket = socket
        self._timeout = timeout_s
        self._channel: Any = None

    def list(self) -> list[PodDevices]:
        try:
            grpc: Any = importlib.import_module("grpc")
        except ImportError as exc:  # pragma: no cover - depends on the installed extras
            raise GpuBackendError("the PodResources client needs grpcio (pip install grpcio)", True) from exc
        if self._channel is None:
            self._channel = grpc.insecure_channel(f"unix://{self.socket}")
        call = self._channel.unary_unary(
            LIST_METHOD, request_serializer=lambda _: b"", response_deserializer=decode_list_response
        )
        try:
            return list(call(None, timeout=self._timeout))
        except grpc.RpcError as exc:
            raise GpuBackendError(f"kubelet PodResources List on {self.socket}: {exc}") from exc

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None
