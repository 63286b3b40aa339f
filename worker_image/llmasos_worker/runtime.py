"""One rank's life: join the group, serve progress, run the task, leave cleanly; SIGTERM becomes a checkpoint.

Why signals only set a flag: a handler that saved directly could fire mid-backward, or on one rank but not its
peers, and leave a torn checkpoint. Instead the loop asks all ranks at a step boundary whether any of them saw
SIGTERM (one tiny all-reduce), and then every rank saves the same step together and exits with EXIT_SUSPENDED.
Results are JSON lines on stdout (one object per line, ``"event"`` first) so container logs stay machine-readable.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from llmasos.api.worker_contract import (
    EXIT_OK,
    EXIT_PEER_LOST,
    EXIT_SUSPENDED,
    TERMINATION_LOG,
    WorkerEnv,
    final_progress_message,
)
from llmasos_worker.config import TaskConfig
from llmasos_worker.group_loss import lost_its_group
from llmasos_worker.progress import Progress, ProgressServer, energy_meter
from llmasos_worker.threads import ThreadPlan, apply_threads, cpu_budget, plan_threads


class StopFlag:
    """Set by SIGTERM/SIGINT; read by the training loop at step boundaries."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.signal_time: float | None = None

    def set(self) -> None:
        if not self._event.is_set():
            self.signal_time = time.monotonic()
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def install(self) -> None:
        def handler(signum: int, frame: FrameType | None) -> None:
            self.set()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)


def exit_on_signal() -> None:
    """For tasks with nothing worth saving mid-way (inference, compress): SIGTERM ends them now with
    EXIT_SUSPENDED, so a suspended pod is not counted as failed and a rerun simply repeats the work."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(EXIT_SUSPENDED)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def emit(event: str, **fields: object) -> None:
    """One JSON line on stdout; floats keep full precision (repr) so runs can be compared exactly."""
    print(json.dumps({"event": event, **fields}), flush=True)


@dataclass
class RunContext:
    env: WorkerEnv
    cfg: TaskConfig
    rank: int
    local_rank: int
    stop: StopFlag = field(default_factory=StopFlag)
    progress: Progress = field(default_factory=Progress)
    threads: dict[str, object] = field(default_factory=dict)  # the thread plan in force, for the start event

    @property
    def output_dir(self) -> Path | None:
        out = self.cfg.output_dir or self.env.checkpoint_dir
        return Path(out) if out else None

    @property
    def checkpoint_dir(self) -> str:
        if self.env.checkpoint_dir:
            return self.env.checkpoint_dir
        return str(Path(self.cfg.output_dir) / "checkpoints") if self.cfg.output_dir else ""

    def write_result(self, result: dict[str, object]) -> None:
        out = self.output_dir
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            staging = out / "result.json.tmp"
            staging.write_text(json.dumps(result, indent=2, sort_keys=True))
            staging.replace(out / "result.json")


def thread_plan(env: WorkerEnv, cfg: TaskConfig) -> ThreadPlan:
    """This rank's share of the pod's CPUs (threads.py); local ranks from LOCAL_WORLD_SIZE as torchrun sets it."""
    import torch

    local_ranks = int(os.environ.get("LOCAL_WORLD_SIZE", "") or env.nproc_per_node)
    return plan_threads(cpu_budget(env.cpu_request_cores), local_ranks, cuda=torch.cuda.is_available(),
                        threads=cfg.threads, interop_threads=cfg.interop_threads,
                        omp_num_threads=os.environ.get("OMP_NUM_THREADS"))


def run_rank(env: WorkerEnv, cfg: TaskConfig, rank: int, local_rank: int) -> int:
    """Entry of one rank (spawned by our launcher, by torchrun, or alone)."""
    ctx = RunContext(env, cfg, rank, local_rank)
    plan = thread_plan(env, cfg)
    intra, interop = apply_threads(plan)  # before any torch op, so the pools start at their final size
    ctx.threads = {**plan.describe(), "intra_op": intra, "inter_op": interop}
    if env.task in ("train", "finetune"):
        ctx.stop.install()
    else:
        exit_on_signal()
    server = serve_progress(env, ctx.progress) if local_rank == 0 else None
    code: int | None = None
    try:
        code = _run_task(ctx)
        return code
    except Exception as exc:
        if not lost_its_group(exc):
            raise
        traceback.print_exc()
        print(f"llmasos-worker: rank {rank} lost its group (another worker's connection broke); exiting with "
              f"{EXIT_PEER_LOST} so that the worker that failed first is named", file=sys.stderr, flush=True)
        code = EXIT_PEER_LOST
        return code
    finally:
        end_progress(server, ctx.progress, code)
        sys.stdout.flush()


def serve_progress(env: WorkerEnv, progress: Progress) -> ProgressServer | None:
    """The pod's progress endpoint on LLMASOS_PROGRESS_PORT (one per pod: the node agent reads it), or None when the
    operator set no port."""
    if not env.progress_port:
        return None
    labels = {"job": env.job_name, "namespace": env.namespace, "task": env.task, "node_rank": str(env.node_rank)}
    return ProgressServer(progress, energy_meter(), labels, env.progress_bind, env.progress_port).start()


def end_progress(server: ProgressServer | None, progress: Progress, code: int | None) -> None:
    """Stop the endpoint; after a clean exit, or a suspension after its checkpoint, leave the last count in the
    termination message first: the steps since the agent's last read of /metrics then reach the status as soon as
    the agent sees the ended pod. (A suspended inference or compress run raises SystemExit: `code` stays None.)"""
    if server is None:
        return
    if code in (EXIT_OK, EXIT_SUSPENDED):
        write_final_progress(progress)
    server.stop()


def _run_task(ctx: RunContext) -> int:
    if ctx.env.task in ("train", "finetune"):
        from llmasos_worker.train import run_train

        return run_train(ctx)
    if ctx.env.task == "inference":
        from llmasos_worker.inference import run_inference

        return run_inference(ctx)
    from llmasos_worker.compress import run_compress

    return run_compress(ctx)


def write_final_progress(progress: Progress, path: str | None = None) -> bool:
    """The last count into the container's termination message (see `final_progress_message`), so the node agent
    has it after the pod ended, whenever it last read /metrics. Only where the kubelet made the file (never outside
    Kubernetes); LLMASOS_TERMINATION_LOG names another path (tests). Returns whether it was written."""
    target = Path(path or os.environ.get("LLMASOS_TERMINATION_LOG", "") or TERMINATION_LOG)
    if not target.is_file():
        return False
    snap = progress.snapshot()
    try:
        target.write_text(final_progress_message(snap.step, snap.tokens, snap.planned_steps))
    except OSError:  # not writable: the agent keeps its last reading of /metrics
        return False
    return True


__all__ = ["EXIT_OK", "RunContext", "StopFlag", "emit", "end_progress", "exit_on_signal", "run_rank", "serve_progress"]
