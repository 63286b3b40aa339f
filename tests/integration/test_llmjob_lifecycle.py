"""LLMJobs on the real control plane: the example runs to Succeeded, suspend/resume, delete, failures, Ray."""

from __future__ import annotations

from typing import Any

import pytest

from e2e.localcluster import LocalCluster
from tests.integration.kube import (
    AdminApi,
    children,
    llmjob,
    llmjob_path,
    phase_of,
    wait_for,
    wait_phase,
)
from tests.integration.operator_proc import OperatorProcess

pytestmark = pytest.mark.integration
REPO_EXAMPLE = "examples/01-ddp-immediate.yaml"


def _env(pod: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in pod["spec"]["containers"][0]["env"]}


def test_example_ddp_job_runs_on_allowed_pool_and_succeeds(cluster: LocalCluster, api: AdminApi,
                                                           operator: OperatorProcess) -> None:
    from pathlib import Path

    example = Path(__file__).resolve().parents[2] / REPO_EXAMPLE
    cluster.kubectl("delete", "-f", str(example), "--ignore-not-found", "--wait=true", "--timeout=60s")
    cluster.kubectl("apply", "-f", str(example))
    ns, name = "ml", "gpt-small-ddp"
    pods = wait_for(lambda: [p for p in children(api, ns, name)[2] if p["spec"].get("nodeName")]
                    if len([p for p in children(api, ns, name)[2] if p["spec"].get("nodeName")]) == 2 else None,
                    what="two scheduled worker pods")
    pools = set()
    for pod in pods:
        node = api.get(f"/api/v1/nodes/{pod['spec']['nodeName']}")
        pools.add(node["metadata"]["labels"]["llmasos.io/pool"])
        env = _env(pod)
        assert env["NNODES"] == "2"
        assert env["NPROC_PER_NODE"] == "4"
        assert env["WORLD_SIZE"] == "8"
        assert env["MASTER_ADDR"] == f"{name}-a0-0.{name}.{ns}.svc"
        assert env["MASTER_PORT"] == "29500"
        assert env["LLMASOS_DATA_PARALLEL"] == "8"
        assert "job-completion-index" in str(env["NODE_RANK"])
        assert pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "4"
        assert pod["spec"]["automountServiceAccountToken"] is False
        assert pod["spec"]["subdomain"] == name
    assert pools <= {"a100", "h100"}
    assert len(pools) == 1, "the gang must land on one pool"

    out = cluster.kubectl("wait", "--for=condition=Succeeded", f"llmjob/{name}", "-n", ns, "--timeout=90s",
                          check=False)
    assert out.returncode == 0, out.stderr
    obj = api.get(llmjob_path(ns, name))
    status = obj["status"]
    assert status["phase"] == "Succeeded"
    assert status["pool"] in pools
    assert status["workers"]["total"] == 2
    assert status["startTime"]
    assert status["completionTime"]
    assert status["observedGeneration"] == obj["metadata"]["generation"]
    types = {c["type"]: c for c in status["conditions"]}
    assert types["Succeeded"]["status"] == "True"
    assert types["Scheduled"]["reason"] == "PoolSelected"
    assert types["Failed"]["status"] == "False"
    def reasons() -> set[str]:
        return {e["reason"] for e in api.get(f"/api/v1/namespaces/{ns}/events?fieldSelector=involvedObject.name="
                                             f"{name},involvedObject.kind=LLMJob")["items"]}

    # Events are posted right after the status write that kubectl wait saw.
    wait_for(lambda: {"PoolSelected", "WorkersRunning", "JobCompleted"} <= reasons(), timeout=10,
             what="transition events")
    table = cluster.kubectl("get", "llmjobs", "-n", ns).stdout
    assert "Succeeded" in table
    assert "ddp" in table
    jobs, services, _ = children(api, ns, name)
    assert len(jobs) == 1
    assert len(services) == 1


def test_suspend_removes_pods_and_resume_recreates_them(api: AdminApi, operator: OperatorProcess) -> None:
    ns = api.namespace("suspend")
    api.create(llmjob_path(ns), llmjob("long", annotations={"sim.llmasos.io/duration": "300s"}))
    wait_phase(api, ns, "long", "Running")
    api.request("PATCH", llmjob_path(ns, "long"), {"spec": {"suspend": True}}, expect=200,
                content_type="application/merge-patch+json")
    obj = wait_phase(api, ns, "long", "Suspended")
    assert any(c["type"] == "Suspended" and c["status"] == "True" for c in obj["status"]["conditions"])
    wait_for(lambda: not children(api, ns, "long")[2], what="pods removed while suspended")
    jobs, _, _ = children(api, ns, "long")
    assert jobs[0]["spec"]["suspend"] is True
    api.request("PATCH", llmjob_path(ns, "long"), {"spec": {"suspend": False}}, expect=200,
                content_type="application/merge-patch+json")
    wait_phase(api, ns, "long", "Running")
    assert len(children(api, ns, "long")[2]) == 2
    assert len(children(api, ns, "long")[0]) == 1, "resume reuses the same Job"
    api.delete(f"/api/v1/namespaces/{ns}")


def test_deleting_llmjob_deletes_children(api: AdminApi, operator: OperatorProcess) -> None:
    ns = api.namespace("delete")
    api.create(llmjob_path(ns), llmjob("doomed", annotations={"sim.llmasos.io/duration": "300s"}))
    wait_phase(api, ns, "doomed", "Running")
    api.request("DELETE", llmjob_path(ns, "doomed"), expect=200)
    wait_for(lambda: children(api, ns, "doomed") == ([], [], []), timeout=60, what="children garbage-collected")
    api.delete(f"/api/v1/namespaces/{ns}")


def test_failed_worker_restarts_whole_group_then_fails_with_reason(api: AdminApi,
                                                                    operator: OperatorProcess) -> None:
    ns = api.namespace("fail")
    api.create(llmjob_path(ns), llmjob("flaky", backoffLimit=1, annotations={
        "sim.llmasos.io/duration": "2s", "sim.llmasos.io/outcome": "Failed", "sim.llmasos.io/exit-code": "7"}))
    obj = wait_phase(api, ns, "flaky", "Failed", timeout=90)
    failed = next(c for c in obj["status"]["conditions"] if c["type"] == "Failed")
    assert failed["status"] == "True"
    assert failed["reason"] == "WorkerFailed"
    assert "PodFailurePolicy" in failed["message"]
    assert obj["status"]["attempt"] == 1
    jobs, _, pods = children(api, ns, "flaky")
    assert [j["metadata"]["name"] for j in jobs] == ["flaky-a1"], "the failed first attempt was replaced"
    assert all(p["status"]["phase"] in ("Failed", "Succeeded") for p in pods), "no half-running group"
    wait_for(lambda: [e["reason"] for e in api.get(f"/api/v1/namespaces/{ns}/events")["items"]]
             .count("WorkerFailed") >= 2, timeout=10, what="a WorkerFailed event per attempt")
    api.delete(f"/api/v1/namespaces/{ns}")


def test_max_runtime_fails_the_job(api: AdminApi, operator: OperatorProcess) -> None:
    ns = api.namespace("runtime")
    api.create(llmjob_path(ns), llmjob("slow", maxRuntime="3s", annotations={"sim.llmasos.io/duration": "120s"}))
    obj = wait_phase(api, ns, "slow", "Failed", timeout=60)
    failed = next(c for c in obj["status"]["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "MaxRuntimeExceeded"
    api.delete(f"/api/v1/namespaces/{ns}")


@pytest.mark.parametrize(
    ("placement", "parallelism", "reason"),
    [
        ({"nodePools": ["tpu-v5"]}, {"strategy": "ddp", "nodes": 1, "gpusPerNode": 1}, "UnknownNodePool"),
        ({"nodePools": ["l4"]}, {"strategy": "ddp", "nodes": 1, "gpusPerNode": 8}, "InsufficientGPUs"),
        ({}, {"strategy": "ddp", "nodes": 50, "gpusPerNode": 8}, "InsufficientGPUs"),
    ],
)
def test_unplaceable_job_is_pending_with_reason_and_no_children(
        api: AdminApi, operator: OperatorProcess, placement: dict[str, Any], parallelism: dict[str, Any],
        reason: str) -> None:
    ns = api.namespace("nopool")
    batch = parallelism["nodes"] * parallelism["gpusPerNode"]  # one sequence per data-parallel rank (the worker's rule)
    api.create(llmjob_path(ns), llmjob("stuck", placement=placement, parallelism=parallelism,
                                       taskConfig={"batch_size": batch}))
    obj = wait_phase(api, ns, "stuck", "Pending")
    sched = next(c for c in obj["status"]["conditions"] if c["type"] == "Scheduled")
    assert sched["status"] == "False"
    assert sched["reason"] == reason
    # The Warning event follows the status write that wait_phase saw: count only once it is there.
    wait_for(lambda: any(e["reason"] == reason for e in api.get(f"/api/v1/namespaces/{ns}/events")["items"]),
             timeout=15, what=f"the {reason} event")
    events_before = len(api.get(f"/api/v1/namespaces/{ns}/events")["items"])
    import time

    time.sleep(8)  # more than one placement retry interval (5s in tests)
    assert children(api, ns, "stuck") == ([], [], [])
    assert phase_of(api, ns, "stuck") == "Pending"
    events_after = len(api.get(f"/api/v1/namespaces/{ns}/events")["items"])
    assert events_after == events_before, "retries must not repeat the same event (no event storm)"
    api.delete(f"/api/v1/namespaces/{ns}")


def test_ray_strategy_creates_head_and_workers_with_ray_commands(api: AdminApi, operator: OperatorProcess) -> None:
    ns = api.namespace("ray")
    api.create(llmjob_path(ns), llmjob("serve", task="inference",
                                       parallelism={"strategy": "ray", "nodes": 3, "gpusPerNode": 1},
                                       annotations={"sim.llmasos.io/duration": "300s"}))
    wait_phase(api, ns, "serve", "Running")
    jobs, services, pods = children(api, ns, "serve")
    assert jobs[0]["spec"]["successPolicy"] == {"rules": [{"succeededIndexes": "0"}]}
    ports = {p["name"] for p in services[0]["spec"]["ports"]}
    assert {"gcs", "dashboard", "client"} <= ports
    assert len(pods) == 3
    script = pods[0]["spec"]["containers"][0]["command"][-1]
    assert "ray start --head" in script
    assert "exec llmasos-worker" in script
    assert 'ray start --address="serve-a0-0.serve.' in script
    assert "--block" in script
    api.delete(f"/api/v1/namespaces/{ns}")
