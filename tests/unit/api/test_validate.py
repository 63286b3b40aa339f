"""`api.validate` refuses what the API server refuses, driven by the schema the CRD is generated from.

The CEL test walks every `x-kubernetes-validations` rule of the generated CRD file (crds/llmjobs.llmasos.io.yaml),
applies a change known to violate it to a valid manifest, and checks that the Python validator refuses it with the
CRD's own message at the field the API server names. A new rule without a violating example here, or without a
Python twin in `api.validate.CEL_TWINS`, fails this file. The real API server's side of the same examples is
tests/integration/test_llmjob_validation.py and tests/chaos/test_crd_fuzz.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmasos.api.spec import parse_manifest
from llmasos.api.validate import CEL_TWINS, is_transition_rule, manifest_problems, validate_manifest
from llmasos.errors import SpecError

CRD = Path(__file__).resolve().parents[3] / "crds" / "llmjobs.llmasos.io.yaml"
NOW = datetime(2026, 12, 4, 12, tzinfo=UTC)


def manifest(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "llmasos.io/v1alpha1", "kind": "LLMJob", "metadata": {"name": "v"},
            "spec": {"model": {"builtin": "gpt-tiny"}, **spec}}


# One manifest change per CEL rule, keyed by the rule's expression: (path of the object changed, its new value).
VIOLATIONS: dict[str, tuple[str, Any]] = {
    "[has(self.builtin), has(self.path), has(self.hfRepo)].filter(x, x).size() == 1":
        ("spec.model", {"builtin": "gpt-tiny", "path": "/models/x"}),
    "!has(self.volume) || has(self.path)": ("spec.model", {"builtin": "gpt-tiny", "volume": "w"}),
    "!has(self.dataParallel) || self.strategy == 'ray' || self.dataParallel * self.tensorParallel "
    "* self.pipelineParallel == self.nodes * (self.gpusPerNode == 0 ? 1 : self.gpusPerNode)":
        ("spec.parallelism", {"nodes": 2, "gpusPerNode": 2, "dataParallel": 3}),
    "self.strategy == 'ray' || (self.nodes * (self.gpusPerNode == 0 ? 1 : self.gpusPerNode)) "
    "% (self.tensorParallel * self.pipelineParallel) == 0":
        ("spec.parallelism", {"strategy": "hybrid", "nodes": 1, "gpusPerNode": 3, "tensorParallel": 2}),
    "!(self.strategy in ['ddp', 'ray']) || (self.tensorParallel == 1 && self.pipelineParallel == 1)":
        ("spec.parallelism", {"strategy": "ddp", "gpusPerNode": 2, "tensorParallel": 2}),
    "self.strategy != 'tensor' || (self.tensorParallel > 1 && self.pipelineParallel == 1)":
        ("spec.parallelism", {"strategy": "tensor", "gpusPerNode": 2}),
    "self.strategy != 'pipeline' || (self.pipelineParallel > 1 && self.tensorParallel == 1)":
        ("spec.parallelism", {"strategy": "pipeline", "gpusPerNode": 2}),
    "self > timestamp('2000-01-01T00:00:00Z')": ("spec.carbon", {"deadline": "1999-12-31T00:00:00Z"}),
    "!(has(self.deadline) && has(self.maxDelay))":
        ("spec.carbon", {"deadline": "2030-01-01T00:00:00Z", "maxDelay": "1h"}),
    "!(self.policy in ['deadline', 'threshold']) || has(self.deadline) || has(self.maxDelay)":
        ("spec.carbon", {"policy": "deadline", "expectedDuration": "1h"}),
    "!(self.policy in ['deadline', 'threshold']) || has(self.expectedDuration)":
        ("spec.carbon", {"policy": "deadline", "maxDelay": "6h"}),
    "self.policy != 'threshold' || has(self.maxIntensity)":
        ("spec.carbon", {"policy": "threshold", "maxDelay": "6h", "expectedDuration": "1h"}),
    "self.policy != 'limit' || has(self.limitWatts)": ("spec.power", {"policy": "limit"}),
    "self.policy != 'fraction' || has(self.fraction)": ("spec.power", {"policy": "fraction"}),
    "!has(self.fraction) || self.fraction >= 0.1": ("spec.power", {"policy": "fraction", "fraction": 0}),
    "size(self.metadata.name) <= 40": ("metadata", {"name": "n" * 41}),
}


def crd_rules() -> Iterator[tuple[str, dict[str, Any]]]:
    """(dot path of the object or field that carries the rule, the rule) for every rule in the generated CRD."""
    doc = yaml.safe_load(CRD.read_text())
    schema = doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]

    def walk(node: dict[str, Any], at: str) -> Iterator[tuple[str, dict[str, Any]]]:
        for r in node.get("x-kubernetes-validations", ()):
            yield at, r
        for name, child in (node.get("properties") or {}).items():
            yield from walk(child, f"{at}.{name}" if at else name)

    yield from walk(schema, "")


RULES = [(at, r) for at, r in crd_rules() if not is_transition_rule(r["rule"])]


def test_the_crd_has_rules_and_some_are_transition_rules_skipped_offline() -> None:
    assert len(RULES) >= 15
    assert any(is_transition_rule(r["rule"]) for _, r in crd_rules())


@pytest.mark.parametrize(("at", "cel"), RULES, ids=[f"{at}:{r['message'][:40]}" for at, r in RULES])
def test_every_cel_rule_has_a_python_twin_that_refuses_with_the_crd_message(at: str, cel: dict[str, Any]) -> None:
    assert cel["rule"] in CEL_TWINS, f"no Python twin in api.validate.CEL_TWINS for {cel['rule']}"
    assert cel["rule"] in VIOLATIONS, f"add a manifest that violates {cel['rule']} to VIOLATIONS"
    where, value = VIOLATIONS[cel["rule"]]
    doc = manifest()
    parent, key = where.rsplit(".", 1) if "." in where else ("", where)
    node = doc
    for part in filter(None, parent.split(".")):
        node = node[part]
    node[key] = value
    field = (at + cel.get("fieldPath", "")) or "LLMJob"  # the API server names the rule's object and fieldPath
    problems = manifest_problems(doc)
    assert [(p.field, p.message) for p in problems] == [(field, cel["message"])]
    with pytest.raises(SpecError) as err:
        validate_manifest(doc)
    assert (str(err.value), err.value.field) == (cel["message"], field)


@pytest.mark.parametrize(("spec", "field", "message"), [
    ({"carbon": {"polcy": "deadline"}}, "spec.carbon.polcy",
     'unknown field "spec.carbon.polcy"; did you mean policy?'),
    ({"carbon": {"policy": "deadline", "maxDelay": "6h", "expectedDurration": "1h"}},
     "spec.carbon.expectedDurration", 'unknown field "spec.carbon.expectedDurration"; did you mean expectedDuration?'),
    ({"model": {"builtin": "llama-7b"}}, "spec.model.builtin",
     "must be one of gpt-tiny, gpt-small, got 'llama-7b'"),
    ({"parallelism": {"strategy": "ddp", "tensorParallel": 2, "gpusPerNode": 2}}, "spec.parallelism.strategy",
     "strategy ddp and ray take no tensorParallel or pipelineParallel degree; use hybrid"),
    ({"carbon": {"policy": "window"}}, "spec.carbon.policy",
     "must be one of immediate, deadline, threshold, got 'window'"),
    ({"parallelism": {"nodes": 0}}, "spec.parallelism.nodes", "must be greater than or equal to 1"),
    ({"parallelism": {"nodes": "2"}}, "spec.parallelism.nodes", "must be of type integer, got str"),
    ({"carbon": {"maxDelay": "soon"}}, "spec.carbon.maxDelay",
     "'soon' is not a duration: a number with a unit, e.g. 90s, 45m, 1h30m, 2d"),
    ({"carbon": {"deadline": "tomorrow"}}, "spec.carbon.deadline",
     "'tomorrow' is not an RFC 3339 time, e.g. 2026-12-01T08:00:00Z"),
    ({"queueName": "Bad_Q"}, "spec.queueName", "'Bad_Q' does not match the pattern ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"),
    ({"resources": {"cpu": "lots"}}, "spec.resources.cpu", "'lots' is not a quantity"),
    ({"zzz": 1}, "spec.zzz", 'unknown field "spec.zzz"; known fields: accounting, args, backoffLimit, carbon, '
     'command, env, image, maxRuntime, model, parallelism, placement, power, queueName, resources, suspend, task, '
     'taskConfig, ttlSecondsAfterFinished, volumeMounts, volumes'),
])
def test_plan_refuses_what_the_api_server_refuses(spec: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(SpecError) as err:
        parse_manifest(manifest(**spec), NOW)
    assert (str(err.value), err.value.field) == (message, field)


def test_several_problems_are_counted_in_one_message() -> None:
    with pytest.raises(SpecError) as err:
        validate_manifest(manifest(carbon={"polcy": "x"}, power={"policy": "max"}))
    assert str(err.value) == ('unknown field "spec.carbon.polcy"; did you mean policy? (and 1 more: spec.power.policy: '
                              "must be one of none, limit, fraction, energyOptimal, got 'max')")


@pytest.mark.parametrize("spec", [
    {}, {"taskConfig": {"anything": {"goes": 1}}}, {"env": [{"name": "A", "value": "b", "extra": 1}]},
    {"carbon": {"policy": "deadline", "maxDelay": "6h", "expectedDuration": "1h", "zone": "de"}},
    {"parallelism": {"strategy": "hybrid", "nodes": 2, "gpusPerNode": 4, "tensorParallel": 2,
                     "pipelineParallel": 2}},
    {"carbon": {"deadline": None}}, {"resources": {"cpu": 4, "memory": "16Gi"}},
])
def test_valid_manifests_pass(spec: dict[str, Any]) -> None:
    assert manifest_problems(manifest(**spec)) == []


def test_every_example_passes() -> None:
    for path in sorted((CRD.parents[1] / "examples").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "LLMJob":
                assert manifest_problems(doc) == [], path.name


def test_a_deadline_before_creation_is_refused_naming_the_field() -> None:
    with pytest.raises(SpecError) as err:
        parse_manifest(manifest(carbon={"policy": "deadline", "deadline": "2026-12-04T11:00:00Z",
                                        "expectedDuration": "1h"}), NOW)
    assert err.value.field == "spec.carbon.deadline"
    assert str(err.value).startswith("carbon.deadline 2026-12-04T11:00:00Z is not after the LLMJob's creation "
                                     "(2026-12-04T12:00:00Z)")
    stamped = manifest(carbon={"policy": "deadline", "deadline": "2026-12-04T11:00:00Z", "expectedDuration": "1h"})
    stamped["metadata"]["creationTimestamp"] = "2026-12-04T08:00:00Z"
    assert parse_manifest(stamped, NOW).carbon.deadline is not None  # created before it: the planner's business
