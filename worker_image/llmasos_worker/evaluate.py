"""Quality, size, speed and energy of a model: the numbers compression reports before and after.

Why together: a compression method is only worth its carbon if quality stays within bounds while size, latency or
energy per token go down, so the four are always measured on the same held-out batches in the same way.
Perplexity is exp(mean cross-entropy in nats per token) on fixed validation batches (byte tokens for built-in
models, so it is "per byte").
"""

from __future__ import annotations

import io
import math
import time
from dataclasses import dataclass

import torch
from torch import nn

from llmasos_worker.data import eval_batches
from llmasos_worker.engine import lm_loss
from llmasos_worker.progress import EnergyMeter, NoEnergy

EVAL_BATCH = 8


@torch.no_grad()
def perplexity(model: nn.Module, tokens: torch.Tensor, count: int, seq_len: int,
               device: torch.device) -> tuple[float, float]:
    """(perplexity, mean loss) of ``model`` on ``count`` fixed held-out batches."""
    was_training = model.training
    model.eval()
    losses = [
        lm_loss(model(x.to(device)), y.to(device)).item() for x, y in eval_batches(tokens, count, EVAL_BATCH, seq_len)
    ]
    model.train(was_training)
    mean = sum(losses) / len(losses)
    return math.exp(mean), mean


def serialized_bytes(model: nn.Module) -> int:
    """Bytes of the state dict as torch.save writes it: what a model file costs on a volume."""
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return len(buf.getvalue())


def sparse_bytes(model: nn.Module) -> int:
    """Raw bytes if each float tensor stored only its non-zeros plus a one-bit-per-element mask (dense if smaller).

    This is what unstructured pruning can save on disk or over the wire; dense tensors report their plain size.
    """
    total = 0
    for t in model.state_dict().values():
        dense = t.numel() * t.element_size()
        if t.is_floating_point():
            masked = int(torch.count_nonzero(t)) * t.element_size() + (t.numel() + 7) // 8
            dense = min(dense, masked)
        total += dense
    return total


def nonzero_parameters(model: nn.Module) -> int:
    return sum(int(torch.count_nonzero(t)) for t in model.state_dict().values() if t.is_floating_point() or
               t.dtype == torch.int8)


@dataclass(frozen=True)
class Speed:
    latency_ms: float  # per forward of one (EVAL_BATCH, seq_len) batch
    tokens_per_second: float
    joules_per_token: float | None


@torch.no_grad()
def measure_speed(model: nn.Module, seq_len: int, device: torch.device, repeats: int = 20,
                  energy: EnergyMeter | None = None) -> Speed:
    """Median forward latency after warm-up; energy per token from the meter when it measures anything."""
    meter = energy or NoEnergy()
    model.eval()
    x = torch.randint(0, 256, (EVAL_BATCH, seq_len), generator=torch.Generator().manual_seed(0)).to(device)
    for _ in range(5):
        model(x)
    times = []
    before = sum(meter.joules().values())
    for _ in range(repeats):
        t0 = time.perf_counter()
        model(x)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
    joules = sum(meter.joules().values()) - before
    times.sort()
    median = times[len(times) // 2]
    tokens = EVAL_BATCH * seq_len
    return Speed(median * 1000, tokens / median, joules / (tokens * repeats) if joules > 0 else None)
