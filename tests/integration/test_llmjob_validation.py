"""The API server rejects impossible LLMJobs before the operator sees them, naming the offending field.

Each case mutates a valid manifest and applies it with kubectl (server-side field validation is Strict), so the
message a user sees is exactly what is asserted. Nothing is created when a manifest is rejected.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from e2e.localcluster import LocalCluster
from tests.integration.kube import AdminApi, llmjob, llmjob_path

pytestmark = pytest.mark.integration

Mutation = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Mutation:
    def mutate(doc: dict[str, Any]) -> None:
        node = doc
        keys = path.split(".")
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
    return mutate


def _drop(path: str) -> Mutation:
    def mutate(doc: dict[str, Any]) -> None:
        node = doc
        keys = path.split(".")
        for key in keys[:-1]:
            node = node[key]
        node.pop(keys[-1], None)
    return mutate


BAD_SPECS: list[tuple[str, Mutation, str]] = [
    ("unknown task", _set("spec.task", "dance"), "spec.task"),
    ("model missing", _drop("spec.model"), "spec.model"),
    ("two model sources", _set("spec.model", {"builtin": "gpt-tiny", "path": "/models/x"}),
     "set exactly one of builtin, path or hfRepo"),
    ("unknown builtin model", _set("spec.model", {"builtin": "gpt-huge"}), "spec.model.builtin"),
    ("volume without path", _set("spec.model", {"builtin": "gpt-tiny", "volume": "models"}), "spec.model.volume"),
    ("bad hf repo id", _set("spec.model", {"hfRepo": "not a repo"}), "spec.model.hfRepo"),
    ("zero nodes", _set("spec.parallelism.nodes", 0), "spec.parallelism.nodes"),
    ("too many GPUs per node", _set("spec.parallelism.gpusPerNode", 17), "spec.parallelism.gpusPerNode"),
    ("unknown strategy", _set("spec.parallelism.strategy", "zero3"), "spec.parallelism.strategy"),
    ("degrees do not multiply to world size", _set("spec.parallelism.dataParallel", 3),
     "spec.parallelism.dataParallel"),
    ("ddp with tensor degree", _set("spec.parallelism.tensorParallel", 2), "spec.parallelism.strategy"),
    ("tensor degree not dividing world", _set("spec.parallelism", {"strategy": "tensor", "nodes": 1,
                                                                   "gpusPerNode": 4, "tensorParallel": 3}),
     "spec.parallelism.tensorParallel"),
    ("pipeline strategy without stages", _set("spec.parallelism.strategy", "pipeline"),
     "spec.parallelism.pipelineParallel"),
    ("deadline and maxDelay together", _set("spec.carbon", {"policy": "deadline", "deadline": "2030-01-01T00:00:00Z",
                                                            "maxDelay": "6h", "expectedDuration": "1h"}),
     "spec.carbon.maxDelay"),
    ("deadline policy without deadline", _set("spec.carbon", {"policy": "deadline", "expectedDuration": "1h"}),
     "spec.carbon.policy"),
    ("deadline policy without duration", _set("spec.carbon", {"policy": "deadline", "maxDelay": "6h"}),
     "spec.carbon.expectedDuration"),
    ("threshold without maxIntensity", _set("spec.carbon", {"policy": "threshold", "maxDelay": "6h",
                                                            "expectedDuration": "1h"}),
     "spec.carbon.maxIntensity"),
    ("duration without unit", _set("spec.carbon", {"policy": "deadline", "maxDelay": "6",
                                                   "expectedDuration": "1h"}), "spec.carbon.maxDelay"),
    ("deadline not a time", _set("spec.carbon", {"policy": "deadline", "deadline": "tomorrow",
                                                 "expectedDuration": "1h"}), "spec.carbon.deadline"),
    ("unknown carbon policy", _set("spec.carbon.policy", "whenever"), "spec.carbon.policy"),
    ("negative maxIntensity", _set("spec.carbon", {"policy": "threshold", "maxDelay": "6h",
                                                   "expectedDuration": "1h", "maxIntensity": -5}),
     "spec.carbon.maxIntensity"),
    ("power limit without watts", _set("spec.power", {"policy": "limit"}), "spec.power.limitWatts"),
    ("power fraction above 1", _set("spec.power", {"policy": "fraction", "fraction": 1.5}), "spec.power.fraction"),
    ("maxSlowdown below 1", _set("spec.power", {"policy": "energyOptimal", "maxSlowdown": 0.9}),
     "spec.power.maxSlowdown"),
    ("cpu not a quantity", _set("spec.resources.cpu", "lots"), "spec.resources.cpu"),
    ("negative backoffLimit", _set("spec.backoffLimit", -1), "spec.backoffLimit"),
    ("maxRuntime not a duration", _set("spec.maxRuntime", "forever"), "spec.maxRuntime"),
    ("pue below 1", _set("spec.accounting.pue", 0.5), "spec.accounting.pue"),
    ("misspelt field", _set("spec.placment", {"nodePools": ["a100"]}), "spec.placment"),
    ("name too long", _set("metadata.name", "x" * 41), "metadata.name"),
]


@pytest.mark.parametrize(("case", "mutate", "field"), BAD_SPECS, ids=[c[0] for c in BAD_SPECS])
def test_invalid_llmjob_is_rejected_naming_the_field(cluster: LocalCluster, api: AdminApi, crds: None, case: str,
                                                     mutate: Mutation, field: str) -> None:
    doc = copy.deepcopy(llmjob("bad-spec"))
    doc["metadata"]["namespace"] = "default"
    mutate(doc)
    out = cluster.kubectl("apply", "-f", "-", input=json.dumps(doc), check=False)
    assert out.returncode != 0, f"{case}: accepted but should be rejected"
    assert field in out.stderr, f"{case}: message does not name {field}: {out.stderr}"
    name = doc["metadata"]["name"]
    assert api.request("GET", llmjob_path("default", name)).status_code == 404, "nothing is partially applied"


def test_valid_manifest_is_accepted_with_defaults(api: AdminApi, crds: None) -> None:
    ns = api.namespace("defaults")
    body = llmjob("defaulted")
    body["spec"].pop("parallelism")
    created = api.create(llmjob_path(ns), body)
    spec = created["spec"]
    assert spec["task"] == "train"
    assert spec["parallelism"] == {"strategy": "ddp", "nodes": 1, "gpusPerNode": 1, "tensorParallel": 1,
                                   "pipelineParallel": 1}
    assert spec["carbon"]["policy"] == "immediate"
    assert "power" not in spec, "omitted spec.power is left to the operator's defaultPowerPolicy"
    assert spec["backoffLimit"] == 2
    assert spec["resources"] == {"cpu": "2", "memory": "8Gi"}
    api.delete(f"/api/v1/namespaces/{ns}")


@pytest.mark.parametrize(("patch", "field"), [
    ({"spec": {"parallelism": {"nodes": 3}}}, "parallelism is immutable"),
    ({"spec": {"task": "inference"}}, "task is immutable"),
    ({"spec": {"model": {"builtin": "gpt-small"}}}, "model is immutable"),
])
def test_immutable_fields_cannot_change(api: AdminApi, crds: None, patch: dict[str, Any], field: str) -> None:
    ns = api.namespace("immutable")
    api.create(llmjob_path(ns), llmjob("fixed", suspend=True))
    r = api.request("PATCH", llmjob_path(ns, "fixed"), patch, content_type="application/merge-patch+json")
    assert r.status_code == 422
    assert field in r.json()["message"]
    ok = api.request("PATCH", llmjob_path(ns, "fixed"), {"spec": {"suspend": False}},
                     content_type="application/merge-patch+json")
    assert ok.status_code == 200, "mutable fields still change"
    api.delete(f"/api/v1/namespaces/{ns}")
