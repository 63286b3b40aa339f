"""The built-in worker's task settings (`spec.taskConfig`, sent as LLMASOS_TASK_CONFIG) and the checks that need
only the job's shape: one definition for the operator and the worker.

Why here and not in the worker alone: a bad value (`batch_size: "16"`, `lr: 0`, a batch the data-parallel degree does
not divide, a model the tensor-parallel degree does not split) used to fail only in the pod, after the image pull,
as a FailJob. The operator (and `llmasos plan -f`) now runs the same checks when the LLMJob is applied; the worker
runs them again at start-up, beside the checks that need its file system (a model path the pod can read), which stay
in `llmasos_worker.config`. Torch-free, like the rest of `llmasos.api`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from llmasos.api.worker_contract import WorkerEnv


class ConfigError(ValueError):
    """The task configuration cannot run; the message says what to change."""


@dataclass(frozen=True)
class GPTConfig:
    """Sizes of the built-in decoder-only transformer (byte-level vocabulary by default)."""

    vocab_size: int = 256
    seq_len: int = 64
    d_model: int = 64
    n_layer: int = 2
    n_head: int = 4
    d_ff: int = 256
    dropout: float = 0.0

    def check(self) -> None:
        for name in ("vocab_size", "seq_len", "d_model", "n_layer", "n_head", "d_ff"):
            if getattr(self, name) < 1:
                raise ConfigError(f"model.{name} must be >= 1")
        if self.d_model % self.n_head:
            raise ConfigError(f"model.d_model={self.d_model} is not divisible by model.n_head={self.n_head}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError("model.dropout must be in [0, 1)")


PRESETS: dict[str, GPTConfig] = {
    "gpt-tiny": GPTConfig(),
    "gpt-small": GPTConfig(seq_len=128, d_model=256, n_layer=6, n_head=8, d_ff=1024),
}

COMPRESSION_METHODS = ("quantize", "prune_magnitude", "prune_structured", "distill")
# Switches that default to "auto" (on only where measured to win, docs/worker.md); JSON true/false mean on/off.
SWITCHES = ("compile", "fused_adamw", "cuda_graphs")
SWITCH_VALUES = ("auto", "on", "off")


@dataclass(frozen=True)
class TaskConfig:
    """Everything in ``LLMASOS_TASK_CONFIG``; see docs/worker.md for the meaning of each key."""

    steps: int = 20
    batch_size: int = 16  # global batch, in sequences, summed over data-parallel ranks
    lr: float = 3e-3
    warmup_steps: int = 0
    weight_decay: float = 0.0
    seed: int = 0
    microbatches: int = 0  # pipeline microbatches per step; 0 = the pipeline degree
    checkpoint_every: int = 0  # 0 = only on SIGTERM and at the end
    keep_checkpoints: int = 2
    log_every: int = 1
    stop_check_seconds: float = 0.25  # target time between the ranks' agreements on "SIGTERM seen"
    precision: str = "auto"  # auto = bf16 autocast on CUDA, fp32 on CPU
    output_dir: str = ""  # final model and result.json; defaults to the checkpoint directory
    corpus_path: str = ""  # a UTF-8 text file on a volume; default is the corpus shipped in the package
    eval_batches: int = 8
    seq_len: int = 0  # 0 = the model's context length
    threads: int = 0  # intra-op CPU threads per rank; 0 = the CPU budget over the local ranks (threads.py)
    interop_threads: int = 0  # inter-op threads per rank; 0 = as many as intra-op
    compile: str = "auto"  # torch.compile the model (train, finetune): auto = off (see docs/worker.md)
    fused_adamw: str = "auto"  # AdamW(fused=True): CUDA only; auto = on on CUDA
    cuda_graphs: str = "auto"  # compile mode "reduce-overhead" (CUDA graphs) on CUDA; auto = off
    model: Mapping[str, Any] = field(default_factory=dict)  # overrides of the preset's GPTConfig fields
    # inference
    prompts: tuple[str, ...] = ()
    max_new_tokens: int = 32
    temperature: float = 0.0  # 0 = greedy
    ray_actors: int = 0  # 0 = one per GPU in the Ray cluster (2 on a CPU-only local cluster)
    # compression
    method: tuple[str, ...] = ("quantize",)
    sparsity: float = 0.5
    alpha: float = 0.5
    distill_temperature: float = 2.0
    distill_steps: int = 100
    student: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, raw: Mapping[str, object]) -> TaskConfig:
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(raw) - set(known))
        if unknown:
            raise ConfigError(f"LLMASOS_TASK_CONFIG has unknown keys {unknown}; known keys: {sorted(known)}")
        values: dict[str, Any] = {}
        defaults = cls()
        for key, value in raw.items():
            default = getattr(defaults, key)
            if key in SWITCHES and isinstance(value, bool):
                value = "on" if value else "off"
            values[key] = _coerce(key, value, default)
        cfg = cls(**values)
        cfg.check()
        return cfg

    def check(self) -> None:
        positive = ("steps", "batch_size", "log_every", "keep_checkpoints", "eval_batches",
                    "max_new_tokens", "distill_steps")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("checkpoint_every", "microbatches", "warmup_steps", "seq_len", "ray_actors", "threads",
                     "interop_threads"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0")
        if self.lr <= 0:
            raise ConfigError("lr must be > 0")
        if self.stop_check_seconds < 0:
            raise ConfigError("stop_check_seconds must be >= 0 (0 = agree after every step)")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ConfigError(f"precision must be auto, fp32 or bf16, got {self.precision!r}")
        for name in SWITCHES:
            if getattr(self, name) not in SWITCH_VALUES:
                raise ConfigError(f"{name} must be true, false or \"auto\", got {getattr(self, name)!r}")
        bad = [m for m in self.method if m not in COMPRESSION_METHODS]
        if bad:
            raise ConfigError(f"method {bad} unknown; choose from {', '.join(COMPRESSION_METHODS)}")
        if not 0.0 <= self.sparsity < 1.0:
            raise ConfigError("sparsity must be in [0, 1)")
        if not 0.0 <= self.alpha <= 1.0:
            raise ConfigError("alpha must be in [0, 1]")
        if self.distill_temperature <= 0:
            raise ConfigError("distill_temperature must be > 0")


def _coerce(key: str, value: object, default: object) -> object:
    """Accept JSON's types for a field whose default fixes the type; reject anything else by name."""
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value  # type: ignore[arg-type]
    elif isinstance(default, str):
        ok = isinstance(value, str)
    elif isinstance(default, tuple):
        if isinstance(value, str):
            value = (value,)
        ok = isinstance(value, list | tuple) and all(isinstance(v, str) for v in value)
        value = tuple(value) if ok else value  # type: ignore[arg-type]
    else:
        ok = isinstance(value, Mapping)
    if not ok:
        raise ConfigError(f"LLMASOS_TASK_CONFIG.{key} has the wrong type: {value!r}")
    return value


def model_config(name: str, overrides: Mapping[str, Any]) -> GPTConfig:
    """The preset ``name`` (default gpt-tiny) with ``overrides`` applied and checked."""
    base = PRESETS.get(name or "gpt-tiny")
    if base is None:
        raise ConfigError(f"LLMASOS_MODEL_BUILTIN={name!r} is not one of {', '.join(PRESETS)}")
    known = {f.name for f in fields(GPTConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError(f"model overrides {unknown} unknown; known: {sorted(known)}")
    for key, value in overrides.items():
        _coerce(f"model.{key}", value, getattr(base, key))
    cfg = replace(base, **dict(overrides))
    cfg.check()
    return cfg


def check_env_layout(env: WorkerEnv, cfg: TaskConfig) -> None:
    """Everything about the job that can be judged from its environment alone, without reading a file: the layout
    against the degrees, the batch against the data-parallel degree, the built-in model against the model-parallel
    degrees; raises ConfigError."""
    dp, tp, pp = env.data_parallel, env.tensor_parallel, env.pipeline_parallel
    expected = {"ddp": tp == 1 and pp == 1, "tensor": tp > 1 and pp == 1, "pipeline": pp > 1 and tp == 1}
    if env.strategy in expected and not expected[env.strategy]:
        raise ConfigError(
            f"LLMASOS_STRATEGY={env.strategy} does not fit degrees data={dp} tensor={tp} pipeline={pp} "
            "(ddp: tensor=pipeline=1; tensor: tensor>1, pipeline=1; pipeline: pipeline>1, tensor=1)"
        )
    if env.strategy != "ray" and cfg.batch_size % dp:
        raise ConfigError(f"batch_size={cfg.batch_size} is not divisible by LLMASOS_DATA_PARALLEL={dp}")
    if pp > 1:
        micro = cfg.microbatches or pp
        if (cfg.batch_size // dp) % micro:
            raise ConfigError(f"per-replica batch {cfg.batch_size // dp} is not divisible by microbatches={micro}")
    if (tp > 1 or pp > 1) and "on" in (cfg.compile, cfg.cuda_graphs):
        raise ConfigError("compile and cuda_graphs support data-parallel layouts only (tensor = pipeline = 1)")
    if env.task in ("inference", "compress") and pp > 1:
        raise ConfigError(f"task {env.task} runs on one pipeline stage; set LLMASOS_PIPELINE_PARALLEL=1")
    if env.task == "compress" and env.world_size > 1:
        raise ConfigError("task compress runs in one process; set NNODES=1 and NPROC_PER_NODE=1")
    if env.strategy == "ray" and env.task != "inference":
        raise ConfigError("strategy ray supports task inference only")
    if env.model_hf_repo and not env.model_path:
        raise ConfigError(
            "LLMASOS_MODEL_HF_REPO is set but the worker never downloads from the hub: "
            "mount the model and set LLMASOS_MODEL_PATH"
        )
    if env.task == "finetune" and not env.model_path:
        raise ConfigError("task finetune needs LLMASOS_MODEL_PATH (a trained model.pt or a Hugging Face directory)")
    if not env.model_path:
        model = model_config(env.model_builtin, cfg.model)
        if model.n_head % tp:
            raise ConfigError(f"model.n_head={model.n_head} is not divisible by LLMASOS_TENSOR_PARALLEL={tp}")
        if model.d_ff % tp:
            raise ConfigError(f"model.d_ff={model.d_ff} is not divisible by LLMASOS_TENSOR_PARALLEL={tp}")
        if model.n_layer < pp:
            raise ConfigError(f"model.n_layer={model.n_layer} is fewer than LLMASOS_PIPELINE_PARALLEL={pp} stages")


# The keys the built-in worker takes (docs/worker.md): the operator refuses any other key of spec.taskConfig.
TASK_CONFIG_KEYS: tuple[str, ...] = tuple(sorted(f.name for f in fields(TaskConfig)))
