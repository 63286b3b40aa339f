"""One training step for any layout: a model placed for (dp, tp, pp) with ``step(x, y, lr) -> loss``.

Why a single class: the training loop, checkpoints and benchmarks must not care whether the step is plain DDP,
DTensor tensor parallel, a GPipe pipeline schedule, or a hybrid of them. Pure data parallel uses torch's DDP
(bucketed all-reduce overlapped with backward: the fastest path, and the one the benchmark compares against);
hybrid layouts average replica gradients after the step's backward, since DDP cannot wrap DTensor modules.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from llmasos_worker.distributed import Groups, Layout, apply_tensor_parallel, sync_replica_grads
from llmasos_worker.model import GPT


def lm_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten())


def use_bf16(precision: str, device: torch.device) -> bool:
    return precision == "bf16" or (precision == "auto" and device.type == "cuda")


@dataclass(frozen=True)
class StepOptions:
    """The trainer's speed switches, resolved for one device and layout (task config: docs/worker.md).

    Why these defaults: each is on only where it was measured to win. On CPU (gpt-small, this project's 2-core
    machine) torch.compile lost (docs/worker.md has the figures), so ``auto`` leaves it off; no GPU was at hand to
    measure it there, so it stays off on CUDA too until bench/worker_gpu.py says otherwise. Fused AdamW (one kernel
    for every parameter's update instead of a multi-tensor loop) is the documented fastest path on CUDA, so ``auto``
    turns it on there and only there. CUDA graphs (compile mode ``reduce-overhead``) need CUDA and are never on
    unless asked for.
    """

    compile: bool = False
    fused_adamw: bool = False
    cuda_graphs: bool = False

    @classmethod
    def resolve(cls, compile_model: str, fused_adamw: str, cuda_graphs: str, device: torch.device,
                tensor_parallel: int = 1, pipeline_parallel: int = 1) -> StepOptions:
        cuda = device.type == "cuda"
        whole = tensor_parallel == 1 and pipeline_parallel == 1  # config.check_layout refuses "on" otherwise
        graphs = cuda and whole and cuda_graphs == "on"
        return cls(
            compile=whole and (compile_model == "on" or graphs),
            # auto: CUDA only, and not on DTensor shards (tensor parallel), where fused kernels are not tested here
            fused_adamw=fused_adamw == "on" or (fused_adamw == "auto" and cuda and tensor_parallel == 1),
            cuda_graphs=graphs,
        )


class Engine:
    """Owns the placed model, its optimizer and (for pipelines) the schedule."""

    def __init__(self, model: GPT, layout: Layout, groups: Groups, *, lr: float, weight_decay: float,
                 microbatches: int, precision: str, options: StepOptions | None = None) -> None:
        self.layout = layout
        self.options = options or StepOptions()
        self.groups = groups
        self.bf16 = use_bf16(precision, layout.device)
        if layout.pp > 1:
            model.keep_stage(layout.pp_rank, layout.pp)
        model.to(layout.device)
        if layout.tp > 1:
            assert groups.mesh is not None
            apply_tensor_parallel(model, groups.mesh)
        self.model: nn.Module = model
        self.replica_sync = layout.dp > 1 and (layout.tp > 1 or layout.pp > 1)
        self.wrapped: nn.Module = model
        if layout.dp > 1 and not self.replica_sync:
            ids = [layout.device.index] if layout.device.type == "cuda" else None
            self.wrapped = DistributedDataParallel(model, device_ids=ids)
        if self.options.compile:
            # In place (nn.Module.compile): parameter and state-dict names stay those of the eager model, so
            # checkpoints load under any setting. DDP is compiled around the model, so dynamo splits the graph at
            # gradient buckets and all-reduce still overlaps backward.
            self.wrapped.compile(mode="reduce-overhead" if self.options.cuda_graphs else None)
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay,
                                           fused=True if self.options.fused_adamw else None)
        self.schedule: Any = None
        if layout.pp > 1:
            # Imported here: the pipelining package costs ~0.5 s of start-up that other layouts need not pay.
            from torch.distributed.pipelining import PipelineStage, ScheduleGPipe

            stage = PipelineStage(model, layout.pp_rank, layout.pp, layout.device, group=groups.pp)
            self.schedule = ScheduleGPipe(stage, microbatches or layout.pp, loss_fn=lm_loss)

    @property
    def holds_loss(self) -> bool:
        return self.layout.pp_rank == self.layout.pp - 1

    def autocast(self) -> contextlib.AbstractContextManager[object]:
        if not self.bf16:
            return contextlib.nullcontext()
        return torch.autocast(self.layout.device.type, dtype=torch.bfloat16)

    def step(self, x: torch.Tensor, y: torch.Tensor, lr: float) -> torch.Tensor | None:
        """Forward, backward and optimizer step on this rank's slice; the loss where this rank holds it."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        loss: torch.Tensor | None = None
        with self.autocast():
            if self.schedule is None:
                loss = lm_loss(self.wrapped(x), y)
                loss.backward()  # type: ignore[no-untyped-call]
            elif self.layout.pp_rank == 0:
                self.schedule.step(x)
            elif self.holds_loss:
                losses: list[torch.Tensor] = []
                self.schedule.step(target=y, losses=losses)
                loss = torch.stack(losses).mean()
            else:
                self.schedule.step()
        if self.replica_sync:
            assert self.groups.dp is not None
            sync_replica_grads(self.model, self.groups.dp, self.layout.dp)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return None if loss is None else loss.detach()

    def forward(self, x: torch.Tensor) -> torch.Tensor | None:
        """Forward only (no gradients, no optimizer); the logits on the rank that holds the last stage.

        Collective under tensor and pipeline parallelism: every rank of the replica calls it with the same batch.
        """
        with self.autocast():
            if self.schedule is None:
                with torch.no_grad():
                    out: torch.Tensor = self.model(x)
                return out
            if self.layout.pp_rank == 0:
                self.schedule.eval(x)
                return None
            if not self.holds_loss:
                self.schedule.eval()
                return None
            # The schedule computes its loss on the last stage even in eval: give it a placeholder target.
            result: torch.Tensor = self.schedule.eval(target=torch.zeros(x.shape[:2], dtype=torch.long,
                                                                          device=x.device))
            return result.detach()

    def global_loss(self, loss: torch.Tensor | None) -> float:
        """Mean loss over data-parallel replicas, known to every rank (a collective: call it on all ranks)."""
        return self.reduce_loss(loss).value()

    def reduce_loss(self, loss: torch.Tensor | None) -> LossReading:
        """Start the mean-loss all-reduce without waiting for it (a collective: call it on all ranks).

        Why not block: a blocking all-reduce plus ``.item()`` after a step is one more point where every rank waits
        for the slowest (and, on GPU, for the whole stream). Started here, it completes while the next steps run;
        the loop reads it at its next report, when it is long done.
        """
        holders = self.layout.dp * self.layout.tp
        t = torch.zeros(1, device=self.layout.device)
        if loss is not None and self.holds_loss:
            t += loss.float()
        work = dist.all_reduce(t, async_op=True) if self.layout.world_size > 1 else None
        if self.layout.device.type != "cuda":
            return LossReading(t, work, None, holders)
        if work is not None:
            work.wait()  # orders the copy after the collective on the stream; the host does not block
        host = torch.empty(1, pin_memory=True)
        host.copy_(t, non_blocking=True)
        event = torch.cuda.Event()  # type: ignore[no-untyped-call]
        event.record()
        return LossReading(host, None, event, holders)

    def parameters(self) -> Iterator[nn.Parameter]:
        return self.model.parameters()


class LossReading:
    """A mean loss on its way: the all-reduce (CPU) or device-to-host copy (CUDA) may still be running."""

    def __init__(self, total: torch.Tensor, work: Any, event: torch.cuda.Event | None, holders: int) -> None:
        self._total, self._work, self._event, self._holders = total, work, event, holders

    def value(self) -> float:
        """Waits for the reduction (already finished when read a step or more later) and returns the mean."""
        if self._work is not None:
            self._work.wait()
        if self._event is not None:
            self._event.synchronize()
        return float(self._total.item()) / self._holders
