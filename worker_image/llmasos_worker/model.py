"""The built-in decoder-only transformer (``gpt-tiny``, ``gpt-small``), shaped so every parallel layout can cut it.

Why the unusual structure: layers live in a ``ModuleDict`` keyed by index and the embedding/head may be ``None``,
so a pipeline stage deletes what it does not own and keeps the full model's parameter names (checkpoints stay
layout-independent); attention infers its local head count from the projection width, so a column-sharded
``wq/wk/wv`` under tensor parallelism runs the same code on fewer heads. No weight tying, because the embedding and
the head live on different pipeline stages.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn

from llmasos_worker.config import GPTConfig


class Attention(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.head_dim = cfg.d_model // cfg.n_head
        self.dropout = cfg.dropout
        self.wq = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.wk = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.wv = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.wo = nn.Linear(cfg.d_model, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        # -1 heads: under tensor parallelism each rank sees n_head / tp of them.
        q = self.wq(x).view(b, t, -1, self.head_dim).transpose(1, 2)
        k = self.wk(x).view(b, t, -1, self.head_dim).transpose(1, 2)
        v = self.wv(x).view(b, t, -1, self.head_dim).transpose(1, 2)
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=p)
        out: torch.Tensor = self.wo(y.transpose(1, 2).reshape(b, t, -1))
        return out


class MLP(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.fc1 = nn.Linear(cfg.d_model, cfg.d_ff)
        self.fc2 = nn.Linear(cfg.d_ff, cfg.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.fc2(F.gelu(self.fc1(x)))
        return out


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.attn = Attention(cfg)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.mlp = MLP(cfg)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.attn(self.ln1(x)))
        out: torch.Tensor = x + self.drop(self.mlp(self.ln2(x)))
        return out


class GPT(nn.Module):
    """Token ids (B, T) -> logits (B, T, vocab); a pipeline stage maps its input activations to its output."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.tok_emb: nn.Embedding | None = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos_emb: nn.Embedding | None = nn.Embedding(cfg.seq_len, cfg.d_model)
        self.layers = nn.ModuleDict({str(i): Block(cfg) for i in range(cfg.n_layer)})
        self.ln_f: nn.LayerNorm | None = nn.LayerNorm(cfg.d_model)
        self.head: nn.Linear | None = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.apply(_init_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        if self.tok_emb is not None and self.pos_emb is not None:
            pos = torch.arange(x.shape[1], device=x.device)
            h = self.tok_emb(x) + self.pos_emb(pos)
        for layer in self.layers.values():
            h = layer(h)
        if self.ln_f is not None:
            h = self.ln_f(h)
        if self.head is not None:
            h = self.head(h)
        return h

    def keep_stage(self, stage: int, stages: int) -> None:
        """Delete everything pipeline stage ``stage`` of ``stages`` does not own (layers split as evenly as
        possible: 6 layers over 4 stages -> 1, 2, 1, 2)."""
        lo, hi = stage_bounds(self.cfg.n_layer, stages)[stage]
        owned = {str(i) for i in range(lo, hi)}
        for name in [n for n in self.layers if n not in owned]:
            del self.layers[name]
        if stage > 0:
            self.tok_emb = None
            self.pos_emb = None
        if stage < stages - 1:
            self.ln_f = None
            self.head = None


def stage_bounds(layers: int, stages: int) -> list[tuple[int, int]]:
    """[start, end) layer range of each pipeline stage; every stage gets floor or ceil of layers / stages."""
    cuts = [s * layers // stages for s in range(stages + 1)]
    return list(itertools.pairwise(cuts))


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)


def build_model(cfg: GPTConfig, seed: int) -> GPT:
    """The same seed gives the same weights on every rank and every layout (built on CPU, then moved)."""
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        return GPT(cfg)
    finally:
        torch.random.set_rng_state(generator_state)


def param_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
