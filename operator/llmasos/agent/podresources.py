"""Client of the kubelet PodResources API (`v1.PodResourcesLister/List` over the unix socket): which GPU devices the
kubelet gave each container. This is the truth about pod -> GPU on a real node; the fallback in `mapping` guesses.

No generated protobuf code: the request is empty and the response needs five fields, so a ~40-line decoder of the
protobuf wire format reads it (field numbers from k8s.io/kubelet/pkg/apis/podresources/v1/api.proto):

    ListPodResourcesResponse { repeated PodResources pod_resources = 1; }
    PodResources             { string name = 1; string namespace = 2; repeated ContainerResources containers = 3; }
    ContainerResources       { string name = 1; repeated ContainerDevices devices = 2; ... }
    ContainerDevices         { string resource_name = 1; repeated string device_ids = 2; ... }

grpcio is imported lazily (it is only needed where the socket is mounted). Unknown fields are skipped, as protobuf
requires, so newer kubelets (cpu_ids, memory, dynamic_resources) decode fine.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmasos.agent.backend import GpuBackendError

DEFAULT_SOCKET = Path("/var/lib/kubelet/pod-resources/kubelet.sock")
LIST_METHOD = "/v1.PodResourcesLister/List"


@dataclass(frozen=True)
class PodDevices:
    namespace: str
    name: str
    devices: tuple[tuple[str, str], ...]  # (resource name, device id) over all containers

    def device_ids(self, resource: str) -> tuple[str, ...]:
        return tuple(d for r, d in self.devices if r == resource)


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _fields(buf: bytes) -> Iterator[tuple[int, int, Any]]:
    """Yield (field number, wire type, value) of one message; length-delimited values are bytes."""
    pos = 0
    value: Any
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos : pos + 8], pos + 8
        elif wire == 2:
            size, pos = _varint(buf, pos)
            if pos + size > len(buf):
                raise ValueError("truncated length-delimited field")
            value, pos = buf[pos : pos + size], pos + size
        elif wire == 5:
            value, pos = buf[pos : pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        yield number, wire, value


def decode_list_response(buf: bytes) -> list[PodDevices]:
    pods: list[PodDevices] = []
    for number, wire, pod_buf in _fields(buf):
        if number != 1 or wire != 2:
            continue
        name = namespace = ""
        devices: list[tuple[str, str]] = []
        for pn, pw, pv in _fields(pod_buf):
            if pw != 2:
                continue
            if pn == 1:
                name = pv.decode()
            elif pn == 2:
                namespace = pv.decode()
            elif pn == 3:
                for cn, cw, cv in _fields(pv):
                    if cn == 2 and cw == 2:
                        devices.extend(_decode_devices(cv))
        pods.append(PodDevices(namespace, name, tuple(devices)))
    return pods


def _decode_devices(buf: bytes) -> list[tuple[str, str]]:
    resource = ""
    ids: list[str] = []
    for n, w, v in _fields(buf):
        if w == 2 and n == 1:
            resource = v.decode()
        elif w == 2 and n == 2:
            ids.append(v.decode())
    return [(resource, i) for i in ids]


# The encoder mirrors the decoder; the tests serve real gRPC answers built with it.
def _key(number: int, wire: int) -> bytes:
    return _enc_varint(number << 3 | wire)


def _enc_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _ld(number: int, payload: bytes) -> bytes:
    return _key(number, 2) + _enc_varint(len(payload)) + payload


def encode_list_response(pods: list[PodDevices]) -> bytes:
    out = b""
    for p in pods:
        by_resource: dict[str, list[str]] = {}
        for r, d in p.devices:
            by_resource.setdefault(r, []).append(d)
        devices = b"".join(
            _ld(2, _ld(1, r.encode()) + b"".join(_ld(2, d.encode()) for d in ids)) for r, ids in by_resource.items()
        )
        container = _ld(1, b"main") + devices
        out += _ld(1, _ld(1, p.name.encode()) + _ld(2, p.namespace.encode()) + _ld(3, container))
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
