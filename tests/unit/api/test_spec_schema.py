"""The parser and the schema agree, field by field, by walking the schema (so a new default or enum is covered):

* every default the schema declares is what parsing a manifest that omits the field yields;
* every enum value parses, and a value outside the enum is refused with a message that names the field and lists
  the values it takes;
* a policy that lacks a field it needs is refused by the parser with the field the CEL rule names.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from typing import Any

import pytest

from llmasos.api.durations import DURATION_PATTERN, parse_duration
from llmasos.api.openapi import Schema, defaults_of, field_at
from llmasos.api.schema import CARBON_NEEDS, POWER_NEEDS, PolicyNeed, spec_schema
from llmasos.api.spec import LLMJobSpec, parse_spec
from llmasos.errors import SpecError

SPEC = spec_schema()
MINIMAL: dict[str, Any] = {"model": {"builtin": "gpt-tiny"}}
# Sections whose fields are attributes of LLMJobSpec itself (spec.resources.cpu -> LLMJobSpec.cpu).
FLATTENED = {"resources", "placement", "accounting"}
# A valid value for each field a policy can need (a need without a sample here fails the need tests: add one).
SAMPLES: dict[str, Any] = {"deadline": "2030-01-01T00:00:00Z", "maxDelay": "6h", "expectedDuration": "1h",
                           "maxIntensity": 100, "limitWatts": 300, "fraction": 0.8}
NEEDS: tuple[PolicyNeed, ...] = (*CARBON_NEEDS, *POWER_NEEDS)


def walk(node: Schema, path: str = "") -> Iterator[tuple[str, Schema]]:
    for name, child in (node.get("properties") or {}).items():
        full = f"{path}.{name}" if path else name
        yield full, child
        yield from walk(child, full)


def leaves_with(key: str) -> list[str]:
    return [path for path, node in walk(SPEC) if key in node and node.get("type") != "object"]


DEFAULTED, ENUMS = leaves_with("default"), leaves_with("enum")


def snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def parsed(spec: LLMJobSpec, path: str) -> Any:
    section, _, leaf = path.rpartition(".")
    holder = spec if not section or section in FLATTENED else getattr(spec, snake(section))
    return getattr(holder, snake(leaf))


def expected(path: str, value: Any) -> Any:
    return parse_duration(value) if field_at(SPEC, path).get("pattern") == DURATION_PATTERN else value


def with_value(path: str, value: Any) -> dict[str, Any]:
    """MINIMAL with `spec.<path>` set to `value`, plus what a policy value needs (a sample of its first field)."""
    manifest = copy.deepcopy(MINIMAL)
    *sections, leaf = path.split(".")
    node = manifest
    for name in sections:
        node = node.setdefault(name, {})
    node[leaf] = value
    if leaf == "policy":
        for need in NEEDS:
            if need.section == sections[0] and value in need.policies:
                node.setdefault(need.fields[0], SAMPLES[need.fields[0]])
    return manifest


def test_the_walk_finds_the_fields_it_should() -> None:
    assert {"task", "parallelism.strategy", "carbon.policy", "carbon.safetyMargin", "carbon.minSegment",
            "power.policy", "power.maxSlowdown", "resources.cpu", "backoffLimit"} <= set(DEFAULTED)
    assert {"task", "model.builtin", "parallelism.strategy", "carbon.policy", "power.policy"} <= set(ENUMS)


@pytest.mark.parametrize("sections", ["omitted", "empty"])
@pytest.mark.parametrize("path", DEFAULTED)
def test_an_omitted_field_parses_to_the_schemas_default(path: str, sections: str) -> None:
    manifest = copy.deepcopy(MINIMAL)
    if sections == "empty":  # every object section present but empty, as `carbon: {}` in a manifest
        manifest |= {name: {} for name, node in SPEC["properties"].items()
                     if node.get("type") == "object" and name not in manifest}
    default = field_at(SPEC, path)["default"]
    assert parsed(parse_spec(manifest), path) == expected(path, default)


@pytest.mark.parametrize("path", DEFAULTED)
def test_a_null_field_parses_to_the_schemas_default(path: str) -> None:
    assert parsed(parse_spec(with_value(path, None)), path) == expected(path, field_at(SPEC, path)["default"])


@pytest.mark.parametrize(("path", "value"), [(p, v) for p in ENUMS for v in field_at(SPEC, p)["enum"]])
def test_every_enum_value_parses(path: str, value: str) -> None:
    assert parsed(parse_spec(with_value(path, value)), path) == value


@pytest.mark.parametrize("path", ENUMS)
def test_a_value_outside_the_enum_is_refused_naming_the_field(path: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(with_value(path, "no-such-value"))
    allowed = ", ".join(field_at(SPEC, path)["enum"])
    assert info.value.field == f"spec.{path}"
    assert str(info.value) == f"{path} must be one of {allowed}, got 'no-such-value'"


@pytest.mark.parametrize("path", [p for p, node in walk(SPEC) if node.get("type") == "object" and "default" in node])
def test_an_objects_default_says_nothing_its_fields_do_not(path: str) -> None:
    """`{}` (the API server then applies the fields' defaults) or exactly the fields' defaults."""
    node = field_at(SPEC, path)
    assert node["default"] in ({}, defaults_of(node.get("properties") or {}))


@pytest.mark.parametrize(("need", "policy"), [(n, p) for n in NEEDS for p in n.policies],
                         ids=[f"{n.section}.{p}-{n.names}" for n in NEEDS for p in n.policies])
def test_a_policy_without_what_it_needs_is_refused_as_the_api_server_would(need: PolicyNeed, policy: str) -> None:
    section = field_at(SPEC, need.section)
    assert policy in section["properties"]["policy"]["enum"]
    assert need.rule() in section["x-kubernetes-validations"], "the CEL rule is rendered from the same need"
    manifest = with_value(f"{need.section}.policy", policy)
    for name in need.fields:
        manifest[need.section].pop(name, None)
    with pytest.raises(SpecError) as info:
        parse_spec(manifest)
    assert info.value.field == need.field_path == f"spec.{need.section}{need.rule()['fieldPath']}"
    assert str(info.value) == f"{need.section}.policy {policy!r} needs {' or '.join(need.fields)}"
    for name in need.fields:  # any one of the fields meets the need
        parse_spec(manifest | {need.section: manifest[need.section] | {name: SAMPLES[name]}})
