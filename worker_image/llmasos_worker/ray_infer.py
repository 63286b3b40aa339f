"""Distributed batch inference over a Ray cluster: one model replica per actor, prompts spread across them.

Why actors rather than ray.data: the model is loaded once per actor and reused for every batch, the weights travel
once through the object store (no shared volume needed on Ray worker nodes), and there is no dependency on
pandas/pyarrow. The driver is this process: it joins the cluster named by RAY_ADDRESS, or the one `ray start`
launched on this node (the operator's Ray head pod runs ``ray start --head && exec llmasos-worker``), or else
starts a small private local cluster -- which is how tests run it. With ``ray_actors`` 0 (the default) there is
one actor per GPU of the cluster, or 2 CPU actors when it has none.
Throughput counts only generation (actors are started and warm before the clock starts).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from llmasos.api.worker_contract import EXIT_OK, WorkerEnv
from llmasos_worker.config import TaskConfig
from llmasos_worker.inference import default_prompts
from llmasos_worker.progress import Progress, ProgressServer
from llmasos_worker.runtime import emit, end_progress, exit_on_signal, serve_progress

LOCAL_OBJECT_STORE_BYTES = 128 * 1024 * 1024
LOCAL_DEFAULT_ACTORS = 2
PROGRESS_SECONDS = 0.5  # how often the driver asks the actors how many tokens they have made
RAY_CURRENT_CLUSTER = Path("/tmp/ray/ray_current_cluster")  # written by `ray start` (the operator's head pod)


def cluster_address() -> str | None:
    """RAY_ADDRESS if set; "auto" when `ray start` ran on this node; None to start a private local cluster."""
    if os.environ.get("RAY_ADDRESS"):
        return os.environ["RAY_ADDRESS"]
    return "auto" if RAY_CURRENT_CLUSTER.is_file() else None


class _Replica:
    """Body of the Ray actor (wrapped with ray.remote at run time so importing this module needs no ray)."""

    def __init__(self, loaded: Any, threads: int) -> None:
        import torch

        torch.set_num_threads(max(1, threads))
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.loaded = loaded
        self.model = loaded.module.to(self.device)
        self.made = 0  # new tokens so far; read by `tokens_made` while `run` generates (a second actor thread)

    def ready(self) -> str:
        return str(self.device)

    def tokens_made(self) -> int:
        return self.made

    def run(self, prompts: list[str], max_new_tokens: int, temperature: float,
            seed: int) -> tuple[list[str], int, float]:
        from llmasos_worker.inference import complete

        def count(n: int) -> None:
            self.made += n

        t0 = time.perf_counter()
        texts, tokens = complete(self.model, self.loaded.tokenizer, prompts, max_new_tokens, self.loaded.seq_len,
                                 self.device, temperature, seed, count)
        return texts, tokens, time.perf_counter() - t0


def run_ray(env: WorkerEnv, cfg: TaskConfig) -> int:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no phone-home from pods
    exit_on_signal()  # ray.shutdown() in _drive's finally still runs
    progress = Progress()
    server = driver_endpoint(env, progress)
    code: int | None = None
    try:
        code = _drive(env, cfg, progress)
        return code
    finally:
        end_progress(server, progress, code)


def driver_endpoint(env: WorkerEnv, progress: Progress) -> ProgressServer | None:
    """The driver's progress endpoint: its pod exports the job's tokens (the pods that only joined the Ray cluster
    export none). `ray start` in the same pod picks some of its ports at random, so a port already taken costs the
    job its token count (a line on stderr says so), not its run."""
    try:
        return serve_progress(env, progress)
    except OSError as exc:
        print(f"llmasos-worker: no progress endpoint on port {env.progress_port} ({exc}); this job's tokens will not "
              "be reported", file=sys.stderr, flush=True)
        return None


def _drive(env: WorkerEnv, cfg: TaskConfig, progress: Progress) -> int:
    import ray

    from llmasos_worker.loading import load_model

    loaded = load_model(env.model_builtin, env.model_path, dict(cfg.model), cfg.seed)
    address = cluster_address()
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(num_cpus=cfg.ray_actors or LOCAL_DEFAULT_ACTORS, include_dashboard=False, log_to_driver=False,
                 object_store_memory=LOCAL_OBJECT_STORE_BYTES)
    try:
        gpus = int(ray.cluster_resources().get("GPU", 0.0))  # type: ignore[no-untyped-call]
        count = cfg.ray_actors or gpus or LOCAL_DEFAULT_ACTORS
        per_actor_gpu = 1.0 if gpus >= count else 0.0
        actor_cls: Any = ray.remote(num_cpus=1, num_gpus=per_actor_gpu)(_Replica)
        model_ref = ray.put(loaded)
        # Two threads per actor: `tokens_made` answers while `run` generates.
        actors: list[Any] = [actor_cls.options(max_concurrency=2).remote(model_ref, 1) for _ in range(count)]
        devices = ray.get([a.ready.remote() for a in actors])
        prompts = list(cfg.prompts) or default_prompts()
        shards = [prompts[i :: len(actors)] for i in range(len(actors))]
        t0 = time.perf_counter()
        jobs = [(i, a.run.remote(shard, cfg.max_new_tokens, cfg.temperature, cfg.seed + i))
                for i, (a, shard) in enumerate(zip(actors, shards, strict=True)) if shard]
        # The job's new tokens of those planned (every prompt gets exactly max_new_tokens), as the torch path counts.
        progress.plan(len(prompts) * cfg.max_new_tokens)
        progress.update(0, 0)
        pending = [future for _, future in jobs]
        while pending:
            _, pending = ray.wait(pending, num_returns=len(pending), timeout=PROGRESS_SECONDS)
            made = sum(ray.get([a.tokens_made.remote() for a in actors]))
            progress.update(made, made)
        results = ray.get([future for _, future in jobs])
        elapsed = time.perf_counter() - t0
        completions = [""] * len(prompts)
        for (i, _), (texts, _, _) in zip(jobs, results, strict=True):
            for j, text in enumerate(texts):
                completions[i + j * len(actors)] = text
        tokens = sum(r[1] for r in results)
        progress.update(tokens, tokens)
        result = {
            "task": "inference", "strategy": "ray", "actors": len(actors), "devices": devices,
            "prompts": len(prompts), "new_tokens": tokens, "seconds": elapsed,
            "tokens_per_second": tokens / elapsed if elapsed > 0 else 0.0,
            "actor_seconds": [r[2] for r in results],
            "completions": [{"prompt": p, "completion": c} for p, c in zip(prompts, completions, strict=True)],
        }
        emit("done", **result)
        out = cfg.output_dir or env.checkpoint_dir
        if out:
            Path(out).mkdir(parents=True, exist_ok=True)
            (Path(out) / "result.json").write_text(json.dumps(result, indent=2, sort_keys=True))
        return EXIT_OK
    finally:
        ray.shutdown()
