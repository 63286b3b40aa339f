"""What the Kueue tests of this package share: Kueue's API path, the ClusterQueues' names and the check's, the
operator's settings, and builders for the Jobs, LLMJobs and RayJobs they queue.

Kueue (built from its Go module, e2e/toolchain/build-ecosystem.sh) runs as a process with its real CRDs and
webhooks (e2e/localcluster/ecosystem.py), and so does KubeRay's ray-operator; `conftest.py` starts them once for
the package, with a ResourceFlavor per kwok pool and ClusterQueues with and without the carbon check.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.integration.kube import AdminApi, llmjob, llmjob_path

KUEUE = "/apis/kueue.x-k8s.io/v1beta2"
FORECAST = "carbon-intensity/forecast"
STEP = timedelta(seconds=20)
CLEAN, DIRTY = 50, 400
CHECK = "llmasos-carbon-test"
OPERATOR_ENV = {"LLMASOS_KUEUE_ADMISSION_CHECK": "true", "LLMASOS_KUEUE_LLM_JOBS": "true",
                "LLMASOS_ELECTRICITYMAPS_TOKEN": "test-token-kueue", "LLMASOS_CARBON_SOURCES": "electricitymaps",
                "LLMASOS_CARBON_CACHE_SECONDS": "1"}


def iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def apply(api: AdminApi, path: str, body: dict[str, Any]) -> None:
    name = body["metadata"]["name"]
    r = api.request("PATCH", f"{path}/{name}?fieldManager=llmasos-test&force=true", body,
                    content_type="application/apply-patch+yaml")
    assert r.status_code in (200, 201), f"apply {path}/{name}: {r.status_code} {r.text[:500]}"


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


def queued_llmjob(name: str, queue: str, runs: str) -> dict[str, Any]:
    """One worker holding 4 GPUs (a whole l4 node), the whole GPU quota of a ClusterQueue's flavour."""
    return llmjob(name, queueName=queue, parallelism={"strategy": "ddp", "nodes": 1, "gpusPerNode": 4},
                  annotations={"sim.llmasos.io/duration": runs})


def status_of(api: AdminApi, ns: str, name: str) -> dict[str, Any]:
    return dict(api.get(llmjob_path(ns, name)).get("status") or {})


def condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or () if c["type"] == kind), {})


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
