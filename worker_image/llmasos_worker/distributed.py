"""Process group, device mesh and the three ways to cut the model: data, tensor and pipeline parallel.

Why one module: the layout (which data replica, pipeline stage and tensor shard this rank is) decides the device,
the backend, the data slice, the model surgery and the gradient sync, and those must agree. Ranks are laid out
(dp, pp, tp) with tensor parallel innermost, so a tensor-parallel group stays on one node's fast links.
CPU runs use gloo; CUDA runs use nccl plus a gloo group for small control messages (the SIGTERM agreement), so
that control traffic never forces a GPU stream sync.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn
from torch._C._distributed_c10d import HashStore
from torch.distributed.device_mesh import DeviceMesh, init_device_mesh

from llmasos.api.worker_contract import WorkerEnv


@dataclass(frozen=True)
class Layout:
    rank: int
    local_rank: int
    world_size: int
    dp: int
    tp: int
    pp: int
    device: torch.device

    @property
    def dp_rank(self) -> int:
        return self.rank // (self.pp * self.tp)

    @property
    def pp_rank(self) -> int:
        return (self.rank // self.tp) % self.pp

    @property
    def tp_rank(self) -> int:
        return self.rank % self.tp

    @property
    def is_logger(self) -> bool:
        """The rank that prints results: holds the loss (last pipeline stage) of the first replica and shard."""
        return self.dp_rank == 0 and self.tp_rank == 0 and self.pp_rank == self.pp - 1


@dataclass
class Groups:
    """The process groups a step needs; ``None`` where the degree is 1."""

    mesh: DeviceMesh | None
    dp: dist.ProcessGroup | None
    pp: dist.ProcessGroup | None
    control: dist.ProcessGroup | None


def layout_from_env(env: WorkerEnv) -> Layout:
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        device = torch.device("cuda", local_rank % torch.cuda.device_count())
    else:
        device = torch.device("cpu")
    return Layout(rank, local_rank, env.world_size, env.data_parallel, env.tensor_parallel,
                  env.pipeline_parallel, device)


def init_groups(env: WorkerEnv, layout: Layout, timeout_s: float = 300.0) -> Groups:
    """Join the job's process group (env:// rendezvous at MASTER_ADDR:MASTER_PORT) and build the mesh."""
    os.environ.setdefault("MASTER_ADDR", env.master_addr)
    os.environ.setdefault("MASTER_PORT", str(env.master_port))
    cuda = layout.device.type == "cuda"
    if cuda:
        torch.cuda.set_device(layout.device)
    # Thread pools were sized by the rank's entry (threads.py), before any torch op ran.
    # One process needs no rendezvous port: an in-memory store keeps the same code path without networking.
    store = HashStore() if layout.world_size == 1 else None
    dist.init_process_group(
        backend="nccl" if cuda else "gloo",
        store=store,
        rank=layout.rank,
        world_size=layout.world_size,
        timeout=timedelta(seconds=timeout_s),
        device_id=layout.device if cuda else None,
    )
    control = None
    if cuda:
        group = dist.new_group(backend="gloo")
        control = group if isinstance(group, dist.ProcessGroup) else None
    mesh = None
    dp_group = pp_group = None
    if layout.tp > 1 or layout.pp > 1:
        mesh = init_device_mesh(layout.device.type, (layout.dp, layout.pp, layout.tp),
                                mesh_dim_names=("dp", "pp", "tp"))
        dp_group = mesh.get_group("dp") if layout.dp > 1 else None
        pp_group = mesh.get_group("pp") if layout.pp > 1 else None
    return Groups(mesh=mesh, dp=dp_group, pp=pp_group, control=control)


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def apply_tensor_parallel(model: nn.Module, mesh: DeviceMesh) -> None:
    """Megatron-style: q/k/v and fc1 split by output columns, wo and fc2 by input rows (one all-reduce each)."""
    from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel, parallelize_module

    tp_mesh = mesh["tp"]
    layers = getattr(model, "layers", None)
    if not isinstance(layers, nn.ModuleDict):
        raise TypeError("tensor parallel needs the built-in GPT (a model with a ModuleDict of layers)")
    plan = {
        "attn.wq": ColwiseParallel(),
        "attn.wk": ColwiseParallel(),
        "attn.wv": ColwiseParallel(),
        "attn.wo": RowwiseParallel(),
        "mlp.fc1": ColwiseParallel(),
        "mlp.fc2": RowwiseParallel(),
    }
    for block in layers.values():
        parallelize_module(block, tp_mesh, plan)


def sync_replica_grads(model: nn.Module, group: dist.ProcessGroup, replicas: int) -> None:
    """Average gradients over data-parallel replicas (hybrid layouts, where DDP cannot wrap a DTensor module)."""
    grads = [_local(p.grad) for p in model.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])  # one collective instead of one per parameter
    dist.all_reduce(flat, group=group)
    flat.div_(replicas)
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def _local(t: torch.Tensor) -> torch.Tensor:
    """The local shard of a DTensor (tensor parallel), the tensor itself otherwise."""
    to_local = getattr(t, "to_local", None)
    return to_local() if callable(to_local) else t


class StopVote:
    """The ranks' agreement on "SIGTERM seen", under way: one all-reduce (MAX) of two integers per vote.

    Why asynchronous: a blocking vote is one more point per interval where every rank waits for the slowest. The
    loop starts a vote at a check step and reads it at the next one, when it has long completed; every rank reads
    the same result at the same step, so all still stop (and save) together, one interval later.
    """

    def __init__(self, flag: bool, next_interval: int, device: torch.device, group: dist.ProcessGroup | None) -> None:
        self._t = torch.tensor([1 if flag else 0, -next_interval], dtype=torch.int64,
                               device=device if group is None else "cpu")
        self._work = None
        if dist.get_world_size() > 1:
            self._work = dist.all_reduce(self._t, op=dist.ReduceOp.MAX, group=group, async_op=True)

    def result(self) -> tuple[bool, int]:
        """(any rank's flag, smallest proposed interval), the same on every rank."""
        if self._work is not None:
            self._work.wait()
        return bool(self._t[0].item()), int(-self._t[1].item())
