"""Where the API server is and how to authenticate to it: kubeconfig (files, inline data, tokens, exec plugins) or
the in-cluster ServiceAccount.

Inline certificate data stays in memory (the TLS set-up in `kube/tls.py` reads it from there); nothing decoded from
a kubeconfig is written to a file that outlives the call (before, every client wrote its keys to temporary files
that were never deleted).
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from llmasos.errors import ConfigError
from llmasos.kube.execcred import ExecConfig, ExecProvider

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


@dataclass(frozen=True)
class Credentials:
    """The API server's URL and every way of proving who we are; PEM data (`*_pem`) or paths (`*_file`)."""

    server: str
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    token: str | None = None
    token_file: str | None = None
    insecure: bool = False
    ca_pem: bytes | None = None
    cert_pem: bytes | None = None
    key_pem: bytes | None = None
    exec_provider: ExecProvider | None = field(default=None, compare=False)

    def bearer(self) -> str | None:
        """The bearer token for the next request, if any (may run an exec plugin: blocking)."""
        if self.token_file:
            return Path(self.token_file).read_text().strip()  # re-read: projected tokens rotate
        if self.token:
            return self.token
        if self.exec_provider is not None:
            return self.exec_provider.credential().token
        return None

    def client_certificate(self) -> tuple[bytes, bytes] | tuple[str, str] | None:
        """The client certificate and key: PEM bytes, or file paths (may run an exec plugin: blocking)."""
        if self.cert_pem and self.key_pem:
            return self.cert_pem, self.key_pem
        if self.cert_file and self.key_file:
            return self.cert_file, self.key_file
        if self.exec_provider is not None:
            c = self.exec_provider.credential()
            if c.cert_pem and c.key_pem:
                return c.cert_pem, c.key_pem
        return None

    def unauthorized(self) -> None:
        """The API server refused the credential (401): an exec plugin's cached one is fetched again next time."""
        if self.exec_provider is not None:
            self.exec_provider.forget()


def _decode(value: str, what: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"kubeconfig: {what} is not base64") from None


def load_kubeconfig(path: str | Path, context: str | None = None) -> Credentials:
    """Read a kubeconfig file (client certificates, tokens, inline data, exec plugins) into Credentials."""
    try:
        doc = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read kubeconfig {path}: {exc}") from exc
    base = Path(path).parent
    ctx_name = context or (doc or {}).get("current-context")
    try:
        ctx = next(c["context"] for c in doc["contexts"] if c["name"] == ctx_name)
        cluster = next(c["cluster"] for c in doc["clusters"] if c["name"] == ctx["cluster"])
        user: dict[str, Any] = next(
            (u["user"] for u in doc.get("users", []) if u["name"] == ctx.get("user")), {}
        ) or {}
        server = str(cluster["server"]).rstrip("/")
    except (KeyError, StopIteration, TypeError, AttributeError) as exc:
        raise ConfigError(f"kubeconfig {path}: context {ctx_name!r} is incomplete") from exc

    def path_of(section: dict[str, Any], key: str) -> str | None:
        if not section.get(key):
            return None
        p = Path(section[key])
        return str(p if p.is_absolute() else base / p)

    def data_of(section: dict[str, Any], key: str) -> bytes | None:
        return _decode(section[key], key) if section.get(key) else None

    exec_section = user.get("exec")
    return Credentials(
        server=server,
        ca_file=path_of(cluster, "certificate-authority"),
        ca_pem=data_of(cluster, "certificate-authority-data"),
        cert_file=path_of(user, "client-certificate"),
        cert_pem=data_of(user, "client-certificate-data"),
        key_file=path_of(user, "client-key"),
        key_pem=data_of(user, "client-key-data"),
        token=user.get("token"),
        token_file=user.get("tokenFile"),
        insecure=bool(cluster.get("insecure-skip-tls-verify", False)),
        exec_provider=ExecProvider(ExecConfig.from_kubeconfig(exec_section, str(base))) if exec_section else None,
    )


def load_in_cluster(sa_dir: Path = SERVICE_ACCOUNT_DIR) -> Credentials:
    host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    if not host or not (sa_dir / "token").exists():
        raise ConfigError("not running in a cluster: KUBERNETES_SERVICE_HOST or the ServiceAccount token is missing")
    if ":" in host:
        host = f"[{host}]"
    return Credentials(server=f"https://{host}:{port}", ca_file=str(sa_dir / "ca.crt"),
                       token_file=str(sa_dir / "token"))


def load_credentials(kubeconfig: str | None = None) -> Credentials:
    """KUBECONFIG (or the given path) when set, else the in-cluster ServiceAccount, else ~/.kube/config."""
    path = kubeconfig or os.environ.get("KUBECONFIG")
    if path:
        return load_kubeconfig(path.split(os.pathsep)[0])
    try:
        return load_in_cluster()
    except ConfigError:
        default = Path.home() / ".kube" / "config"
        if default.exists():
            return load_kubeconfig(default)
        raise
