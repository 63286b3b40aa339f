"""Pod -> GPU mapping: the sticky fallback, and the kubelet PodResources client against a real gRPC server."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import pytest

from llmasos.agent.backend import GpuBackendError, GpuInfo
from llmasos.agent.mapping import FallbackMapper, PodResourcesMapper, assign_fallback, make_mapper
from llmasos.agent.podresources import (
    LIST_METHOD,
    PodDevices,
    PodResourcesClient,
    decode_list_response,
    encode_list_response,
)

from .builders import pod

grpc: Any = pytest.importorskip("grpc")

GPUS = [GpuInfo(i, f"GPU-{i:04d}", "NVIDIA A100-SXM4-80GB", 100_000, 400_000, 400_000, True) for i in range(8)]


def test_fallback_lowest_free_in_name_order() -> None:
    pods = [pod("b", gpus=2), pod("a", gpus=3), pod("c", gpus=0), pod("d", gpus=2, phase="Succeeded")]
    assert assign_fallback(pods, 8, {}) == {"uid-a": (0, 1, 2), "uid-b": (3, 4)}


def test_fallback_is_sticky_when_pods_come_and_go() -> None:
    first = assign_fallback([pod("m", gpus=2), pod("z", gpus=2)], 8, {})
    assert first == {"uid-m": (0, 1), "uid-z": (2, 3)}
    # m ends, a arrives: z keeps 2-3 and a gets the lowest free indices, not a reshuffle
    second = assign_fallback([pod("a", gpus=3), pod("z", gpus=2)], 8, first)
    assert second == {"uid-z": (2, 3), "uid-a": (0, 1, 4)}


def test_fallback_leaves_out_pods_that_do_not_fit() -> None:
    assert assign_fallback([pod("a", gpus=6), pod("b", gpus=4)], 8, {}) == {"uid-a": (0, 1, 2, 3, 4, 5)}


def test_fallback_mapper_uses_gpu_count() -> None:
    assert FallbackMapper().assign([pod("a", gpus=2)], GPUS[:2], {}) == {"uid-a": (0, 1)}


def test_wire_format_round_trip_and_unknown_fields() -> None:
    pods = [
        PodDevices("ns", "w-0", (("nvidia.com/gpu", "GPU-0003"), ("nvidia.com/gpu", "GPU-0001"))),
        PodDevices("ns", "cpu", ()),
    ]
    buf = encode_list_response(pods)
    assert decode_list_response(buf) == pods
    # a newer kubelet adds fields (e.g. PodResources.cpu_ids = 4, varint-packed): they are skipped
    extra = b"\x0a" + bytes([len(inner := encode_list_response(pods[:1])[2:] + b"\x20\x07")]) + inner
    assert decode_list_response(extra) == pods[:1]


def test_truncated_message_is_an_error() -> None:
    with pytest.raises(ValueError, match="truncated"):
        decode_list_response(encode_list_response([PodDevices("ns", "w", (("nvidia.com/gpu", "GPU-1"),))])[:-3])


@pytest.fixture
def kubelet(tmp_path: Path) -> Iterator[tuple[Path, list[PodDevices]]]:
    """A gRPC server on a unix socket answering v1.PodResourcesLister/List like the kubelet does."""
    answer: list[PodDevices] = []
    service, method = LIST_METHOD.strip("/").split("/")

    def list_pods(request: bytes, context: object) -> bytes:
        return encode_list_response(answer)

    handler = grpc.method_handlers_generic_handler(
        service,
        {method: grpc.unary_unary_rpc_method_handler(list_pods, request_deserializer=None, response_serializer=None)},
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    server.add_generic_rpc_handlers((handler,))
    socket = tmp_path / "kubelet.sock"
    server.add_insecure_port(f"unix://{socket}")
    server.start()
    try:
        yield socket, answer
    finally:
        server.stop(grace=None)


def test_pod_resources_mapper_against_grpc(kubelet: tuple[Path, list[PodDevices]]) -> None:
    socket, answer = kubelet
    answer += [
        PodDevices("default", "a", (("nvidia.com/gpu", "GPU-0005"), ("nvidia.com/gpu", "GPU-0002"))),
        PodDevices("default", "b", (("nvidia.com/gpu", "6"),)),  # device plugin's index strategy
        PodDevices("default", "c", (("nvidia.com/gpu", "MIG-1234"),)),  # not a whole GPU: never capped
        PodDevices("other", "x", (("example.com/fpga", "fpga-0"),)),
    ]
    mapper = make_mapper("auto", socket)
    assert isinstance(mapper, PodResourcesMapper)
    pods = [pod("a", gpus=2), pod("b", gpus=1), pod("c", gpus=1), pod("d", gpus=1)]
    assert mapper.assign(pods, GPUS, {}) == {"uid-a": (2, 5), "uid-b": (6,)}


def test_pod_resources_unreachable_is_a_transient_backend_error(tmp_path: Path) -> None:
    client = PodResourcesClient(tmp_path / "missing.sock", timeout_s=0.5)
    with pytest.raises(GpuBackendError) as err:
        client.list()
    assert not err.value.permanent
    client.close()


def test_auto_without_socket_is_the_fallback(tmp_path: Path) -> None:
    assert make_mapper("auto", tmp_path / "none.sock").name == "fallback"
    with pytest.raises(ValueError, match="unknown GPU mapping"):
        make_mapper("guess")
