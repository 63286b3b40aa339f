"""The API resources LLMasOS reads and writes, as (group, version, plural) with the URL path they live under."""

from __future__ import annotations

from dataclasses import dataclass

from llmasos.api import constants as c


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


LLMJOBS = Resource(c.GROUP, c.VERSION, c.PLURAL)
JOBS = Resource("batch", "v1", "jobs")
SERVICES = Resource("", "v1", "services")
PODS = Resource("", "v1", "pods")
NODES = Resource("", "v1", "nodes", namespaced=False)
EVENTS = Resource("", "v1", "events")
CRDS = Resource("apiextensions.k8s.io", "v1", "customresourcedefinitions", namespaced=False)
CLUSTER_PEERINGS = Resource("kopf.dev", "v1", "clusterkopfpeerings", namespaced=False)
PEERINGS = Resource("kopf.dev", "v1", "kopfpeerings")
