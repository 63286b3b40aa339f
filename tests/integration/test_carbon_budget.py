"""Namespace carbon budgets in the operator: over budget, new jobs are rejected or held to their best window."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from e2e.localcluster import LocalCluster
from tests.integration.kube import (
    AdminApi,
    children,
    delete_namespace,
    llmjob,
    llmjob_path,
    wait_for,
    wait_phase,
)
from tests.integration.operator_proc import OperatorProcess

pytestmark = pytest.mark.integration


def test_over_budget_namespaces_reject_or_hold_new_jobs(cluster: LocalCluster, api: AdminApi, crds: None,
                                                        artifacts: Path) -> None:
    reject_ns, hold_ns = api.namespace("budget-reject"), api.namespace("budget-hold")
    budgets = {reject_ns: {"monthlyGrams": 0, "policy": "reject"}, hold_ns: {"monthlyGrams": 0, "policy": "hold"}}
    op = OperatorProcess(cluster, artifacts, "budget", {"LLMASOS_CARBON_BUDGETS": json.dumps(budgets)}).start()
    try:
        api.create(llmjob_path(reject_ns), llmjob("spender"))
        obj = wait_phase(api, reject_ns, "spender", "Failed")
        failed = next(c for c in obj["status"]["conditions"] if c["type"] == "Failed")
        assert failed["reason"] == "CarbonBudgetExceeded"
        assert "monthly budget" in failed["message"]
        assert children(api, reject_ns, "spender") == ([], [], [])

        api.create(llmjob_path(hold_ns), llmjob("patient", placement={"nodePools": ["l4"]},
                                                parallelism={"strategy": "ddp", "nodes": 1, "gpusPerNode": 1}))
        status = wait_for(lambda: api.get(llmjob_path(hold_ns, "patient")).get("status", {}).get("plan") and
                          api.get(llmjob_path(hold_ns, "patient"))["status"], timeout=60, what="a plan")
        budget = next(c for c in status["conditions"] if c["type"] == "CarbonBudget")
        assert budget["status"] == "True"
        assert budget["reason"] == "CarbonBudgetExceeded"
        assert status["plan"]["policy"] == "deadline", "an immediate job is held to its lowest-carbon window"
        assert status["phase"] in ("Deferred", "Pending", "Running", "Succeeded")
        if status["phase"] == "Deferred":
            assert children(api, hold_ns, "patient") == ([], [], [])
    finally:
        delete_namespace(api, reject_ns)
        delete_namespace(api, hold_ns)
        op.stop()
