"""Fake GPU node pools: read the pool layout file and render the Node objects kwok will manage.

Labels follow what real GPU clusters carry (GPU feature discovery's `nvidia.com/gpu.product`, well-known topology
labels) plus `llmasos.io/pool` and `llmasos.io/carbon-zone`, which the operator's placement relies on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

POOL_LABEL = "llmasos.io/pool"
CARBON_ZONE_LABEL = "llmasos.io/carbon-zone"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
GPU_COUNT_LABEL = "nvidia.com/gpu.count"
# The one node with a real kubelet (e2e/localcluster/realnode.py); the rest are kwok's.
REAL_NODE_NAME = "llmasos-real-0"


@dataclass(frozen=True)
class NodePool:
    """One pool of identical fake GPU nodes."""

    name: str
    count: int
    gpu_product: str
    gpus_per_node: int
    cpu: str
    memory: str
    instance_type: str
    region: str
    zone: str
    carbon_zone: str

    def node_names(self) -> list[str]:
        return [f"gpu-{self.name}-{i:03d}" for i in range(self.count)]


_REQUIRED = ("name", "count", "gpuProduct", "gpusPerNode", "cpu", "memory", "region", "zone", "carbonZone")


def load_pools(path: Path) -> list[NodePool]:
    """Parse the pool layout file; raise ValueError naming the pool and field that is wrong."""
    doc = yaml.safe_load(path.read_text())
    if not isinstance(doc, dict) or not isinstance(doc.get("pools"), list):
        raise ValueError(f"{path}: expected a mapping with a 'pools' list")
    pools: list[NodePool] = []
    for i, raw in enumerate(doc["pools"]):
        if not isinstance(raw, dict):
            raise ValueError(f"{path}: pools[{i}] must be a mapping")
        missing = [k for k in _REQUIRED if k not in raw]
        if missing:
            raise ValueError(f"{path}: pools[{i}] lacks {', '.join(missing)}")
        count = int(raw["count"])
        if count < 0 or int(raw["gpusPerNode"]) < 0:
            raise ValueError(f"{path}: pools[{i}] count and gpusPerNode must be >= 0")
        pools.append(
            NodePool(
                name=str(raw["name"]),
                count=count,
                gpu_product=str(raw["gpuProduct"]),
                gpus_per_node=int(raw["gpusPerNode"]),
                cpu=str(raw["cpu"]),
                memory=str(raw["memory"]),
                instance_type=str(raw.get("instanceType", "")),
                region=str(raw["region"]),
                zone=str(raw["zone"]),
                carbon_zone=str(raw["carbonZone"]),
            )
        )
    names = [p.name for p in pools]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: pool names must be unique, got {names}")
    return pools


def build_node(pool: NodePool, name: str) -> dict[str, Any]:
    """Render one Node object with its labels, kwok annotation and GPU capacity."""
    resources = {"cpu": pool.cpu, "memory": pool.memory, "pods": "110", "nvidia.com/gpu": str(pool.gpus_per_node)}
    labels = {
        "type": "kwok",
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "topology.kubernetes.io/region": pool.region,
        "topology.kubernetes.io/zone": pool.zone,
        POOL_LABEL: pool.name,
        CARBON_ZONE_LABEL: pool.carbon_zone,
        GPU_PRODUCT_LABEL: pool.gpu_product,
        GPU_COUNT_LABEL: str(pool.gpus_per_node),
        "nvidia.com/gpu.present": "true",
    }
    if pool.instance_type:
        labels["node.kubernetes.io/instance-type"] = pool.instance_type
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
        },
        "spec": {},
        "status": {"allocatable": dict(resources), "capacity": dict(resources)},
    }


def build_nodes(pools: list[NodePool]) -> list[dict[str, Any]]:
    return [build_node(pool, name) for pool in pools for name in pool.node_names()]
