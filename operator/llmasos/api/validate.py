"""The API server's validation of an LLMJob, offline: `llmasos plan -f` refuses what `kubectl apply` refuses.

One walker reads the schema the CRD is generated from (`api.schema.llmjob_schema`): unknown fields (named, with the
closest known field as a suggestion, as `kubectl apply --validate=strict` refuses them), types, enums, patterns,
bounds, required fields, and then, on the object with the schema's defaults applied (the API server defaults
before it validates), every CEL rule. CEL is not evaluated by a CEL engine here: each rule's expression maps to a
Python twin in `CEL_TWINS`, and the rules a policy imposes (`CARBON_NEEDS`, `POWER_NEEDS`) get their twins from
the same data that renders their CEL. A rule with no twin is a bug that `tests/unit/api/test_validate.py` catches
(it walks every rule in the generated CRD). Transition rules (`oldSelf`) need the stored object and are skipped.
"""

from __future__ import annotations

import copy
import difflib
import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from llmasos.api.clock import parse_instant
from llmasos.api.durations import DURATION_PATTERN
from llmasos.api.openapi import Schema
from llmasos.api.schema import CARBON_NEEDS, POWER_NEEDS, PolicyNeed, llmjob_schema
from llmasos.errors import SpecError

Twin = Callable[[Any], bool]


def _world(s: Mapping[str, Any]) -> int:
    return int(s["nodes"]) * (1 if s["gpusPerNode"] == 0 else int(s["gpusPerNode"]))


def _after_2000(value: Any) -> bool:
    try:
        return _timestamp(value) > datetime(2000, 1, 1, tzinfo=UTC)
    except ValueError:
        return False


def _timestamp(value: Any) -> datetime:
    return parse_instant(str(value))


def _need_twin(need: PolicyNeed) -> Twin:
    return lambda s: not need.unmet(str(s.get("policy")), [k for k in s if s[k] is not None])


# Keyed by the CEL expression exactly as api.schema writes it; a change there without a change here fails the tests.
CEL_TWINS: dict[str, Twin] = {
    "[has(self.builtin), has(self.path), has(self.hfRepo)].filter(x, x).size() == 1":
        lambda s: sum(k in s for k in ("builtin", "path", "hfRepo")) == 1,
    "!has(self.volume) || has(self.path)": lambda s: "volume" not in s or "path" in s,
    "!has(self.dataParallel) || self.strategy == 'ray' || self.dataParallel * self.tensorParallel "
    "* self.pipelineParallel == self.nodes * (self.gpusPerNode == 0 ? 1 : self.gpusPerNode)":
        lambda s: "dataParallel" not in s or s["strategy"] == "ray"
        or s["dataParallel"] * s["tensorParallel"] * s["pipelineParallel"] == _world(s),
    "self.strategy == 'ray' || (self.nodes * (self.gpusPerNode == 0 ? 1 : self.gpusPerNode)) "
    "% (self.tensorParallel * self.pipelineParallel) == 0":
        lambda s: s["strategy"] == "ray" or _world(s) % (s["tensorParallel"] * s["pipelineParallel"]) == 0,
    "!(self.strategy in ['ddp', 'ray']) || (self.tensorParallel == 1 && self.pipelineParallel == 1)":
        lambda s: s["strategy"] not in ("ddp", "ray") or (s["tensorParallel"] == 1 and s["pipelineParallel"] == 1),
    "self.strategy != 'tensor' || (self.tensorParallel > 1 && self.pipelineParallel == 1)":
        lambda s: s["strategy"] != "tensor" or (s["tensorParallel"] > 1 and s["pipelineParallel"] == 1),
    "self.strategy != 'pipeline' || (self.pipelineParallel > 1 && self.tensorParallel == 1)":
        lambda s: s["strategy"] != "pipeline" or (s["pipelineParallel"] > 1 and s["tensorParallel"] == 1),
    "self > timestamp('2000-01-01T00:00:00Z')": _after_2000,
    "!(has(self.deadline) && has(self.maxDelay))": lambda s: not ("deadline" in s and "maxDelay" in s),
    "!has(self.fraction) || self.fraction >= 0.1": lambda s: "fraction" not in s or s["fraction"] >= 0.1,
    "size(self.metadata.name) <= 40": lambda s: len(str((s.get("metadata") or {}).get("name") or "")) <= 40,
    **{need.rule()["rule"]: _need_twin(need) for need in (*CARBON_NEEDS, *POWER_NEEDS)},
}


@dataclass(frozen=True)
class Problem:
    """One thing the API server would refuse: the field (dot path from the object's root) and why."""

    field: str
    message: str


def is_transition_rule(expression: str) -> bool:
    return "oldSelf" in expression


def _suggest(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else f"; known fields: {', '.join(known)}"


_TYPES: dict[str, Callable[[Any], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    # JSON has one number type: the API server takes 2.0 as the integer 2.
    "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer()),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
}


# What a pattern asks for, in the words of the field descriptions; any other pattern is shown as it is.
_PATTERN_WORDS = {DURATION_PATTERN: "a duration: a number with a unit, e.g. 90s, 45m, 1h30m, 2d"}


def _format_problem(node: Schema, value: str) -> str:
    if node.get("format") == "date-time":
        return f"{value!r} is not an RFC 3339 time, e.g. 2026-12-01T08:00:00Z"
    if node["pattern"] in _PATTERN_WORDS:
        return f"{value!r} is not {_PATTERN_WORDS[node['pattern']]}"
    return f"{value!r} does not match the pattern {node['pattern']}"


def _scalar(node: Schema, value: Any, at: str, out: list[Problem]) -> None:
    if "enum" in node and value not in node["enum"]:
        out.append(Problem(at, f"must be one of {', '.join(map(str, node['enum']))}, got {value!r}"))
        return
    if isinstance(value, str):
        if "maxLength" in node and len(value) > node["maxLength"]:
            out.append(Problem(at, f"may not be longer than {node['maxLength']} characters"))
        elif "minLength" in node and len(value) < node["minLength"]:
            out.append(Problem(at, f"must be at least {node['minLength']} characters"))
        elif "pattern" in node and not re.search(node["pattern"], value):
            out.append(Problem(at, _format_problem(node, value)))
        elif node.get("format") == "date-time" and not _parses(value):
            out.append(Problem(at, f"{value!r} is not an RFC 3339 time"))
    elif isinstance(value, int | float) and not isinstance(value, bool):
        low, high = node.get("minimum"), node.get("maximum")
        if isinstance(value, int) and low is not None:
            low = int(low)  # the API server compares an integer with the bound truncated (0.1 -> 0); CEL catches it
        if low is not None and (value <= low if node.get("exclusiveMinimum") else value < low):
            out.append(Problem(at, f"must be greater than {'' if node.get('exclusiveMinimum') else 'or equal to '}"
                                   f"{low}"))
        elif high is not None and value > high:
            out.append(Problem(at, f"must be less than or equal to {high}"))


def _parses(value: str) -> bool:
    try:
        _timestamp(value)
    except ValueError:
        return False
    return True


def _walk(node: Schema, value: Any, at: str, out: list[Problem]) -> Any:
    """Check `value` against `node`; return it with the schema's defaults applied (for the CEL twins)."""
    if node.get("x-kubernetes-int-or-string"):
        if not (isinstance(value, str) or _TYPES["integer"](value)):
            out.append(Problem(at, f"must be an integer or a string, got {type(value).__name__}"))
        elif isinstance(value, str) and "pattern" in node and not re.search(node["pattern"], value):
            out.append(Problem(at, f"{value!r} is not a quantity"))
        return value
    kind = node.get("type")
    if kind and not _TYPES[kind](value):
        out.append(Problem(at, f"must be of type {kind}, got {type(value).__name__}"))
        return value
    if kind == "array":
        items = [_walk(node["items"], v, f"{at}[{i}]", out) for i, v in enumerate(value)]
        if "maxItems" in node and len(items) > node["maxItems"]:
            out.append(Problem(at, f"must have at most {node['maxItems']} items"))
        if node.get("x-kubernetes-list-type") == "set" and len({repr(i) for i in items}) != len(items):
            out.append(Problem(at, "has duplicate entries"))
        return items
    if kind != "object":
        _scalar(node, value, at, out)
        _cel(node, value, at, out)
        return value
    props: dict[str, Schema] = node.get("properties", {})
    if "properties" not in node or node.get("x-kubernetes-preserve-unknown-fields"):
        return value
    result: dict[str, Any] = {}
    for key, child in value.items():
        where = f"{at}.{key}"
        if key not in props:
            out.append(Problem(where, f"unknown field \"{where.lstrip('.')}\"{_suggest(key, sorted(props))}"))
        elif child is not None:  # nulls are pruned before validation
            result[key] = _walk(props[key], child, where, out)
    for key, child in props.items():
        if key not in result and "default" in child:
            result[key] = _walk(child, copy.deepcopy(child["default"]), f"{at}.{key}", [])
    for key in node.get("required", ()):
        if key not in result:
            out.append(Problem(f"{at}.{key}", "Required value"))
    _cel(node, result, at, out)
    return result


def _cel(node: Schema, value: Any, at: str, out: list[Problem]) -> None:
    """The node's CEL rules, through their twins, unless the schema already refused something at or below it."""
    if any(p.field == at or p.field.startswith(f"{at}.") or p.field.startswith(f"{at}[") for p in out):
        return
    for cel in node.get("x-kubernetes-validations", ()):
        if is_transition_rule(cel["rule"]):
            continue
        twin = CEL_TWINS.get(cel["rule"])
        if twin is None:
            raise LookupError(f"no Python twin for the CEL rule at {at}: {cel['rule']}")
        if not twin(value):
            out.append(Problem(at + cel.get("fieldPath", ""), cel["message"]))


@functools.cache
def _schema() -> Schema:
    return llmjob_schema()


def manifest_problems(manifest: Mapping[str, Any]) -> list[Problem]:
    """Everything the API server's schema and CEL rules refuse in `manifest` (an LLMJob as applied), in order."""
    out: list[Problem] = []
    root = {k: v for k, v in manifest.items() if k != "status"}
    schema = _schema()
    _walk(schema, root, "", out)
    return [Problem(p.field.lstrip(".") or "LLMJob", p.message) for p in out]


def validate_manifest(manifest: Mapping[str, Any]) -> None:
    """Raise SpecError naming the first problem's field (and counting the others) when the API server would refuse
    `manifest`; return quietly when it would accept it."""
    problems = manifest_problems(manifest)
    if problems:
        first = problems[0]
        more = f" (and {len(problems) - 1} more: {'; '.join(f'{p.field}: {p.message}' for p in problems[1:4])})" \
            if len(problems) > 1 else ""
        raise SpecError(first.message + more, first.field)
