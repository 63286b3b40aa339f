"""Pool placement: unknown pools, gangs that cannot fit, free capacity first, then efficiency or user order."""

from __future__ import annotations

import pytest

from llmasos.errors import PlacementError
from llmasos.planning.placement.feasible import select_pool, summarize_pools
from tests.unit.builders import make_nodes, make_spec

POOLS = summarize_pools([
    *make_nodes("a100", 2, 8, "nvidia-a100-80gb"),
    *make_nodes("h100", 2, 8, "nvidia-h100-80gb"),
    *make_nodes("l4", 3, 4, "nvidia-l4"),
])


def test_prefers_most_efficient_pool_that_fits() -> None:
    # Default catalog, watts per unit of A100 throughput: l4 72/0.3=240, h100 700/2.5=280, a100 400/1.0=400.
    assert select_pool(make_spec(nodes=2, gpus=4), POOLS).name == "l4"
    assert select_pool(make_spec(nodes=2, gpus=4, placement={"nodePools": ["a100", "h100"]}), POOLS).name == "h100"


def test_user_order_when_efficiency_is_not_preferred() -> None:
    spec = make_spec(nodes=1, gpus=4, placement={"nodePools": ["l4", "a100"], "preferEfficient": False})
    assert select_pool(spec, POOLS).name == "l4"


def test_gpus_per_node_rules_out_small_nodes() -> None:
    spec = make_spec(nodes=1, gpus=8, placement={"nodePools": ["l4", "a100"], "preferEfficient": False})
    assert select_pool(spec, POOLS).name == "a100"


def test_busy_pool_loses_to_free_one() -> None:
    pools = summarize_pools([*make_nodes("h100", 2, 8, "nvidia-h100-80gb", used=8),
                             *make_nodes("a100", 2, 8, "nvidia-a100-80gb")])
    assert select_pool(make_spec(nodes=2, gpus=8), pools).name == "a100"


def test_unknown_pool_names_the_pools_that_exist() -> None:
    with pytest.raises(PlacementError) as err:
        select_pool(make_spec(placement={"nodePools": ["tpu"]}), POOLS)
    assert err.value.reason == "UnknownNodePool"
    assert "tpu" in str(err.value)
    assert "a100" in str(err.value)


@pytest.mark.parametrize(("nodes", "gpus"), [(1, 9), (3, 8), (50, 1)])
def test_gang_that_cannot_fit_is_insufficient_gpus(nodes: int, gpus: int) -> None:
    with pytest.raises(PlacementError) as err:
        select_pool(make_spec(nodes=nodes, gpus=gpus), POOLS)
    assert err.value.reason == "InsufficientGPUs"


def test_cpu_only_job_fits_anywhere() -> None:
    assert select_pool(make_spec(nodes=1, gpus=0), POOLS).name in POOLS


def test_a_gang_may_share_a_node_as_the_scheduler_packs_it() -> None:
    # One node with 4 GPUs holds two worker pods of 2 GPUs (or four of 1), not just one.
    pools = summarize_pools(make_nodes("one", 1, 4, "nvidia-v100"))
    assert select_pool(make_spec(nodes=2, gpus=2), pools).name == "one"
    assert select_pool(make_spec(nodes=4, gpus=1), pools).name == "one"
    with pytest.raises(PlacementError, match="room for 1 pod") as err:
        select_pool(make_spec(nodes=2, gpus=3), pools)
    assert "largest" not in str(err.value), "a pod fits a node: the pool is just too small for the gang"
    with pytest.raises(PlacementError) as err:
        select_pool(make_spec(nodes=1, gpus=8), pools)
    assert str(err.value) == ("no allowed pool has room for 1 worker pod(s) of 8 GPUs each (one: room for 0 pod(s) of "
                              "8 GPUs (its largest schedulable node has 4 GPUs: lower gpusPerNode, or add nodes))")
    busy = summarize_pools(make_nodes("one", 1, 4, "nvidia-v100", used=2))
    assert busy["one"].free_pod_slots(1) == 2
    assert busy["one"].pod_slots(1) == 4
