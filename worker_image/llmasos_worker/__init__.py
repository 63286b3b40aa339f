"""LLMasOS worker runtime: the process inside every worker pod that trains, serves or compresses a language model.

The operator renders pods whose environment follows :mod:`llmasos.api.worker_contract`; ``llmasos-worker`` reads
it, launches one process per local device (torchrun semantics), and runs the task with the parallel layout the
LLMJob asked for (DDP, tensor, pipeline, hybrid, or Ray). Nothing here talks to Kubernetes: progress and energy are
exposed on a local HTTP ``/metrics`` endpoint that the node agent reads.

Exit codes (also in the contract module): 0 done, 2 configuration error, 75 stopped by SIGTERM after a checkpoint,
76 this rank's group broke under it (another worker failed first), anything else a failure.
"""

__version__ = "0.1.0"
