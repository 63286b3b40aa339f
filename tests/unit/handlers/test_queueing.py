"""The Kueue step of a pass (handlers/queueing.py) in whole passes against the fake API server: a queued LLMJob's
child Job is created suspended with the queue label, its suspend flag is never written afterwards, the Workload's
state and the assigned flavour's pool reach the status, and spec.suspend becomes the Workload's spec.active."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import kopf

from llmasos.cluster.kube import JOBS
from llmasos.handlers.admission_check import RESOURCE_FLAVORS, WORKLOADS
from llmasos.handlers.llmjob import reconcile, register_llmjob_handlers
from llmasos.handlers.queueing import owning_llmjob
from llmasos.planning.lifecycle.decision import RAYJOB_KIND, ObservedJob
from llmasos.planning.placement.feasible import NodeCapacity
from tests.unit.builders import make_raw
from tests.unit.handlers.fake_kube import FakeKube
from tests.unit.handlers.steps_world import JOB_PATH, LOG, condition, observe, run, stored_status, world

WORKLOAD_PATH = f"{WORKLOADS.path('ns')}/job-j-a0-x1"


class KueueFake(FakeKube):
    """The fake API server, also serving lists of Kueue's Workloads."""

    @staticmethod
    def _is_collection(path: str) -> bool:
        return path.endswith("/workloads") or FakeKube._is_collection(path)


def queued_world(suspend: bool = False, ready: int = 0, job_suspended: bool = True, phase: str = ""
                 ) -> tuple[Any, KueueFake, dict[str, Any], dict[str, Any]]:
    ctx, plain, _, indexes = world(spec={**make_raw(nodes=1, gpus=4), "queueName": "gpu", "suspend": suspend},
                                   status={"phase": phase} if phase else None)
    kube = KueueFake()
    kube.objects = plain.objects
    ctx = type(ctx)(settings=ctx.settings, kube=kube, metrics=ctx.metrics, clock=ctx.clock, carbon=ctx.carbon)
    indexes["node_inventory"]["l0"] = [NodeCapacity("l0", "l4", "nvidia-l4", "US-CAL-CISO", 4)]
    kube.put(f"{RESOURCE_FLAVORS.path()}/l4-flavour", {"metadata": {"name": "l4-flavour"},
                                                       "spec": {"nodeLabels": {"llmasos.io/pool": "l4"}}})
    kube.put(JOBS.path("ns", "j-a0"), {"metadata": {"name": "j-a0"}, "spec": {"suspend": job_suspended}})
    observe(indexes, ObservedJob("j-a0", 0, suspended=job_suspended, active=ready, ready=ready, uid="uid-j-a0",
                                 start_time="2026-03-06T12:00:05Z" if ready else ""))
    indexes["child_services"] = {("ns", "j"): [("u1",)]}
    return ctx, kube, kube.objects[JOB_PATH], indexes


def put_workload(kube: FakeKube, *conditions: tuple[str, str, str], admitted_on: str = "", active: bool = True
                 ) -> None:
    status: dict[str, Any] = {"conditions": [{"type": t, "status": s, "reason": "R", "message": m}
                                             for t, s, m in conditions]}
    if admitted_on:
        status["admission"] = {"clusterQueue": "cq", "podSetAssignments": [
            {"name": "main", "flavors": {"nvidia.com/gpu": admitted_on, "cpu": admitted_on}, "count": 1}]}
    kube.put(f"{WORKLOADS.path('ns')}/job-other", {"metadata": {  # another Job's, by label and owner
        "name": "job-other", "labels": {"kueue.x-k8s.io/job-uid": "uid-other"}, "ownerReferences": [
            {"apiVersion": "batch/v1", "kind": "Job", "name": "other", "uid": "uid-other", "controller": True}]},
        "spec": {"active": True}, "status": {"conditions": [{"type": "Admitted", "status": "True"}]}})
    kube.put(WORKLOAD_PATH, {"metadata": {"name": "job-j-a0-x1", "labels": {"kueue.x-k8s.io/job-uid": "uid-j-a0"},
                                          "ownerReferences": [
        {"apiVersion": "batch/v1", "kind": "Job", "name": "j-a0", "uid": "uid-j-a0", "controller": True}]},
        "spec": {"active": active, "queueName": "gpu"}, "status": status})


def test_first_pass_creates_the_job_suspended_with_the_queue_label_and_no_pool() -> None:
    ctx, plain, body, indexes = world(spec={**make_raw(nodes=1, gpus=4), "queueName": "gpu"})
    run(reconcile(ctx, body, indexes, LOG))
    job = plain.objects[JOBS.path("ns", "j-a0")]
    assert job["spec"]["suspend"] is True
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "gpu"
    assert "affinity" not in job["spec"]["template"]["spec"]


def test_waiting_for_quota_leaves_the_job_suspended_and_reports_no_pool() -> None:
    ctx, kube, body, indexes = queued_world()
    put_workload(kube, ("QuotaReserved", "False", "insufficient unused quota for nvidia.com/gpu in flavor l4-flavour"))
    run(reconcile(ctx, body, indexes, LOG))
    status = stored_status(kube)
    assert status["phase"] == "Pending"
    assert condition(status, "Running")["reason"] == "WaitingForQuota"
    assert status["message"] == ("waiting for quota in LocalQueue gpu: insufficient unused quota for nvidia.com/gpu "
                                 "in flavor l4-flavour")
    assert (condition(status, "Scheduled")["status"], condition(status, "Admitted")["status"]) == ("False", "False")
    assert "pool" not in status
    assert "zone" not in status, "the zone of the pool the operator would pick only serves to plan"
    assert [w for w in kube.writes() if w[1].startswith(JOBS.path("ns"))] == [], "the Job's suspend flag is Kueue's"


def test_admitted_and_running_on_the_flavours_pool_without_touching_the_job() -> None:
    ctx, kube, body, indexes = queued_world(ready=1, job_suspended=False)
    put_workload(kube, ("QuotaReserved", "True", ""), ("Admitted", "True", ""), admitted_on="l4-flavour")
    run(reconcile(ctx, body, indexes, LOG))
    status = stored_status(kube)
    assert (status["phase"], status["pool"], status["zone"], status["gpuProduct"]) == \
        ("Running", "l4", "US-CAL-CISO", "nvidia-l4")
    assert condition(status, "Admitted")["reason"] == "AdmittedByKueue"
    assert condition(status, "Scheduled")["message"] == "node pool l4 (flavour l4-flavour, assigned by Kueue)"
    assert [w for w in kube.writes() if w[1].startswith(JOBS.path("ns"))] == []


def test_spec_suspend_deactivates_the_workload_instead_of_suspending_the_job() -> None:
    ctx, kube, body, indexes = queued_world(suspend=True, ready=1, job_suspended=False)
    put_workload(kube, ("QuotaReserved", "True", ""), ("Admitted", "True", ""), admitted_on="l4-flavour")
    run(reconcile(ctx, body, indexes, LOG))
    assert kube.objects[WORKLOAD_PATH]["spec"]["active"] is False
    assert stored_status(kube)["phase"] == "Suspended"
    assert [w for w in kube.writes() if w[1].startswith(JOBS.path("ns"))] == []
    writes = len(kube.writes())
    run(reconcile(ctx, kube.objects[JOB_PATH], indexes, LOG))
    assert len(kube.writes()) == writes, "deactivated once"


def test_resuming_reactivates_the_workload_but_one_kueue_deactivated_stays_so() -> None:
    ctx, kube, body, indexes = queued_world(phase="Suspended")
    put_workload(kube, ("Evicted", "True", "The workload is deactivated"), active=False)
    run(reconcile(ctx, body, indexes, LOG))
    assert kube.objects[WORKLOAD_PATH]["spec"]["active"] is True
    assert condition(stored_status(kube), "Running")["reason"] == "EvictedByKueue", "re-queued: waiting for quota again"
    ctx, kube, body, indexes = queued_world(phase="Pending")
    put_workload(kube, ("Evicted", "True", "exceeded the maximum number of re-queuing retries"), active=False)
    run(reconcile(ctx, body, indexes, LOG))
    assert kube.objects[WORKLOAD_PATH]["spec"]["active"] is False, "Kueue's own deactivation is left alone"
    status = stored_status(kube)
    assert (status["phase"], condition(status, "Running")["reason"]) == ("Pending", "WorkloadDeactivated")


def test_a_queued_rayjobs_workload_is_found_by_its_rayjob_owner() -> None:
    """A `strategy: ray` attempt that is a RayJob: Kueue's Workload is owned by the RayJob (kind RayJob), and the
    pass mirrors it as it does a Job's (it once looked for an owner of kind Job only, and waited forever)."""
    ctx, kube, body, indexes = queued_world(ready=1, job_suspended=False)
    put_workload(kube, ("QuotaReserved", "True", ""), ("Admitted", "True", ""), admitted_on="l4-flavour")
    owner = kube.objects[WORKLOAD_PATH]["metadata"]["ownerReferences"][0]
    owner.update({"apiVersion": "ray.io/v1", "kind": "RayJob"})
    indexes["child_jobs"] = {}
    indexes["child_rayjobs"] = {("ns", "j"): [(ObservedJob("j-a0", 0, active=1, ready=1, uid="uid-j-a0",
                                                           start_time="2026-03-06T12:00:05Z", kind=RAYJOB_KIND),
                                               ("u1",))]}
    run(reconcile(ctx, body, indexes, LOG))
    status = stored_status(kube)
    assert (status["phase"], status["pool"]) == ("Running", "l4")
    assert condition(status, "Admitted")["reason"] == "AdmittedByKueue"


def test_a_workload_leads_to_the_llmjob_whose_child_it_stands_for() -> None:
    """The Workload watch (settings.kueue_llm_jobs) passes a Workload's change to the LLMJob that owns its Job or
    RayJob, matched by uid in the child indexes; a Workload of a Job queued by hand, or of a namesake in another
    namespace, leads nowhere."""
    def owned_by(kind: str, name: str, uid: str) -> dict[str, Any]:
        return {"metadata": {"name": "w", "ownerReferences": [{"kind": kind, "name": name, "uid": uid}]}}

    jobs = {("ns", "j"): [(ObservedJob("j-a0", 0, uid="uid-j-a0"), ("u1",)),
                          (ObservedJob("j-a1", 1, uid="uid-j-a1"), ("u1",))],
            ("other", "k"): [(ObservedJob("k-a0", 0, uid="uid-k-a0"), ("u2",))]}
    rayjobs = {("ns", "r"): [(ObservedJob("r-a0", 0, uid="uid-r-a0", kind=RAYJOB_KIND), ("u3",))]}
    children = (jobs, rayjobs)
    assert owning_llmjob(owned_by("Job", "j-a1", "uid-j-a1"), "ns", children) == "j"
    assert owning_llmjob(owned_by("RayJob", "r-a0", "uid-r-a0"), "ns", children) == "r"
    assert owning_llmjob(owned_by("Job", "k-a0", "uid-k-a0"), "ns", children) is None
    assert owning_llmjob(owned_by("Job", "j-a0", "uid-by-hand"), "ns", children) is None, "a namesake"
    assert owning_llmjob(owned_by("Job", "by-hand", "uid-j-a0"), "ns", children) is None
    assert owning_llmjob(owned_by("Pod", "j-a0", "uid-j-a0"), "ns", children) is None
    assert owning_llmjob({"metadata": {"name": "w"}}, "ns", children) is None


def test_the_workload_watch_is_registered_only_when_asked_for() -> None:
    """Without Kueue's CRDs (or the right to watch Workloads) a watch would fail forever: it is off by default."""
    def handler_ids(**settings: Any) -> set[str]:
        ctx, _, _, _ = world(spec=make_raw(nodes=1, gpus=4))
        ctx = type(ctx)(settings=replace(ctx.settings, **settings), kube=ctx.kube, metrics=ctx.metrics,
                        clock=ctx.clock, carbon=ctx.carbon)
        registry = kopf.OperatorRegistry()
        register_llmjob_handlers(registry, ctx)
        return {str(h.id) for h in registry._watching.get_all_handlers()}

    assert "queued-workload" not in handler_ids()
    assert "queued-workload" in handler_ids(kueue_llm_jobs=True)
