"""Render the child objects of an LLMJob. Pure: every `build_*` returns dicts and does no I/O.

torch strategies (ddp, tensor, pipeline, hybrid): one Indexed Job (parallelism = completions = nodes) whose pod
of index i is torchrun node i, plus a headless Service giving each pod a stable DNS name; MASTER_ADDR is the
index-0 pod. Gang semantics: any worker exiting non-zero fails the whole Job (podFailurePolicy FailJob, which
terminates every pod); the operator then starts a fresh attempt of the whole group, up to backoffLimit times.
Disruptions (evictions, preemptions) are ignored by the policy so Kubernetes recreates that pod.

ray: the same Indexed Job shape, where index 0 runs the Ray head and the driver, the other indexes run Ray workers
(`ray start --block`), and a successPolicy on index 0 ends the Job when the driver finishes. This needs no KubeRay;
where KubeRay's RayJob API is served, a new attempt of a ray job is a RayJob instead (cluster/rayjob.py, rendered
from this pod template; docs/operator.md, "Ray jobs").

With spec.queueName the Job carries Kueue's queue label, is created suspended and its pods may run on any allowed
pool: Kueue admits it and chooses the flavour (docs/kueue.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from llmasos.api import constants as c
from llmasos.api.spec import LLMJobSpec
from llmasos.api.worker_contract import DEFAULT_MASTER_PORT, DEFAULT_PROGRESS_PORT, EXIT_SUSPENDED, WorkerEnv

RAY_GCS_PORT = 6379
RAY_DASHBOARD_PORT = 8265
RAY_CLIENT_PORT = 10001
CHECKPOINT_GRACE_SECONDS = 120
WORKER_CONTAINER = "worker"


@dataclass(frozen=True)
class Owner:
    """The LLMJob that owns the children."""

    name: str
    namespace: str
    uid: str
    annotations: tuple[tuple[str, str], ...] = ()
    labels: tuple[tuple[str, str], ...] = ()


def job_name(owner: str, attempt: int) -> str:
    return f"{owner}-a{attempt}"


def service_name(owner: str) -> str:
    return owner


def owner_reference(owner: Owner) -> dict[str, Any]:
    return {"apiVersion": f"{c.GROUP}/{c.VERSION}", "kind": c.KIND, "name": owner.name, "uid": owner.uid,
            "controller": True, "blockOwnerDeletion": True}


def child_labels(owner: Owner, role: str) -> dict[str, str]:
    return {c.LABEL_LLMJOB: owner.name, c.LABEL_ROLE: role, c.LABEL_MANAGED_BY: c.MANAGED_BY}


def build_service(owner: Owner, spec: LLMJobSpec) -> dict[str, Any]:
    """Headless Service: stable DNS names for worker pods (and the Ray head), resolvable before they are Ready."""
    ports = [{"name": "rendezvous", "port": DEFAULT_MASTER_PORT, "targetPort": DEFAULT_MASTER_PORT}]
    if spec.parallelism.strategy == "ray":
        ports = [{"name": "gcs", "port": RAY_GCS_PORT, "targetPort": RAY_GCS_PORT},
                 {"name": "dashboard", "port": RAY_DASHBOARD_PORT, "targetPort": RAY_DASHBOARD_PORT},
                 {"name": "client", "port": RAY_CLIENT_PORT, "targetPort": RAY_CLIENT_PORT}]
    ports.append({"name": "progress", "port": DEFAULT_PROGRESS_PORT, "targetPort": DEFAULT_PROGRESS_PORT})
    role = "ray" if spec.parallelism.strategy == "ray" else "worker"
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": service_name(owner.name), "namespace": owner.namespace,
                     "labels": child_labels(owner, role), "ownerReferences": [owner_reference(owner)]},
        "spec": {"clusterIP": "None", "publishNotReadyAddresses": True,
                 "selector": {c.LABEL_LLMJOB: owner.name}, "ports": ports},
    }


def checkpoint_dir_for(spec: LLMJobSpec, checkpoint_dir: str) -> str:
    """The operator's checkpoint directory if this job's pods have a volume there, else "" (no checkpoints).

    The worker's root filesystem is read-only: a job that mounts nothing at the directory could not write a
    checkpoint, and would fail at its first save instead of running without them. /tmp is the pod's own emptyDir:
    writable, but it does not outlive the pod."""
    if not checkpoint_dir:
        return ""
    target = checkpoint_dir.rstrip("/") + "/"
    mounts = [str(m.get("mountPath", "")).rstrip("/") + "/" for m in spec.volume_mounts] + ["/tmp/"]
    return checkpoint_dir if any(target.startswith(m) for m in mounts) else ""


def build_worker_env(owner: Owner, spec: LLMJobSpec, attempt: int, checkpoint_dir: str = "") -> WorkerEnv:
    p = spec.parallelism
    checkpoint_dir = checkpoint_dir_for(spec, checkpoint_dir)
    master = f"{job_name(owner.name, attempt)}-0.{service_name(owner.name)}.{owner.namespace}.svc"
    return WorkerEnv(
        job_name=owner.name, namespace=owner.namespace, task=spec.task, strategy=p.strategy, nnodes=p.nodes,
        nproc_per_node=p.procs_per_node, master_addr=master, data_parallel=p.data_parallel,
        tensor_parallel=p.tensor_parallel, pipeline_parallel=p.pipeline_parallel,
        model_builtin=spec.model.builtin, model_path=spec.model.path, model_hf_repo=spec.model.hf_repo,
        checkpoint_dir=checkpoint_dir, cpu_request=spec.cpu, task_config=spec.task_config,
    )


def _ray_command(master: str) -> list[str]:
    script = (
        'if [ "${JOB_COMPLETION_INDEX:-0}" = "0" ]; then '
        f"ray start --head --port={RAY_GCS_PORT} --dashboard-host=0.0.0.0 --ray-client-server-port="
        f'{RAY_CLIENT_PORT} --num-gpus="${{NPROC_PER_NODE}}" && exec llmasos-worker; '
        f'else exec ray start --address="{master}:{RAY_GCS_PORT}" --num-gpus="${{NPROC_PER_NODE}}" --block; fi'
    )
    return ["/bin/sh", "-c", script]


def build_pod_template(owner: Owner, spec: LLMJobSpec, attempt: int, pool: str, image: str,
                       checkpoint_dir: str = "") -> dict[str, Any]:
    p = spec.parallelism
    role = "ray" if p.strategy == "ray" else "worker"
    env_contract = build_worker_env(owner, spec, attempt, checkpoint_dir)
    env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in env_contract.to_env().items()]
    env.append({"name": "NODE_RANK", "valueFrom": {"fieldRef": {
        "fieldPath": f"metadata.annotations['{c.INDEX_ANNOTATION}']"}}})
    env.append({"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}})
    env.append({"name": "HOME", "value": "/tmp"})  # the root filesystem is read-only; Ray and torch write caches
    env.extend(spec.env)
    resources: dict[str, Any] = {"requests": {"cpu": spec.cpu, "memory": spec.memory},
                                 "limits": {"memory": spec.memory}}
    if p.gpus_per_node:
        resources["requests"][c.GPU_RESOURCE] = str(p.gpus_per_node)
        resources["limits"][c.GPU_RESOURCE] = str(p.gpus_per_node)
    if p.strategy == "ray":
        command = list(spec.command) or _ray_command(env_contract.master_addr)
    else:
        command = list(spec.command) or ["llmasos-worker"]
    ports = [{"name": "rendezvous", "containerPort": DEFAULT_MASTER_PORT},
             {"name": "progress", "containerPort": DEFAULT_PROGRESS_PORT}]
    if p.strategy == "ray":
        ports = [{"name": "gcs", "containerPort": RAY_GCS_PORT},
                 {"name": "dashboard", "containerPort": RAY_DASHBOARD_PORT},
                 {"name": "client", "containerPort": RAY_CLIENT_PORT},
                 {"name": "progress", "containerPort": DEFAULT_PROGRESS_PORT}]
    container: dict[str, Any] = {
        "name": WORKER_CONTAINER, "image": image, "command": command, "env": env, "ports": ports,
        "resources": resources,
        # A worker that fails gets the tail of its log as its termination message: the operator quotes it in the
        # LLMJob's conditions (planning/worker_faults.py) before the failed attempt's pods are deleted.
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}, {"name": "dshm", "mountPath": "/dev/shm"},
                         *spec.volume_mounts],
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]}},
    }
    if spec.args:
        container["args"] = list(spec.args)
    annotations = {k: v for k, v in owner.annotations if k.startswith(c.POD_ANNOTATION_PREFIXES)}
    # The node agent reads the power policy from the pod itself (it never reads LLMJobs).
    annotations[c.POWER_ANNOTATION] = json.dumps(spec.power.to_mapping(), sort_keys=True)
    labels = {**child_labels(owner, role), c.LABEL_ATTEMPT: str(attempt)}
    return {
        "metadata": {"labels": labels, "annotations": annotations},
        "spec": {
            "restartPolicy": "Never",
            "subdomain": service_name(owner.name),
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "terminationGracePeriodSeconds": CHECKPOINT_GRACE_SECONDS,
            "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 1000,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            **_pool_affinity(spec, pool),
            "tolerations": [{"key": c.GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}],
            "containers": [container],
            "volumes": [{"name": "tmp", "emptyDir": {}}, {"name": "dshm", "emptyDir": {"medium": "Memory"}},
                        *spec.volumes],
        },
    }


def _pool_affinity(spec: LLMJobSpec, pool: str) -> dict[str, Any]:
    """Pods are bound to the pool the operator chose; a job queued by Kueue to the pools it allows (any when
    spec.placement.nodePools is empty): Kueue picks the flavour, and adds its node labels when it admits the Job."""
    pools = list(spec.node_pools) if spec.queue_name else [pool]
    if not pools:
        return {}
    return {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": c.NODE_POOL_LABEL, "operator": "In", "values": pools}]}]}}}}


def build_job(owner: Owner, spec: LLMJobSpec, attempt: int, pool: str, image: str, suspend: bool = False,
              checkpoint_dir: str = "") -> dict[str, Any]:
    """The Indexed Job of one attempt of the worker group."""
    p = spec.parallelism
    role = "ray" if p.strategy == "ray" else "worker"
    job_spec: dict[str, Any] = {
        "completionMode": "Indexed",
        "completions": p.nodes,
        "parallelism": p.nodes,
        "backoffLimit": 0,
        "suspend": suspend or bool(spec.queue_name),  # queued: Kueue unsuspends it when it admits it
        "podFailurePolicy": {"rules": [
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
            # The worker checkpointed on SIGTERM and exited EXIT_SUSPENDED: not a failure, the index is re-run.
            {"action": "Ignore", "onExitCodes": {"containerName": WORKER_CONTAINER, "operator": "In",
                                                 "values": [EXIT_SUSPENDED]}},
            {"action": "FailJob", "onExitCodes": {"containerName": WORKER_CONTAINER, "operator": "NotIn",
                                                  "values": [0]}},
        ]},
        "template": build_pod_template(owner, spec, attempt, pool, image, checkpoint_dir),
    }
    if p.strategy == "ray":
        job_spec["successPolicy"] = {"rules": [{"succeededIndexes": "0"}]}
    if spec.max_runtime is not None:
        job_spec["activeDeadlineSeconds"] = max(int(spec.max_runtime.total_seconds()), 1)
    labels = {**child_labels(owner, role), c.LABEL_ATTEMPT: str(attempt)}
    if spec.queue_name:
        labels[c.KUEUE_QUEUE_LABEL] = spec.queue_name
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": job_name(owner.name, attempt), "namespace": owner.namespace, "labels": labels,
                     "ownerReferences": [owner_reference(owner)]},
        "spec": job_spec,
    }
