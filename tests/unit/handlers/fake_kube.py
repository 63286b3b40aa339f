"""An in-memory API server behind `KubeClient.request`, for unit tests of the steps of a pass.

Not a mock that records calls and answers anything: it keeps objects by path, gives them resourceVersions, applies
JSON merge patches, answers 404 for a missing object and 409 for a create of an existing name or a write whose
`metadata.resourceVersion` precondition is stale, and can be told to fail the next request of a kind (`fail_next`).
List supports equality label selectors; field selectors are ignored (every object matches).
"""

from __future__ import annotations

import copy
import itertools
import re
from typing import Any

from llmasos.cluster import kube
from llmasos.cluster.kube import Credentials, KubeClient
from llmasos.errors import KubeApiError

PLURALS = frozenset(r.plural for r in vars(kube).values() if isinstance(r, kube.Resource))


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


class FakeKube(KubeClient):
    def __init__(self) -> None:
        super().__init__(Credentials(server="https://fake.invalid"))
        self.objects: dict[str, dict[str, Any]] = {}  # object path -> object
        self.calls: list[tuple[str, str]] = []  # (method, path), in order
        self._rv = itertools.count(100)
        self._names = itertools.count(1)
        self._failures: dict[str, list[KubeApiError]] = {}

    def fail_next(self, method: str, error: KubeApiError) -> None:
        """The next request with this method raises `error` (the API server answered it)."""
        self._failures.setdefault(method, []).append(error)

    def put(self, path: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Store an object as if created earlier (a resourceVersion is assigned); a copy is returned."""
        stored = copy.deepcopy(obj)
        stored.setdefault("metadata", {})["resourceVersion"] = str(next(self._rv))
        self.objects[path] = stored
        return copy.deepcopy(stored)

    def writes(self, method: str | None = None) -> list[tuple[str, str]]:
        return [c for c in self.calls if c[0] != "GET" and (method is None or c[0] == method)]

    async def aclose(self) -> None:
        return None

    async def request(self, method: str, path: str, body: Any = None, params: dict[str, str] | None = None,
                      content_type: str = "application/json") -> Any:
        self.requests_total += 1
        self.calls.append((method, path))
        if self._failures.get(method):
            raise self._failures[method].pop(0)
        if method == "POST":
            return self._create(path, body)
        if method == "GET" and path not in self.objects:
            if self._is_collection(path):
                return {"items": self._list(path, (params or {}).get("labelSelector", "")), "metadata": {}}
            raise KubeApiError(f"GET {path}: not found", status=404)
        obj_path, sub = (path[: -len("/status")], "status") if path.endswith("/status") else (path, "")
        if obj_path not in self.objects:
            raise KubeApiError(f"{method} {path}: not found", status=404)
        if method == "GET":
            return copy.deepcopy(self.objects[obj_path])
        if method == "DELETE":
            return self.objects.pop(obj_path)
        if method == "PATCH":
            return self._patch(obj_path, sub, body)
        raise AssertionError(f"the fake API server does not serve {method}")

    @staticmethod
    def _is_collection(path: str) -> bool:
        return path.rsplit("/", 1)[1] in PLURALS

    def _create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        meta = body.setdefault("metadata", {}) if isinstance(body, dict) else {}
        name = meta.get("name") or f"{meta.get('generateName', 'obj-')}{next(self._names):05d}"
        key = f"{path}/{name}"
        if key in self.objects:
            raise KubeApiError(f"POST {key}: already exists", status=409)
        obj = copy.deepcopy(body)
        obj["metadata"] = {**obj.get("metadata", {}), "name": name, "uid": f"uid-{name}"}
        return self.put(key, obj)

    def _list(self, path: str, selector: str) -> list[dict[str, Any]]:
        wanted = dict(part.split("=", 1) for part in selector.split(",") if "=" in part)
        base, plural = path.rsplit("/", 1)
        everywhere = re.compile(re.escape(base) + r"/namespaces/[^/]+/" + re.escape(plural))
        out = []
        for key, obj in self.objects.items():
            collection = key.rsplit("/", 1)[0]
            if collection != path and not everywhere.fullmatch(collection):
                continue
            labels = obj.get("metadata", {}).get("labels") or {}
            if all(labels.get(k) == v for k, v in wanted.items()):
                out.append(copy.deepcopy(obj))
        return out

    def _patch(self, path: str, sub: str, patch: dict[str, Any]) -> dict[str, Any]:
        current = self.objects[path]
        want_rv = (patch.get("metadata") or {}).get("resourceVersion")
        if want_rv is not None and want_rv != current["metadata"]["resourceVersion"]:
            raise KubeApiError(f"PATCH {path}: the object has been modified", status=409)
        if sub == "status":
            updated = {**current, "status": merge_patch(current.get("status"), patch.get("status"))}
        else:
            updated = merge_patch(current, {k: v for k, v in patch.items() if k != "status"})
            updated["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        return self.put(path, updated)
