"""Task settings checked against the pod: the shared, environment-only checks plus the file system's.

Why torch-free: a bad LLMJob (degrees that do not multiply to the world size, a model path the pod cannot read)
should fail in milliseconds with one clear line, before any process is spawned or torch's import cost is paid.
The operator passes these settings as the JSON object ``LLMASOS_TASK_CONFIG``; unknown keys are rejected so a typo
does not silently fall back to a default. The settings themselves, the model presets and the checks that need no
file live in ``llmasos.api.task_config``, which the operator runs when an LLMJob is applied; this module re-exports
them for the worker's own modules.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

from llmasos.api.task_config import PRESETS, ConfigError, GPTConfig, TaskConfig, check_env_layout, model_config
from llmasos.api.worker_contract import WorkerEnv

# What the worker's modules import from here (the settings live in llmasos.api.task_config).
__all__ = ["PRESETS", "ConfigError", "GPTConfig", "TaskConfig", "check_layout", "model_config"]


def check_layout(env: WorkerEnv, cfg: TaskConfig) -> None:
    """Everything about the job that can be judged from the environment and the pod's file system; raises
    ConfigError. The environment-only part is shared with the operator (`check_env_layout`)."""
    check_env_layout(env, cfg)
    tp, pp = env.tensor_parallel, env.pipeline_parallel
    if env.model_path:
        check_model_path(env.model_path)
        if is_hf_directory(env.model_path):
            if tp > 1 or pp > 1:
                raise ConfigError(HF_LAYOUT_ERROR)
            if env.task == "compress":
                raise ConfigError(HF_COMPRESS_ERROR)
    if cfg.corpus_path:
        check_readable(cfg.corpus_path)


HF_LAYOUT_ERROR = "tensor and pipeline parallel need a built-in model; Hugging Face models run with ddp or ray"
HF_COMPRESS_ERROR = "compress supports built-in models (model.pt written by llmasos-worker)"


def is_hf_directory(path: str) -> bool:
    """A Hugging Face model directory (config.json) rather than one holding a model.pt, which wins."""
    p = Path(path)
    return p.is_dir() and not (p / "model.pt").is_file() and (p / "config.json").is_file()


def check_model_path(path: str) -> None:
    """Cheap checks that need no torch: readable, and shaped like a model.pt (a zip archive) or a model directory."""
    check_readable(path)
    p = Path(path)
    if p.is_dir():
        if not (p / "model.pt").is_file() and not (p / "config.json").is_file():
            raise ConfigError(f"LLMASOS_MODEL_PATH={path!r} holds neither model.pt nor a Hugging Face config.json")
        return
    try:
        archive = zipfile.is_zipfile(p)
    except OSError as exc:
        raise ConfigError(f"LLMASOS_MODEL_PATH={path!r} is not a readable model file: {exc}") from None
    if not archive:
        raise ConfigError(f"LLMASOS_MODEL_PATH={path!r} is not a readable model file (not a torch.save archive)")


def check_readable(path: str) -> None:
    if not os.path.exists(path):
        raise ConfigError(f"path {path!r} does not exist (is the volume mounted?)")
    if os.path.isdir(path):
        if not os.access(path, os.R_OK | os.X_OK):
            raise ConfigError(f"directory {path!r} is not readable by uid {os.getuid()}")
        return
    if not os.access(path, os.R_OK):
        raise ConfigError(f"file {path!r} is not readable by uid {os.getuid()}")
