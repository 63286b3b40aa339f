"""A small asynchronous Kubernetes API client on aiohttp, with kubeconfig and in-cluster authentication.

Why our own: the operator needs a handful of verbs (get, list, create, patch, delete) on a few resource kinds, and
a thin client keeps memory low (the benchmark target is <= 200 MB RSS for 500 jobs), makes every request countable
(`requests_total`, used by the benchmark's "API requests per LLMJob"), and maps every failure onto
:class:`llmasos.errors.KubeApiError` so handlers can tell a retryable 409/5xx from a permanent 422.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import yaml

from llmasos.cluster.priority import PriorityLimiter, request_priority
from llmasos.errors import ConfigError, KubeApiError

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")

JSON = dict[str, Any]


@dataclass(frozen=True)
class Resource:
    """An API resource: group ('' for core), version, plural, namespaced."""

    group: str
    version: str
    plural: str
    namespaced: bool = True

    def path(self, namespace: str | None = None, name: str | None = None, subresource: str | None = None) -> str:
        base = f"/api/{self.version}" if not self.group else f"/apis/{self.group}/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name:
            base += f"/{name}"
            if subresource:
                base += f"/{subresource}"
        return base

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


LLMJOBS = Resource("llmasos.io", "v1alpha1", "llmjobs")
JOBS = Resource("batch", "v1", "jobs")
SERVICES = Resource("", "v1", "services")
PODS = Resource("", "v1", "pods")
NODES = Resource("", "v1", "nodes", namespaced=False)
EVENTS = Resource("", "v1", "events")
CRDS = Resource("apiextensions.k8s.io", "v1", "customresourcedefinitions", namespaced=False)
CLUSTER_PEERINGS = Resource("kopf.dev", "v1", "clusterkopfpeerings", namespaced=False)
PEERINGS = Resource("kopf.dev", "v1", "kopfpeerings")


@dataclass(frozen=True)
class Credentials:
    """Where the API server is and how to authenticate to it."""

    server: str
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    token: str | None = None
    token_file: str | None = None
    insecure: bool = False

    def bearer(self) -> str | None:
        if self.token_file:
            return Path(self.token_file).read_text().strip()  # re-read: projected tokens rotate
        return self.token


def _materialize(data_b64: str, suffix: str) -> str:
    fd, path = tempfile.mkstemp(prefix="llmasos-", suffix=suffix)
    with os.fdopen(fd, "wb") as f:
        f.write(base64.b64decode(data_b64))
    return path


def load_kubeconfig(path: str | Path, context: str | None = None) -> Credentials:
    """Read a kubeconfig file (client certificates, tokens, inline data) into Credentials."""
    try:
        doc = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read kubeconfig {path}: {exc}") from exc
    base = Path(path).parent
    ctx_name = context or doc.get("current-context")
    try:
        ctx = next(c["context"] for c in doc["contexts"] if c["name"] == ctx_name)
        cluster = next(c["cluster"] for c in doc["clusters"] if c["name"] == ctx["cluster"])
        user: dict[str, Any] = next(
            (u["user"] for u in doc.get("users", []) if u["name"] == ctx.get("user")), {}
        )
    except (KeyError, StopIteration, TypeError) as exc:
        raise ConfigError(f"kubeconfig {path}: context {ctx_name!r} is incomplete") from exc

    def file_or_data(file_key: str, data_key: str, section: dict[str, Any], suffix: str) -> str | None:
        if section.get(data_key):
            return _materialize(section[data_key], suffix)
        if section.get(file_key):
            p = Path(section[file_key])
            return str(p if p.is_absolute() else base / p)
        return None

    return Credentials(
        server=cluster["server"].rstrip("/"),
        ca_file=file_or_data("certificate-authority", "certificate-authority-data", cluster, ".crt"),
        cert_file=file_or_data("client-certificate", "client-certificate-data", user, ".crt"),
        key_file=file_or_data("client-key", "client-key-data", user, ".key"),
        token=user.get("token"),
        token_file=user.get("tokenFile"),
        insecure=bool(cluster.get("insecure-skip-tls-verify", False)),
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


class KubeClient:
    """Async JSON client. Every method raises KubeApiError on a non-2xx answer or a connection failure.

    It runs on aiohttp (already installed: kopf's own client): at 500 new LLMJobs, httpx's per-request machinery
    was a quarter of the operator's CPU (profiled with py-spy, docs/operator.md "Scale benchmark").
    """

    def __init__(self, creds: Credentials, timeout: float = 30.0, max_inflight: int = 16):
        self.creds = creds
        self._ssl: ssl.SSLContext | bool
        if creds.insecure:
            self._ssl = False
        else:
            self._ssl = ssl.create_default_context(cafile=creds.ca_file) if creds.ca_file else True
            if isinstance(self._ssl, ssl.SSLContext) and creds.cert_file and creds.key_file:
                self._ssl.load_cert_chain(creds.cert_file, creds.key_file)
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None  # created inside the running event loop
        # Requests wait here rather than in the connection pool: the number in flight is bounded, and the waiters
        # are admitted by the caller's `request_priority` (cluster/priority.py).
        self._inflight: PriorityLimiter | None = None
        self._max_inflight = max_inflight
        self.requests_total = 0

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=self._ssl, limit=self._max_inflight, keepalive_timeout=120)
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def request(self, method: str, path: str, body: Any = None, params: dict[str, str] | None = None,
                      content_type: str = "application/json") -> JSON:
        headers = {"Accept": "application/json"}
        token = self.creds.bearer()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = None
        if body is not None:
            headers["Content-Type"] = content_type
            data = json.dumps(body).encode()
        url = self.creds.server + path + (f"?{urlencode(params)}" if params else "")
        self.requests_total += 1
        if self._inflight is None:
            self._inflight = PriorityLimiter(self._max_inflight)
        session = self._open()
        try:
            async with self._inflight.slot(request_priority.get()), \
                    session.request(method, url, data=data, headers=headers) as r:
                status, raw = r.status, await r.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise KubeApiError(f"{method} {path}: {type(exc).__name__}: {exc}", status=0) from exc
        if status >= 300:
            text = raw.decode(errors="replace")
            try:
                answer = json.loads(raw)
                message, reason = answer.get("message", text), answer.get("reason", "")
            except (ValueError, AttributeError):
                message, reason = text[:300], ""
            raise KubeApiError(f"{method} {path}: {status} {message}", status=status, reason=reason)
        if not raw:
            return {}
        try:
            result: JSON = json.loads(raw)
        except ValueError as exc:
            raise KubeApiError(f"{method} {path}: the answer is not JSON: {raw[:200]!r}", status=0) from exc
        return result

    async def get(self, res: Resource, name: str, namespace: str | None = None) -> JSON:
        return await self.request("GET", res.path(namespace, name))

    async def get_or_none(self, res: Resource, name: str, namespace: str | None = None) -> JSON | None:
        try:
            return await self.get(res, name, namespace)
        except KubeApiError as exc:
            if exc.not_found:
                return None
            raise

    async def list(self, res: Resource, namespace: str | None = None, label_selector: str | None = None,
                   field_selector: str | None = None) -> list[JSON]:
        params: dict[str, str] = {}
        if label_selector:
            params["labelSelector"] = label_selector
        if field_selector:
            params["fieldSelector"] = field_selector
        items: list[JSON] = []
        while True:
            page = await self.request("GET", res.path(namespace), params={**params, "limit": "500"})
            items.extend(page.get("items", []))
            cont = page.get("metadata", {}).get("continue")
            if not cont:
                return items
            params["continue"] = cont

    async def create(self, res: Resource, body: JSON, namespace: str | None = None) -> JSON:
        return await self.request("POST", res.path(namespace), body)

    async def patch(self, res: Resource, name: str, body: Any, namespace: str | None = None,
                    subresource: str | None = None, patch_type: str = "merge") -> JSON:
        ctype = {"merge": "application/merge-patch+json", "json": "application/json-patch+json",
                 "strategic": "application/strategic-merge-patch+json"}[patch_type]
        return await self.request("PATCH", res.path(namespace, name, subresource), body, content_type=ctype)

    async def delete(self, res: Resource, name: str, namespace: str | None = None,
                     propagation: str = "Background") -> bool:
        """Delete; return False when it was already gone."""
        try:
            await self.request("DELETE", res.path(namespace, name), {"propagationPolicy": propagation})
        except KubeApiError as exc:
            if exc.not_found:
                return False
            raise
        return True
