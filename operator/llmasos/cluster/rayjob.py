"""Render an LLMJob with `parallelism.strategy: ray` as a KubeRay RayJob, and read one back. Pure: no I/O.

The Indexed Job path (builders.py) needs no KubeRay. Where the RayJob CRD (ray.io/v1) is installed, the operator
renders the same worker group for KubeRay instead (handlers/children.py; the choice is made per new child, see
`cluster/rayjob_api.py`): the head and `nodes - 1` workers, from `parallelism` (each with `gpusPerNode` GPUs, the
head included, as index 0 of the Indexed Job is); the pod templates are the Indexed Job's (image, env contract,
resources, security context, pool affinity, power annotation, the LLMJob labels the node agent attributes energy
by), minus what KubeRay owns (the `ray start` command, restart policy, DNS subdomain). The driver command is the
RayJob's `entrypoint` (the spec's `command` and `args`, else `llmasos-worker`, the same driver the Indexed Job's
head runs after `ray start`), submitted by KubeRay over the head's dashboard (`HTTPMode`: no submitter pod to place;
KubeRay reaches the dashboard anyway to follow the job). `shutdownAfterJobFinishes` removes the Ray cluster when the
driver ends, and `suspend` is the same switch the operator flips on Jobs (and the one Kueue flips when it manages
the RayJob).

KubeRay's default probes run `wget`, which the worker image does not ship: the head gets an HTTP probe on the
dashboard's GCS health endpoint, a worker a Python one on its raylet's, so KubeRay injects none.

`observe_rayjob` reads a RayJob's status (jobDeploymentStatus, jobStatus, the Ray cluster's readiness) into the
same `ObservedJob` the Indexed Job gives, so phase, conditions and accounting follow one decision path.
"""

from __future__ import annotations

import copy
import shlex
from typing import Any

from llmasos.api import constants as c
from llmasos.api.spec import LLMJobSpec
from llmasos.cluster.builders import (
    RAY_DASHBOARD_PORT,
    Owner,
    build_pod_template,
    child_labels,
    job_name,
    owner_reference,
)
from llmasos.cluster.observe import pod_gpu_request, template_pool
from llmasos.kube.resources import Resource
from llmasos.planning.lifecycle.decision import RAYJOB_KIND, ObservedJob

RAYJOB_API_VERSION = "ray.io/v1"
RAYJOBS = Resource("ray.io", "v1", "rayjobs")
HEAD_CONTAINER = "ray-head"
WORKER_CONTAINER = "ray-worker"
WORKER_GROUP = "workers"
KUEUE_QUEUE_LABEL = c.KUEUE_QUEUE_LABEL
SUBMISSION_MODE = "HTTPMode"
RAYLET_AGENT_PORT = 52365  # the dashboard agent on every Ray node
_RAYLET_HEALTH = ("import sys, urllib.request; sys.exit(0 if b'success' in urllib.request.urlopen("
                  f"'http://localhost:{RAYLET_AGENT_PORT}/api/local_raylet_healthz', timeout=2).read() else 1)")
# KubeRay's jobDeploymentStatus values that end a RayJob, and those during which its Ray cluster runs.
_DONE = {"Complete", "Failed", "ValidationFailed"}
_LIVE = {"Initializing", "Running", "Waiting", "Retrying"}


def entrypoint(spec: LLMJobSpec) -> str:
    """The driver command line: the spec's command and args, shell-quoted; `llmasos-worker` by default."""
    argv = [*(spec.command or ("llmasos-worker",)), *spec.args]
    return shlex.join(argv)


def _probes(head: bool) -> dict[str, Any]:
    if head:
        check: dict[str, Any] = {"httpGet": {"path": "/api/gcs_healthz", "port": RAY_DASHBOARD_PORT}}
    else:
        check = {"exec": {"command": ["python3", "-c", _RAYLET_HEALTH]}}
    timing = {"initialDelaySeconds": 10, "periodSeconds": 5, "timeoutSeconds": 5}
    return {"readinessProbe": {**check, **timing, "failureThreshold": 10},
            "livenessProbe": {**check, **timing, "initialDelaySeconds": 30, "failureThreshold": 120}}


def _kuberay_template(template: dict[str, Any], container_name: str, head: bool) -> dict[str, Any]:
    out = copy.deepcopy(template)
    pod = out["spec"]
    for owned in ("restartPolicy", "subdomain"):
        pod.pop(owned, None)
    [container] = pod["containers"]
    container["name"] = container_name
    container.pop("command", None)  # KubeRay runs `ray start` itself
    container.pop("args", None)
    # The driver runs on the head: rank 0 (the Indexed Job took NODE_RANK from its completion index).
    container["env"] = [e if e["name"] != "NODE_RANK" else {"name": "NODE_RANK", "value": "0"}
                        for e in container["env"]]
    container.update(_probes(head))
    return out


def build_rayjob(owner: Owner, spec: LLMJobSpec, attempt: int, pool: str, image: str, suspend: bool = False,
                 checkpoint_dir: str = "") -> dict[str, Any]:
    """The RayJob of one attempt. With spec.queueName it carries Kueue's queue label and is created suspended
    (Kueue admits it), as the Indexed Job is."""
    p = spec.parallelism
    template = build_pod_template(owner, spec, attempt, pool, image, checkpoint_dir)
    workers = max(p.nodes - 1, 0)
    num_gpus = {"num-gpus": str(p.gpus_per_node)}
    cluster_spec: dict[str, Any] = {
        "headGroupSpec": {"rayStartParams": {"dashboard-host": "0.0.0.0", **num_gpus},
                          "template": _kuberay_template(template, HEAD_CONTAINER, head=True)},
        "workerGroupSpecs": [{"groupName": WORKER_GROUP, "replicas": workers, "minReplicas": workers,
                              "maxReplicas": workers, "rayStartParams": dict(num_gpus),
                              "template": _kuberay_template(template, WORKER_CONTAINER, head=False)}]
        if workers else [],
    }
    labels = {**child_labels(owner, "ray"), c.LABEL_ATTEMPT: str(attempt)}
    if spec.queue_name:
        labels[KUEUE_QUEUE_LABEL] = spec.queue_name
    job_spec: dict[str, Any] = {
        "entrypoint": entrypoint(spec),
        "submissionMode": SUBMISSION_MODE,
        "shutdownAfterJobFinishes": True,
        "suspend": suspend or bool(spec.queue_name),
        "rayClusterSpec": cluster_spec,
    }
    if spec.max_runtime is not None:
        job_spec["activeDeadlineSeconds"] = max(int(spec.max_runtime.total_seconds()), 1)
    return {
        "apiVersion": RAYJOB_API_VERSION, "kind": "RayJob",
        "metadata": {"name": job_name(owner.name, attempt), "namespace": owner.namespace, "labels": labels,
                     "ownerReferences": [owner_reference(owner)]},
        "spec": job_spec,
    }


def _int(value: object) -> int:
    try:
        return int(str(value or 0))
    except ValueError:
        return 0


def _head_ready(cluster_status: dict[str, Any]) -> bool:
    for item in cluster_status.get("conditions") or []:
        if item.get("type") == "HeadPodReady":
            return bool(item.get("status") == "True")
    return cluster_status.get("state") == "ready"


def _ready(deployment: str, cluster_status: dict[str, Any], workers: int) -> int:
    """Ready Ray pods. KubeRay copies the Ray cluster's status into the RayJob's only once it reaches the dashboard;
    before that, `Running` alone says the cluster was provisioned (KubeRay submits only when all pods were ready)."""
    if not (cluster_status.get("conditions") or cluster_status.get("state")):
        return 1 + workers if deployment == "Running" else 0
    return int(_head_ready(cluster_status)) + _int(cluster_status.get("readyWorkerReplicas"))


def observe_rayjob(rayjob: dict[str, Any]) -> ObservedJob:
    """A RayJob as the decision reads a child Job: its Ray cluster's ready pods (head + workers) while it runs;
    complete when KubeRay says the job SUCCEEDED; failed with KubeRay's reason (`DeadlineExceeded` for
    activeDeadlineSeconds, as a Job says it) when it failed, stopped, or its spec was refused."""
    meta, spec, status = rayjob.get("metadata") or {}, rayjob.get("spec") or {}, rayjob.get("status") or {}
    deployment, job_status = str(status.get("jobDeploymentStatus") or ""), str(status.get("jobStatus") or "")
    cluster_spec = spec.get("rayClusterSpec") or {}
    head_template = (cluster_spec.get("headGroupSpec") or {}).get("template") or {}
    groups = cluster_spec.get("workerGroupSpecs") or []
    workers = sum(_int(g.get("replicas")) for g in groups)
    gpus = pod_gpu_request(head_template) + sum(_int(g.get("replicas")) * pod_gpu_request(g.get("template") or {})
                                          for g in groups)
    suspended = bool(spec.get("suspend", False))
    complete = deployment == "Complete" and job_status == "SUCCEEDED"
    failed = deployment in ("Failed", "ValidationFailed") or (deployment == "Complete" and not complete)
    cluster_status = status.get("rayClusterStatus") or {}
    live = deployment in _LIVE and not suspended
    ready = _ready(deployment, cluster_status, workers) if live else 0
    reason = str(status.get("reason") or (f"Job{job_status.title()}" if job_status else deployment))
    return ObservedJob(
        name=str(meta.get("name", "")),
        attempt=_int((meta.get("labels") or {}).get(c.LABEL_ATTEMPT)),
        suspended=suspended,
        active=(1 + workers) if live else 0,
        ready=ready,
        complete=complete,
        failed_reason=reason if failed else "",
        failed_message=str(status.get("message") or f"Ray job {job_status or deployment}") if failed else "",
        start_time=str(status.get("startTime") or ""),
        completion_time=str(status.get("endTime") or ""),
        pool=template_pool(head_template.get("spec") or {}),
        gpus=gpus,
        uid=str(meta.get("uid") or ""),
        kind=RAYJOB_KIND,
    )


def rayjob_fingerprint(rayjob: dict[str, Any]) -> tuple[object, ...]:
    """What about a RayJob can change its LLMJob's status; other updates (KubeRay's frequent status touches) are
    noise."""
    o = observe_rayjob(rayjob)
    return (o.suspended, o.active > 0, o.ready >= o.active, o.complete, o.failed_reason,
            str((rayjob.get("status") or {}).get("jobDeploymentStatus") or ""))
