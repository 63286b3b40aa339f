"""A blocking twin of :class:`KubeClient` for the node agent, whose control loop runs in plain threads.

Same credentials, TLS, error mapping and paging (the shared core in `llmasos.kube`), only the verbs the agent needs.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import httpx

from llmasos.errors import KubeApiError
from llmasos.kube.config import Credentials
from llmasos.kube.core import JSON, list_params, next_page, read_answer, request_headers, tls_context, transport_error
from llmasos.kube.resources import Resource


class SyncKubeClient:
    def __init__(self, creds: Credentials, timeout: float = 15.0) -> None:
        self.creds = creds
        self._http = httpx.Client(base_url=creds.server, verify=tls_context(creds), timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def request(self, method: str, path: str, body: Any = None, params: dict[str, str] | None = None) -> JSON:
        headers, data = request_headers(self.creds, body, "application/json")
        url = path + (f"?{urlencode(params)}" if params else "")
        try:
            r = self._http.request(method, url, content=data, headers=headers)
        except httpx.HTTPError as exc:
            raise transport_error(method, path, exc) from exc
        return read_answer(method, path, r.status_code, r.content, self.creds)

    def list(self, res: Resource, namespace: str | None = None, field_selector: str | None = None,
             label_selector: str | None = None) -> list[JSON]:
        items: list[JSON] = []
        params: dict[str, str] | None = list_params(label_selector, field_selector)
        while params is not None:
            page = self.request("GET", res.path(namespace), params=params)
            items.extend(page.get("items", []))
            params = next_page(params, page)
        return items

    def get(self, res: Resource, name: str, namespace: str | None = None) -> JSON:
        return self.request("GET", res.path(namespace, name))

    def apply_replace(self, res: Resource, body: JSON, namespace: str) -> JSON:
        """Replace the object (PUT) or create it when absent; the caller owns the whole object."""
        name = body["metadata"]["name"]
        try:
            return self.request("PUT", res.path(namespace, name), body)
        except KubeApiError as exc:
            if not exc.not_found:
                raise
        return self.request("POST", res.path(namespace), body)
