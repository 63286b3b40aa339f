"""Tell "this rank's group broke under it" from "this rank failed", so the operator can name the worker that failed.

Why: when one worker of a group dies (killed, out of memory, a bug of its own), its peers fail a moment later in
their next collective, with an error that only says a connection closed. Kubernetes records exit times to the
second, so the pod that failed first is often not the one the Job names, nor the earliest by `finishedAt`. A rank
that lost its group exits with EXIT_PEER_LOST instead of 1, and the operator then prefers any other failed worker
as the cause (planning/lifecycle/worker_faults.py). Which errors count: torch's distributed errors (NCCL and store
errors: DistBackendError, DistNetworkError, DistStoreError) and gloo's transport errors, which torch raises as a
plain RuntimeError naming gloo's transport source file.
"""

from __future__ import annotations

_GLOO_TRANSPORT = "gloo/transport/"


def lost_its_group(exc: BaseException) -> bool:
    """Whether `exc`, or an exception it was raised from, is a broken connection to this rank's peers."""
    import torch.distributed as dist

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, dist.DistError):
            return True
        if isinstance(current, RuntimeError) and _GLOO_TRANSPORT in str(current):
            return True
        current = current.__cause__ or current.__context__
    return False
