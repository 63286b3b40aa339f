"""Registration, unit-tested against a tmp gRPC server that records Register requests (not a kubelet: the real
kubelet registration is tested on the real node): the request's fields, waiting for a late kubelet, registering
again after a kubelet restart, a refusal ending the plugin, and the command's clean exit on SIGTERM."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import pytest

from e2e.deviceplugin import plugin_argv, start_plugin
from e2e.deviceplugin.kubelet import ENDPOINT, PluginConfig, RegistrationRefused, register, run
from e2e.deviceplugin.messages import Device, Options, RegisterRequest, decode_devices, decode_register, encode_empty
from e2e.deviceplugin.plugin import fake_device_ids

grpc: Any = pytest.importorskip("grpc")

IDS = fake_device_ids(2, "node-r")


class Registrar:
    """A `v1beta1.Registration` server on `<dir>/kubelet.sock` that records requests (or refuses them)."""

    def __init__(self, socket: Path, refuse: bool = False) -> None:
        self.requests: list[RegisterRequest] = []
        self.socket = socket

        def register(request: RegisterRequest, context: Any) -> bytes:
            if refuse:
                context.abort(grpc.StatusCode.UNKNOWN, "resource already registered")
            self.requests.append(request)
            return b""

        handler = grpc.method_handlers_generic_handler("v1beta1.Registration", {
            "Register": grpc.unary_unary_rpc_method_handler(register, request_deserializer=decode_register,
                                                            response_serializer=lambda b: b),
        })
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        self.server.add_generic_rpc_handlers((handler,))
        self.server.add_insecure_port(f"unix://{socket}")
        self.server.start()

    def stop(self) -> None:
        self.server.stop(grace=None).wait()
        self.socket.unlink(missing_ok=True)


@pytest.fixture
def registrars() -> Iterator[list[Registrar]]:
    started: list[Registrar] = []
    yield started
    for r in started:
        r.stop()


def wait_for(what: str, predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_register_request_carries_version_endpoint_resource_and_options(
    tmp_path: Path, registrars: list[Registrar]
) -> None:
    registrars.append(r := Registrar(tmp_path / "kubelet.sock"))
    register(r.socket, PluginConfig(tmp_path, IDS).register_request())
    assert r.requests == [RegisterRequest("v1beta1", ENDPOINT, "nvidia.com/gpu", Options(False, True))]


@pytest.mark.parametrize("removes_plugin_socket", [True, False], ids=["sockets-removed", "new-kubelet-sock-only"])
def test_run_waits_for_the_registrar_serves_and_registers_again_after_a_restart(
    tmp_path: Path, registrars: list[Registrar], removes_plugin_socket: bool
) -> None:
    stop = threading.Event()
    worker = threading.Thread(target=run, args=(PluginConfig(tmp_path / "dp", IDS, poll_s=0.05), stop))
    worker.start()
    own = tmp_path / "dp" / ENDPOINT
    try:
        wait_for("the plugin's socket", own.exists)
        time.sleep(0.2)  # no kubelet.sock yet: the plugin waits
        registrars.append(first := Registrar(tmp_path / "dp" / "kubelet.sock"))
        wait_for("a registration", lambda: len(first.requests) == 1)
        with grpc.insecure_channel(f"unix://{own}") as channel:
            stream = channel.unary_stream("/v1beta1.DevicePlugin/ListAndWatch", request_serializer=encode_empty,
                                          response_deserializer=decode_devices)(None, timeout=10)
            assert next(stream) == tuple(Device(i) for i in IDS)
            stream.cancel()
        # a kubelet restart: it removes the sockets in its directory and listens on a new kubelet.sock
        first.stop()
        if removes_plugin_socket:
            own.unlink()
        registrars.append(second := Registrar(tmp_path / "dp" / "kubelet.sock"))
        wait_for("a second registration", lambda: len(second.requests) == 1)
        wait_for("the plugin's socket again", own.exists)
    finally:
        stop.set()
        worker.join(timeout=10)
    assert not worker.is_alive()
    assert not own.exists()
    assert len(first.requests) == 1


def test_a_refused_registration_ends_run(tmp_path: Path, registrars: list[Registrar]) -> None:
    registrars.append(Registrar(tmp_path / "kubelet.sock", refuse=True))
    with pytest.raises(RegistrationRefused, match="already registered"):
        run(PluginConfig(tmp_path, IDS, poll_s=0.05), threading.Event())
    assert not (tmp_path / ENDPOINT).exists()


def test_the_command_registers_and_exits_cleanly_on_sigterm(tmp_path: Path, registrars: list[Registrar]) -> None:
    registrars.append(r := Registrar(tmp_path / "kubelet.sock"))
    argv = plugin_argv(tmp_path, 2, "nvidia-l4", node="node-r")
    assert argv[argv.index("-m") + 1] == "e2e.deviceplugin"
    assert argv[-2:] == ["--node", "node-r"]
    proc = start_plugin(tmp_path, 2, "nvidia-l4", tmp_path / "plugin.log", node="node-r")
    try:
        wait_for("the command's registration", lambda: len(r.requests) == 1 or proc.poll() is not None, 60)
        assert r.requests, (tmp_path / "plugin.log").read_text()
        assert (tmp_path / ENDPOINT).exists()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not (tmp_path / ENDPOINT).exists()
    log = (tmp_path / "plugin.log").read_text()
    assert all(i in log for i in IDS)
    assert "SIGTERM: stopping" in log
