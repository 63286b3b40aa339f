"""Hypothesis-generated LLMJob specs applied through the real API server.

Each example mutates a valid LLMJob at one or two spec fields (wrong types, out-of-range numbers, unknown enum
values, unknown fields, nulls) and POSTs it with strict field validation. A rejection must name the spec field
(`spec.` in the message) and leave nothing behind; an accepted object must also be accepted by the operator's
own parser (otherwise the user learns of the problem only later, as an InvalidSpec condition), and `llmasos plan -f`'s
validator (`api.validate`) must agree with the API server both ways, naming a field the server names.
"""

from __future__ import annotations

import copy
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from llmasos.api.spec import parse_spec
from llmasos.api.validate import manifest_problems
from llmasos.errors import SpecError
from tests.integration.kube import AdminApi, llmjob, llmjob_path

pytestmark = pytest.mark.integration

FIELDS = [
    "task", "model.builtin", "model.path", "model.hfRepo", "parallelism.strategy", "parallelism.nodes",
    "parallelism.gpusPerNode", "parallelism.dataParallel", "parallelism.tensorParallel",
    "parallelism.pipelineParallel", "carbon.policy", "carbon.deadline", "carbon.maxDelay", "carbon.expectedDuration",
    "carbon.safetyMargin", "carbon.interruptible", "carbon.zone", "power.policy", "power.fraction",
    "power.limitWatts", "backoffLimit", "maxRuntime", "suspend", "ttlSecondsAfterFinished", "placement.nodePools",
    "placement.preferEfficient", "resources.cpu", "resources.memory", "image", "accounting.pue", "unknownField",
    "parallelism.unknown", "carbon.polcy", "carbon.expectedDurration", "model.bultin", "power.limitWats",
]
values = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5), st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.sampled_from(["", "ddp", "ray", "tensor", "train", "infer", "deadline", "window", "immediate", "2h", "-1h",
                     "30s", "0s", "1y", "2026-01-01T00:00:00Z", "not-a-time", "gpt-tiny", "fraction", "limit",
                     "energyOptimal", "a100", "8Gi", "2", "x" * 300]),
    st.text(max_size=10), st.lists(st.text(max_size=5), max_size=3),
    st.dictionaries(st.sampled_from(["a", "policy", "nodes"]), st.integers(0, 3), max_size=2),
)
mutations = st.lists(st.tuples(st.sampled_from(FIELDS), values), min_size=1, max_size=2)


def mutate(doc: dict[str, Any], path: str, value: Any) -> None:
    node = doc["spec"]
    keys = path.split(".")
    for key in keys[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    node[keys[-1]] = value


def known_gap(path: str, value: Any) -> bool:
    """Found by this fuzzer, pinned by test_deadline_list_is_rejected below until the schema is fixed."""
    return path == "carbon.deadline" and isinstance(value, list | dict)


@pytest.fixture(scope="module")
def fuzz_ns(api: AdminApi, crds: None) -> Iterator[str]:
    ns = api.namespace("chaos-fuzz")
    yield ns
    api.delete(f"/api/v1/namespaces/{ns}")  # no operator runs here: nothing carries a finalizer


HEAVY = os.environ.get("LLMASOS_CHAOS_HEAVY") == "1"


@settings(max_examples=1000 if HEAVY else 150, deadline=None, derandomize=not HEAVY,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=mutations)
def test_generated_specs_are_rejected_naming_the_field_or_accepted_by_both(
        api: AdminApi, fuzz_ns: str, changes: list[tuple[str, Any]]) -> None:
    assume(not any(known_gap(path, value) for path, value in changes))
    name = f"f-{uuid.uuid4().hex[:10]}"
    doc = copy.deepcopy(llmjob(name, annotations={}))
    for path, value in changes:
        mutate(doc, path, value)
    r = api.request("POST", llmjob_path(fuzz_ns) + "?fieldValidation=Strict", doc)
    offline = manifest_problems(doc)  # what `llmasos plan -f` says of the same manifest
    if r.status_code == 201:
        assert offline == [], f"the API server accepted {changes} but plan -f refuses it: {offline}"
        stored = r.json()
        try:
            parse_spec(dict(stored["spec"]))
        except SpecError as exc:
            raise AssertionError(f"the API server accepted {changes} but the operator rejects it: "
                                 f"{exc.field}: {exc}") from None
        api.request("DELETE", llmjob_path(fuzz_ns, name))
        return
    assert r.status_code in (400, 422), f"{changes}: {r.status_code} {r.text[:300]}"
    message = r.json().get("message", "")
    assert offline, f"the API server refused {changes} but plan -f accepts it: {message[:400]}"
    assert any(p.field in message for p in offline), f"{changes}: plan -f names {offline}, the server: {message[:400]}"
    assert "spec." in message or ".spec" in message, f"{changes}: the rejection names no field: {message[:400]}"
    assert api.request("GET", llmjob_path(fuzz_ns, name)).status_code == 404, "nothing is partially applied"


def test_deadline_list_is_rejected(api: AdminApi, fuzz_ns: str) -> None:
    doc = llmjob("deadline-list", annotations={}, carbon={"policy": "deadline", "deadline": [""],
                                                          "expectedDuration": "1h"})
    r = api.request("POST", llmjob_path(fuzz_ns) + "?fieldValidation=Strict", doc)
    if r.status_code == 201:
        api.request("DELETE", llmjob_path(fuzz_ns, "deadline-list"))
    assert r.status_code == 422
    assert "spec.carbon.deadline" in r.json()["message"]
