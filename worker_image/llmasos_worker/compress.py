"""The compress task: int8 quantization, magnitude and structured pruning, and knowledge distillation.

Why these four: they are the cheap, framework-free ways to cut the energy a served model spends per token, and
each trades quality differently, so every method is reported with the same before/after numbers (size, latency,
perplexity, energy per token) and written as its own loadable model file next to the original.

Distillation loss, per token: ``alpha * CE(student, labels) + (1 - alpha) * T^2 * KL(softmax(t/T) || softmax(s/T))``.
The T^2 factor (Hinton et al., 2015) keeps the soft term's gradient scale independent of T, so alpha means the
same thing at every temperature.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from llmasos.api.worker_contract import EXIT_OK
from llmasos_worker.checkpoint import save_model
from llmasos_worker.config import HF_COMPRESS_ERROR, ConfigError, GPTConfig, model_config
from llmasos_worker.data import Corpus, global_batch
from llmasos_worker.engine import lm_loss
from llmasos_worker.evaluate import measure_speed, nonzero_parameters, perplexity, serialized_bytes, sparse_bytes
from llmasos_worker.loading import load_model
from llmasos_worker.model import GPT, MLP, build_model, param_count
from llmasos_worker.progress import energy_meter
from llmasos_worker.quantize import quantize_int8
from llmasos_worker.runtime import RunContext, emit


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor, targets: torch.Tensor, alpha: float,
                      temperature: float) -> torch.Tensor:
    """alpha x hard + (1 - alpha) x T^2 x soft, averaged over tokens."""
    s = student.flatten(0, 1).float()
    t = teacher.flatten(0, 1).float()
    hard = F.cross_entropy(s, targets.flatten())
    soft = F.kl_div(F.log_softmax(s / temperature, dim=-1), F.log_softmax(t / temperature, dim=-1),
                    reduction="batchmean", log_target=True)
    return alpha * hard + (1 - alpha) * temperature**2 * soft


def prune_magnitude(model: nn.Module, sparsity: float) -> nn.Module:
    """Global unstructured pruning: zero the ``sparsity`` fraction of linear weights with the smallest |w|."""
    weights = [m.weight for m in model.modules() if isinstance(m, nn.Linear)]
    if not weights or sparsity == 0:
        return model
    flat = torch.cat([w.detach().abs().flatten() for w in weights])
    k = int(sparsity * flat.numel())
    if k == 0:
        return model
    threshold = flat.kthvalue(k).values
    with torch.no_grad():
        for w in weights:
            w.mul_((w.abs() > threshold).to(w.dtype))
    return model


def prune_structured(model: GPT, sparsity: float) -> GPT:
    """Remove the ``sparsity`` fraction of MLP hidden units per layer (lowest ||fc1 row|| x ||fc2 column||).

    The result is a genuinely smaller dense model: ``d_ff`` shrinks in its config and in every layer.
    """
    keep = max(1, round(model.cfg.d_ff * (1 - sparsity)))
    cfg = replace(model.cfg, d_ff=keep)
    with torch.no_grad():
        for block in model.layers.values():
            mlp = block.mlp
            assert isinstance(mlp, MLP)
            score = mlp.fc1.weight.norm(dim=1) * mlp.fc2.weight.norm(dim=0)
            idx = score.topk(keep).indices.sort().values
            small = MLP(cfg)
            small.fc1.weight.copy_(mlp.fc1.weight[idx])
            small.fc1.bias.copy_(mlp.fc1.bias[idx])
            small.fc2.weight.copy_(mlp.fc2.weight[:, idx])
            small.fc2.bias.copy_(mlp.fc2.bias)
            block.mlp = small
    model.cfg = cfg
    return model


StepDone = Callable[[int], None]  # called after each optimizer step with the tokens it trained on


def _no_count(tokens: int) -> None:
    del tokens


def distill(teacher: nn.Module, student: GPT, corpus: Corpus, *, steps: int, batch: int, lr: float, alpha: float,
            temperature: float, seed: int, device: torch.device, on_step: StepDone = _no_count) -> GPT:
    teacher.eval()
    student.to(device).train()
    opt = torch.optim.AdamW(student.parameters(), lr=lr)
    seq = student.cfg.seq_len
    for step in range(steps):
        x, y = global_batch(corpus.train, seed, step, batch, seq)
        x, y = x.to(device), y.to(device)
        with torch.no_grad():
            t_logits = teacher(x)
        loss = distillation_loss(student(x), t_logits, y, alpha, temperature)
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
        opt.zero_grad(set_to_none=True)
        on_step(x.numel())
    return student.eval()


def pretrain(model: GPT, corpus: Corpus, *, steps: int, batch: int, lr: float, seed: int,
             device: torch.device, on_step: StepDone = _no_count) -> GPT:
    """Plain next-token training on one device: the teacher when the job names a built-in model but no file."""
    model.to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    for step in range(steps):
        x, y = global_batch(corpus.train, seed, step, batch, model.cfg.seq_len)
        loss = lm_loss(model(x.to(device)), y.to(device))
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
        opt.zero_grad(set_to_none=True)
        on_step(x.numel())
    return model.eval()


def student_config(teacher: GPTConfig, overrides: dict[str, Any]) -> GPTConfig:
    """Half the width of the teacher unless the job says otherwise."""
    base = replace(teacher, d_model=max(teacher.n_head, teacher.d_model // 2), d_ff=max(1, teacher.d_ff // 2))
    known = asdict(base)
    unknown = sorted(set(overrides) - set(known))
    if unknown:
        raise ConfigError(f"student overrides {unknown} unknown; known: {sorted(known)}")
    cfg = replace(base, **overrides)
    cfg.check()
    return cfg


def _report(model: nn.Module, corpus: Corpus, seq_len: int, eval_batches: int, device: torch.device) -> dict[str, Any]:
    model.eval()
    ppl, loss = perplexity(model, corpus.val, eval_batches, seq_len, device)
    speed = measure_speed(model, seq_len, device, energy=energy_meter() if device.type == "cuda" else None)
    return {"parameters": param_count(model) + sum(b.numel() for b in model.buffers()),
            "nonzero_parameters": nonzero_parameters(model), "bytes": serialized_bytes(model),
            "sparse_bytes": sparse_bytes(model), "perplexity": ppl, "eval_loss": loss,
            "latency_ms": speed.latency_ms, "tokens_per_second": speed.tokens_per_second,
            "joules_per_token": speed.joules_per_token}


class StepCount:
    """The job's progress: optimizer steps of the pre-training (without a model file) and the distillation, of those
    planned, with the tokens they trained on. Evaluations and the other methods take no step, so the count waits
    while they run (and the remaining time, at the pace of the last steps, leaves them out)."""

    def __init__(self, ctx: RunContext, planned: int) -> None:
        self.progress, self.steps, self.tokens = ctx.progress, 0, 0
        if planned >= 1:
            self.progress.plan(planned)

    def __call__(self, tokens: int) -> None:
        self.steps, self.tokens = self.steps + 1, self.tokens + tokens
        self.progress.update(self.steps, self.tokens)


def run_compress(ctx: RunContext) -> int:
    env, cfg = ctx.env, ctx.cfg
    loaded = load_model(env.model_builtin, env.model_path, dict(cfg.model), cfg.seed)
    if not isinstance(loaded.module, GPT) or loaded.config is None:
        raise ConfigError(HF_COMPRESS_ERROR)
    teacher, base_cfg = loaded.module, loaded.config
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cpu":
        torch.set_num_threads(max(1, torch.get_num_threads()))
    teacher.to(device)
    corpus = Corpus.load(cfg.corpus_path)
    count = StepCount(ctx, (0 if env.model_path else cfg.steps)
                      + (cfg.distill_steps if "distill" in cfg.method else 0))
    if not env.model_path:
        # No model file: compressing random weights would measure nothing, so train the built-in model first.
        pretrain(teacher, corpus, steps=cfg.steps, batch=cfg.batch_size, lr=cfg.lr, seed=cfg.seed, device=device,
                 on_step=count)
        emit("pretrained", model=loaded.source, steps=cfg.steps)
    seq = base_cfg.seq_len if not cfg.seq_len else min(cfg.seq_len, base_cfg.seq_len)
    before = _report(teacher, corpus, seq, cfg.eval_batches, device)
    emit("baseline", **before)
    out = ctx.output_dir
    results: dict[str, Any] = {"task": "compress", "model": loaded.source, "before": before, "methods": {}}
    for method in cfg.method:
        extra: dict[str, object] = {}
        if method == "quantize":
            model: nn.Module = quantize_int8(copy.deepcopy(teacher).cpu()).to(device)
            new_cfg, extra = base_cfg, {"quantization": "int8-dynamic"}
        elif method == "prune_magnitude":
            model, new_cfg = prune_magnitude(copy.deepcopy(teacher), cfg.sparsity), base_cfg
        elif method == "prune_structured":
            pruned = prune_structured(copy.deepcopy(teacher), cfg.sparsity)
            model, new_cfg = pruned, pruned.cfg
        else:
            new_cfg = student_config(base_cfg, dict(cfg.student))
            model = distill(teacher, build_model(new_cfg, cfg.seed + 1), corpus, steps=cfg.distill_steps,
                            batch=cfg.batch_size, lr=cfg.lr, alpha=cfg.alpha, temperature=cfg.distill_temperature,
                            seed=cfg.seed + 1, device=device, on_step=count)
        after = _report(model, corpus, seq, cfg.eval_batches, device)
        after["perplexity_ratio"] = after["perplexity"] / before["perplexity"]
        after["size_ratio"] = min(after["bytes"], after["sparse_bytes"]) / before["bytes"]
        if out is not None:
            after["model_path"] = str(out / f"model-{method}.pt")
            save_model(model, new_cfg, Path(after["model_path"]), extra)
        results["methods"][method] = after
        emit("compressed", method=method, **after)
    emit("done", **{k: v for k, v in results.items() if k != "methods"}, methods=sorted(results["methods"]))
    ctx.write_result(results)
    return EXIT_OK


__all__ = ["distillation_loss", "model_config", "prune_magnitude", "prune_structured", "run_compress"]
