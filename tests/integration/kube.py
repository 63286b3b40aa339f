"""A small synchronous API client for tests, authenticated as the cluster admin (or with a bearer token).

Tests talk to the API server over HTTPS like any client would; this is deliberately not the operator's own
client, so a bug there cannot hide itself in the tests that check it.
"""

from __future__ import annotations

import ssl
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx

from e2e.localcluster import LocalCluster


class AdminApi:
    def __init__(self, cluster: LocalCluster, token: str | None = None) -> None:
        pki = cluster.paths.pki
        tls = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        if not token:
            tls.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.cluster = cluster
        self.http = httpx.Client(base_url=cluster.paths.server, verify=tls, headers=headers, timeout=30)

    def close(self) -> None:
        self.http.close()

    def request(self, method: str, path: str, body: Any = None, expect: int | None = None,
                content_type: str = "application/json") -> httpx.Response:
        r = self.http.request(method, path, json=body, headers={"Content-Type": content_type})
        if expect is not None and r.status_code != expect:
            raise AssertionError(f"{method} {path}: expected {expect}, got {r.status_code}: {r.text[:500]}")
        return r

    def get(self, path: str) -> Any:
        return self.request("GET", path, expect=200).json()

    def create(self, path: str, body: Any) -> Any:
        return self.request("POST", path, body, expect=201).json()

    def delete(self, path: str) -> httpx.Response:
        return self.request("DELETE", path, {"propagationPolicy": "Background"})

    def namespace(self, prefix: str = "t") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        self.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        return name


def wait_for(predicate: Callable[[], Any], timeout: float = 60.0, interval: float = 0.25, what: str = "") -> Any:
    """Poll until predicate returns a truthy value; fail with `what` after timeout."""
    end = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < end:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}: last={last!r}")


LLMJOBS = "/apis/llmasos.io/v1alpha1"


def llmjob(name: str, **spec: Any) -> dict[str, Any]:
    """An LLMJob manifest with sensible small defaults; keyword arguments replace top-level spec fields.
    `annotations=` sets metadata annotations (e.g. sim.llmasos.io/duration)."""
    annotations = spec.pop("annotations", {"sim.llmasos.io/duration": "2s"})
    body: dict[str, Any] = {
        "apiVersion": "llmasos.io/v1alpha1", "kind": "LLMJob",
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"model": {"builtin": "gpt-tiny"},
                 "parallelism": {"strategy": "ddp", "nodes": 2, "gpusPerNode": 2}},
    }
    body["spec"].update(spec)
    return body


def llmjob_path(ns: str, name: str = "") -> str:
    return f"{LLMJOBS}/namespaces/{ns}/llmjobs" + (f"/{name}" if name else "")


def phase_of(api: AdminApi, ns: str, name: str) -> str:
    r = api.request("GET", llmjob_path(ns, name))
    return str(r.json().get("status", {}).get("phase", "")) if r.status_code == 200 else ""


def wait_phase(api: AdminApi, ns: str, name: str, phase: str, timeout: float = 60) -> dict[str, Any]:
    wait_for(lambda: phase_of(api, ns, name) == phase, timeout=timeout, what=f"{ns}/{name} phase {phase}")
    return dict(api.get(llmjob_path(ns, name)))


def children(api: AdminApi, ns: str, name: str) -> tuple[list[Any], list[Any], list[Any]]:
    sel = f"labelSelector=llmasos.io/llmjob={name}"
    jobs = api.get(f"/apis/batch/v1/namespaces/{ns}/jobs?{sel}")["items"]
    services = api.get(f"/api/v1/namespaces/{ns}/services?{sel}")["items"]
    pods = api.get(f"/api/v1/namespaces/{ns}/pods?{sel}")["items"]
    return jobs, services, pods


def delete_namespace(api: AdminApi, ns: str, timeout: float = 60) -> None:
    """Delete a namespace and wait until it is gone (its LLMJobs carry no finalizer: no operator is needed)."""
    api.delete(f"/api/v1/namespaces/{ns}")
    wait_for(lambda: api.request("GET", f"/api/v1/namespaces/{ns}").status_code == 404, timeout=timeout,
             what=f"namespace {ns} deleted")
