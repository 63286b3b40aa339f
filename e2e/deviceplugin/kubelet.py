"""Registering with the kubelet, and staying registered across kubelet restarts.

The kubelet learns of a device plugin only through `v1beta1.Registration/Register` on `<dir>/kubelet.sock`, and
forgets it when it restarts: it deletes the sockets in its device-plugins directory and opens a new kubelet.sock.
NVIDIA's plugin watches the directory with inotify for that; the standard library has no inotify, and a check every
`poll_s` (stat of two paths) costs nothing, so `run` polls: when its own socket is gone or kubelet.sock is a
different file, it serves on a fresh socket and registers again.

A kubelet that is not (yet) listening is waited for; a kubelet that answers Register with an error (wrong version,
resource taken) ends the plugin, as the API asks ("Device plugin is expected to terminate upon registration
failure").
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import grpc

from e2e.deviceplugin.messages import API_VERSION, RegisterRequest, decode_empty, encode_register
from e2e.deviceplugin.plugin import OPTIONS, RESOURCE, FakeGpuPlugin, serve

REGISTER_METHOD = "/v1beta1.Registration/Register"
KUBELET_SOCKET = "kubelet.sock"
ENDPOINT = "llmasos-fake-gpu.sock"
_WAIT_CODES = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)

log = logging.getLogger(__name__)


class RegistrationRefused(Exception):
    """The kubelet answered Register with an error: retrying cannot help."""


@dataclass(frozen=True)
class PluginConfig:
    plugin_dir: Path  # the kubelet's device-plugins directory (<kubelet root-dir>/device-plugins)
    device_ids: tuple[str, ...]
    endpoint: str = ENDPOINT
    resource: str = RESOURCE
    poll_s: float = 1.0

    def register_request(self) -> RegisterRequest:
        return RegisterRequest(API_VERSION, self.endpoint, self.resource, OPTIONS)


def register(kubelet_socket: Path, request: RegisterRequest, timeout_s: float = 5.0) -> None:
    """One Register call; raises grpc.RpcError as the kubelet answered."""
    with grpc.insecure_channel(f"unix://{kubelet_socket}") as channel:
        call = channel.unary_unary(REGISTER_METHOD, request_serializer=encode_register,
                                   response_deserializer=decode_empty)
        call(request, timeout=timeout_s)


def _identity(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino, st.st_ctime_ns


class _SocketRemoved(Exception):
    """The kubelet, starting, cleared its directory of our socket: serve on a fresh one and register again."""


def _register_when_listening(config: PluginConfig, stop: threading.Event) -> tuple[int, int, int] | None:
    """Register as soon as the kubelet listens; the identity of the kubelet.sock registered with, None if stopped.

    A kubelet that starts while the plugin already serves deletes the plugin's socket before it opens kubelet.sock,
    so the socket is checked before registering, and again when the kubelet answers that it could not dial us."""
    kubelet_socket = config.plugin_dir / KUBELET_SOCKET
    own = config.plugin_dir / config.endpoint
    waited = False
    while not stop.is_set():
        identity = _identity(kubelet_socket)
        if identity is not None:
            if not own.exists():
                raise _SocketRemoved
            try:
                register(kubelet_socket, config.register_request())
            except grpc.RpcError as exc:
                if not own.exists():
                    raise _SocketRemoved from exc
                if exc.code() not in _WAIT_CODES:
                    raise RegistrationRefused(f"kubelet refused registration: {exc.code()}: {exc.details()}") from exc
            else:
                log.info("registered %s x%d as %s with %s", config.resource, len(config.device_ids),
                         config.endpoint, kubelet_socket)
                return identity
        if not waited:
            log.info("waiting for the kubelet at %s", kubelet_socket)
            waited = True
        stop.wait(config.poll_s)
    return None


def run(config: PluginConfig, stop: threading.Event) -> None:
    """Serve and stay registered until `stop` is set; the plugin's socket is removed on return."""
    own = config.plugin_dir / config.endpoint
    config.plugin_dir.mkdir(parents=True, exist_ok=True)  # the plugin may start before the kubelet made it
    while not stop.is_set():
        plugin = FakeGpuPlugin(config.device_ids)
        server = serve(plugin, own)
        log.info("serving %d fake GPUs on %s", len(config.device_ids), own)
        try:
            try:
                registered = _register_when_listening(config, stop)
            except _SocketRemoved:
                log.info("the kubelet removed %s while starting: serving and registering again", own)
                continue
            while registered is not None and not stop.wait(config.poll_s):
                if not own.exists() or _identity(config.plugin_dir / KUBELET_SOCKET) != registered:
                    log.info("the kubelet restarted (socket %s): serving and registering again",
                             "removed" if not own.exists() else "kept")
                    break
        finally:
            plugin.close()
            server.stop(grace=1.0).wait()
            own.unlink(missing_ok=True)
