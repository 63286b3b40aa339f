"""Kueue and the carbon AdmissionCheck on the real local control plane, with the real Kueue controller.

Kueue (built from its Go module, e2e/toolchain/build-ecosystem.sh) runs as a process with its real CRDs and
webhooks (e2e/localcluster/ecosystem.py), and so does KubeRay's ray-operator; plain batch Jobs labelled with a
LocalQueue are suspended by Kueue's webhook and admitted by its scheduler. One start of each serves the module.

- admission by quota: two Jobs that each need a flavour's whole GPU quota run one after the other;
- LLMJobs with spec.queueName: admitted by quota and run on the flavour's pool (not the pool the operator would have
  picked); two competing for one flavour's quota: the second reports WaitingForQuota, then runs; one with a carbon
  deadline is held out of the queue (no child Job, no Workload) until its window, then queued and admitted; a
  Workload's change that leaves its Job alone (deactivated by Kueue) reaches the LLMJob through the Workload watch;
- the carbon check holds a Job until its lowest-carbon window (a fake Electricity Maps server with 20-second
  forecast steps), then lets it through;
- with the carbon data down it is released at its latest start, and says so meanwhile;
- bad annotations end in a clear message on the workload and an admitted job, never a stuck queue;
- a RayJob passes Kueue and the check, then the real KubeRay ray-operator creates its RayCluster.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from e2e.localcluster import LocalCluster
from e2e.localcluster.ecosystem import Ecosystem
from llmasos.handlers.admission_check import CONTROLLER_NAME
from llmasos.planning.timing import admission_gate as g
from tests.chart.conftest import KUBE_VERSION
from tests.integration.kube import AdminApi, delete_namespace, llmjob, llmjob_path, wait_for
from tests.integration.operator_proc import OperatorProcess
from tests.unit.carbon.fake_server import FakeElectricityMaps, Reply

pytestmark = pytest.mark.integration
KUEUE = "/apis/kueue.x-k8s.io/v1beta2"
FORECAST = "carbon-intensity/forecast"
STEP = timedelta(seconds=20)
CLEAN, DIRTY = 50, 400
CHECK = "llmasos-carbon-test"


def iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def apply(api: AdminApi, path: str, body: dict[str, Any]) -> None:
    name = body["metadata"]["name"]
    r = api.request("PATCH", f"{path}/{name}?fieldManager=llmasos-test&force=true", body,
                    content_type="application/apply-patch+yaml")
    assert r.status_code in (200, 201), f"apply {path}/{name}: {r.status_code} {r.text[:500]}"


@pytest.fixture(scope="module")
def kueue(cluster: LocalCluster, api: AdminApi) -> Iterator[Ecosystem]:
    """Kueue on the session's cluster, a flavour per kwok pool (4 GPUs of quota each, one l4 node's worth),
    ClusterQueues without (l4, a100) and with the carbon check (l4, a100)."""
    eco = Ecosystem(cluster)
    was_running = eco.is_healthy()
    eco.up()
    for pool in ("l4", "a100"):
        apply(api, f"{KUEUE}/resourceflavors", {"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ResourceFlavor",
                                                 "metadata": {"name": pool},
                                                 "spec": {"nodeLabels": {"llmasos.io/pool": pool}}})
    apply(api, f"{KUEUE}/admissionchecks", {"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "AdmissionCheck",
                                             "metadata": {"name": CHECK}, "spec": {"controllerName": CONTROLLER_NAME}})
    # carbon-pjm: the a100 flavour, whose nodes are in US-MIDA-PJM, a zone the fail-safe test never serves data for
    # (the carbon sources keep a zone's last good forecast when a refresh fails).
    for cq, flavour, checks in (("quota", "l4", []), ("quota-a100", "a100", []), ("carbon", "l4", [CHECK]),
                                ("carbon-pjm", "a100", [CHECK])):
        spec: dict[str, Any] = {
            "namespaceSelector": {},
            "resourceGroups": [{"coveredResources": ["cpu", "memory", "nvidia.com/gpu"], "flavors": [
                {"name": flavour, "resources": [{"name": "cpu", "nominalQuota": "96"},
                                                {"name": "memory", "nominalQuota": "1000Gi"},
                                                {"name": "nvidia.com/gpu", "nominalQuota": "4"}]}]}],
        }
        if checks:
            spec["admissionChecksStrategy"] = {"admissionChecks": [{"name": c} for c in checks]}
        apply(api, f"{KUEUE}/clusterqueues", {"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ClusterQueue",
                                               "metadata": {"name": f"llmasos-test-{cq}"}, "spec": spec})
    yield eco
    if not was_running:
        eco.down()


@pytest.fixture(scope="module")
def em() -> Iterator[FakeElectricityMaps]:
    with FakeElectricityMaps() as server:
        yield server


OPERATOR_ENV = {"LLMASOS_KUEUE_ADMISSION_CHECK": "true", "LLMASOS_KUEUE_LLM_JOBS": "true",
                "LLMASOS_ELECTRICITYMAPS_TOKEN": "test-token-kueue", "LLMASOS_CARBON_SOURCES": "electricitymaps",
                "LLMASOS_CARBON_CACHE_SECONDS": "1"}


@pytest.fixture(scope="module")
def carbon_operator(cluster: LocalCluster, crds: None, kueue: Ecosystem, artifacts: Path,
                    em: FakeElectricityMaps) -> Iterator[OperatorProcess]:
    """One operator serving the check (and LLMJobs) for the module; each test scripts the Electricity Maps server
    first (answers are cached for 1 s)."""
    em.queue(FORECAST, Reply({"error": "unavailable"}, 503))
    op = OperatorProcess(cluster, artifacts, "kueue-admission-check", {
        **OPERATOR_ENV, "LLMASOS_ELECTRICITYMAPS_URL": em.url}).start()
    yield op
    op.stop()


@pytest.fixture
def ns(api: AdminApi, kueue: Ecosystem) -> Iterator[str]:
    name = api.namespace("kueue")
    for cq in ("quota", "quota-a100", "carbon", "carbon-pjm"):
        apply(api, f"{KUEUE}/namespaces/{name}/localqueues", {
            "apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "LocalQueue", "metadata": {"name": cq},
            "spec": {"clusterQueue": f"llmasos-test-{cq}"}})
    yield name
    delete_namespace(api, name)


def job(name: str, queue: str, gpus: int = 4, run: str = "3s", annotations: dict[str, str] | None = None
        ) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "labels": {"kueue.x-k8s.io/queue-name": queue}, "annotations": annotations or {}},
        "spec": {"completions": 1, "parallelism": 1, "backoffLimit": 0, "template": {
            "metadata": {"annotations": {"sim.llmasos.io/duration": run}},
            "spec": {"restartPolicy": "Never", "tolerations": [{"operator": "Exists"}], "containers": [{
                "name": "main", "image": "busybox",
                "resources": {"requests": {"cpu": "1", "memory": "1Gi", "nvidia.com/gpu": str(gpus)},
                              "limits": {"nvidia.com/gpu": str(gpus)}}}]}}},
    }


def get_job(api: AdminApi, ns: str, name: str) -> dict[str, Any]:
    return dict(api.get(f"/apis/batch/v1/namespaces/{ns}/jobs/{name}"))


def workload(api: AdminApi, ns: str, job_name: str) -> dict[str, Any] | None:
    items = api.get(f"{KUEUE}/namespaces/{ns}/workloads")["items"]
    return next((w for w in items if any(r.get("name") == job_name for r in w["metadata"].get("ownerReferences", []))),
                None)


def check_state(api: AdminApi, ns: str, job_name: str) -> dict[str, Any] | None:
    w = workload(api, ns, job_name)
    return next((c for c in ((w or {}).get("status") or {}).get("admissionChecks") or [] if c["name"] == CHECK), None)


def unsuspended(api: AdminApi, ns: str, name: str) -> bool:
    return get_job(api, ns, name)["spec"].get("suspend") is False


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


def queued_llmjob(name: str, queue: str, runs: str) -> dict[str, Any]:
    """One worker holding 4 GPUs (a whole l4 node), the whole GPU quota of a ClusterQueue's flavour."""
    return llmjob(name, queueName=queue, parallelism={"strategy": "ddp", "nodes": 1, "gpusPerNode": 4},
                  annotations={"sim.llmasos.io/duration": runs})


def status_of(api: AdminApi, ns: str, name: str) -> dict[str, Any]:
    return dict(api.get(llmjob_path(ns, name)).get("status") or {})


def condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or () if c["type"] == kind), {})


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


def test_job_held_by_the_carbon_check_until_its_window(
        api: AdminApi, ns: str, em: FakeElectricityMaps, carbon_operator: OperatorProcess) -> None:
    t = datetime.now(UTC).replace(microsecond=0)
    base = t - timedelta(seconds=10)
    # Dirty until t+30 s, clean for 40 s, dirty after: a 20-second job's window opens at t+30 s.
    series = [DIRTY, DIRTY, CLEAN, CLEAN, *[DIRTY] * 30]
    em.queue(FORECAST, Reply({"zone": "US-CAL-CISO", "updatedAt": iso(t),
                              "forecast": [{"carbonIntensity": v, "datetime": iso(base + i * STEP)}
                                           for i, v in enumerate(series)]}))
    time.sleep(1.5)  # the previous test's answer leaves the operator's 1-second cache
    api.create(f"/apis/batch/v1/namespaces/{ns}/jobs", job(
        "green", "carbon", annotations={"llmasos.io/max-delay": "4m", "llmasos.io/expected-duration": "20s"}))
    held = wait_for(lambda: (c := check_state(api, ns, "green")) and c.get("message") and c, timeout=30,
                    what="the carbon check's verdict")
    assert held["state"] == "Pending", held
    window = base + 2 * STEP
    assert held["message"].startswith(f"waiting for the lowest-carbon window at {iso(window)} in US-CAL-CISO")
    assert "% below starting now" in held["message"]
    assert get_job(api, ns, "green")["spec"]["suspend"] is True
    ready = wait_for(lambda: (c := check_state(api, ns, "green")) and c["state"] == "Ready" and c,
                     timeout=(window - datetime.now(UTC)).total_seconds() + 20, what="check Ready at the window")
    assert datetime.now(UTC) >= window - timedelta(seconds=1), "not released before its window"
    assert ready["message"].startswith("lowest-carbon window open")
    wait_for(lambda: unsuspended(api, ns, "green"), timeout=20, what="Kueue admits the Job once Ready")
    events = api.get(f"/api/v1/namespaces/{ns}/events")["items"]
    assert {g.WAITING, g.WINDOW_OPEN} <= {e["reason"] for e in events}


def test_fail_safe_at_latest_start_when_carbon_data_is_down(
        api: AdminApi, ns: str, em: FakeElectricityMaps, carbon_operator: OperatorProcess) -> None:
    em.queue(FORECAST, Reply({"error": "unavailable"}, 503))
    api.create(f"/apis/batch/v1/namespaces/{ns}/jobs", job(
        "late", "carbon-pjm", annotations={"llmasos.io/max-delay": "40s", "llmasos.io/expected-duration": "20s"}))
    created = when(get_job(api, ns, "late")["metadata"]["creationTimestamp"])
    latest = created + timedelta(seconds=20)
    held = wait_for(lambda: (c := check_state(api, ns, "late")) and c.get("message") and c, timeout=40,
                    what="the carbon check's verdict")
    assert held["state"] == "Pending"
    assert held["message"].startswith("carbon data unavailable (no carbon source answered for US-MIDA-PJM"), held
    assert f"latest start {iso(latest)}" in held["message"]
    wait_for(lambda: (c := check_state(api, ns, "late")) and c["state"] == "Ready", timeout=60,
             what="released at the latest start")
    released = datetime.now(UTC)
    assert latest - timedelta(seconds=1) <= released <= latest + timedelta(seconds=10), (released, latest)
    wait_for(lambda: unsuspended(api, ns, "late"), timeout=20, what="admitted")


@pytest.mark.parametrize(("annotations", "says"), [
    ({"llmasos.io/deadline": "tomorrow"}, "llmasos.io/deadline 'tomorrow' is not an RFC 3339 time"),
    ({"llmasos.io/deadline": "2020-01-01T00:00:00Z"}, "deadline 2020-01-01T00:00:00Z cannot be met"),
])
def test_bad_annotations_leave_a_message_never_a_stuck_queue(
        api: AdminApi, ns: str, carbon_operator: OperatorProcess, annotations: dict[str, str], says: str) -> None:
    api.create(f"/apis/batch/v1/namespaces/{ns}/jobs", job("typo", "carbon", annotations=annotations))
    ready = wait_for(lambda: (c := check_state(api, ns, "typo")) and c["state"] == "Ready" and c, timeout=30,
                     what="the check lets the job through")
    assert says in ready["message"], ready
    wait_for(lambda: unsuspended(api, ns, "typo"), timeout=20, what="admitted")


def rayjob(name: str, queue: str, annotations: dict[str, str]) -> dict[str, Any]:
    def pod(container: str, gpus: int) -> dict[str, Any]:
        res = {"cpu": "1", "memory": "1Gi", **({"nvidia.com/gpu": str(gpus)} if gpus else {})}
        return {"spec": {"tolerations": [{"operator": "Exists"}], "containers": [
            {"name": container, "image": "rayproject/ray:2.41.0", "resources": {"requests": res, "limits": res}}]}}

    return {
        "apiVersion": "ray.io/v1", "kind": "RayJob",
        "metadata": {"name": name, "labels": {"kueue.x-k8s.io/queue-name": queue}, "annotations": annotations},
        "spec": {"entrypoint": "python -c 'print(1)'", "shutdownAfterJobFinishes": True, "rayClusterSpec": {
            "headGroupSpec": {"rayStartParams": {}, "template": pod("ray-head", 0)},
            "workerGroupSpecs": [{"groupName": "gpu", "replicas": 1, "minReplicas": 1, "maxReplicas": 1,
                                  "rayStartParams": {}, "template": pod("ray-worker", 1)}]}},
    }


def test_rayjob_is_gated_by_kueue_and_the_check_then_run_by_kuberay(
        api: AdminApi, ns: str, carbon_operator: OperatorProcess) -> None:
    """A RayJob: Kueue's webhook suspends it, the carbon check reads the RayJob's own annotations (a deadline that
    cannot be met: let through at once), Kueue admits it and the real ray-operator creates its RayCluster on the
    assigned flavour's nodes."""
    rays = f"/apis/ray.io/v1/namespaces/{ns}"
    api.create(f"{rays}/rayjobs", rayjob("ray", "carbon", {"llmasos.io/deadline": "2020-01-01T00:00:00Z"}))
    ready = wait_for(lambda: (c := check_state(api, ns, "ray")) and c["state"] == "Ready" and c, timeout=40,
                     what="the check decides on the RayJob")
    assert "deadline 2020-01-01T00:00:00Z cannot be met" in ready["message"]
    wait_for(lambda: not api.get(f"{rays}/rayjobs/ray")["spec"].get("suspend"), timeout=30,
             what="Kueue unsuspends the admitted RayJob")
    cluster = wait_for(lambda: api.get(f"{rays}/rayclusters")["items"], timeout=60,
                       what="ray-operator creates the RayCluster")
    assert cluster[0]["metadata"]["ownerReferences"][0]["kind"] == "RayJob"
    pods = wait_for(lambda: api.get(f"/api/v1/namespaces/{ns}/pods?labelSelector=ray.io/node-type")["items"],
                    timeout=60, what="the RayCluster's pods")
    gpu_pods = [p for p in pods if p["metadata"]["labels"].get("ray.io/node-type") == "worker"]
    assert all(p["spec"].get("nodeSelector", {}).get("llmasos.io/pool") == "l4" for p in gpu_pods), gpu_pods


# ------------------------------------------------------------------------- the chart's RBAC for the check
CHART_SA = "system:serviceaccount:llmasos-kueue-rbac:llmasos-operator"
CHECK_NEEDS = [("get", "workloads.kueue.x-k8s.io"), ("list", "workloads.kueue.x-k8s.io"),
               ("watch", "workloads.kueue.x-k8s.io"), ("patch", "workloads.kueue.x-k8s.io", "--subresource=status"),
               ("watch", "admissionchecks.kueue.x-k8s.io"),
               ("patch", "admissionchecks.kueue.x-k8s.io", "--subresource=status"),
               ("get", "resourceflavors.kueue.x-k8s.io"), ("get", "jobs.batch"), ("get", "rayjobs.ray.io"),
               ("create", "events")]
CHECK_MUST_NOT = [("update", "workloads.kueue.x-k8s.io"), ("patch", "workloads.kueue.x-k8s.io"),
                  ("delete", "workloads.kueue.x-k8s.io"), ("create", "workloads.kueue.x-k8s.io"),
                  ("patch", "admissionchecks.kueue.x-k8s.io"), ("patch", "clusterqueues.kueue.x-k8s.io"),
                  ("patch", "jobs.batch"), ("get", "secrets")]


@pytest.fixture(scope="module")
def check_rbac(cluster: LocalCluster, kueue: Ecosystem) -> Iterator[None]:
    """The chart's templates/kueue/ (AdmissionCheck, ClusterRole, binding), rendered by helm and applied."""
    rendered = subprocess.run(
        [cluster.binary("helm"), "template", "llmasos", str(Path(__file__).resolve().parents[2] / "charts/llmasos"),
         "--namespace", "llmasos-kueue-rbac", "--kube-version", KUBE_VERSION,
         "--set", "kueue.admissionCheck.enabled=true", "--set", "kueue.admissionCheck.name=llmasos-carbon-rbac",
         "--show-only", "templates/kueue/admissioncheck.yaml", "--show-only", "templates/kueue/rbac.yaml"],
        check=True, capture_output=True, text=True).stdout
    cluster.kubectl("apply", "-f", "-", input=rendered)
    yield
    cluster.kubectl("delete", "-f", "-", "--ignore-not-found", input=rendered, check=False)


def can_i(cluster: LocalCluster, verb: str, resource: str, *extra: str) -> bool:
    result = cluster.kubectl("auth", "can-i", verb, resource, f"--as={CHART_SA}", "--all-namespaces", *extra,
                             check=False)
    assert result.stdout.strip() in ("yes", "no"), result.stdout + result.stderr
    return result.stdout.strip() == "yes"


def test_chart_rbac_for_the_check_allows_what_it_uses_and_no_more(
        cluster: LocalCluster, api: AdminApi, check_rbac: None) -> None:
    assert [n for n in CHECK_NEEDS if not can_i(cluster, *n)] == []
    assert [n for n in CHECK_MUST_NOT if can_i(cluster, *n)] == []
    check = api.get(f"{KUEUE}/admissionchecks/llmasos-carbon-rbac")
    assert check["spec"]["controllerName"] == CONTROLLER_NAME
