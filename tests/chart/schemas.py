"""Offline JSON schemas for kubeconform, converted once and cached outside the repository.

Kubernetes' own schemas come from the PyPI package `kubernetes-validate` (the dev extra), whose files reference one
shared `_definitions.json` by an absolute path kubeconform cannot resolve: each top-level kind is rewritten here into a
standalone schema (every `$ref` inlined; a recursive reference becomes `{}`). The chart's CRDs (LLMJob, the kopf
peerings) are converted from their openAPIV3Schema, strict (no unknown fields where the CRD lists properties).
The cache key covers the package version and the CRD files, so a new CRD is converted again.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from importlib.metadata import version
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CRDS = sorted((REPO / "charts" / "llmasos" / "crds").glob("*.yaml"))
SCHEMA_VERSION = "v1.36.0"  # the local control plane's minor (e2e/toolchain/versions.env); the package's closest
LOCATION = "{{ .NormalizedKubernetesVersion }}-standalone{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json"


def cache_root() -> Path:
    return Path(os.environ.get("LLMASOS_CACHE_DIR", Path.home() / ".cache" / "llmasos"))


def schema_dir() -> Path:
    """The converted schemas (built on first use): pass `<dir>/LOCATION` to kubeconform's -schema-location."""
    import kubernetes_validate

    key = hashlib.sha256(version("kubernetes-validate").encode() + b"".join(p.read_bytes() for p in CRDS) +
                         Path(__file__).read_bytes()).hexdigest()[:16]
    root = cache_root() / f"kubeconform-schemas-{key}"
    if (root / ".complete").exists():
        return root
    src = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema" / f"{SCHEMA_VERSION}-local-strict"
    out = root / f"{SCHEMA_VERSION}-standalone-strict"
    out.mkdir(parents=True, exist_ok=True)
    defs = json.loads((src / "_definitions.json").read_text())["$defs"]
    for path in sorted(src.glob("*.json")):
        doc = json.loads(path.read_text())
        if "kind" not in doc.get("properties", {}) or "apiVersion" not in doc.get("properties", {}):
            continue  # not a top-level kind
        (out / path.name).write_text(json.dumps(inline(doc, defs, ())))
    for crd_file in CRDS:
        for crd in yaml.safe_load_all(crd_file.read_text()):
            if crd and crd.get("kind") == "CustomResourceDefinition":
                for name, schema in crd_schemas(crd).items():
                    (out / name).write_text(json.dumps(schema))
    (root / ".complete").touch()
    return root


def inline(node: Any, defs: dict[str, Any], seen: tuple[str, ...]) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and "#/$defs/" in ref:
            name = ref.rsplit("/", 1)[1]
            if name in seen:
                return {}
            rest = {k: v for k, v in node.items() if k != "$ref"}
            return {**inline(defs[name], defs, (*seen, name)), **inline(rest, defs, seen)}
        return {k: inline(v, defs, seen) for k, v in node.items()}
    if isinstance(node, list):
        return [inline(v, defs, seen) for v in node]
    return node


def crd_schemas(crd: dict[str, Any]) -> dict[str, Any]:
    """{file name kubeconform looks for: strict schema} for every served version of a CRD."""
    group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
    schemas = {}
    for v in crd["spec"]["versions"]:
        schema = strict(copy.deepcopy(v["schema"]["openAPIV3Schema"]))
        props = schema.setdefault("properties", {})
        props.setdefault("apiVersion", {"type": "string"})
        props.setdefault("kind", {"type": "string"})
        props.setdefault("metadata", {"type": "object"})
        schemas[f"{kind.lower()}-{group.split('.')[0]}-{v['name']}.json"] = schema
    return schemas


def strict(node: Any) -> Any:
    if isinstance(node, dict):
        node = {k: strict(v) for k, v in node.items()}
        if ("properties" in node and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")):
            node["additionalProperties"] = False
        return node
    if isinstance(node, list):
        return [strict(v) for v in node]
    return node
