"""The fake-GPU DevicePlugin service, called as the kubelet calls it: a real gRPC client over a unix socket."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from e2e.deviceplugin.messages import (
    Device,
    PreferredRequest,
    decode_allocate_response,
    decode_devices,
    decode_id_lists,
    decode_options,
    encode_empty,
    encode_id_lists,
    encode_ids,
    encode_preferred_request,
)
from e2e.deviceplugin.plugin import FakeGpuPlugin, fake_device_ids, serve
from llmasos.agent.clock import ManualClock
from llmasos.agent.sim import SimBackend

grpc: Any = pytest.importorskip("grpc")

NODE = "llmasos-real-0"
IDS = fake_device_ids(4, NODE)


@pytest.fixture
def plugin(tmp_path: Path) -> Iterator[tuple[FakeGpuPlugin, Any]]:
    """The plugin served on a socket in a tmp dir, and a channel to it."""
    p = FakeGpuPlugin(IDS)
    server = serve(p, tmp_path / "p.sock")
    channel = grpc.insecure_channel(f"unix://{tmp_path / 'p.sock'}")
    try:
        yield p, channel
    finally:
        channel.close()
        p.close()
        server.stop(grace=None)


def call(channel: Any, method: str, request: Any, encode: Any, decode: Any) -> Any:
    return channel.unary_unary(f"/v1beta1.DevicePlugin/{method}", request_serializer=encode,
                               response_deserializer=decode)(request, timeout=5)


def test_device_ids_are_the_sim_backends_uuids() -> None:
    sim = SimBackend("nvidia-l4", 4, ManualClock(), seed=3, node_name=NODE)
    assert fake_device_ids(4, NODE, seed=3) == tuple(sim.info(i).uuid for i in range(4))
    assert len(set(IDS)) == 4


def test_list_and_watch_lists_every_device_healthy_and_holds_the_stream(plugin: tuple[FakeGpuPlugin, Any]) -> None:
    p, channel = plugin
    stream = channel.unary_stream("/v1beta1.DevicePlugin/ListAndWatch", request_serializer=encode_empty,
                                  response_deserializer=decode_devices)(None, timeout=10)
    assert next(stream) == tuple(Device(i, "Healthy") for i in IDS)
    p.close()  # the plugin shutting down ends the stream (the kubelet then marks the devices unhealthy)
    assert list(stream) == []


def test_allocate_returns_the_visible_devices_env_per_container(plugin: tuple[FakeGpuPlugin, Any]) -> None:
    _, channel = plugin
    answer = call(channel, "Allocate", ((IDS[2], IDS[0]), (IDS[1],)), encode_id_lists, decode_allocate_response)
    both = f"{IDS[2]},{IDS[0]}"
    assert answer == (
        {"NVIDIA_VISIBLE_DEVICES": both, "CUDA_VISIBLE_DEVICES": both},
        {"NVIDIA_VISIBLE_DEVICES": IDS[1], "CUDA_VISIBLE_DEVICES": IDS[1]},
    )


def test_allocate_of_an_unknown_device_is_invalid_argument(plugin: tuple[FakeGpuPlugin, Any]) -> None:
    _, channel = plugin
    with pytest.raises(grpc.RpcError) as err:
        call(channel, "Allocate", (("GPU-nope",),), encode_id_lists, decode_allocate_response)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "GPU-nope" in err.value.details()


def test_options_offer_preferred_allocation_without_pre_start(plugin: tuple[FakeGpuPlugin, Any]) -> None:
    _, channel = plugin
    options = call(channel, "GetDevicePluginOptions", None, encode_empty, decode_options)
    assert options.get_preferred_allocation_available
    assert not options.pre_start_required


def test_preferred_allocation_keeps_required_then_lowest_index(plugin: tuple[FakeGpuPlugin, Any]) -> None:
    _, channel = plugin
    requests = (PreferredRequest((IDS[3], IDS[1], IDS[2]), (IDS[3],), 2), PreferredRequest(IDS, (), 1))
    answer = call(channel, "GetPreferredAllocation", requests, encode_preferred_request, decode_id_lists)
    assert answer == ((IDS[3], IDS[1]), (IDS[0],))


def test_pre_start_container_answers_empty(plugin: tuple[FakeGpuPlugin, Any]) -> None:
    _, channel = plugin
    assert call(channel, "PreStartContainer", (IDS[0],), encode_ids, lambda b: b) == b""


def test_duplicate_ids_and_long_socket_paths_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unique"):
        FakeGpuPlugin(("a", "a"))
    with pytest.raises(ValueError, match="longer"):
        serve(FakeGpuPlugin(IDS), tmp_path / ("x" * 110))
