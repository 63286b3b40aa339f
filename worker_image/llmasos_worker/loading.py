"""Where a model comes from: a built-in preset, a model.pt this worker wrote, or a local Hugging Face directory.

Why no hub: pods may have no egress and runs must be reproducible, so ``LLMASOS_MODEL_PATH`` must point at files
already on a volume. `transformers` (in the worker extra) is imported only when such a directory is given, and
only after the hub client has been told it is offline, so even a model whose config names remote code or a
missing file fails at once instead of reaching for the network. Every failure to read a model becomes a
:class:`ConfigError` naming the path, so the pod exits 2 with one clear line instead of a traceback.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from llmasos_worker.checkpoint import MODEL_FORMAT
from llmasos_worker.config import ConfigError, GPTConfig, model_config
from llmasos_worker.data import decode, encode
from llmasos_worker.model import GPT, build_model


class Tokenizer(Protocol):
    vocab_size: int

    def encode(self, text: str) -> torch.Tensor: ...

    def decode(self, tokens: list[int]) -> str: ...


class ByteTokenizer:
    vocab_size = 256

    def encode(self, text: str) -> torch.Tensor:
        return encode(text)

    def decode(self, tokens: list[int]) -> str:
        return decode(tokens)


class HFTokenizer:
    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.vocab_size = len(inner)

    def encode(self, text: str) -> torch.Tensor:
        return torch.tensor(self.inner.encode(text), dtype=torch.long)

    def decode(self, tokens: list[int]) -> str:
        return str(self.inner.decode(tokens))


class HFCausalLM(nn.Module):
    """Adapts a transformers causal LM to the built-in interface: token ids -> logits."""

    def __init__(self, inner: nn.Module, seq_len: int) -> None:
        super().__init__()
        self.inner = inner
        self.seq_len = seq_len

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # No KV cache: training never reuses it and generation here re-runs the window (as for the built-in model).
        out: torch.Tensor = self.inner(input_ids=x, use_cache=False).logits
        return out

    def save(self, directory: Path, tokenizer: Tokenizer) -> None:
        """``save_pretrained`` of the model, and of its tokenizer when it has one, so the copy serves alike."""
        self.inner.save_pretrained(str(directory))  # type: ignore[operator]
        if isinstance(tokenizer, HFTokenizer):
            tokenizer.inner.save_pretrained(str(directory))


@dataclass
class LoadedModel:
    module: nn.Module
    config: GPTConfig | None  # None for Hugging Face models
    tokenizer: Tokenizer
    seq_len: int
    source: str

    @property
    def builtin(self) -> bool:
        return self.config is not None


def load_model(builtin: str, path: str, overrides: dict[str, Any], seed: int) -> LoadedModel:
    """The model the job names; ``path`` wins over ``builtin``; new built-in models start from ``seed``."""
    if not path:
        cfg = model_config(builtin, overrides)
        return LoadedModel(build_model(cfg, seed), cfg, ByteTokenizer(), cfg.seq_len, builtin or "gpt-tiny")
    p = Path(path)
    if p.is_dir():
        if (p / "model.pt").is_file():
            return _load_file(p / "model.pt")
        if (p / "config.json").is_file():
            return _load_hf(p)
        raise ConfigError(f"LLMASOS_MODEL_PATH={path!r} holds neither model.pt nor a Hugging Face config.json")
    return _load_file(p)


def _load_file(path: Path) -> LoadedModel:
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises pickle, zip and runtime errors alike for a bad file
        raise ConfigError(f"LLMASOS_MODEL_PATH={str(path)!r} is not a readable model file: {exc}") from None
    if not isinstance(blob, dict) or blob.get("format") != MODEL_FORMAT:
        raise ConfigError(f"LLMASOS_MODEL_PATH={str(path)!r} is not an {MODEL_FORMAT} model file")
    known = {f.name for f in fields(GPTConfig)}
    cfg = GPTConfig(**{k: v for k, v in blob["config"].items() if k in known})
    model = GPT(cfg)
    if blob.get("quantization") == "int8-dynamic":
        from llmasos_worker.quantize import quantize_int8

        quantize_int8(model)
    try:
        model.load_state_dict(blob["state_dict"])
    except RuntimeError as exc:
        raise ConfigError(f"LLMASOS_MODEL_PATH={str(path)!r} does not match its own config: {exc}") from None
    return LoadedModel(model, cfg, ByteTokenizer(), cfg.seq_len, str(path))


def _load_hf(path: Path) -> LoadedModel:
    # Read by huggingface_hub when it is imported: no request leaves the pod, whatever the model's files say.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    try:
        transformers = importlib.import_module("transformers")
    except ImportError:
        raise ConfigError(
            f"LLMASOS_MODEL_PATH={str(path)!r} is a Hugging Face model but the image lacks `transformers`; "
            "install the worker extra in the image"
        ) from None
    try:
        inner = transformers.AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True)
        tok: Tokenizer = (
            HFTokenizer(transformers.AutoTokenizer.from_pretrained(str(path), local_files_only=True))
            if any(path.glob("tokenizer*")) else ByteTokenizer()
        )
    except (OSError, ValueError) as exc:
        raise ConfigError(f"LLMASOS_MODEL_PATH={str(path)!r} could not be loaded by transformers: {exc}") from None
    seq_len = int(getattr(inner.config, "max_position_embeddings", 0) or getattr(inner.config, "n_positions", 512))
    if tok.vocab_size > int(inner.config.vocab_size):
        raise ConfigError(f"tokenizer in {str(path)!r} has more tokens than the model's vocab_size")
    return LoadedModel(HFCausalLM(inner, seq_len), None, tok, seq_len, str(path))
