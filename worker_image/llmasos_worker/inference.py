"""Batched text generation, data-parallel across ranks (and tensor-parallel within a replica if asked).

Why buckets instead of padding: the built-in model has no attention mask, so prompts are grouped by token length
and each bucket is generated as one batch; results are exactly what one prompt alone would produce.
Throughput is new tokens over the slowest rank's wall time, the number an operator can compare across GPUs.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from llmasos.api.worker_contract import EXIT_OK
from llmasos_worker.corpus import CORPUS
from llmasos_worker.distributed import apply_tensor_parallel, init_groups, layout_from_env, shutdown
from llmasos_worker.job_count import JobCounter, job_store
from llmasos_worker.loading import Tokenizer, load_model
from llmasos_worker.runtime import RunContext, emit

DEFAULT_PROMPTS = 8


def default_prompts(count: int = DEFAULT_PROMPTS) -> list[str]:
    """Opening words of the corpus' sentences: in-distribution prompts for the built-in models."""
    sentences = [s.strip().replace("\n", " ") for s in CORPUS.split(".") if len(s.strip()) > 20]
    return [" ".join(s.split()[:4]) + " " for s in sentences[:count]]


@torch.no_grad()
def generate(model: nn.Module, prompts: list[torch.Tensor], max_new_tokens: int, seq_len: int,
             device: torch.device, temperature: float = 0.0, seed: int = 0,
             on_tokens: Callable[[int], None] | None = None) -> list[list[int]]:
    """New tokens for each prompt (same order); greedy when temperature is 0. `on_tokens` hears how many new
    tokens each decoding step made (one per prompt of the batch)."""
    model.eval()
    gen = torch.Generator(device=device).manual_seed(seed)
    out: list[list[int]] = [[] for _ in prompts]
    buckets: dict[int, list[int]] = defaultdict(list)
    for i, p in enumerate(prompts):
        buckets[len(p)].append(i)
    for idx in buckets.values():
        seqs = torch.stack([prompts[i] for i in idx]).to(device)
        for _ in range(max_new_tokens):
            logits = model(seqs[:, -seq_len:])[:, -1, :].float()
            if temperature > 0:
                probs = torch.softmax(logits / temperature, dim=-1)
                nxt = torch.multinomial(probs, 1, generator=gen)
            else:
                nxt = logits.argmax(dim=-1, keepdim=True)
            seqs = torch.cat([seqs, nxt], dim=1)
            if on_tokens is not None:
                on_tokens(len(idx))
        for row, i in enumerate(idx):
            out[i] = seqs[row, -max_new_tokens:].tolist()
    return out


def complete(model: nn.Module, tokenizer: Tokenizer, prompts: list[str], max_new_tokens: int, seq_len: int,
             device: torch.device, temperature: float = 0.0, seed: int = 0,
             on_tokens: Callable[[int], None] | None = None) -> tuple[list[str], int]:
    """(completions, new tokens) for text prompts."""
    encoded = [tokenizer.encode(p) if p else tokenizer.encode(" ") for p in prompts]
    new = generate(model, encoded, max_new_tokens, seq_len, device, temperature, seed, on_tokens)
    return [tokenizer.decode(t) for t in new], sum(len(t) for t in new)


def run_inference(ctx: RunContext) -> int:
    env, cfg = ctx.env, ctx.cfg
    layout = layout_from_env(env)
    loaded = load_model(env.model_builtin, env.model_path, dict(cfg.model), cfg.seed)
    prompts = list(cfg.prompts) or default_prompts()
    mine = prompts[layout.dp_rank :: layout.dp]
    groups = init_groups(env, layout)
    try:
        model = loaded.module.to(layout.device)
        if layout.tp > 1:
            assert groups.mesh is not None
            apply_tensor_parallel(model, groups.mesh)
        # Progress counts the job's new tokens: every prompt gets exactly max_new_tokens. One rank per replica
        # adds its tokens; every rank reads the job's total (job_count.py), so each pod exports the job's count.
        planned = len(prompts) * cfg.max_new_tokens
        ctx.progress.plan(planned)
        counter = JobCounter(job_store(), lambda total: ctx.progress.update(total, total))
        own = layout.tp_rank == 0
        counter.flush()  # a first reading at 0, so the pace is known from the first batched add on
        t0 = time.perf_counter()
        texts, new_tokens = complete(model, loaded.tokenizer, mine, cfg.max_new_tokens, loaded.seq_len,
                                     layout.device, cfg.temperature, cfg.seed + layout.dp_rank,
                                     lambda n: counter.add(n if own else 0))
        elapsed = time.perf_counter() - t0
        counter.flush()
        gathered: list[Any] = [None] * layout.world_size
        if layout.world_size > 1:
            dist.all_gather_object(gathered, (layout.dp_rank, layout.tp_rank, texts, new_tokens, elapsed))
        else:
            gathered = [(0, 0, texts, new_tokens, elapsed)]
        replicas = [g for g in gathered if g[1] == 0]  # one entry per model replica (its first tensor-parallel rank)
        total = sum(g[3] for g in replicas)
        # Every pod exports the job's count, as training does (the operator takes the largest pod's, never a sum).
        ctx.progress.update(total, total)
        if layout.rank == 0:
            completions: list[str] = [""] * len(prompts)
            for dp_rank, _, replica_texts, _, _ in replicas:
                for j, text in enumerate(replica_texts):
                    completions[dp_rank + j * layout.dp] = text
            slowest = max(g[4] for g in replicas)
            result = {"task": "inference", "strategy": env.strategy, "prompts": len(prompts), "new_tokens": total,
                      "seconds": slowest, "tokens_per_second": total / slowest if slowest > 0 else 0.0,
                      "completions": [{"prompt": p, "completion": c} for p, c in zip(prompts, completions,
                                                                                     strict=True)]}
            emit("done", **result)
            ctx.write_result(result)
        return EXIT_OK
    finally:
        shutdown()
