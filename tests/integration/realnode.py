"""Helpers for tests that run real pods on the local cluster's real node (kubelet + containerd).

Pods are pinned to the node with its `llmasos.io/real-node` label and use images imported into its containerd
(`imagePullPolicy: Never`: nothing is ever pulled).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from e2e.localcluster import LocalCluster
from e2e.localcluster.node_images import TOOLBOX_REF
from tests.integration.kube import wait_for

REAL_NODE_SELECTOR = {"llmasos.io/real-node": "true"}


def build_pod(name: str, command: list[str], image: str = TOOLBOX_REF, **spec: Any) -> dict[str, Any]:
    """A one-container pod on the real node that runs `command` once."""
    container: dict[str, Any] = {"name": "main", "image": image, "imagePullPolicy": "Never", "command": command}
    container.update(spec.pop("container", {}))
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"nodeSelector": REAL_NODE_SELECTOR, "restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
                 "containers": [container], **spec},
    }


def apply(cluster: LocalCluster, namespace: str, *docs: dict[str, Any]) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-",
                    input=json.dumps({"apiVersion": "v1", "kind": "List", "items": list(docs)}))


def get(cluster: LocalCluster, namespace: str, kind: str, name: str) -> dict[str, Any]:
    out = cluster.kubectl("get", "-n", namespace, kind, name, "-o", "json").stdout
    doc: dict[str, Any] = json.loads(out)
    return doc


def wait_pod_phase(cluster: LocalCluster, namespace: str, name: str, phases: set[str],
                   timeout: float = 90.0) -> dict[str, Any]:
    """Wait until the pod is in one of `phases`; fail with its status (container reasons) otherwise."""
    end = time.monotonic() + timeout
    pod: dict[str, Any] = {}
    while time.monotonic() < end:
        pod = get(cluster, namespace, "pod", name)
        if pod.get("status", {}).get("phase") in phases:
            return pod
        time.sleep(0.5)
    raise AssertionError(f"pod {namespace}/{name} not in {phases} after {timeout}s: {json.dumps(pod.get('status'))}")


def logs(cluster: LocalCluster, namespace: str, name: str) -> str:
    return cluster.kubectl("logs", "-n", namespace, name).stdout


def wait_resumed(events: Callable[[], list[dict[str, Any]]], suspended: dict[str, Any],
                 start_timeout: float = 120.0) -> None:
    """Wait for the resumed worker's start and first step (`events` reads its worker events): it must restore the
    step that the `suspended` event saved and train on from there."""

    def of_kind(kind: str) -> list[dict[str, Any]]:
        return [e for e in events() if e["event"] == kind]

    start = wait_for(lambda: of_kind("start"), timeout=start_timeout, what="the resumed worker's start")[0]
    assert start["resumed_from"] == suspended["step"]
    steps = wait_for(lambda: of_kind("step"), timeout=120, what="steps after the resume")
    assert steps[0]["step"] > suspended["step"]
