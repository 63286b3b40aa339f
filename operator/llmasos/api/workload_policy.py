"""What an LLMJob may put into its worker pods, so that creating an LLMJob grants no more than creating a Pod would.

The operator creates the worker Jobs with its own ServiceAccount: without these rules, anyone allowed to create an
LLMJob could mount the node's filesystem (hostPath) or give the workers a Kubernetes identity through the operator
(a confused deputy). The rules, and where an admin widens them:

- volumes: only the types that reach neither the node nor another namespace (ALLOWED_VOLUME_TYPES, the list of
  Pod Security `restricted`); projected volumes only with sources that carry no Kubernetes credential (no
  serviceAccountToken, no podCertificate). A namespace labelled `llmasos.io/allow-host-volumes=true` is exempt.
- node pools: a namespace annotated `llmasos.io/allowed-node-pools: "a100,l4"` may list only those pools in
  spec.placement.nodePools, and must list at least one (empty means "any pool").

The API server enforces them first, through the ValidatingAdmissionPolicy built from the same constants in
`api.admission`; this module is the operator's own check of the same rules (defense in depth: a cluster without
the chart's policy) and the reference the unit tests pin. Both accept an unchanged field on update (ratcheting), so
an LLMJob admitted before a namespace lost its label can still be suspended or deleted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from llmasos.errors import SpecError

# Volume sources an LLMJob may use everywhere: none reads the node's filesystem or devices, none reaches a network
# server on the node's behalf, none names another namespace. The same list as Pod Security `restricted`.
ALLOWED_VOLUME_TYPES = ("persistentVolumeClaim", "configMap", "secret", "emptyDir", "ephemeral", "projected",
                        "downwardAPI", "csi")
# Projected sources that carry no credential: serviceAccountToken would give the workers the namespace's default
# ServiceAccount (the operator starts them with automountServiceAccountToken false), podCertificate likewise.
ALLOWED_PROJECTED_SOURCES = ("secret", "configMap", "downwardAPI", "clusterTrustBundle")
# Namespace label (value "true") with which a cluster admin allows every volume type in that namespace.
ALLOW_HOST_VOLUMES_LABEL = "llmasos.io/allow-host-volumes"
# Namespace annotation (comma-separated pool names) with which a cluster admin limits the node pools of a namespace.
ALLOWED_NODE_POOLS_ANNOTATION = "llmasos.io/allowed-node-pools"
ALLOWED_TEXT = (f"allowed volume types: {', '.join(ALLOWED_VOLUME_TYPES)}; projected sources: "
                f"{', '.join(ALLOWED_PROJECTED_SOURCES)}; a cluster admin can allow every volume type by labelling "
                f"the namespace {ALLOW_HOST_VOLUMES_LABEL}=true")
# spec.volumes holds at most this many entries (the CRD's maxItems); the admission policy indexes up to it.
MAX_VOLUMES = 32


@dataclass(frozen=True)
class NamespacePolicy:
    """What a cluster admin allowed one namespace: every volume type, and which node pools (None: any)."""

    host_volumes: bool = False
    node_pools: tuple[str, ...] | None = None

    @classmethod
    def from_metadata(cls, labels: Mapping[str, str] | None, annotations: Mapping[str, str] | None) -> NamespacePolicy:
        labels, annotations = labels or {}, annotations or {}
        pools = annotations.get(ALLOWED_NODE_POOLS_ANNOTATION)
        return cls(host_volumes=labels.get(ALLOW_HOST_VOLUMES_LABEL) == "true",
                   node_pools=None if pools is None else split_pools(pools))

    @property
    def is_default(self) -> bool:
        return not self.host_volumes and self.node_pools is None


def split_pools(annotation: str) -> tuple[str, ...]:
    """`"a100, l4"` -> ("a100", "l4"): comma-separated, blanks ignored (as the admission policy's CEL does)."""
    return tuple(p.strip() for p in annotation.split(",") if p.strip())


def volume_violations(volumes: Sequence[Mapping[str, Any]]) -> list[str]:
    """Field paths of the volume sources an LLMJob may not use, e.g. ["spec.volumes[0].hostPath"]."""
    found: list[str] = []
    for i, volume in enumerate(volumes):
        found += [f"spec.volumes[{i}].{key}" for key in volume if key != "name" and key not in ALLOWED_VOLUME_TYPES]
        sources = (volume.get("projected") or {}).get("sources") or ()
        for j, source in enumerate(sources):
            found += [f"spec.volumes[{i}].projected.sources[{j}].{key}" for key in source
                      if key not in ALLOWED_PROJECTED_SOURCES]
    return found


def pool_violation(node_pools: Iterable[str], allowed: tuple[str, ...] | None) -> str:
    """Why spec.placement.nodePools is outside the namespace's allowed pools ("" when it is not)."""
    pools = tuple(node_pools)
    if allowed is None or (pools and set(pools) <= set(allowed)):
        return ""
    listed = ", ".join(allowed) or "none"
    if not pools:
        return f"this namespace may use only the node pools {listed}; list one or more of them"
    outside = ", ".join(p for p in pools if p not in allowed)
    return f"node pool(s) {outside} not allowed in this namespace (allowed: {listed})"


def check_workload(volumes: Sequence[Mapping[str, Any]], node_pools: Iterable[str], policy: NamespacePolicy) -> None:
    """Raise SpecError naming the first field that would give the workers more than the namespace allows."""
    if not policy.host_volumes:
        bad = volume_violations(volumes)
        if bad:
            raise SpecError(f"not allowed for LLMJobs in this namespace: {', '.join(bad)} ({ALLOWED_TEXT})", bad[0])
    why = pool_violation(node_pools, policy.node_pools)
    if why:
        raise SpecError(why, "spec.placement.nodePools")
