"""The ValidatingAdmissionPolicy that makes the API server refuse an LLMJob asking for more than a Pod could get.

Built from the constants of `api.workload_policy` (the rules and their reasons are documented there) and written
by `make crds` to charts/llmasos/admission/llmjob-workload-policy.yaml; the chart wraps it with its name, labels and
the binding (templates/admission/), so the API server, the operator and the docs read one list. A unit test fails
when the committed file is stale.

Why a ValidatingAdmissionPolicy and not a CRD rule: a CRD's CEL cannot see inside the pass-through Volume objects
(the schema keeps them as unknown fields, which CRD validation rules cannot read), and the exemptions live on the
Namespace (`namespaceObject`), which only admission sees. Why not a webhook: a policy runs inside the API server,
so there is no server to deploy, secure and keep available for LLMJobs to be admitted.

Every message names the offending field (`spec.volumes[0].hostPath`). On update a field that did not change is
never refused (ratcheting), so an LLMJob admitted earlier can still be suspended, resumed or deleted; kopf's and
the operator's own metadata writes skip the policy altogether (matchConditions: the spec did not change).
"""

from __future__ import annotations

from typing import Any

import yaml

from llmasos.api import constants as c
from llmasos.api.workload_policy import (
    ALLOW_HOST_VOLUMES_LABEL,
    ALLOWED_NODE_POOLS_ANNOTATION,
    ALLOWED_PROJECTED_SOURCES,
    ALLOWED_TEXT,
    ALLOWED_VOLUME_TYPES,
    MAX_VOLUMES,
)


def _cel_list(items: tuple[str, ...] | list[int]) -> str:
    return "[" + ", ".join(f"'{x}'" if isinstance(x, str) else str(x) for x in items) + "]"


def _variables() -> list[dict[str, str]]:
    volumes, sources = _cel_list(ALLOWED_VOLUME_TYPES), _cel_list(ALLOWED_PROJECTED_SOURCES)
    labels, annotations = "namespaceObject.metadata.labels", "namespaceObject.metadata.annotations"
    vol, src = "variables.volumes[i]", "variables.volumes[i].projected.sources"
    return [
        {"name": "hostVolumesAllowed",
         "expression": f"has({labels}) && '{ALLOW_HOST_VOLUMES_LABEL}' in {labels} && "
                       f"{labels}['{ALLOW_HOST_VOLUMES_LABEL}'] == 'true'"},
        {"name": "volumes", "expression": "has(object.spec.volumes) ? object.spec.volumes : []"},
        {"name": "volumesUnchanged",
         "expression": "oldObject != null && "
                       "(has(oldObject.spec.volumes) ? oldObject.spec.volumes : []) == variables.volumes"},
        {"name": "volumesAllowed",
         "expression": f"variables.volumes.all(v, v.all(k, k == 'name' || k in {volumes})) && "
                       f"variables.volumes.all(v, !has(v.projected) || !has(v.projected.sources) || "
                       f"v.projected.sources.all(s, s.all(k, k in {sources})))"},
        # For the message only: the offending fields with their indexes. CEL has no indexed map over a list, so the
        # indexes come from a list of slots (the schema caps spec.volumes at MAX_VOLUMES entries).
        {"name": "slots", "expression": _cel_list(list(range(MAX_VOLUMES)))},
        {"name": "volumeIndexes", "expression": "variables.slots.filter(i, i < size(variables.volumes))"},
        {"name": "badTypeFields",
         "expression": f"variables.volumeIndexes.map(i, {vol}.filter(k, k != 'name' && !(k in {volumes}))"
                       f".map(k, 'spec.volumes[' + string(i) + '].' + k).join(', ')).filter(f, f != '')"},
        {"name": "badSourceFields",
         "expression": f"variables.volumeIndexes.filter(i, has({vol}.projected) && has({src}))"
                       f".map(i, variables.slots.filter(j, j < size({src}))"
                       f".map(j, {src}[j].filter(k, !(k in {sources}))"
                       f".map(k, 'spec.volumes[' + string(i) + '].projected.sources[' + string(j) + '].' + k)"
                       f".join(', ')).filter(f, f != '').join(', ')).filter(f, f != '')"},
        {"name": "poolsRestricted",
         "expression": f"has({annotations}) && '{ALLOWED_NODE_POOLS_ANNOTATION}' in {annotations}"},
        {"name": "allowedPools",
         "expression": f"variables.poolsRestricted ? {annotations}['{ALLOWED_NODE_POOLS_ANNOTATION}'].split(',')"
                       f".map(p, p.trim()).filter(p, p != '') : []"},
        {"name": "pools",
         "expression": "has(object.spec.placement) && has(object.spec.placement.nodePools) ? "
                       "object.spec.placement.nodePools : []"},
        {"name": "poolsUnchanged",
         "expression": "oldObject != null && (has(oldObject.spec.placement) && has(oldObject.spec.placement.nodePools)"
                       " ? oldObject.spec.placement.nodePools : []) == variables.pools"},
    ]


def _validations() -> list[dict[str, str]]:
    allowed_pools = "(size(variables.allowedPools) == 0 ? 'none' : variables.allowedPools.join(', '))"
    return [
        {"expression": "variables.hostVolumesAllowed || variables.volumesUnchanged || variables.volumesAllowed",
         "messageExpression": "'not allowed for LLMJobs in namespace ' + namespaceObject.metadata.name + ': ' + "
                              "(size(variables.badTypeFields + variables.badSourceFields) == 0 ? 'spec.volumes' : "
                              "(variables.badTypeFields + variables.badSourceFields).join(', ')) + "
                              f"' ({ALLOWED_TEXT})'",
         "message": f"spec.volumes: volume type not allowed for LLMJobs in this namespace ({ALLOWED_TEXT})",
         "reason": "Forbidden"},
        {"expression": "!variables.poolsRestricted || variables.poolsUnchanged || (size(variables.pools) > 0 && "
                       "variables.pools.all(p, p in variables.allowedPools))",
         "messageExpression": "'spec.placement.nodePools: ' + (size(variables.pools) == 0 ? "
                              f"'this namespace may use only the node pools ' + {allowed_pools} + "
                              "'; list one or more of them' : 'node pool(s) ' + "
                              "variables.pools.filter(p, !(p in variables.allowedPools)).join(', ') + "
                              f"' not allowed in this namespace (allowed: ' + {allowed_pools} + ')') + "
                              f"' (namespace annotation {ALLOWED_NODE_POOLS_ANNOTATION})'",
         "message": f"spec.placement.nodePools: outside the node pools this namespace may use "
                    f"(namespace annotation {ALLOWED_NODE_POOLS_ANNOTATION})",
         "reason": "Forbidden"},
    ]


def build_policy_spec() -> dict[str, Any]:
    """The `spec` of the ValidatingAdmissionPolicy (admissionregistration.k8s.io/v1) the chart installs."""
    return {
        # Fail closed: an LLMJob is not admitted when the policy cannot be evaluated.
        "failurePolicy": "Fail",
        "matchConstraints": {"resourceRules": [{
            "apiGroups": [c.GROUP], "apiVersions": [c.VERSION], "operations": ["CREATE", "UPDATE"],
            "resources": [c.PLURAL],
        }]},
        "matchConditions": [{"name": "spec-written",
                             "expression": "request.operation == 'CREATE' || object.spec != oldObject.spec"}],
        "variables": _variables(),
        "validations": _validations(),
    }


def render_policy_spec() -> str:
    header = ("# Generated by `llmasos crd --policy` from operator/llmasos/api/admission.py. Do not edit: run "
              "`make crds`.\n# The spec of the chart's ValidatingAdmissionPolicy (templates/admission/).\n")
    return header + yaml.safe_dump({"spec": build_policy_spec()}, sort_keys=False, width=120)
