"""The `v1beta1.DevicePlugin` service over fake GPUs: what the kubelet calls once the plugin has registered.

The device ids are the simulated backend's GPU UUIDs for this node (`sim_gpu_uuid`), so the ids the kubelet hands
to a container, the ids PodResources reports to the node agent, and the UUIDs the agent's `sim` backend reports are
one and the same list: the agent maps pods to GPUs on the real node exactly as it does on a GPU machine.

Allocate answers what NVIDIA's plugin answers, `NVIDIA_VISIBLE_DEVICES=<ids>` (the container toolkit's input), plus
`CUDA_VISIBLE_DEVICES=<ids>`: on a GPU node the toolkit's runtime hook hides the other GPUs from the container; the
fake node has no such hook, so the env itself names the container's GPUs, which is what the worker reads
(llmasos_worker.progress picks its GPUs from CUDA_VISIBLE_DEVICES, UUIDs allowed).

Served with grpcio's generic handlers and the hand-written codecs of `messages`: no generated stubs.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc

from e2e.deviceplugin.messages import (
    EMPTY,
    Device,
    Empty,
    IdLists,
    Options,
    PreferredRequest,
    decode_empty,
    decode_id_lists,
    decode_ids,
    decode_preferred_request,
    encode_allocate_response,
    encode_devices,
    encode_empty,
    encode_id_lists,
    encode_options,
)
from llmasos.agent.sim import sim_gpu_uuid

SERVICE = "v1beta1.DevicePlugin"
RESOURCE = "nvidia.com/gpu"
VISIBLE_DEVICES_ENV = ("NVIDIA_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES")
OPTIONS = Options(pre_start_required=False, get_preferred_allocation_available=True)
SOCKET_PATH_MAX = 107  # sun_path holds 108 bytes with the terminating NUL

log = logging.getLogger(__name__)


def fake_device_ids(count: int, node: str, seed: int = 0) -> tuple[str, ...]:
    """The ids of this node's fake GPUs: the UUIDs `SimBackend(..., count, seed=seed, node_name=node)` reports."""
    return tuple(sim_gpu_uuid(seed, node, i) for i in range(count))


class FakeGpuPlugin:
    """The DevicePlugin handlers over a fixed set of always-healthy devices."""

    def __init__(self, device_ids: tuple[str, ...]) -> None:
        if len(set(device_ids)) != len(device_ids):
            raise ValueError("device ids must be unique")
        self.device_ids = device_ids
        self._closing = threading.Event()

    def close(self) -> None:
        """End every ListAndWatch stream (the server's stop cancels them too)."""
        self._closing.set()

    def get_options(self, _: Empty, context: Any) -> Options:
        return OPTIONS

    def list_and_watch(self, _: Empty, context: Any) -> Iterator[tuple[Device, ...]]:
        """Send the device list once, then hold the stream open: fake devices never change health."""
        yield tuple(Device(i) for i in self.device_ids)
        ended = threading.Event()
        context.add_callback(ended.set)
        while not ended.wait(0.5) and not self._closing.is_set():
            pass

    def get_preferred_allocation(self, requests: tuple[PreferredRequest, ...], context: Any) -> IdLists:
        """The required ids, then the lowest-indexed available ones: a stable, NVML-ordered choice."""
        order = {d: i for i, d in enumerate(self.device_ids)}
        out = []
        for r in requests:
            rest = sorted((d for d in r.available if d not in r.must_include), key=lambda d: order.get(d, len(order)))
            out.append(tuple([*r.must_include, *rest][: max(r.size, len(r.must_include))]))
        return tuple(out)

    def allocate(self, requests: IdLists, context: Any) -> tuple[dict[str, str], ...]:
        known = set(self.device_ids)
        for ids in requests:
            if unknown := [d for d in ids if d not in known]:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"unknown device ids {unknown}")
        log.info("allocate %s", "; ".join(",".join(ids) for ids in requests))
        return tuple(allocation_env(ids) for ids in requests)

    def pre_start_container(self, ids: tuple[str, ...], context: Any) -> Empty:
        return EMPTY

    def rpc_handler(self) -> Any:
        """The generic handler of the service, wired to the codecs."""

        def unary(fn: Any, decode: Any, encode: Any) -> Any:
            return grpc.unary_unary_rpc_method_handler(fn, request_deserializer=decode, response_serializer=encode)

        return grpc.method_handlers_generic_handler(SERVICE, {
            "GetDevicePluginOptions": unary(self.get_options, decode_empty, encode_options),
            "ListAndWatch": grpc.unary_stream_rpc_method_handler(
                self.list_and_watch, request_deserializer=decode_empty, response_serializer=encode_devices
            ),
            "GetPreferredAllocation": unary(self.get_preferred_allocation, decode_preferred_request, encode_id_lists),
            "Allocate": unary(self.allocate, decode_id_lists, encode_allocate_response),
            "PreStartContainer": unary(self.pre_start_container, decode_ids, encode_empty),
        })


def allocation_env(ids: tuple[str, ...]) -> dict[str, str]:
    """The env one container gets for these devices."""
    return {name: ",".join(ids) for name in VISIBLE_DEVICES_ENV}


def serve(plugin: FakeGpuPlugin, socket_path: Path, max_workers: int = 4) -> Any:
    """Start a gRPC server for `plugin` on the unix socket (a stale socket file is replaced); returns the server."""
    if len(str(socket_path)) > SOCKET_PATH_MAX:
        raise ValueError(f"socket path longer than {SOCKET_PATH_MAX} bytes: {socket_path}")
    socket_path.unlink(missing_ok=True)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="deviceplugin"))
    server.add_generic_rpc_handlers((plugin.rpc_handler(),))
    server.add_insecure_port(f"unix://{socket_path}")
    server.start()
    return server
