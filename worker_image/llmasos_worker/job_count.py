"""A count shared by every rank of a job (inference's new tokens), kept in the process group's rendezvous store.

Why the store and not a collective: inference ranks work through their own prompts at their own pace, so a
collective in the middle of generation would make each rank wait for the slowest. An atomic add on the store that
the rendezvous already runs is one small request that never waits for another rank, and it answers with the job's
total. So every pod exports the job's count, as training pods export the global step, and the operator keeps taking
the largest pod's count (planning/accounting/progress_status.py). Adds are batched to one every `interval` seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch.distributed as dist
from torch._C._distributed_c10d import Store
from torch.distributed import distributed_c10d

KEY = "llmasos/job-count"


def job_store() -> Store | None:
    """The default process group's store; None without a process group (the count then stays the rank's own)."""
    if not dist.is_initialized():
        return None
    return distributed_c10d._get_default_store()


class JobCounter:
    """Counts this rank's part, and calls `on_total` with the job's total after each batched add."""

    def __init__(self, store: Store | None, on_total: Callable[[int], None], interval: float = 0.5,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._store, self._on_total, self._interval, self._clock = store, on_total, interval, clock
        self._pending = 0
        self._local = 0
        self._last = clock()

    def add(self, n: int) -> None:
        self._pending += n
        if self._clock() - self._last >= self._interval:
            self.flush()

    def flush(self) -> int:
        """Adds what is pending now; the job's total so far."""
        self._local += self._pending
        total = self._local if self._store is None else int(self._store.add(KEY, self._pending))
        self._pending = 0
        self._last = self._clock()
        self._on_total(total)
        return total
