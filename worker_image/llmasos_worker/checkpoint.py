"""Checkpoints that survive a carbon suspend or a preemption, and resume bit-exactly.

Why torch.distributed.checkpoint (DCP): every rank writes its own shard in parallel (fast inside a SIGTERM grace
period), keys are the full model's parameter names whatever the layout (DDP, DTensor shards, pipeline stages),
and the files can be read back into one unsharded model for export. Exactness needs nothing beyond model and
optimizer state, because data and dropout are pure functions of (seed, step) -- see data.py.

Layout on the volume (shared by all nodes for multi-node jobs)::

    <dir>/step-00000040/      DCP shards + .metadata, complete (renamed into place only after every rank wrote)
    <dir>/step-00000040/meta.json
    <dir>/latest              "step-00000040", replaced atomically
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from dataclasses import asdict
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.checkpoint import state_dict_loader, state_dict_saver
from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

from llmasos_worker.config import GPTConfig

MODEL_FORMAT = "llmasos-gpt/1"


class Checkpointer:
    def __init__(self, directory: str, keep: int, rank: int) -> None:
        self.dir = Path(directory)
        self.keep = keep
        self.rank = rank

    def latest(self) -> Path | None:
        pointer = self.dir / "latest"
        if not pointer.is_file():
            return None
        path = self.dir / pointer.read_text().strip()
        return path if (path / ".metadata").is_file() else None

    def latest_step(self) -> int:
        path = self.latest()
        return 0 if path is None else int(json.loads((path / "meta.json").read_text())["step"])

    def save(self, step: int, model: nn.Module, optimizer: torch.optim.Optimizer, meta: dict[str, object]) -> Path:
        """Collective: every rank calls it at the same step."""
        name = f"step-{step:08d}"
        final, staging = self.dir / name, self.dir / f".{name}.tmp"
        if self.rank == 0:
            self.dir.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(staging, ignore_errors=True)
        _barrier()
        model_sd, optim_sd = get_state_dict(model, optimizer)
        state_dict_saver.save({"model": model_sd, "optim": optim_sd}, checkpoint_id=str(staging))
        _barrier()
        if self.rank == 0:
            (staging / "meta.json").write_text(json.dumps({**meta, "step": step}, sort_keys=True))
            shutil.rmtree(final, ignore_errors=True)
            os.replace(staging, final)
            _atomic_write(self.dir / "latest", name)
            self._prune()
        _barrier()
        return final

    def load(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> int:
        """Restore the latest checkpoint into the placed model and optimizer; returns its step (0 if none)."""
        path = self.latest()
        if path is None:
            return 0
        model_sd, optim_sd = get_state_dict(model, optimizer)
        # DCP loads in place into these very dicts, sharded exactly like this rank's model and optimizer.
        state_dict_loader.load({"model": model_sd, "optim": optim_sd}, checkpoint_id=str(path))
        set_state_dict(model, optimizer, model_state_dict=model_sd, optim_state_dict=optim_sd)
        return self.latest_step()

    def _prune(self) -> None:
        steps = sorted(p for p in self.dir.glob("step-*") if p.is_dir())
        for old in steps[: max(0, len(steps) - self.keep)]:
            shutil.rmtree(old, ignore_errors=True)


def export_model(checkpoint: Path, model: nn.Module, cfg: GPTConfig, target: Path) -> str:
    """Read the model part of a DCP checkpoint into the unsharded ``model`` (one process) and save model.pt."""
    state = {"model": model.state_dict()}
    with warnings.catch_warnings():
        # DCP warns that it loads in a single process: that is exactly the intent here.
        warnings.filterwarnings("ignore", message="torch.distributed is disabled", category=UserWarning)
        state_dict_loader.load(state, checkpoint_id=str(checkpoint), no_dist=True)
    model.load_state_dict(state["model"])
    return save_model(model, cfg, target)


def save_model(model: nn.Module, cfg: GPTConfig, target: Path, extra: dict[str, object] | None = None) -> str:
    """Save the portable single-file model (what inference and compression load); returns its digest."""
    target.parent.mkdir(parents=True, exist_ok=True)
    sd = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    staging = target.with_suffix(".tmp")
    torch.save({"format": MODEL_FORMAT, "config": asdict(cfg), "state_dict": sd, **(extra or {})}, staging)
    os.replace(staging, target)
    return state_digest(sd)


def state_digest(sd: dict[str, torch.Tensor]) -> str:
    """sha256 over names, dtypes, shapes and bytes: equal digests mean bit-identical weights."""
    h = hashlib.sha256()
    for key in sorted(sd):
        t = sd[key].detach().cpu().contiguous()
        h.update(f"{key}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _atomic_write(path: Path, text: str) -> None:
    staging = path.with_name(path.name + ".tmp")
    staging.write_text(text)
    os.replace(staging, path)


def _barrier() -> None:
    if dist.is_initialized():
        dist.barrier()
