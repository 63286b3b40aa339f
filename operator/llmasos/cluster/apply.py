"""Idempotent writes of an LLMJob's children: `ensure_*` creates or corrects, `delete_*` removes.

Names are deterministic, so a create that finds the object already there (409) is success — after checking the
existing object belongs to this LLMJob (same owner uid); one left behind by a deleted namesake is reported as a
transient conflict until the garbage collector removes it. This is what makes an operator restart at any point
safe: re-running a pass never duplicates a child.
"""

from __future__ import annotations

from typing import Any

from llmasos.cluster.kube import JOBS, SERVICES, KubeClient, Resource
from llmasos.errors import KubeApiError


def _owned_by(obj: dict[str, Any], uid: str) -> bool:
    return any(ref.get("uid") == uid for ref in obj.get("metadata", {}).get("ownerReferences", []) or [])


async def _ensure(kube: KubeClient, res: Resource, body: dict[str, Any], owner_uid: str) -> tuple[dict[str, Any], bool]:
    """Create `body` unless it exists; return (object, created)."""
    ns, name = body["metadata"]["namespace"], body["metadata"]["name"]
    try:
        return await kube.create(res, body, ns), True
    except KubeApiError as exc:
        if not exc.conflict:
            raise
    existing = await kube.get_or_none(res, name, ns)
    if existing is None:
        raise KubeApiError(f"{res.plural}/{name} conflicted but is gone; retrying", status=409)
    if not _owned_by(existing, owner_uid):
        raise KubeApiError(f"{res.plural}/{name} exists but belongs to another owner (a deleted LLMJob of the "
                           "same name?); waiting for garbage collection", status=409, delay=10)
    return existing, False


async def ensure_service(kube: KubeClient, body: dict[str, Any], owner_uid: str) -> bool:
    _, created = await _ensure(kube, SERVICES, body, owner_uid)
    return created


async def ensure_job(kube: KubeClient, body: dict[str, Any], owner_uid: str,
                     existing: dict[str, Any] | None = None, res: Resource = JOBS) -> bool:
    """Create the Job (or the RayJob, `res`: both have `spec.suspend`), or set its `suspend` flag when it differs.
    Returns True when something was written."""
    if existing is None:
        obj, created = await _ensure(kube, res, body, owner_uid)
        if created:
            return True
    else:
        obj = existing
    want = bool(body["spec"].get("suspend", False))
    if bool(obj.get("spec", {}).get("suspend", False)) != want:
        await kube.patch(res, body["metadata"]["name"], {"spec": {"suspend": want}}, body["metadata"]["namespace"])
        return True
    return False


async def delete_job(kube: KubeClient, name: str, namespace: str, res: Resource = JOBS) -> bool:
    return await kube.delete(res, name, namespace, propagation="Background")
