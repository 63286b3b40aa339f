"""The operator survives SIGKILL at any point, never duplicates children, and only one of two replicas acts."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from e2e.localcluster import LocalCluster
from tests.integration.kube import AdminApi, children, delete_namespace, llmjob, llmjob_path, phase_of, wait_for
from tests.integration.operator_proc import OperatorProcess

pytestmark = pytest.mark.integration


def _all_jobs(api: AdminApi, ns: str) -> list[str]:
    return sorted(j["metadata"]["name"] for j in api.get(f"/apis/batch/v1/namespaces/{ns}/jobs")["items"])


@pytest.mark.parametrize("kill_after", [0.2, 0.8, 2.0])
def test_sigkill_mid_reconcile_never_duplicates_or_loses_jobs(cluster: LocalCluster, api: AdminApi, crds: None,
                                                              artifacts: Path, kill_after: float) -> None:
    ns = api.namespace("sigkill")
    first = OperatorProcess(cluster, artifacts, f"sigkill-{kill_after}-a").start()
    names = [f"j{i}" for i in range(12)]
    for name in names:
        api.create(llmjob_path(ns), llmjob(name, annotations={"sim.llmasos.io/duration": "4s"}))
    time.sleep(kill_after)
    first.kill()
    second = OperatorProcess(cluster, artifacts, f"sigkill-{kill_after}-b").start()
    try:
        wait_for(lambda: all(phase_of(api, ns, n) == "Succeeded" for n in names), timeout=120,
                 what="every job Succeeded after the restart")
        assert _all_jobs(api, ns) == sorted(f"{n}-a0" for n in names), "exactly one Job per LLMJob"
        for n in names:
            _, services, pods = children(api, ns, n)
            assert len(services) == 1
            assert len(pods) == 2, f"{n}: a duplicate pod group would show more than 2 pods"
    finally:
        delete_namespace(api, ns)
        second.stop()


def test_two_replicas_elect_one_leader_and_fail_over(cluster: LocalCluster, api: AdminApi, crds: None,
                                                     artifacts: Path) -> None:
    ns = api.namespace("leader")
    peering = {"LLMASOS_PEERING_NAME": "llmasos-test", "LLMASOS_PEERING_LIFETIME_SECONDS": "10"}
    cluster.kubectl("apply", "-f", "-", input='{"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", '
                                              '"metadata": {"name": "llmasos-test"}}')
    high = OperatorProcess(cluster, artifacts, "leader-high",
                           {**peering, "LLMASOS_PEERING_PRIORITY": "200"}).start()
    low = OperatorProcess(cluster, artifacts, "leader-low", {**peering, "LLMASOS_PEERING_PRIORITY": "100"}).start()
    try:
        time.sleep(3)  # let both see each other through the peering object
        api.create(llmjob_path(ns), llmjob("one", annotations={"sim.llmasos.io/duration": "2s"}))
        wait_for(lambda: phase_of(api, ns, "one") == "Succeeded", timeout=60, what="job handled by the leader")
        assert high.metric("llmasos_reconcile_duration_seconds_count") > 0
        assert low.metric("llmasos_reconcile_duration_seconds_count") == 0, "the standby must not act"
        assert _all_jobs(api, ns) == ["one-a0"]

        high.kill()  # no goodbye: the standby takes over once the leader's peering record expires
        api.create(llmjob_path(ns), llmjob("two", annotations={"sim.llmasos.io/duration": "2s"}))
        wait_for(lambda: phase_of(api, ns, "two") == "Succeeded", timeout=90, what="standby took over")
        assert low.metric("llmasos_reconcile_duration_seconds_count") > 0
        assert _all_jobs(api, ns) == ["one-a0", "two-a0"]
    finally:
        if low.proc and low.proc.poll() is None:
            delete_namespace(api, ns)
        else:
            api.delete(f"/api/v1/namespaces/{ns}")
        high.stop()
        low.stop()
        cluster.kubectl("delete", "clusterkopfpeering", "llmasos-test", "--ignore-not-found")


def test_health_and_metrics_endpoints(operator: OperatorProcess) -> None:
    assert httpx.get(f"http://127.0.0.1:{operator.health_port}/healthz", timeout=5).status_code == 200
    text = operator.metrics()
    assert "llmasos_llmjobs{" in text
    assert "llmasos_reconcile_duration_seconds_bucket" in text


def test_a_placement_made_before_a_crash_is_kept_from_the_child_job(cluster: LocalCluster, api: AdminApi,
                                                                    crds: None, artifacts: Path) -> None:
    """An operator killed after creating a job's children and before writing its status left the placement only in
    the child Job. The next operator must take the pool from there, not place the job anew (another pool would
    be recorded in status while the pods run on the first one). One job per pool, so whichever pool the operator
    would prefer, one of them was created on the other."""
    from llmasos.api.spec import parse_spec
    from llmasos.cluster.builders import Owner, build_job

    ns = api.namespace("recover")
    pools = ["l4", "a100"]
    parallelism = {"strategy": "ddp", "nodes": 1, "gpusPerNode": 1}
    for pool in pools:
        name = f"on-{pool}"
        body = api.create(llmjob_path(ns), llmjob(name, placement={"nodePools": pools}, parallelism=parallelism,
                                                  annotations={"sim.llmasos.io/duration": "3s"}))
        spec = parse_spec(body["spec"])
        job = build_job(Owner(name, ns, body["metadata"]["uid"]), spec, 0, pool, "llmasos-worker:test")
        api.create(f"/apis/batch/v1/namespaces/{ns}/jobs", job)
    op = OperatorProcess(cluster, artifacts, "recover").start()
    try:
        for pool in pools:
            wait_for(lambda p=pool: phase_of(api, ns, f"on-{p}") == "Succeeded", timeout=90,
                     what=f"on-{pool} Succeeded")
            status = api.get(llmjob_path(ns, f"on-{pool}"))["status"]
            assert status["pool"] == pool, f"on-{pool} was recorded on {status['pool']}"
            jobs, services, _ = children(api, ns, f"on-{pool}")
            assert [j["metadata"]["name"] for j in jobs] == [f"on-{pool}-a0"], "no second Job"
            assert len(services) == 1
    finally:
        op.stop()
        delete_namespace(api, ns)
