"""Which node pools can host an LLMJob, from a snapshot of nodes and the GPUs already requested on them.

Pure: the handler builds the snapshot (from kopf indexes on nodes and pods) and passes it in. A pool hosts a job
when its Ready, schedulable nodes have room for `nodes` worker pods of `gpusPerNode` GPUs each: the gang must fit at
once, and its pods may share a node, as the scheduler places them. Pools with enough *free* GPUs right now are
preferred; among those, `preferEfficient` ranks by expected energy for the same work (GPU catalog: power / relative
throughput), else the user's order wins.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from llmasos.api import conditions as reasons
from llmasos.api.spec import LLMJobSpec
from llmasos.errors import PlacementError
from llmasos.gpus.products import DEFAULT_CATALOG, GpuProfile, normalize


@dataclass(frozen=True)
class NodeCapacity:
    """One node as placement sees it."""

    name: str
    pool: str
    gpu_product: str
    carbon_zone: str
    allocatable_gpus: int
    requested_gpus: int = 0
    schedulable: bool = True

    @property
    def free_gpus(self) -> int:
        return max(self.allocatable_gpus - self.requested_gpus, 0) if self.schedulable else 0


@dataclass(frozen=True)
class PoolInventory:
    name: str
    gpu_product: str
    carbon_zone: str
    nodes: tuple[NodeCapacity, ...]

    def pod_slots(self, gpus: int) -> int:
        """Worker pods of `gpus` GPUs the pool's schedulable nodes could hold at once, empty (a node with 8 GPUs
        holds two pods of 4: the scheduler packs a gang's pods, it does not spread them one per node)."""
        return sum(_slots(n.allocatable_gpus, gpus) for n in self.nodes if n.schedulable)

    def free_pod_slots(self, gpus: int) -> int:
        """Worker pods of `gpus` GPUs the pool could take now, with what is already requested on its nodes."""
        return sum(_slots(n.free_gpus, gpus) for n in self.nodes if n.schedulable)

    @property
    def free_gpus(self) -> int:
        return sum(n.free_gpus for n in self.nodes)


def _slots(gpus_on_node: int, gpus_per_pod: int) -> int:
    if gpus_per_pod <= 0:  # CPU-only workers: GPUs never limit how many fit
        return _UNLIMITED
    return gpus_on_node // gpus_per_pod


_UNLIMITED = 1 << 30


def summarize_pools(nodes: Iterable[NodeCapacity]) -> dict[str, PoolInventory]:
    grouped: dict[str, list[NodeCapacity]] = {}
    for n in nodes:
        if n.pool:
            grouped.setdefault(n.pool, []).append(n)
    return {
        name: PoolInventory(
            name, members[0].gpu_product, members[0].carbon_zone, tuple(sorted(members, key=lambda m: m.name))
        )
        for name, members in sorted(grouped.items())
    }


def with_pending(pools: Mapping[str, PoolInventory], held_by_jobs: Mapping[str, int]) -> dict[str, PoolInventory]:
    """Pools with the GPUs of placed gangs whose pods the pod list does not show yet counted as used.

    The usage on nodes comes from a list of scheduled pods, refreshed every few seconds; in a burst of new jobs
    the pods of the jobs placed a moment ago are not in it (not created, not scheduled, or not listed yet), so every
    job of the burst would see the same free pool. `held_by_jobs` is what the child Jobs on each pool hold
    (watch-fed, current); what exceeds the listed usage of that pool is spread over its nodes, most free first, as
    the scheduler would. Other workloads' pods on the pool only make the estimate smaller, never larger."""
    out: dict[str, PoolInventory] = {}
    for name, pool in pools.items():
        listed = sum(n.requested_gpus for n in pool.nodes)
        pending = max(held_by_jobs.get(name, 0) - listed, 0)
        nodes = list(pool.nodes)
        while pending > 0:
            i = max(range(len(nodes)), key=lambda k: (nodes[k].free_gpus, -k), default=-1)
            if i < 0 or nodes[i].free_gpus <= 0:
                break
            take = min(pending, nodes[i].free_gpus)
            nodes[i] = replace(nodes[i], requested_gpus=nodes[i].requested_gpus + take)
            pending -= take
        out[name] = replace(pool, nodes=tuple(nodes)) if nodes != list(pool.nodes) else pool
    return out


def energy_rank(pool: PoolInventory, catalog: Mapping[str, GpuProfile]) -> float:
    """Relative energy for a fixed amount of work: power / throughput (unknown products rank last)."""
    profile = catalog.get(normalize(pool.gpu_product))
    return profile.power_watts / profile.relative_throughput if profile else float("inf")


def feasible_pools(spec: LLMJobSpec, pools: Mapping[str, PoolInventory]) -> list[PoolInventory]:
    """Pools allowed by the spec whose nodes can ever host the gang; raise PlacementError saying why not."""
    p = spec.parallelism
    if spec.node_pools:
        unknown = [name for name in spec.node_pools if name not in pools]
        allowed = [pools[name] for name in spec.node_pools if name in pools]
        if not allowed:
            known = ", ".join(pools) or "none"
            raise PlacementError(
                f"node pool(s) {', '.join(unknown)} not found in the cluster (known pools: {known})",
                reasons.UNKNOWN_NODE_POOL,
            )
    else:
        allowed = list(pools.values())
        if not allowed:
            raise PlacementError("the cluster has no nodes labelled llmasos.io/pool", reasons.UNKNOWN_NODE_POOL)
    fitting = [pool for pool in allowed if pool.pod_slots(p.gpus_per_node) >= p.nodes]
    if not fitting:
        sizes = "; ".join(_room(pool, p.gpus_per_node) for pool in allowed)
        raise PlacementError(
            f"no allowed pool has room for {p.nodes} worker pod(s) of {p.gpus_per_node} GPUs each ({sizes})",
            reasons.INSUFFICIENT_GPUS,
        )
    return fitting


def _room(pool: PoolInventory, gpus: int) -> str:
    """What a pool could hold even idle, and why none when no node is big enough for one pod."""
    room = f"{pool.name}: room for {pool.pod_slots(gpus)} pod(s) of {gpus} GPUs"
    largest = max((n.allocatable_gpus for n in pool.nodes if n.schedulable), default=0)
    if largest < gpus:
        room += f" (its largest schedulable node has {largest} GPUs: lower gpusPerNode, or add nodes)"
    return room


def select_pool(
    spec: LLMJobSpec, pools: Mapping[str, PoolInventory], catalog: Mapping[str, GpuProfile] = DEFAULT_CATALOG
) -> PoolInventory:
    """The pool to run on: free-now first, then by energy (preferEfficient) or by the user's order."""
    fitting = feasible_pools(spec, pools)
    order = {name: i for i, name in enumerate(spec.node_pools)}
    p = spec.parallelism

    def key(pool: PoolInventory) -> tuple[int, float, int, str]:
        busy = 0 if pool.free_pod_slots(p.gpus_per_node) >= p.nodes else 1
        energy = energy_rank(pool, catalog) if spec.prefer_efficient else 0.0
        return (busy, energy, order.get(pool.name, len(order)), pool.name)

    return min(fitting, key=key)
