"""A blocking twin of :class:`KubeClient` for the node agent, whose control loop runs in plain threads.

Same credentials, TLS, error mapping and paging (the shared core in `llmasos.kube`), only the verbs the agent needs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
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

    def watch(self, res: Resource, field_selector: str, resource_version: str = "",
              timeout_seconds: int = 300) -> Iterator[JSON]:
        """The watch events ({"type", "object"}) of `res` matching `field_selector`, from `resource_version` ("":
        the current objects as ADDED first), until the API server ends the watch after `timeout_seconds`."""
        params = {"watch": "1", "fieldSelector": field_selector, "allowWatchBookmarks": "true",
                  "timeoutSeconds": str(timeout_seconds)}
        if resource_version:
            params["resourceVersion"] = resource_version
        path = res.path(None)
        headers, _ = request_headers(self.creds, None, "application/json")
        timeout = httpx.Timeout(self._http.timeout.connect, read=timeout_seconds + 30.0)
        try:
            with self._http.stream("GET", f"{path}?{urlencode(params)}", headers=headers, timeout=timeout) as r:
                if r.status_code >= 300:
                    read_answer("GET", path, r.status_code, r.read(), self.creds)
                for line in r.iter_lines():
                    if line.strip():
                        yield json.loads(line)
        except httpx.HTTPError as exc:
            raise transport_error("GET", path, exc) from exc

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
