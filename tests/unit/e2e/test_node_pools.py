"""The pool layout file drives the fake GPU nodes: parse errors name the pool, nodes carry the right labels."""

from __future__ import annotations

from pathlib import Path

import pytest

from e2e.localcluster.nodes import build_nodes, load_pools

REPO = Path(__file__).resolve().parents[3]


def test_shipped_layout_has_three_gpu_pools() -> None:
    pools = load_pools(REPO / "e2e" / "node-pools.yaml")
    assert {p.name for p in pools} >= {"a100", "h100", "l4"}
    assert all(p.gpus_per_node > 0 for p in pools)


def test_nodes_carry_pool_product_zone_and_gpu_capacity(tmp_path: Path) -> None:
    layout = tmp_path / "pools.yaml"
    layout.write_text(
        "pools:\n- {name: x, count: 3, gpuProduct: nvidia-l4, gpusPerNode: 4, cpu: '48', memory: 192Gi,"
        " region: r, zone: r-a, carbonZone: DE}\n"
    )
    nodes = build_nodes(load_pools(layout))
    assert [n["metadata"]["name"] for n in nodes] == ["gpu-x-000", "gpu-x-001", "gpu-x-002"]
    labels = nodes[0]["metadata"]["labels"]
    assert labels["llmasos.io/pool"] == "x"
    assert labels["llmasos.io/carbon-zone"] == "DE"
    assert labels["nvidia.com/gpu.product"] == "nvidia-l4"
    assert labels["topology.kubernetes.io/zone"] == "r-a"
    assert nodes[0]["status"]["capacity"]["nvidia.com/gpu"] == "4"
    assert nodes[0]["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake"


def test_scaled_layout_renders_hundreds_of_nodes(tmp_path: Path) -> None:
    layout = tmp_path / "pools.yaml"
    layout.write_text(
        "pools:\n- {name: big, count: 300, gpuProduct: nvidia-h100-80gb, gpusPerNode: 8, cpu: '192',"
        " memory: 2048Gi, region: r, zone: r-a, carbonZone: SE}\n"
    )
    names = [n["metadata"]["name"] for n in build_nodes(load_pools(layout))]
    assert len(names) == len(set(names)) == 300


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nope: 1\n", "'pools' list"),
        ("pools:\n- {name: a, count: 1}\n", "lacks gpuProduct"),
        ("pools:\n- {name: a, count: -1, gpuProduct: g, gpusPerNode: 1, cpu: '1', memory: 1Gi, region: r, zone: z,"
         " carbonZone: DE}\n", ">= 0"),
        ("pools:\n- {name: a, count: 1, gpuProduct: g, gpusPerNode: 1, cpu: '1', memory: 1Gi, region: r, zone: z,"
         " carbonZone: DE}\n- {name: a, count: 1, gpuProduct: g, gpusPerNode: 1, cpu: '1', memory: 1Gi, region: r,"
         " zone: z, carbonZone: DE}\n", "unique"),
    ],
)
def test_bad_layout_is_rejected_with_a_clear_message(tmp_path: Path, text: str, message: str) -> None:
    layout = tmp_path / "pools.yaml"
    layout.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_pools(layout)
