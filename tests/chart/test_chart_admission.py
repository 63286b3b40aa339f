"""The chart's LLMJob ValidatingAdmissionPolicy (templates/admission/): on by default, bound everywhere, its spec the
generated one, and the operator's own check switched with it. Whether the API server refuses what it should is
tests/integration/test_tenancy.py, which installs this very template."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from llmasos.api.admission import build_policy_spec
from tests.chart.conftest import CHART, CI_VALUES, HelmError, Render, by_kind, env_of, one


def _policy_objects(objects: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    return by_kind(objects, "ValidatingAdmissionPolicy"), by_kind(objects, "ValidatingAdmissionPolicyBinding")


def _operator_env(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return env_of(one(objects, "Deployment", "-operator")["spec"]["template"]["spec"]["containers"][0])


def test_policy_is_on_by_default_and_bound_in_every_namespace(render: Render) -> None:
    objects = render()
    policies, bindings = _policy_objects(objects)
    assert len(policies) == len(bindings) == 1
    policy, binding = policies[0], bindings[0]
    assert policy["apiVersion"] == binding["apiVersion"] == "admissionregistration.k8s.io/v1"
    assert policy["metadata"]["name"] == "llmasos-llmjob-workload"
    assert policy["spec"] == build_policy_spec(), "the chart ships the generated policy unchanged"
    assert binding["spec"] == {"policyName": "llmasos-llmjob-workload", "validationActions": ["Deny"]}, \
        "no namespaceSelector: exemptions are per rule, read from the namespace by the policy"
    assert _operator_env(objects)["LLMASOS_WORKLOAD_POLICY"] == "true"


@pytest.mark.parametrize("values", CI_VALUES, ids=[p.name for p in CI_VALUES])
def test_every_ci_values_file_keeps_the_policy(render: Render, values: Path) -> None:
    policies, bindings = _policy_objects(render([values]))
    assert len(policies) == len(bindings) == 1


def test_policy_can_be_turned_off_and_the_operator_check_with_it(render: Render) -> None:
    objects = render(set_values=["workloadPolicy.enabled=false"])
    assert _policy_objects(objects) == ([], [])
    assert _operator_env(objects)["LLMASOS_WORKLOAD_POLICY"] == "false"


def test_warn_only_binding_leaves_the_operator_refusing_nothing(render: Render) -> None:
    objects = render(set_values=["workloadPolicy.validationActions={Warn,Audit}"])
    binding = _policy_objects(objects)[1][0]
    assert binding["spec"]["validationActions"] == ["Warn", "Audit"]
    assert _operator_env(objects)["LLMASOS_WORKLOAD_POLICY"] == "false"


@pytest.mark.parametrize(("setting", "message"), [
    ("workloadPolicy.validationActions={Deny,Warn}", "Deny and Warn exclude each other"),
    ("workloadPolicy.validationActions={Block}", "validationActions"),
])
def test_invalid_validation_actions_are_refused(render: Render, setting: str, message: str) -> None:
    with pytest.raises(HelmError, match=message):
        render(set_values=[setting], expect_error=True)


def test_policy_file_is_packaged() -> None:
    ignored = (CHART / ".helmignore").read_text().split()
    assert not any(p in ("admission/", "admission", "*.yaml") for p in ignored)
    assert (CHART / "admission" / "llmjob-workload-policy.yaml").is_file()
