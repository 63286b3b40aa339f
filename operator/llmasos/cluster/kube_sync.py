"""A blocking twin of :class:`KubeClient` for the node agent, whose control loop runs in plain threads.

Same credentials, same error mapping (KubeApiError with `retryable`), only the verbs the agent needs.
"""

from __future__ import annotations

import ssl
from typing import Any
from urllib.parse import urlencode

import httpx

from llmasos.cluster.kube import JSON, Credentials, Resource
from llmasos.errors import KubeApiError


def tls_context(creds: Credentials) -> ssl.SSLContext | bool:
    if creds.insecure:
        return False
    if not creds.ca_file:
        return True
    ctx = ssl.create_default_context(cafile=creds.ca_file)
    if creds.cert_file and creds.key_file:
        ctx.load_cert_chain(creds.cert_file, creds.key_file)
    return ctx


class SyncKubeClient:
    def __init__(self, creds: Credentials, timeout: float = 15.0) -> None:
        self.creds = creds
        self._http = httpx.Client(base_url=creds.server, verify=tls_context(creds), timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def request(self, method: str, path: str, body: Any = None, params: dict[str, str] | None = None) -> JSON:
        headers = {"Accept": "application/json"}
        token = self.creds.bearer()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        url = path + (f"?{urlencode(params)}" if params else "")
        try:
            r = self._http.request(method, url, json=body, headers=headers)
        except httpx.HTTPError as exc:
            raise KubeApiError(f"{method} {path}: {type(exc).__name__}: {exc}", status=0) from exc
        if r.status_code >= 300:
            try:
                message = r.json().get("message", r.text)
            except ValueError:
                message = r.text[:300]
            raise KubeApiError(f"{method} {path}: {r.status_code} {message}", status=r.status_code)
        return r.json() if r.content else {}

    def list(self, res: Resource, namespace: str | None = None, field_selector: str | None = None,
             label_selector: str | None = None) -> list[JSON]:
        params = {k: v for k, v in (("fieldSelector", field_selector), ("labelSelector", label_selector)) if v}
        return list(self.request("GET", res.path(namespace), params=params).get("items", []))

    def apply_replace(self, res: Resource, body: JSON, namespace: str) -> JSON:
        """Replace the object (PUT) or create it when absent; the caller owns the whole object."""
        name = body["metadata"]["name"]
        try:
            return self.request("PUT", res.path(namespace, name), body)
        except KubeApiError as exc:
            if not exc.not_found:
                raise
        return self.request("POST", res.path(namespace), body)
