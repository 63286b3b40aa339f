"""Node agents for the kwok GPU nodes of `make demo`, as pods on the real node.

A kwok node has no kubelet, so the chart's agent DaemonSet runs nowhere on it (its pod there would only be
pretended). The demo still wants energy, emissions and power caps for the jobs on those pools, so each kwok GPU
node gets one agent pod on the real node: the operator image, `llmasos node-agent --node-name <kwok node>` with the
simulated GPU backend and the fallback pod-to-GPU mapping (there is no PodResources socket to read for a kwok node),
under the chart's agent ServiceAccount, so it runs with exactly the RBAC the chart gives the DaemonSet. The chart's
own DaemonSet covers the real node. No host process is involved.
"""

from __future__ import annotations

import json
import time
from typing import Any

import yaml

from e2e.localcluster import LocalCluster
from llmasos.api.node_report import report_name

COMPONENT = "kwok-agent"
STATE = "/var/lib/llmasos-agent"


def gpu_nodes(cluster: LocalCluster) -> list[tuple[str, str, int]]:
    """(name, GPU product, GPU count) of every kwok GPU node (the real node's agent is the chart's DaemonSet)."""
    nodes = json.loads(cluster.kubectl("get", "nodes", "-l", "nvidia.com/gpu.product,!llmasos.io/real-node",
                                       "-o", "json").stdout)
    out = []
    for n in nodes["items"]:
        labels = n["metadata"]["labels"]
        out.append((n["metadata"]["name"], labels["nvidia.com/gpu.product"],
                    int(labels.get("nvidia.com/gpu.count", 8))))
    return sorted(out)


def build_kwok_agent_pod(node: str, product: str, gpus: int, *, image: str, namespace: str, service_account: str,
                         real_node: str) -> dict[str, Any]:
    """The agent pod for one kwok node, placed on the real node, with the chart agent's security settings minus
    its capabilities (simulated GPUs need no SYS_ADMIN, and there is no hostPath to write as another user)."""
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": f"{COMPONENT}-{node}", "namespace": namespace,
                     "labels": {"app.kubernetes.io/name": "llmasos", "app.kubernetes.io/component": COMPONENT,
                                "llmasos.io/agent-for": node}},
        "spec": {
            # The chart's ServiceAccounts mount no token by default; its DaemonSet asks for one, so does this pod.
            "serviceAccountName": service_account, "automountServiceAccountToken": True, "enableServiceLinks": False,
            "nodeSelector": {"kubernetes.io/hostname": real_node}, "terminationGracePeriodSeconds": 10,
            "securityContext": {"runAsUser": 65532, "runAsGroup": 65532, "runAsNonRoot": True,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "agent", "image": image, "imagePullPolicy": "Never",
                "args": ["node-agent", f"--node-name={node}", "--gpu-backend=sim", f"--sim-product={product}",
                         f"--sim-gpus={gpus}", f"--sim-hardware-file={STATE}/hardware.json",
                         f"--state-file={STATE}/state.json", "--gpu-mapping=fallback", "--interval=2",
                         "--report-interval=5", "--metrics-port=0"],
                "env": [{"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}],
                "resources": {"requests": {"cpu": "10m", "memory": "96Mi"}, "limits": {"memory": "128Mi"}},
                "securityContext": {"privileged": False, "allowPrivilegeEscalation": False, "runAsNonRoot": True,
                                    "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}},
                "volumeMounts": [{"name": "state", "mountPath": STATE}, {"name": "tmp", "mountPath": "/tmp"}],
            }],
            "volumes": [{"name": "state", "emptyDir": {"sizeLimit": "16Mi"}},
                        {"name": "tmp", "emptyDir": {"sizeLimit": "16Mi"}}],
        },
    }


def start_kwok_agents(cluster: LocalCluster, image: str, namespace: str, service_account: str,
                      timeout: float = 180) -> list[tuple[str, str, int]]:
    """One agent pod per kwok GPU node, applied and waited for until each wrote its node report; returns the
    nodes they serve."""
    nodes = gpu_nodes(cluster)
    pods = [build_kwok_agent_pod(n, product, gpus, image=image, namespace=namespace, service_account=service_account,
                                 real_node=cluster.node.n.name) for n, product, gpus in nodes]
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(pods))
    # The agent has no probe; what says it works is its first node report (ConfigMap llmasos-power-<node>).
    end = time.monotonic() + timeout
    missing = [n for n, _, _ in nodes]
    while missing and time.monotonic() < end:
        have = set(cluster.kubectl("get", "configmaps", "-n", namespace, "-o", "name").stdout.split())
        missing = [n for n in missing if f"configmap/{report_name(n)}" not in have]
        time.sleep(2)
    if missing:
        log = cluster.kubectl("logs", "-n", namespace, f"{COMPONENT}-{missing[0]}", check=False).stdout
        raise RuntimeError(f"no node report from the agents of {missing} after {timeout:.0f}s; "
                           f"{COMPONENT}-{missing[0]}'s log ends:\n{log[-1500:]}")
    return nodes
