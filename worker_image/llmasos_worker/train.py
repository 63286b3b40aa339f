"""The train/finetune task: deterministic steps, periodic and SIGTERM checkpoints, export of the final model.

Why the loop is this plain: every decision that could differ between an interrupted and an uninterrupted run
(batch, dropout seed, learning rate) is a function of the step number alone, and the only state carried across
steps is the model and optimizer, which the checkpoint holds. A finished job re-run on the same volume finds its
final checkpoint and exits at once, so the operator may restart pods freely.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from llmasos.api.worker_contract import EXIT_OK, EXIT_SUSPENDED
from llmasos_worker.checkpoint import Checkpointer, export_model, save_model
from llmasos_worker.config import HF_LAYOUT_ERROR, ConfigError
from llmasos_worker.data import Corpus, replica_batch
from llmasos_worker.distributed import StopVote, init_groups, layout_from_env, shutdown
from llmasos_worker.engine import Engine, LossReading, StepOptions
from llmasos_worker.evaluate import perplexity
from llmasos_worker.loading import HFCausalLM, LoadedModel, load_model
from llmasos_worker.model import GPT, param_count
from llmasos_worker.progress import NoEnergy, energy_meter
from llmasos_worker.runtime import RunContext, emit


def seed_device(device: torch.device, seed: int) -> None:
    """Reseed only the generator dropout draws from on ``device`` (torch.manual_seed costs ~90 us: all devices)."""
    if device.type == "cuda":
        torch.cuda.default_generators[device.index or 0].manual_seed(seed)
    else:
        torch.default_generator.manual_seed(seed)


def learning_rate(step: int, base: float, warmup: int, total: int) -> float:
    """Linear warmup then cosine decay to 10% -- a pure function of the step, so resume needs no scheduler state."""
    if warmup and step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return base * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def run_train(ctx: RunContext) -> int:
    env, cfg = ctx.env, ctx.cfg
    layout = layout_from_env(env)
    loaded = load_model(env.model_builtin, env.model_path, dict(cfg.model), cfg.seed)
    if not isinstance(loaded.module, GPT) and (layout.tp > 1 or layout.pp > 1):
        raise ConfigError(HF_LAYOUT_ERROR)
    model_cfg = loaded.config
    if model_cfg is not None and (model_cfg.n_head % layout.tp or model_cfg.d_ff % layout.tp
                                  or model_cfg.n_layer < layout.pp):
        raise ConfigError(f"model {loaded.source} (n_head={model_cfg.n_head}, n_layer={model_cfg.n_layer}) "
                          f"cannot be cut into tensor={layout.tp} x pipeline={layout.pp}")
    corpus = Corpus.load(cfg.corpus_path, loaded.tokenizer.encode)
    seq_len = loaded.seq_len if not cfg.seq_len else min(cfg.seq_len, loaded.seq_len)
    groups = init_groups(env, layout)
    try:
        options = StepOptions.resolve(cfg.compile, cfg.fused_adamw, cfg.cuda_graphs, layout.device, layout.tp,
                                      layout.pp)
        engine = Engine(loaded.module, layout, groups, lr=cfg.lr, weight_decay=cfg.weight_decay,  # type: ignore[arg-type]
                        microbatches=cfg.microbatches, precision=cfg.precision, options=options)
        ckpt = Checkpointer(ctx.checkpoint_dir, cfg.keep_checkpoints, layout.rank) if ctx.checkpoint_dir else None
        start = ckpt.load(engine.wrapped, engine.optimizer) if ckpt else 0
        tokens_per_step = cfg.batch_size * seq_len
        if layout.rank == 0:
            emit("start", task=env.task, strategy=env.strategy, world_size=layout.world_size, dp=layout.dp,
                 tp=layout.tp, pp=layout.pp, device=str(layout.device), bf16=engine.bf16, model=loaded.source,
                 parameters=param_count(loaded.module), resumed_from=start, steps=cfg.steps,
                 options=asdict(options), threads=ctx.threads)
        ctx.progress.plan(cfg.steps)
        ctx.progress.update(start, start * tokens_per_step)
        saved = start
        losses = LossLog(layout.is_logger)
        # Energy of this node's GPUs over the steady loop (local rank 0 reads NVML; nothing on CPU).
        meter = energy_meter() if layout.device.type == "cuda" and layout.local_rank == 0 else NoEnergy()
        joules_at_warm = cpu_at_warm = 0.0
        t0 = time.perf_counter()
        warm: float | None = None  # end of this run's first step: excludes one-time set-up from steady throughput
        check = StopCheck(cfg.stop_check_seconds, start, t0)
        vote: StopVote | None = None
        for step in range(start, cfg.steps):
            if step == check.next_step:
                # Read the vote started at the previous check, start the next one.
                stop, interval = vote.result() if vote is not None else (False, 1)
                if stop:
                    losses.flush()
                    return _suspend(ctx, ckpt, engine, step, saved)
                vote = StopVote(ctx.stop.is_set(), check.propose(step, time.perf_counter()), layout.device,
                                groups.control)
                check.next_step = step + interval
            x, y = replica_batch(corpus.train, cfg.seed, step, cfg.batch_size, seq_len, layout.dp_rank, layout.dp)
            x, y = x.to(layout.device, non_blocking=True), y.to(layout.device, non_blocking=True)
            # Dropout masks: a function of (seed, step, replica, stage); tensor shards of one replica must agree.
            seed_device(layout.device, cfg.seed * 7919 + step * 1009 + layout.dp_rank * 31 + layout.pp_rank)
            lr = learning_rate(step, cfg.lr, cfg.warmup_steps, cfg.steps)
            loss = engine.step(x, y, lr)
            done = step + 1
            if done % cfg.log_every == 0 or done == cfg.steps:
                losses.report(done, lr, engine.reduce_loss(loss))
            ctx.progress.update(done, done * tokens_per_step, losses.last)
            if ckpt and cfg.checkpoint_every and done % cfg.checkpoint_every == 0 and done < cfg.steps:
                ckpt.save(done, engine.wrapped, engine.optimizer, _meta(ctx))
                saved = done
            if warm is None:
                if layout.device.type == "cuda":
                    torch.cuda.synchronize(layout.device)
                warm, cpu_at_warm = time.perf_counter(), time.process_time()
                joules_at_warm = sum(meter.joules().values())
        losses.flush()
        if vote is not None:
            vote.result()  # every rank started it; finish it before the group goes (a late SIGTERM: we are done)
        end, cpu_end = time.perf_counter(), time.process_time()
        joules = sum(meter.joules().values()) - joules_at_warm
        elapsed, ran = end - t0, cfg.steps - start
        result: dict[str, Any] = {
            "task": env.task, "steps": cfg.steps, "resumed_from": start, "final_loss": losses.last,
            "tokens": ran * tokens_per_step, "seconds": elapsed,
            "tokens_per_second": ran * tokens_per_step / elapsed if elapsed > 0 else 0.0,
            "steady_tokens_per_second": (ran - 1) * tokens_per_step / (end - warm) if warm and ran > 1 else None,
            # CPU seconds of this process (all its threads) over the same steps: robust to other tenants.
            "steady_cpu_seconds": cpu_end - cpu_at_warm if warm else None,
        }
        if joules > 0 and ran > 1:
            # This node's GPUs did this node's share of the global batch.
            node_tokens = (ran - 1) * tokens_per_step * env.nproc_per_node / env.world_size
            result.update(gpu_joules=joules, joules_per_token=joules / node_tokens)
        final = None
        if ckpt is not None:
            final = ckpt.save(cfg.steps, engine.wrapped, engine.optimizer, _meta(ctx)) if saved < cfg.steps \
                else ckpt.latest()
        if layout.rank == 0:
            whole = layout.tp == 1 and layout.pp == 1
            result.update(_finish(ctx, loaded, final, whole, corpus.val, seq_len))
            emit("done", **result)
            ctx.write_result(result)
        return EXIT_OK
    finally:
        shutdown()


def _finish(ctx: RunContext, loaded: LoadedModel, final: Path | None, whole: bool, val: torch.Tensor,
            seq_len: int) -> dict[str, Any]:
    """Rank 0: export the trained model and measure its held-out perplexity.

    Under pure data parallelism rank 0 holds a full replica (identical on every rank), which is saved directly;
    sharded layouts are read back from the final checkpoint into one unsharded model.
    """
    out, module, model_cfg = ctx.output_dir, loaded.module, loaded.config
    result: dict[str, Any] = {}
    full: torch.nn.Module | None = module if whole else None
    if out is not None and isinstance(module, HFCausalLM):
        module.save(out / "hf-model", loaded.tokenizer)
        result["model_path"] = str(out / "hf-model")
    elif out is not None and model_cfg is not None and (final is not None or whole):
        if whole:
            result["digest"] = save_model(module, model_cfg, out / "model.pt")
        elif final is not None:
            full = GPT(model_cfg)
            result["digest"] = export_model(final, full, model_cfg, out / "model.pt")
        result["model_path"] = str(out / "model.pt")
    if full is not None:
        full.eval()
        # Eager: a compiled model would recompile for eval mode and no_grad, for a few batches.
        with torch.compiler.set_stance("force_eager"):
            ppl, eval_loss = perplexity(full, val, ctx.cfg.eval_batches, seq_len, next(full.parameters()).device)
        result.update(eval_loss=eval_loss, perplexity=ppl)
    return result


class LossLog:
    """Step losses reported one report late, so that no step waits for the loss all-reduce.

    ``report`` starts nothing itself: it is handed a reduction already under way and first finishes the previous
    one (done long ago, a report or more earlier), printing it on the logging rank. ``flush`` finishes the last
    one before a suspension or the end, so every reported step's loss is printed exactly once.
    """

    def __init__(self, is_logger: bool) -> None:
        self.is_logger = is_logger
        self.last: float | None = None
        self._pending: tuple[int, float, LossReading] | None = None

    def report(self, step: int, lr: float, reading: LossReading) -> None:
        self.flush()
        self._pending = (step, lr, reading)

    def flush(self) -> None:
        if self._pending is None:
            return
        step, lr, reading = self._pending
        self._pending = None
        self.last = reading.value()
        if self.is_logger:
            emit("step", step=step, loss=self.last, lr=lr)


class StopCheck:
    """When the ranks next agree on "SIGTERM seen": about every ``seconds``, in whole steps.

    Why not every step: the agreement is a collective, and on small fast steps it costs more than the step's
    own communication (13% of CPU time for gpt-tiny on 2 CPU ranks when it blocked every step). Each rank
    proposes how many steps fit in ``seconds`` at its measured pace and the smallest proposal wins, so all ranks
    check at the same steps. A vote is read one check after it starts (:class:`StopVote`), so SIGTERM is honoured
    within about two ``seconds`` plus one step.
    """

    def __init__(self, seconds: float, step: int, now: float) -> None:
        self.seconds = seconds
        self.next_step = step
        self._step, self._time = step, now

    def propose(self, step: int, now: float) -> int:
        steps = step - self._step
        interval = 1
        if steps > 0 and self.seconds > 0 and now > self._time:
            interval = max(1, int(self.seconds * steps / (now - self._time)))
        self._step, self._time = step, now
        return interval


def _meta(ctx: RunContext) -> dict[str, object]:
    env = ctx.env
    return {"job": env.job_name, "dp": env.data_parallel, "tp": env.tensor_parallel, "pp": env.pipeline_parallel,
            "world_size": env.world_size, "seed": ctx.cfg.seed}


def _suspend(ctx: RunContext, ckpt: Checkpointer | None, engine: Engine, step: int, saved: int) -> int:
    """Every rank arrives here at the same step: save (unless nothing new), report, exit EXIT_SUSPENDED."""
    path = None
    if ckpt is not None and step > saved:
        path = ckpt.save(step, engine.wrapped, engine.optimizer, _meta(ctx))
    if ctx.rank == 0:
        since = ctx.stop.signal_time
        emit("suspended", step=step, checkpoint=str(path) if path else None,
             checkpoint_seconds=None if since is None else time.monotonic() - since,
             note=None if ckpt is not None else "no checkpoint directory: progress since start is lost")
    return EXIT_SUSPENDED
