"""Render an LLMJob with `parallelism.strategy: ray` as a KubeRay RayJob. Pure: returns a dict, does no I/O.

The Indexed Job path (builders.py) needs no KubeRay. Where the RayJob CRD (ray.io/v1) is installed, this renders
the same worker group for KubeRay instead: the head and `nodes - 1` workers, from `parallelism` (each with
`gpusPerNode` GPUs, the head included, as index 0 of the Indexed Job is); the pod templates are the Indexed Job's
(image, env contract, resources, security context, pool affinity, power annotation), minus what KubeRay owns (the
`ray start` command, restart policy, DNS subdomain). The driver command is the RayJob's `entrypoint` (the spec's
`command` and `args`, else `llmasos-worker`), submitted by KubeRay once the cluster is up;
`shutdownAfterJobFinishes` removes the Ray cluster when the driver ends, and `suspend` is the same switch the
operator flips on Jobs (and the one Kueue flips when it manages the RayJob).

Not wired into the reconcile pass yet (issue #22 item 4): handlers/llmjob.py still creates the Indexed Job.
"""

from __future__ import annotations

import copy
import shlex
from typing import Any

from llmasos.api import constants as c
from llmasos.api.spec import LLMJobSpec
from llmasos.cluster.builders import Owner, build_pod_template, child_labels, job_name, owner_reference

RAYJOB_API_VERSION = "ray.io/v1"
HEAD_CONTAINER = "ray-head"
WORKER_GROUP = "workers"
KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"


def entrypoint(spec: LLMJobSpec) -> str:
    """The driver command line: the spec's command and args, shell-quoted; `llmasos-worker` by default."""
    argv = [*(spec.command or ("llmasos-worker",)), *spec.args]
    return shlex.join(argv)


def _kuberay_template(template: dict[str, Any], container_name: str) -> dict[str, Any]:
    out = copy.deepcopy(template)
    pod = out["spec"]
    for owned in ("restartPolicy", "subdomain"):
        pod.pop(owned, None)
    [container] = pod["containers"]
    container["name"] = container_name
    container.pop("command", None)  # KubeRay runs `ray start` itself
    container.pop("args", None)
    return out


def build_rayjob(owner: Owner, spec: LLMJobSpec, attempt: int, pool: str, image: str, suspend: bool = False,
                 checkpoint_dir: str = "", queue_name: str = "") -> dict[str, Any]:
    """The RayJob of one attempt; `queue_name` labels it for Kueue (which then suspends and admits it)."""
    p = spec.parallelism
    template = build_pod_template(owner, spec, attempt, pool, image, checkpoint_dir)
    workers = max(p.nodes - 1, 0)
    num_gpus = {"num-gpus": str(p.gpus_per_node)}
    cluster_spec: dict[str, Any] = {
        "headGroupSpec": {"rayStartParams": {"dashboard-host": "0.0.0.0", **num_gpus},
                          "template": _kuberay_template(template, HEAD_CONTAINER)},
        "workerGroupSpecs": [{"groupName": WORKER_GROUP, "replicas": workers, "minReplicas": workers,
                              "maxReplicas": workers, "rayStartParams": dict(num_gpus),
                              "template": _kuberay_template(template, "ray-worker")}] if workers else [],
    }
    labels = {**child_labels(owner, "ray"), c.LABEL_ATTEMPT: str(attempt)}
    if queue_name:
        labels[KUEUE_QUEUE_LABEL] = queue_name
    job_spec: dict[str, Any] = {
        "entrypoint": entrypoint(spec),
        "shutdownAfterJobFinishes": True,
        "suspend": suspend,
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
