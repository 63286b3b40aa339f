"""kubeconfig `exec` credential plugins (client.authentication.k8s.io): run the command, read the ExecCredential.

Cloud kubeconfigs (EKS `aws eks get-token`, GKE `gke-gcloud-auth-plugin`, AKS `kubelogin`) hold no credential, only
a command that prints one. As kubectl does, the plugin runs with the kubeconfig's args and env on top of ours,
`KUBERNETES_EXEC_INFO` set, stdin not a terminal; the credential is reused until shortly before its
`expirationTimestamp` (or for the process's life when it has none) and fetched again after a 401.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from llmasos.api.clock import parse_instant
from llmasos.errors import ConfigError

API_VERSIONS = ("client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1")
REFRESH_MARGIN_SECONDS = 60.0  # fetch a new credential this long before the old one expires
TIMEOUT_SECONDS = 60.0


@dataclass(frozen=True)
class ExecConfig:
    """The `exec` section of a kubeconfig user."""

    command: str
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    api_version: str = API_VERSIONS[0]
    interactive_mode: str = "IfAvailable"

    @classmethod
    def from_kubeconfig(cls, section: Mapping[str, Any], base: str = "") -> ExecConfig:
        command = str(section.get("command") or "")
        if not command:
            raise ConfigError("kubeconfig exec: command is missing")
        api_version = str(section.get("apiVersion") or "")
        if api_version not in API_VERSIONS:
            raise ConfigError(f"kubeconfig exec: apiVersion {api_version!r} is not one of {', '.join(API_VERSIONS)}")
        if section.get("interactiveMode") == "Always":
            raise ConfigError("kubeconfig exec: interactiveMode Always needs a terminal; LLMasOS runs without one")
        # A relative command path with a slash is relative to the kubeconfig's directory (as in kubectl).
        if "/" in command and not os.path.isabs(command) and base:
            command = os.path.join(base, command)
        env = tuple((str(e["name"]), str(e["value"])) for e in section.get("env") or [])
        return cls(command, tuple(str(a) for a in section.get("args") or []), env, api_version,
                   str(section.get("interactiveMode") or "IfAvailable"))


@dataclass(frozen=True)
class ExecCredential:
    """What a plugin returned: a bearer token and/or a client certificate and key (PEM), and when it expires."""

    token: str | None
    cert_pem: bytes | None
    key_pem: bytes | None
    expires: float | None  # time.time() seconds; None: valid for the life of the process


def parse_exec_credential(stdout: bytes, api_version: str, now: float) -> ExecCredential:
    """The plugin's stdout -> ExecCredential; ConfigError when it is not one."""
    try:
        doc = json.loads(stdout)
    except ValueError:
        raise ConfigError("kubeconfig exec: the plugin's output is not JSON") from None
    if not isinstance(doc, dict) or doc.get("kind") != "ExecCredential":
        raise ConfigError("kubeconfig exec: the plugin's output is not an ExecCredential")
    if doc.get("apiVersion") != api_version:
        raise ConfigError(f"kubeconfig exec: the plugin answered {doc.get('apiVersion')!r}, asked for {api_version!r}")
    status = doc.get("status") or {}
    token = status.get("token") or None
    cert, key = status.get("clientCertificateData"), status.get("clientKeyData")
    if bool(cert) != bool(key):
        raise ConfigError("kubeconfig exec: clientCertificateData and clientKeyData come together")
    if not token and not cert:
        raise ConfigError("kubeconfig exec: the ExecCredential has neither a token nor a client certificate")
    expires = None
    if status.get("expirationTimestamp"):
        try:
            expires = parse_instant(str(status["expirationTimestamp"])).timestamp()
        except ValueError:
            raise ConfigError("kubeconfig exec: expirationTimestamp is not RFC 3339") from None
        if expires <= now:
            raise ConfigError("kubeconfig exec: the plugin returned an expired credential")
    return ExecCredential(str(token) if token else None, str(cert).encode() if cert else None,
                          str(key).encode() if key else None, expires)


Runner = Callable[[list[str], Mapping[str, str]], bytes]


def run_plugin(argv: list[str], env: Mapping[str, str]) -> bytes:
    """Run a plugin without a terminal; its stderr (prompts, warnings) passes through to ours."""
    try:
        done = subprocess.run(argv, env=dict(env), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              timeout=TIMEOUT_SECONDS, check=False)
    except FileNotFoundError:
        raise ConfigError(f"kubeconfig exec: command {argv[0]!r} not found") from None
    except subprocess.TimeoutExpired:
        raise ConfigError(f"kubeconfig exec: {argv[0]} did not answer within {TIMEOUT_SECONDS:g} s") from None
    if done.returncode != 0:
        raise ConfigError(f"kubeconfig exec: {argv[0]} exited with {done.returncode}")
    return done.stdout


@dataclass
class ExecProvider:
    """Runs the plugin when there is no valid credential, and caches the answer (thread-safe: the agent's threads
    and the async client's worker thread share one)."""

    config: ExecConfig
    run: Runner = run_plugin
    clock: Callable[[], float] = time.time
    _cached: ExecCredential | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def credential(self) -> ExecCredential:
        with self._lock:
            c = self._cached
            if c is None or (c.expires is not None and c.expires - REFRESH_MARGIN_SECONDS <= self.clock()):
                env = {**os.environ, **dict(self.config.env), "KUBERNETES_EXEC_INFO": json.dumps({
                    "apiVersion": self.config.api_version, "kind": "ExecCredential",
                    "spec": {"interactive": False}})}
                c = parse_exec_credential(self.run([self.config.command, *self.config.args], env),
                                          self.config.api_version, self.clock())
                self._cached = c
            return c

    def forget(self) -> None:
        """Drop the cached credential (the API server answered 401): the next request runs the plugin again."""
        with self._lock:
            self._cached = None
