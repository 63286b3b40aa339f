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


# kube-controller-manager's PodGC force-deletes a pod whose node object is gone 40-80 s after the node went (a pass
# every 20 s, 40 s quarantine); the rest is slack for a loaded machine.
PODGC_SECONDS = 120


def pods_on_missing_nodes(api: AdminApi, ns: str) -> list[str]:
    """`pod@node` for each pod of the namespace bound to a node that no longer exists (only PodGC removes those)."""
    nodes = {n["metadata"]["name"] for n in api.get("/api/v1/nodes")["items"]}
    pods = api.get(f"/api/v1/namespaces/{ns}/pods")["items"]
    return [f"{p['metadata']['name']}@{p['spec']['nodeName']}" for p in pods
            if p["spec"].get("nodeName") and p["spec"]["nodeName"] not in nodes]


def namespace_report(api: AdminApi, ns: str) -> str:
    """What holds a terminating namespace: its conditions and its remaining pods (node, phase, finalizers). The pods
    matter most: while pods remain, Kubernetes 1.36 leaves every condition False ("All content successfully removed")
    because it deletes pods first and returns before it counts what remains."""
    r = api.request("GET", f"/api/v1/namespaces/{ns}")
    if r.status_code != 200:
        return f"namespace {ns}: HTTP {r.status_code}"
    lines = [f"namespace {ns} conditions:"]
    lines += [f"  {c['type']}={c.get('status')} {c.get('reason', '')}: {c.get('message', '')}"
              for c in r.json().get("status", {}).get("conditions", [])]
    nodes = {n["metadata"]["name"] for n in api.get("/api/v1/nodes")["items"]}
    lines.append("pods:")
    for p in api.get(f"/api/v1/namespaces/{ns}/pods")["items"]:
        meta, node = p["metadata"], p["spec"].get("nodeName", "")
        gone = "" if not node or node in nodes else " (node gone)"
        lines.append(f"  {meta['name']} node={node}{gone} phase={p.get('status', {}).get('phase')} "
                     f"deletionTimestamp={meta.get('deletionTimestamp')} finalizers={meta.get('finalizers', [])}")
    return "\n".join(lines)


def delete_namespace(api: AdminApi, ns: str, timeout: float = 60) -> float:
    """Delete a namespace and wait until it is gone (its LLMJobs carry no finalizer: no operator is needed); return
    the seconds from the DELETE until it was gone.

    Pods bound to a deleted node (node-loss tests) are left to PodGC first. Deleting the namespace while one remains
    made node-loss tests flaky: the namespace controller deletes pods before anything else and, having seen a running
    pod with the workers' 120 s grace, looks again only 61 s later (grace/2 + 1); a PodGC pass after that look held
    the namespace for about 130 s (docs/development.md, "A pod on a deleted node"). On a timeout the error says what
    the namespace still holds."""
    stranded = pods_on_missing_nodes(api, ns)
    if stranded:
        wait_for(lambda: not pods_on_missing_nodes(api, ns), timeout=PODGC_SECONDS,
                 what=f"PodGC to remove {', '.join(stranded)} (their nodes were deleted)")
    start = time.monotonic()
    api.delete(f"/api/v1/namespaces/{ns}")
    try:
        wait_for(lambda: api.request("GET", f"/api/v1/namespaces/{ns}").status_code == 404, timeout=timeout,
                 what=f"namespace {ns} deleted")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{namespace_report(api, ns)}") from None
    return time.monotonic() - start
