"""The environment contract between the operator (which renders worker pods) and the worker runtime.

One definition, imported by both sides: the operator calls :meth:`WorkerEnv.to_env` when it builds pod templates,
and `llmasos-worker` calls :meth:`WorkerEnv.from_env` at start-up. The torchrun-standard variables (MASTER_ADDR,
MASTER_PORT, NNODES, NODE_RANK, NPROC_PER_NODE, WORLD_SIZE) keep their usual meaning; everything LLMasOS-specific
is prefixed `LLMASOS_`. NODE_RANK is not set literally: the operator derives it from the Indexed Job's completion
index (`JOB_COMPLETION_INDEX`), so one pod template serves every worker.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

DEFAULT_MASTER_PORT = 29500
DEFAULT_PROGRESS_PORT = 9401
DEFAULT_PROGRESS_BIND = "0.0.0.0"

# Exit codes of `llmasos-worker`, for the operator's podFailurePolicy: a configuration error will not heal on retry
# (FailJob); a worker stopped by SIGTERM after writing its checkpoint should not count against backoffLimit (Ignore).
EXIT_OK = 0
EXIT_CONFIG_ERROR = 2
EXIT_SUSPENDED = 75  # EX_TEMPFAIL: checkpoint written on SIGTERM, resume later
# A rank whose group broke under it (a peer's connection dropped, the rendezvous store went away): it is a victim,
# so the operator names another worker's exit as the cause when one exists. Still a failure for podFailurePolicy.
EXIT_PEER_LOST = 76

# The worker's last count, for the node agent once the pod has ended (its /metrics went with it, and the agent reads
# that only every few seconds): on a clean exit, and on a suspension after its checkpoint (EXIT_SUSPENDED), local
# rank 0 writes one JSON object to the container's termination message file, which the kubelet copies into
# status.containerStatuses[].state.terminated.message. Never written on a failure, where the kubelet then shows the
# log's tail instead (terminationMessagePolicy FallbackToLogsOnError).
TERMINATION_LOG = "/dev/termination-log"
FINAL_PROGRESS_KEY = "llmasosFinalProgress"


def final_progress_message(step: int, tokens: int, steps: int | None = None) -> str:
    """`steps`: the step the run ends at (the task's planned total), when the task has one."""
    count: dict[str, int] = {"step": step, "tokens": tokens}
    if steps is not None:
        count["steps"] = steps
    return json.dumps({FINAL_PROGRESS_KEY: count}, sort_keys=True)


@dataclass(frozen=True)
class FinalProgress:
    """The worker's last count, as its termination message gives it (`steps` None: the run has no planned total)."""

    tokens: float
    step: float | None = None
    steps: float | None = None


def parse_final_progress(message: str) -> FinalProgress | None:
    """The count of a termination message `final_progress_message` wrote (the kubelet may prefix the runtime's own
    message, "...: {...}"); None for any other message."""
    start = message.find("{")
    try:
        doc = json.loads(message[start:]) if start >= 0 else None
    except json.JSONDecodeError:
        return None
    final = doc.get(FINAL_PROGRESS_KEY) if isinstance(doc, dict) else None
    if not isinstance(final, dict):
        return None
    tokens, step, steps = (_count(final.get(key)) for key in ("tokens", "step", "steps"))
    return FinalProgress(tokens, step, steps) if tokens is not None else None


def _count(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


# A Kubernetes CPU quantity as LLMJobs write it: "2", "0.5", "500m" (decimal SI suffixes accepted too).
_CPU_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(m|k|M|G|T|P|E)?$")
_SI = {"": 1.0, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18}

TASKS = ("train", "finetune", "inference", "compress")
# The tasks whose SIGTERM writes a checkpoint that the next run resumes from; inference and compress stop at once and
# start over (EXIT_SUSPENDED), so only these can run in carbon segments.
CHECKPOINTING_TASKS = ("train", "finetune")
STRATEGIES = ("ddp", "tensor", "pipeline", "hybrid", "ray")


class WorkerContractError(ValueError):
    """The worker's environment is incomplete or inconsistent; the message names the variable."""


def cpu_cores(quantity: str) -> float:
    """Cores in a Kubernetes CPU quantity (``"500m"`` -> 0.5); raises WorkerContractError if it is not one."""
    m = _CPU_QUANTITY.match(quantity.strip())
    if m is None:
        raise WorkerContractError(f"LLMASOS_CPU_REQUEST must be a CPU quantity such as 2 or 500m, got {quantity!r}")
    return float(m.group(1)) * _SI[m.group(2) or ""]


@dataclass(frozen=True)
class WorkerEnv:
    """Everything a worker process needs to know about its job and its place in the group."""

    job_name: str
    namespace: str
    task: str
    strategy: str
    nnodes: int
    nproc_per_node: int
    master_addr: str
    master_port: int = DEFAULT_MASTER_PORT
    node_rank: int = 0
    data_parallel: int = 1
    tensor_parallel: int = 1
    pipeline_parallel: int = 1
    model_builtin: str = ""
    model_path: str = ""
    model_hf_repo: str = ""
    checkpoint_dir: str = ""
    progress_port: int = DEFAULT_PROGRESS_PORT
    # Address the progress endpoint binds; the pod IP must be reachable by the node agent, hence all interfaces.
    progress_bind: str = DEFAULT_PROGRESS_BIND
    # The LLMJob's CPU request per pod (a Kubernetes quantity); the worker divides it among its local ranks' threads.
    cpu_request: str = ""
    # Task settings (steps, batch size, learning rate, compression method, ...), passed through as JSON.
    task_config: Mapping[str, object] = field(default_factory=dict)

    @property
    def world_size(self) -> int:
        return self.nnodes * self.nproc_per_node

    @property
    def cpu_request_cores(self) -> float | None:
        """The CPU request in cores, or None when the operator passed none."""
        return cpu_cores(self.cpu_request) if self.cpu_request else None

    def validate(self) -> None:
        if self.task not in TASKS:
            raise WorkerContractError(f"LLMASOS_TASK must be one of {', '.join(TASKS)}, got {self.task!r}")
        if self.strategy not in STRATEGIES:
            raise WorkerContractError(
                f"LLMASOS_STRATEGY must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}"
            )
        if self.nnodes < 1 or self.nproc_per_node < 1:
            raise WorkerContractError("NNODES and NPROC_PER_NODE must be >= 1")
        if not 0 <= self.node_rank < self.nnodes:
            raise WorkerContractError(f"NODE_RANK={self.node_rank} is outside 0..{self.nnodes - 1}")
        if self.cpu_request and self.cpu_request_cores == 0:
            raise WorkerContractError("LLMASOS_CPU_REQUEST must be more than zero CPUs")
        degrees = self.data_parallel * self.tensor_parallel * self.pipeline_parallel
        if self.strategy != "ray" and degrees != self.world_size:
            raise WorkerContractError(
                f"LLMASOS_DATA_PARALLEL x LLMASOS_TENSOR_PARALLEL x LLMASOS_PIPELINE_PARALLEL = {degrees} "
                f"must equal WORLD_SIZE = {self.world_size}"
            )

    def to_env(self) -> dict[str, str]:
        """Render as container environment variables (NODE_RANK excluded: it comes from the completion index)."""
        return {
            "LLMASOS_JOB_NAME": self.job_name,
            "LLMASOS_NAMESPACE": self.namespace,
            "LLMASOS_TASK": self.task,
            "LLMASOS_STRATEGY": self.strategy,
            "NNODES": str(self.nnodes),
            "NPROC_PER_NODE": str(self.nproc_per_node),
            "WORLD_SIZE": str(self.world_size),
            "MASTER_ADDR": self.master_addr,
            "MASTER_PORT": str(self.master_port),
            "LLMASOS_DATA_PARALLEL": str(self.data_parallel),
            "LLMASOS_TENSOR_PARALLEL": str(self.tensor_parallel),
            "LLMASOS_PIPELINE_PARALLEL": str(self.pipeline_parallel),
            "LLMASOS_MODEL_BUILTIN": self.model_builtin,
            "LLMASOS_MODEL_PATH": self.model_path,
            "LLMASOS_MODEL_HF_REPO": self.model_hf_repo,
            "LLMASOS_CHECKPOINT_DIR": self.checkpoint_dir,
            "LLMASOS_PROGRESS_PORT": str(self.progress_port),
            "LLMASOS_PROGRESS_BIND": self.progress_bind,
            "LLMASOS_CPU_REQUEST": self.cpu_request,
            "LLMASOS_TASK_CONFIG": json.dumps(dict(self.task_config), sort_keys=True),
        }

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WorkerEnv:
        """Parse and validate the environment; NODE_RANK falls back to JOB_COMPLETION_INDEX, then 0."""
        e = os.environ if env is None else env

        def need(name: str) -> str:
            value = e.get(name, "")
            if not value:
                raise WorkerContractError(f"environment variable {name} is required")
            return value

        def integer(name: str, default: int | None = None) -> int:
            raw = e.get(name, "")
            if not raw:
                if default is None:
                    raise WorkerContractError(f"environment variable {name} is required")
                return default
            try:
                return int(raw)
            except ValueError:
                raise WorkerContractError(f"environment variable {name} must be an integer, got {raw!r}") from None

        try:
            task_config = json.loads(e.get("LLMASOS_TASK_CONFIG", "") or "{}")
        except json.JSONDecodeError as exc:
            raise WorkerContractError(f"LLMASOS_TASK_CONFIG is not valid JSON: {exc}") from None
        if not isinstance(task_config, dict):
            raise WorkerContractError("LLMASOS_TASK_CONFIG must be a JSON object")
        rank_default = integer("JOB_COMPLETION_INDEX", 0)
        parsed = cls(
            job_name=e.get("LLMASOS_JOB_NAME", "local"),
            namespace=e.get("LLMASOS_NAMESPACE", "default"),
            task=need("LLMASOS_TASK"),
            strategy=e.get("LLMASOS_STRATEGY", "ddp"),
            nnodes=integer("NNODES", 1),
            nproc_per_node=integer("NPROC_PER_NODE", 1),
            master_addr=e.get("MASTER_ADDR", "127.0.0.1"),
            master_port=integer("MASTER_PORT", DEFAULT_MASTER_PORT),
            node_rank=integer("NODE_RANK", rank_default),
            data_parallel=integer("LLMASOS_DATA_PARALLEL", 1),
            tensor_parallel=integer("LLMASOS_TENSOR_PARALLEL", 1),
            pipeline_parallel=integer("LLMASOS_PIPELINE_PARALLEL", 1),
            model_builtin=e.get("LLMASOS_MODEL_BUILTIN", ""),
            model_path=e.get("LLMASOS_MODEL_PATH", ""),
            model_hf_repo=e.get("LLMASOS_MODEL_HF_REPO", ""),
            checkpoint_dir=e.get("LLMASOS_CHECKPOINT_DIR", ""),
            progress_port=integer("LLMASOS_PROGRESS_PORT", DEFAULT_PROGRESS_PORT),
            progress_bind=e.get("LLMASOS_PROGRESS_BIND", "") or DEFAULT_PROGRESS_BIND,
            cpu_request=e.get("LLMASOS_CPU_REQUEST", "").strip(),
            task_config=task_config,
        )
        parsed.validate()
        world = integer("WORLD_SIZE", parsed.world_size)
        if world != parsed.world_size:
            raise WorkerContractError(
                f"WORLD_SIZE={world} disagrees with NNODES x NPROC_PER_NODE = {parsed.world_size}"
            )
        return parsed

    def as_dict(self) -> dict[str, object]:
        return asdict(self)
