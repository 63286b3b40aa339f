"""The v1beta1 device-plugin messages this plugin sends and receives, as values, with their wire codecs.

Field numbers from k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1/api.proto (package `v1beta1`):

    DevicePluginOptions  { bool pre_start_required = 1; bool get_preferred_allocation_available = 2; }
    RegisterRequest      { string version = 1; string endpoint = 2; string resource_name = 3;
                           DevicePluginOptions options = 4; }
    ListAndWatchResponse { repeated Device devices = 1; }      Device { string ID = 1; string health = 2; ... }
    AllocateRequest      { repeated ContainerAllocateRequest container_requests = 1; }   { repeated string ids = 1; }
    AllocateResponse     { repeated ContainerAllocateResponse container_responses = 1; }
                           ContainerAllocateResponse { map<string, string> envs = 1; mounts = 2; devices = 3; ... }
    PreferredAllocationRequest  { repeated ContainerPreferredAllocationRequest container_requests = 1; }
                           { repeated string available_deviceIDs = 1; repeated string must_include_deviceIDs = 2;
                             int32 allocation_size = 3; }
    PreferredAllocationResponse { repeated ContainerPreferredAllocationResponse container_responses = 1; }
                           { repeated string deviceIDs = 1; }
    PreStartContainerRequest { repeated string devicesIDs = 1; }          Empty, PreStartContainerResponse: no fields

Fake GPUs need no NUMA topology, mounts, device nodes or CDI devices, so those fields are never written, and read
back only as unknown fields (skipped). Both directions exist for every message: the plugin needs one, the tests
(which play the kubelet through a real gRPC channel) the other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from llmasos.agent.protowire import bytes_fields, ld, string, string_field, string_fields, varint, varint_field

API_VERSION = "v1beta1"
HEALTHY = "Healthy"


@dataclass(frozen=True)
class Options:
    pre_start_required: bool = False
    get_preferred_allocation_available: bool = False


@dataclass(frozen=True)
class RegisterRequest:
    version: str
    endpoint: str  # the plugin's socket file name, relative to the kubelet's device-plugins directory
    resource_name: str
    options: Options


@dataclass(frozen=True)
class Device:
    id: str
    health: str = HEALTHY


@dataclass(frozen=True)
class PreferredRequest:
    available: tuple[str, ...]
    must_include: tuple[str, ...]
    size: int


IdLists = tuple[tuple[str, ...], ...]  # one tuple of device ids per container


@dataclass(frozen=True)
class Empty:
    """Empty, PreStartContainerResponse. A value, not None: grpcio takes a None from a deserializer for a failure."""


EMPTY = Empty()


def encode_empty(_: object = None) -> bytes:
    return b""


def decode_empty(_: bytes) -> Empty:
    return EMPTY


def encode_options(o: Options) -> bytes:
    return varint(1, int(o.pre_start_required)) + varint(2, int(o.get_preferred_allocation_available))


def decode_options(buf: bytes) -> Options:
    return Options(bool(varint_field(buf, 1)), bool(varint_field(buf, 2)))


def encode_register(r: RegisterRequest) -> bytes:
    return (
        string(1, r.version) + string(2, r.endpoint) + string(3, r.resource_name) + ld(4, encode_options(r.options))
    )


def decode_register(buf: bytes) -> RegisterRequest:
    options = bytes_fields(buf, 4)
    version, endpoint, resource = (string_field(buf, n) for n in (1, 2, 3))
    return RegisterRequest(version, endpoint, resource, decode_options(options[-1] if options else b""))


def encode_devices(devices: Sequence[Device]) -> bytes:
    """A ListAndWatchResponse."""
    return b"".join(ld(1, string(1, d.id) + string(2, d.health)) for d in devices)


def decode_devices(buf: bytes) -> tuple[Device, ...]:
    return tuple(Device(string_field(d, 1), string_field(d, 2)) for d in bytes_fields(buf, 1))


def encode_id_lists(lists: IdLists) -> bytes:
    """AllocateRequest and PreferredAllocationResponse share this shape: per container, repeated string ids = 1."""
    return b"".join(ld(1, b"".join(ld(1, i.encode()) for i in ids)) for ids in lists)


def decode_id_lists(buf: bytes) -> IdLists:
    return tuple(tuple(string_fields(c, 1)) for c in bytes_fields(buf, 1))


def encode_ids(ids: tuple[str, ...]) -> bytes:
    """A PreStartContainerRequest: repeated string devicesIDs = 1."""
    return b"".join(ld(1, i.encode()) for i in ids)


def decode_ids(buf: bytes) -> tuple[str, ...]:
    return tuple(string_fields(buf, 1))


def encode_allocate_response(envs_per_container: Sequence[Mapping[str, str]]) -> bytes:
    """Per container, its env map (map entries are messages {key = 1, value = 2}); keys sorted, so bytes are stable."""
    return b"".join(
        ld(1, b"".join(ld(1, string(1, k) + string(2, envs[k])) for k in sorted(envs))) for envs in envs_per_container
    )


def decode_allocate_response(buf: bytes) -> tuple[dict[str, str], ...]:
    return tuple(
        {string_field(e, 1): string_field(e, 2) for e in bytes_fields(container, 1)}
        for container in bytes_fields(buf, 1)
    )


def encode_preferred_request(requests: Sequence[PreferredRequest]) -> bytes:
    return b"".join(
        ld(
            1,
            b"".join(ld(1, i.encode()) for i in r.available)
            + b"".join(ld(2, i.encode()) for i in r.must_include)
            + varint(3, r.size),
        )
        for r in requests
    )


def decode_preferred_request(buf: bytes) -> tuple[PreferredRequest, ...]:
    return tuple(
        PreferredRequest(tuple(string_fields(c, 1)), tuple(string_fields(c, 2)), varint_field(c, 3))
        for c in bytes_fields(buf, 1)
    )
