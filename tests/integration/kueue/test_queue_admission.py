"""Kueue admits by quota, and LLMJobs with spec.queueName go through it (real Kueue controller, `conftest.py`).

- admission by quota: two Jobs that each need a flavour's whole GPU quota run one after the other;
- LLMJobs with spec.queueName: admitted by quota and run on the flavour's pool (not the pool the operator would have
  picked); two competing for one flavour's quota: the second reports WaitingForQuota, then runs; one with a carbon
  deadline is held out of the queue (no child Job, no Workload) until its window, then queued and admitted; a
  Workload's change that leaves its Job alone (deactivated by Kueue) reaches the LLMJob through the Workload watch.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from e2e.localcluster import LocalCluster
from tests.integration.kube import AdminApi, llmjob_path, wait_for
from tests.integration.kueue.queues import (
    CLEAN,
    DIRTY,
    FORECAST,
    KUEUE,
    OPERATOR_ENV,
    STEP,
    condition,
    get_job,
    iso,
    job,
    queued_llmjob,
    status_of,
    unsuspended,
    when,
    workload,
)
from tests.integration.operator_proc import OperatorProcess
from tests.unit.carbon.fake_server import FakeElectricityMaps, Reply

pytestmark = pytest.mark.integration


def test_admission_by_quota(api: AdminApi, ns: str) -> None:
    # Each Job needs all 4 GPUs of the l4 flavour's quota: Kueue admits one, the other waits for the quota.
    api.create(f"/apis/batch/v1/namespaces/{ns}/jobs", job("first", "quota", run="6s"))
    wait_for(lambda: unsuspended(api, ns, "first"), timeout=30, what="first Job admitted and unsuspended")
    api.create(f"/apis/batch/v1/namespaces/{ns}/jobs", job("second", "quota", run="2s"))
    second = wait_for(lambda: workload(api, ns, "second"), timeout=20, what="the second Job's workload")
    assert get_job(api, ns, "second")["spec"]["suspend"] is True, "Kueue's webhook suspends a queued Job"
    w = wait_for(lambda: (workload(api, ns, "second") or {}).get("status", {}).get("conditions"), timeout=20,
                 what="the second workload's conditions")
    reserved = next(c for c in w if c["type"] == "QuotaReserved")
    assert reserved["status"] == "False", second
    assert "nvidia.com/gpu" in reserved["message"] or "quota" in reserved["message"].lower()
    first = get_job(api, ns, "first")
    assert not first["status"].get("succeeded"), "the second waits while the first runs"
    wait_for(lambda: unsuspended(api, ns, "second"), timeout=60, what="second Job admitted after the first")
    assert get_job(api, ns, "first")["status"].get("succeeded") == 1
    pods = api.get(f"/api/v1/namespaces/{ns}/pods?labelSelector=job-name=second")["items"]
    assert all(p["spec"].get("nodeSelector", {}).get("llmasos.io/pool") == "l4" for p in pods), pods


def test_llmjob_with_a_queue_is_admitted_by_kueue_and_runs_on_the_flavours_pool(
        api: AdminApi, ns: str, carbon_operator: OperatorProcess) -> None:
    """The operator alone would place this job on l4 (the most energy-efficient pool: its own log says "placing on
    pool l4"); the LocalQueue's only flavour is a100. Kueue decides: the Job is queued suspended, admitted on a100,
    and the LLMJob reports a100, its GPU product and its carbon zone."""
    api.create(llmjob_path(ns), queued_llmjob("queued", "quota-a100", runs="4s"))
    child = wait_for(lambda: api.request("GET", f"/apis/batch/v1/namespaces/{ns}/jobs/queued-a0").status_code == 200
                     and get_job(api, ns, "queued-a0"), timeout=30, what="the child Job")
    assert child["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "quota-a100"
    assert "affinity" not in child["spec"]["template"]["spec"], "the operator leaves the flavour to Kueue"
    running = wait_for(lambda: (s := status_of(api, ns, "queued")).get("phase") == "Running" and s, timeout=40,
                       what="the queued LLMJob admitted and running")
    assert (running["pool"], running["gpuProduct"], running["zone"]) == ("a100", "nvidia-a100-80gb", "US-MIDA-PJM")
    admitted = condition(running, "Admitted")
    assert (admitted["status"], admitted["reason"]) == ("True", "AdmittedByKueue"), admitted
    assert "flavour a100 (node pool a100)" in admitted["message"]
    assert condition(running, "Scheduled")["message"] == "node pool a100 (flavour a100, assigned by Kueue)"
    w = workload(api, ns, "queued-a0")
    assert w is not None
    assert w["status"]["admission"]["podSetAssignments"][0]["flavors"]["nvidia.com/gpu"] == "a100"
    pods = api.get(f"/api/v1/namespaces/{ns}/pods?labelSelector=llmasos.io/llmjob=queued")["items"]
    assert pods
    nodes = [p["spec"]["nodeName"] for p in pods]
    assert {n.rsplit("-", 1)[0] for n in nodes} == {"gpu-a100"}, nodes
    done = wait_for(lambda: (s := status_of(api, ns, "queued")).get("phase") == "Succeeded" and s, timeout=40,
                    what="the queued LLMJob finished")
    assert done["pool"] == "a100"


def test_two_llmjobs_compete_for_one_flavours_quota(api: AdminApi, ns: str, carbon_operator: OperatorProcess) -> None:
    api.create(llmjob_path(ns), queued_llmjob("one", "quota", runs="12s"))
    wait_for(lambda: status_of(api, ns, "one").get("phase") == "Running", timeout=40, what="the first one running")
    api.create(llmjob_path(ns), queued_llmjob("two", "quota", runs="2s"))
    waiting = wait_for(lambda: (s := status_of(api, ns, "two")) and
                       condition(s, "Running").get("reason") == "WaitingForQuota" and s,
                       timeout=30, what="the second one waiting for quota")
    assert waiting["phase"] == "Pending"
    assert condition(waiting, "Admitted")["status"] == "False"
    assert "pool" not in waiting, "no pool before Kueue assigns a flavour"
    assert (condition(waiting, "Scheduled")["status"], condition(waiting, "Scheduled")["reason"]) == \
        ("False", "WaitingForQuota")
    assert "nvidia.com/gpu" in waiting["message"], waiting["message"]
    assert get_job(api, ns, "two-a0")["spec"]["suspend"] is True, "Kueue holds it; the operator never unsuspends it"
    assert status_of(api, ns, "one").get("phase") == "Running"
    wait_for(lambda: "WaitingForQuota" in {e["reason"] for e in api.get(
        f"/api/v1/namespaces/{ns}/events?fieldSelector=involvedObject.name=two")["items"]}, timeout=15,
        what="the WaitingForQuota Event (posted in the background after the status write)")
    second = wait_for(lambda: (s := status_of(api, ns, "two")).get("phase") in ("Running", "Succeeded") and s,
                      timeout=60, what="the second one admitted once the first finished")
    first = status_of(api, ns, "one")
    assert first["phase"] == "Succeeded", first
    assert when(first["completionTime"]) <= when(second["startTime"]) + timedelta(seconds=1), (first, second)
    assert second["pool"] == "l4"
    wait_for(lambda: status_of(api, ns, "two").get("phase") == "Succeeded", timeout=40, what="the second finished")


@pytest.fixture
def no_resync_operator(cluster: LocalCluster, artifacts: Path, em: FakeElectricityMaps,
                       carbon_operator: OperatorProcess) -> Iterator[OperatorProcess]:
    """The module's operator, replaced for one test by one whose resync is ten minutes away: what it reports within
    the test comes from watch events alone."""
    carbon_operator.stop()
    op = OperatorProcess(cluster, artifacts, "kueue-no-resync", {
        **OPERATOR_ENV, "LLMASOS_ELECTRICITYMAPS_URL": em.url, "LLMASOS_RESYNC_SECONDS": "600"}).start()
    try:
        yield op
    finally:
        op.stop()
        carbon_operator.start()


def test_a_workload_change_reaches_the_llmjob_without_waiting_for_the_resync(
        api: AdminApi, ns: str, no_resync_operator: OperatorProcess) -> None:
    """Kueue deactivates a waiting job's Workload (as it does at its re-queue limit): nothing about the child Job
    changes, so only the Workload watch (settings.kueue_llm_jobs) can tell the LLMJob; its resync is 10 min away."""
    api.create(llmjob_path(ns), queued_llmjob("holder", "quota", runs="120s"))
    wait_for(lambda: status_of(api, ns, "holder").get("phase") == "Running", timeout=40, what="the first one running")
    api.create(llmjob_path(ns), queued_llmjob("waiter", "quota", runs="2s"))
    wait_for(lambda: condition(status_of(api, ns, "waiter"), "Running").get("reason") == "WaitingForQuota",
             timeout=30, what="the second one waiting for quota")
    w = wait_for(lambda: workload(api, ns, "waiter-a0"), timeout=10, what="its Workload")
    r = api.request("PATCH", f"{KUEUE}/namespaces/{ns}/workloads/{w['metadata']['name']}", {"spec": {"active": False}},
                    content_type="application/merge-patch+json")
    assert r.status_code == 200, r.text
    started = time.monotonic()
    deactivated = wait_for(lambda: (s := status_of(api, ns, "waiter")) and
                           condition(s, "Running").get("reason") == "WorkloadDeactivated" and s,
                           timeout=20, what="the deactivation reported from the Workload watch")
    print(f"Workload deactivated -> LLMJob status: {time.monotonic() - started:.1f} s")
    assert deactivated["phase"] == "Pending"
    assert get_job(api, ns, "waiter-a0")["spec"]["suspend"] is True


def test_a_queued_llmjob_is_held_out_of_the_queue_until_its_carbon_window(
        api: AdminApi, ns: str, em: FakeElectricityMaps, carbon_operator: OperatorProcess) -> None:
    """The order of docs/kueue.md: the carbon plan first, with no child Job (so no Workload, no quota held) while
    Deferred; at the window the Job is created, queued, and Kueue admits it."""
    t = datetime.now(UTC).replace(microsecond=0)
    base = t - timedelta(seconds=10)
    series = [DIRTY, DIRTY, CLEAN, CLEAN, *[DIRTY] * 30]  # the window opens at t+30 s
    em.queue(FORECAST, Reply({"zone": "US-CAL-CISO", "updatedAt": iso(t),
                              "forecast": [{"carbonIntensity": v, "datetime": iso(base + i * STEP)}
                                           for i, v in enumerate(series)]}))
    time.sleep(1.5)  # a previous answer leaves the operator's 1-second cache
    job_body = queued_llmjob("timed", "quota", runs="3s")
    job_body["spec"]["carbon"] = {"policy": "deadline", "maxDelay": "4m", "expectedDuration": "20s",
                                  "safetyMargin": "1s"}
    job_body["spec"]["placement"] = {"nodePools": ["l4"]}  # the quota queue's flavour; only its zone is asked for
    api.create(llmjob_path(ns), job_body)
    deferred = wait_for(lambda: (s := status_of(api, ns, "timed")).get("phase") == "Deferred" and s, timeout=30,
                        what="the queued LLMJob deferred to its window")
    window = base + 2 * STEP
    assert deferred["plan"]["startAt"] == iso(window), deferred["plan"]
    assert condition(deferred, "Scheduled")["reason"] == "NotQueuedYet"
    while datetime.now(UTC) < window - timedelta(seconds=3):
        assert api.get(f"/apis/batch/v1/namespaces/{ns}/jobs?labelSelector=llmasos.io/llmjob=timed")["items"] == []
        assert api.get(f"{KUEUE}/namespaces/{ns}/workloads")["items"] == [], "held out of the queue: no Workload"
        time.sleep(2)
    started = wait_for(lambda: (s := status_of(api, ns, "timed")).get("startTime") and s,
                       timeout=(window - datetime.now(UTC)).total_seconds() + 30, what="queued and run at its window")
    assert when(started["startTime"]) >= window - timedelta(seconds=1), (started["startTime"], window)
    assert condition(started, "Admitted")["reason"] == "AdmittedByKueue"
    assert started["pool"] == "l4"
    assert workload(api, ns, "timed-a0") is not None
