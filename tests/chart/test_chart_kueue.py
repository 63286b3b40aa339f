"""The chart's carbon AdmissionCheck (templates/kueue/): off by default; on, the AdmissionCheck names the operator's
controller and its ClusterRole grants exactly what handlers/admission_check.py uses, bound to the operator."""

from __future__ import annotations

from typing import Any

from llmasos.handlers.admission_check import ADMISSION_CHECKS, CONTROLLER_NAME, RESOURCE_FLAVORS, WORKLOADS
from tests.chart.conftest import Render, by_kind, one

ON = ("kueue.admissionCheck.enabled=true",)


def _rules(role: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    out: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for res in rule["resources"]:
                out.setdefault((group, res), set()).update(rule["verbs"])
    return out


def test_off_by_default(render: Render) -> None:
    objects = render()
    assert not by_kind(objects, "AdmissionCheck")
    assert not [r for r in by_kind(objects, "ClusterRole") if r["metadata"]["name"].endswith("-kueue-admission-check")]


def test_admission_check_names_the_operator_controller(render: Render) -> None:
    objects = render(set_values=(*ON, "kueue.admissionCheck.name=green"))
    check = one(objects, "AdmissionCheck")
    assert check["apiVersion"] == f"{WORKLOADS.group}/{WORKLOADS.version}"
    assert check["metadata"]["name"] == "green"
    assert check["spec"] == {"controllerName": CONTROLLER_NAME}


def test_rbac_is_least_privilege_and_bound_to_the_operator(render: Render) -> None:
    objects = render(set_values=ON)
    role = one(objects, "ClusterRole", "-kueue-admission-check")
    rules = _rules(role)
    assert rules[(WORKLOADS.group, "workloads")] == {"get", "list", "watch"}
    assert rules[(WORKLOADS.group, "workloads/status")] == {"patch"}
    assert rules[(ADMISSION_CHECKS.group, "admissionchecks")] == {"get", "list", "watch"}
    assert rules[(ADMISSION_CHECKS.group, "admissionchecks/status")] == {"patch"}
    assert rules[(RESOURCE_FLAVORS.group, "resourceflavors")] == {"get"}
    for owner in (("batch", "jobs"), ("jobset.x-k8s.io", "jobsets"), ("ray.io", "rayjobs"),
                  ("trainer.kubeflow.org", "trainjobs")):
        assert rules[owner] == {"get"}, owner
    assert all("*" not in v and "*" not in k[1] for k, v in rules.items())
    binding = one(objects, "ClusterRoleBinding", "-kueue-admission-check")
    operator_sa = one(objects, "Deployment", "-operator")["spec"]["template"]["spec"]["serviceAccountName"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": operator_sa, "namespace": "llmasos-system"}]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]


def test_no_rbac_without_rbac_create(render: Render) -> None:
    objects = render(set_values=(*ON, "rbac.create=false"))
    assert one(objects, "AdmissionCheck")
    assert not [r for r in by_kind(objects, "ClusterRole") if r["metadata"]["name"].endswith("-kueue-admission-check")]


def test_queued_llmjobs_rbac_lists_and_patches_workloads_and_reads_flavours_only(render: Render) -> None:
    """kueue.llmJobs.enabled: what handlers/queueing.py uses (list and watch Workloads, patch spec.active, get
    flavours), and the setting that turns the Workload watch on."""
    assert not [r for r in by_kind(render(), "ClusterRole") if r["metadata"]["name"].endswith("-kueue-llmjobs")]
    objects = render(set_values=("kueue.llmJobs.enabled=true",))
    role = one(objects, "ClusterRole", "-kueue-llmjobs")
    assert _rules(role) == {(WORKLOADS.group, "workloads"): {"list", "watch", "patch"},
                            (RESOURCE_FLAVORS.group, "resourceflavors"): {"get"}}
    env = {e["name"]: e.get("value") for e in
           one(objects, "Deployment", "-operator")["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["LLMASOS_KUEUE_LLM_JOBS"] == "true"
    binding = one(objects, "ClusterRoleBinding", "-kueue-llmjobs")
    operator_sa = one(objects, "Deployment", "-operator")["spec"]["template"]["spec"]["serviceAccountName"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": operator_sa, "namespace": "llmasos-system"}]
