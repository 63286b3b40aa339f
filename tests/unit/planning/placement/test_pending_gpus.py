"""A burst of new jobs must not all see the same free pool: GPUs of placed gangs whose pods the (cached, scheduled
only) pod list does not show yet count as used (planning.placement.with_pending, handlers.indexes)."""

from __future__ import annotations

from llmasos.cluster.builders import Owner, build_job
from llmasos.cluster.observe import observe_job
from llmasos.handlers.indexes import gpus_held_by_pool
from llmasos.planning.lifecycle.decision import ObservedJob
from llmasos.planning.placement.feasible import NodeCapacity, PoolInventory, select_pool, summarize_pools, with_pending
from tests.unit.builders import make_spec


def pools(l4_used: int = 0) -> dict[str, PoolInventory]:
    nodes = [NodeCapacity(f"l4-{i}", "l4", "nvidia-l4", "SE", 8, l4_used if i == 0 else 0) for i in range(2)]
    nodes += [NodeCapacity(f"a100-{i}", "a100", "nvidia-a100-80gb", "SE", 8) for i in range(2)]
    return summarize_pools(nodes)


def test_a_jobs_gpus_are_parallelism_times_the_pod_request() -> None:
    spec = make_spec(parallelism={"strategy": "ddp", "nodes": 2, "gpusPerNode": 4})
    job = build_job(Owner("j", "ns", "u"), spec, 0, "l4", "img")
    observed = observe_job(job)
    assert observed.gpus == 8
    assert observed.holds_gpus
    assert observe_job({"metadata": {"name": "x"}}).gpus == 0


def test_held_gpus_count_running_and_starting_jobs_only() -> None:
    index = {
        ("ns", "a"): [(ObservedJob("a-a0", 0, pool="l4", gpus=8), {"u1"})],
        ("ns", "b"): [(ObservedJob("b-a0", 0, pool="l4", gpus=4, suspended=True), {"u2"})],
        ("ns", "c"): [(ObservedJob("c-a0", 0, pool="l4", gpus=4, complete=True), {"u3"})],
        ("ns", "d"): [(ObservedJob("d-a0", 0, pool="a100", gpus=2, failed_reason="BackoffLimitExceeded"), {"u4"})],
        ("ns", "e"): [(ObservedJob("e-a0", 0, pool="a100", gpus=2), {"u5"})],
    }
    assert gpus_held_by_pool(index) == {"l4": 8, "a100": 2}


def test_gangs_not_in_the_pod_list_fill_the_pool_most_free_node_first() -> None:
    before = pools(l4_used=4)
    after = with_pending(before, {"l4": 4 + 8})  # 4 listed on l4-0, 8 placed but not listed yet
    l4 = after["l4"]
    assert [n.requested_gpus for n in l4.nodes] == [4, 8]  # l4-1 was the most free
    assert after["a100"] is before["a100"]


def test_nothing_changes_when_the_list_already_shows_the_jobs_or_more() -> None:
    before = pools(l4_used=6)
    assert with_pending(before, {"l4": 6}) == before
    assert with_pending(before, {"l4": 2}) == before  # other workloads' pods: never less than listed


def test_pending_beyond_capacity_fills_the_pool_and_stops() -> None:
    after = with_pending(pools(), {"l4": 100})
    assert after["l4"].free_gpus == 0


def test_a_burst_moves_to_the_next_pool_once_the_preferred_one_is_taken() -> None:
    spec = make_spec(parallelism={"strategy": "ddp", "nodes": 2, "gpusPerNode": 4},
                     placement={"nodePools": ["l4", "a100"]})
    listed = pools()  # the cached pod list: nothing scheduled yet
    first = select_pool(spec, with_pending(listed, {}))
    held = {first.name: 16}  # two gangs of 8 GPUs placed on it moments ago, pods not listed
    second = select_pool(spec, with_pending(listed, held))
    assert second.name != first.name, "the second job of the burst must not see the first pool as free"
