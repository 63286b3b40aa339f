"""Byte-level tokens and deterministic batches: the batch for step ``s`` is a pure function of (seed, s).

Why: resuming from a checkpoint then needs no data-loader state, and any layout (1 process, DDP over 4, TP x DP)
sees exactly the same global batch at every step, each data-parallel replica taking its contiguous slice. That is
what makes "DDP equals one process on the global batch" and "resume equals uninterrupted" testable exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from llmasos_worker.corpus import CORPUS

VAL_FRACTION = 0.1


def encode(text: str) -> torch.Tensor:
    return torch.tensor(list(text.encode("utf-8")), dtype=torch.long)


def decode(tokens: list[int]) -> str:
    return bytes(t % 256 for t in tokens).decode("utf-8", errors="replace")


@dataclass(frozen=True)
class Corpus:
    train: torch.Tensor
    val: torch.Tensor

    @classmethod
    def load(cls, path: str = "", tokenize: Callable[[str], torch.Tensor] = encode) -> Corpus:
        text = Path(path).read_text(encoding="utf-8") if path else CORPUS
        tokens = tokenize(text)
        cut = int(len(tokens) * (1 - VAL_FRACTION))
        return cls(train=tokens[:cut], val=tokens[cut:])


def global_batch(tokens: torch.Tensor, seed: int, step: int, batch: int, seq_len: int) -> tuple[torch.Tensor, ...]:
    """(inputs, targets), each (batch, seq_len), drawn at random offsets from a generator seeded by (seed, step)."""
    return replica_batch(tokens, seed, step, batch, seq_len, 0, 1)


def replica_batch(tokens: torch.Tensor, seed: int, step: int, batch: int, seq_len: int, replica: int,
                  replicas: int) -> tuple[torch.Tensor, ...]:
    """This replica's contiguous slice of the global batch of ``step``, built without building the rest.

    All offsets of the global batch are drawn (so every layout sees the same one), but only this replica's rows
    are gathered, in one indexing of the corpus' sliding windows instead of a Python loop of slices.
    """
    if len(tokens) <= seq_len + 1:
        raise ValueError(f"corpus of {len(tokens)} tokens is shorter than seq_len + 1 = {seq_len + 1}")
    gen = torch.Generator().manual_seed(seed * 1_000_003 + step)
    starts = torch.randint(0, len(tokens) - seq_len - 1, (batch,), generator=gen)
    per = batch // replicas
    rows = tokens.unfold(0, seq_len + 1, 1)[starts[replica * per : (replica + 1) * per]]
    return rows[:, :-1].contiguous(), rows[:, 1:].contiguous()


def replica_slice(batch: torch.Tensor, replica: int, replicas: int) -> torch.Tensor:
    per = batch.shape[0] // replicas
    return batch[replica * per : (replica + 1) * per]


def eval_batches(tokens: torch.Tensor, count: int, batch: int, seq_len: int) -> list[tuple[torch.Tensor, ...]]:
    """Fixed held-out batches (seed -1 keeps them apart from every training step)."""
    seq = min(seq_len, len(tokens) - 2)
    return [global_batch(tokens, -1, i, batch, seq) for i in range(count)]
