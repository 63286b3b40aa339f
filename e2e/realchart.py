"""The LLMasOS chart on the local cluster's real node, from the images `make images` built: the operator Deployment
(2 replicas, kopf peering) and the node-agent DaemonSet run there as containers, exactly as the chart defines them.

Used by the real-workload tests, the real-node benchmark (bench/real_node.py) and `make demo`, so all three run the
same release settings: images never pulled (imagePullPolicy Never), the simulated GPU backend keyed to the device
plugin's fake GPUs, the kubelet's PodResources directory where this node keeps it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from e2e.images.build import BuiltImage, cached_images
from e2e.localcluster import LocalCluster

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "charts" / "llmasos"
REAL_NODE_SELECTOR = {"llmasos.io/real-node": "true"}
CHECKPOINTS = "/checkpoints"


def built_images() -> dict[str, BuiltImage]:
    """The operator and worker images built for these sources (never builds; fails saying what to run)."""
    images = {image.name: image for image in cached_images()}
    missing = {"operator", "worker"} - set(images)
    if missing:
        raise RuntimeError(f"images {sorted(missing)} are not built for these sources: run `make images`")
    return images


def helm(cluster: LocalCluster, *args: str, timeout: float = 300) -> str:
    result = subprocess.run([cluster.binary("helm"), f"--kubeconfig={cluster.paths.kubeconfig}", *args],
                            capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"helm {' '.join(args[:2])} failed: {result.stdout}{result.stderr}")
    return result.stdout


def chart_values(cluster: LocalCluster, images: dict[str, BuiltImage], resync_seconds: int = 5) -> dict[str, Any]:
    """The chart's values for the local real node."""
    node = cluster.node.n
    repo, tag = images["operator"].ref.rsplit(":", 1)
    return {
        "image": {"repository": repo, "tag": tag, "pullPolicy": "Never"},
        "operator": {
            "nodeSelector": REAL_NODE_SELECTOR,
            "settings": {"workerImage": images["worker"].ref, "checkpointDir": CHECKPOINTS,
                         "resyncSeconds": resync_seconds},
        },
        "carbon": {"sources": ["trace", "static"]},
        "agent": {
            "gpuBackend": "sim", "gpuMapping": "podresources", "interval": 2, "reportInterval": 5,
            "nodeSelector": REAL_NODE_SELECTOR, "tolerations": [],
            # Real workers on simulated GPUs: their tokens and steps from their own /metrics.
            "extraArgs": ["--sim-product=nvidia-v100", "--sim-gpus=4", "--sim-worker-metrics"],
            "podResourcesHostPath": str(node.kubelet_root / "pod-resources"),
            "stateHostPath": str(node.root / "agent-state"),
        },
    }


def merged(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """`base` with `extra` merged in: mappings key by key, anything else replaced."""
    out = dict(base)
    for key, value in extra.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def install(cluster: LocalCluster, release: str, namespace: str, values_file: Path,
            extra: dict[str, Any] | None = None, images: dict[str, BuiltImage] | None = None) -> dict[str, BuiltImage]:
    """Import the built images into the node's containerd and `helm upgrade --install` the chart (waits until the
    operator and agent pods are ready). `extra` is merged into the values (mappings key by key). `images`: those
    resolved earlier by the caller (default: `built_images()` now), so a caller installs the images it announced."""
    images = images or built_images()
    # A namespace of an earlier release still terminating refuses the new release's objects.
    if '"deletionTimestamp"' in cluster.kubectl("get", "namespace", namespace, "-o", "json", check=False).stdout:
        cluster.kubectl("wait", "--for=delete", f"namespace/{namespace}", "--timeout=180s", check=False)
    cluster.import_images(product=False)  # the node's own images; then exactly these (skipped when there)
    cluster.node.import_images([image.archive for image in images.values()])
    values = merged(chart_values(cluster, images), extra or {})
    values_file.write_text(yaml.safe_dump(values))
    helm(cluster, "upgrade", "--install", release, str(CHART), "--namespace", namespace, "--create-namespace",
         "-f", str(values_file), "--wait", "--timeout=180s")
    # helm's --wait holds a Deployment for available replicas (replicas - maxUnavailable): the second operator
    # replica may still be starting. Every updated pod of the release ready, and the old ones gone: both replicas can
    # lead. (A wait for Ready on the release's pods also waited on an upgrade's old pods, which end not Ready.)
    cluster.kubectl("rollout", "status", "deployment,daemonset", "-l", f"app.kubernetes.io/instance={release}",
                    "-n", namespace, "--timeout=120s")
    return images


def local_volume_docs(cluster: LocalCluster, namespace: str, claim: str) -> tuple[Path, list[dict[str, Any]]]:
    """A local PersistentVolume on the real node (a directory under its node directory) bound to a claim named
    `claim` in `namespace`: what a worker's checkpoints are written to, so that they outlive the worker pods, as
    on a real cluster's storage. Returns the host directory and the two objects (no I/O)."""
    name = f"{namespace}-{claim}"
    path = cluster.node.n.root / "volumes" / name
    pv = {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
          "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                   "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "llmasos-local",
                   "local": {"path": str(path)}, "claimRef": {"namespace": namespace, "name": claim},
                   "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                       {"key": "kubernetes.io/hostname", "operator": "In", "values": [cluster.node.n.name]}]}]}}}}
    pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": claim, "namespace": namespace},
           "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "llmasos-local", "volumeName": name,
                    "resources": {"requests": {"storage": "1Gi"}}}}
    return path, [pv, pvc]


def ensure_local_volume(cluster: LocalCluster, namespace: str, claim: str) -> Path:
    """Create the directory and apply `local_volume_docs` (the namespace must exist). Local volumes get no fsGroup
    ownership change, so the directory is world-writable: the workers run as uid 1000."""
    path, docs = local_volume_docs(cluster, namespace, claim)
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o777)
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs))
    return path
