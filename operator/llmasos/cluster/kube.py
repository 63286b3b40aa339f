"""A small asynchronous Kubernetes API client on aiohttp; credentials, TLS, error mapping and paging come from the
shared core in `llmasos.kube` (the node agent's blocking client uses the same).

Why our own: the operator needs a handful of verbs (get, list, create, patch, delete) on a few resource kinds, and
a thin client keeps memory low (the benchmark target is <= 200 MB RSS for 500 jobs), makes every request countable
(`requests_total`, used by the benchmark's "API requests per LLMJob"), and maps every failure onto
:class:`llmasos.errors.KubeApiError` so handlers can tell a retryable 409/5xx from a permanent 422.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any
from urllib.parse import urlencode

import aiohttp

from llmasos.cluster.priority import PriorityLimiter, request_priority
from llmasos.errors import KubeApiError
from llmasos.kube.config import Credentials, load_credentials
from llmasos.kube.core import (
    JSON,
    list_params,
    next_page,
    read_answer,
    request_headers,
    tls_context,
    transport_error,
)
from llmasos.kube.resources import (
    CLUSTER_PEERINGS,
    CRDS,
    EVENTS,
    JOBS,
    LLMJOBS,
    NODES,
    PEERINGS,
    PODS,
    SERVICES,
    Resource,
)

# Re-exported: callers in cluster/ and handlers/ import these from here (one import line per caller).
__all__ = ["CLUSTER_PEERINGS", "CRDS", "EVENTS", "JOBS", "JSON", "LLMJOBS", "NODES", "PEERINGS", "PODS", "SERVICES",
           "Credentials", "KubeClient", "Resource", "load_credentials"]


class KubeClient:
    """Async JSON client. Every method raises KubeApiError on a non-2xx answer or a connection failure.

    It runs on aiohttp (already installed: kopf's own client): at 500 new LLMJobs, httpx's per-request machinery
    was a quarter of the operator's CPU (profiled with py-spy, docs/operator.md "Scale benchmark").
    """

    def __init__(self, creds: Credentials, timeout: float = 30.0, max_inflight: int = 16):
        self.creds = creds
        self._ssl: ssl.SSLContext | bool | None = None  # set up on first use (an exec plugin may supply the cert)
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None  # created inside the running event loop
        # Requests wait here rather than in the connection pool: the number in flight is bounded, and the waiters
        # are admitted by the caller's `request_priority` (cluster/priority.py).
        self._inflight: PriorityLimiter | None = None
        self._max_inflight = max_inflight
        self.requests_total = 0

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            if self._ssl is None:
                self._ssl = tls_context(self.creds)
            connector = aiohttp.TCPConnector(ssl=self._ssl, limit=self._max_inflight, keepalive_timeout=120)
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def request(self, method: str, path: str, body: Any = None, params: dict[str, str] | None = None,
                      content_type: str = "application/json") -> JSON:
        if self.creds.exec_provider is not None:  # a plugin may run: not on the event loop
            headers, data = await asyncio.to_thread(request_headers, self.creds, body, content_type)
        else:
            headers, data = request_headers(self.creds, body, content_type)
        url = self.creds.server + path + (f"?{urlencode(params)}" if params else "")
        self.requests_total += 1
        if self._inflight is None:
            self._inflight = PriorityLimiter(self._max_inflight)
        if self._session is None and self.creds.exec_provider is not None:
            self._ssl = await asyncio.to_thread(tls_context, self.creds)
        session = self._open()
        try:
            async with self._inflight.slot(request_priority.get()), \
                    session.request(method, url, data=data, headers=headers) as r:
                status, raw = r.status, await r.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise transport_error(method, path, exc) from exc
        return read_answer(method, path, status, raw, self.creds)

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
        items: list[JSON] = []
        params: dict[str, str] | None = list_params(label_selector, field_selector)
        while params is not None:
            page = await self.request("GET", res.path(namespace), params=params)
            items.extend(page.get("items", []))
            params = next_page(params, page)
        return items

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
