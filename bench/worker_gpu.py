"""Speed and energy of ``llmasos-worker`` training on one device: tokens/s, MFU, average power, joules per token.

Two configurations, each run through the real worker (``python -m llmasos_worker``, task train, strategy ddp):

- ``152m``: the 152 M-parameter GPT of issue #24 (d_model 1024, 12 layers, 16 heads, d_ff 4096, context 512,
  global batch 64);
- ``gpt-small``: the built-in preset (d_model 256, 6 layers, context 128), global batch 32 (gpu_check.py's).

and the speed switches of the task config (docs/worker.md): ``defaults`` (every switch ``auto``), ``eager``
(compile, fused AdamW and CUDA graphs all off), ``fused`` (fused AdamW only), ``compile`` (torch.compile only),
``compile+fused``, and ``cuda_graphs`` (compile mode reduce-overhead; gpt-small on CUDA only). Prints figures;
asserts nothing.

    .venv/bin/python bench/worker_gpu.py                          # on a GPU: both configurations, every variant
    .venv/bin/python bench/worker_gpu.py --configs gpt-small --variants eager,compile --repeats 2   # CPU

- **MFU** = achieved model FLOP/s / the device's dense bf16 peak (table below, by GPU catalog key; none on CPU).
  Model FLOPs per token, PaLM's (Chowdhery et al. 2022, appendix B) and nanoGPT's count:
  ``6 N + 12 L d T`` with N the parameters outside the embeddings (the tables are lookups, not matmuls; the head
  counts), L layers, d = d_model, T context: forward and backward of every weight, plus the attention scores and
  their values (full T x T, as in PaLM, although causal attention computes half).
- **Power**: NVML only, read-only (every NVML call that could change a setting is replaced by one that raises, in
  this process and in the worker, ``llmasos_worker.progress.refuse_nvml_writes``). Average power = the worker's
  energy over its steady steps (``nvmlDeviceGetTotalEnergyConsumption``) / their duration; J/token likewise. A
  ``nvmlDeviceGetPowerUsage`` sample mean over the run is printed beside it as a cross-check.
- **CPU**: runs too, with tiny steps (few steps, small batch and context) so it finishes in minutes: the figures
  then say how the switches behave on CPU, not what a GPU does. CPU-seconds per 1000 tokens of the worker process
  are printed for every run.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "operator"), str(ROOT / "worker_image")]

# Dense bf16 tensor-core peak per GPU (TFLOP/s, no sparsity), from NVIDIA's data sheets; keyed by the GPU catalog's
# product key (llmasos.gpus.products.normalize maps NVML names onto it). T4 and V100 have no bf16: fp16 peak.
PEAK_TFLOPS = {
    "nvidia-h200-141gb": 989.0, "nvidia-h100-80gb": 989.0, "nvidia-h100-pcie": 756.0,
    "nvidia-a100-80gb": 312.0, "nvidia-a100-40gb": 312.0, "nvidia-a100-80gb-pcie": 312.0,
    "nvidia-a100-40gb-pcie": 312.0, "nvidia-l4": 121.0, "nvidia-a40": 149.7, "nvidia-t4": 65.0,
    "nvidia-v100": 112.0, "nvidia-v100-sxm2": 125.0,
}


@dataclass(frozen=True)
class Shape:
    model: str
    overrides: dict[str, int]
    batch: int
    steps: int
    cpu_batch: int
    cpu_steps: int
    cpu_seq: int


CONFIGS = {
    "152m": Shape("gpt-small", {"d_model": 1024, "n_layer": 12, "n_head": 16, "d_ff": 4096, "seq_len": 512},
                  batch=64, steps=100, cpu_batch=2, cpu_steps=4, cpu_seq=128),
    "gpt-small": Shape("gpt-small", {}, batch=32, steps=200, cpu_batch=8, cpu_steps=16, cpu_seq=128),
}
VARIANTS = {
    "defaults": {},
    "eager": {"compile": False, "fused_adamw": False, "cuda_graphs": False},
    "fused": {"compile": False, "fused_adamw": True, "cuda_graphs": False},
    "compile": {"compile": True, "fused_adamw": False, "cuda_graphs": False},
    "compile+fused": {"compile": True, "fused_adamw": True, "cuda_graphs": False},
    "cuda_graphs": {"cuda_graphs": True, "fused_adamw": True},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def flops_per_token(cfg: Any, seq: int) -> tuple[float, int]:
    """(6 N + 12 L d T, N): N = parameters without the token and position embeddings."""
    from llmasos_worker.model import GPT, param_count

    model = GPT(cfg)
    embeddings = sum(p.numel() for m in (model.tok_emb, model.pos_emb) if m is not None for p in m.parameters())
    n = param_count(model) - embeddings
    return 6.0 * n + 12.0 * cfg.n_layer * cfg.d_model * seq, n


class PowerSampler:
    """Mean of nvmlDeviceGetPowerUsage over the visible GPUs' sum, sampled at 10 Hz (read-only NVML)."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        from llmasos_worker.progress import _import_nvml

        self._nvml = _import_nvml()  # write calls refused
        self._handles: list[Any] = []
        if self._nvml is not None:
            try:
                self._nvml.nvmlInit()
                self._handles = [self._nvml.nvmlDeviceGetHandleByIndex(i)
                                 for i in range(int(self._nvml.nvmlDeviceGetCount()))]
            except Exception:  # no driver or no GPU: no samples, said in the output
                self._handles = []

    def __enter__(self) -> PowerSampler:
        if self._handles:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        assert self._nvml is not None
        while not self._stop.wait(0.1):
            self.samples.append(sum(self._nvml.nvmlDeviceGetPowerUsage(h) for h in self._handles) / 1000.0)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def run_once(shape: Shape, variant: dict[str, bool], cuda: bool, steps: int | None, seq: int) -> dict[str, Any]:
    overrides = dict(shape.overrides)
    batch, n_steps = (shape.batch, shape.steps) if cuda else (shape.cpu_batch, shape.cpu_steps)
    if not cuda:
        overrides["seq_len"] = min(overrides.get("seq_len", shape.cpu_seq), shape.cpu_seq)
    n_steps = steps or n_steps
    out = tempfile.mkdtemp(prefix="llmasos-worker-gpu-")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMASOS_", "RANK", "LOCAL_RANK"))}
    env.update({
        "LLMASOS_TASK": "train", "LLMASOS_STRATEGY": "ddp", "NNODES": "1", "NPROC_PER_NODE": "1",
        "WORLD_SIZE": "1", "LLMASOS_DATA_PARALLEL": "1", "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(free_port()), "LLMASOS_MODEL_BUILTIN": shape.model, "LLMASOS_PROGRESS_PORT": "0",
        "LLMASOS_TASK_CONFIG": json.dumps({"steps": n_steps, "batch_size": batch, "log_every": 20, "lr": 1e-3,
                                           "model": overrides, "output_dir": out, "eval_batches": 1,
                                           **variant}),
        "PYTHONPATH": os.pathsep.join([str(ROOT / "worker_image"), str(ROOT / "operator"),
                                       env.get("PYTHONPATH", "")]),
    })
    with PowerSampler() as power:
        proc = subprocess.run([sys.executable, "-m", "llmasos_worker"], env=env, capture_output=True, text=True,
                              check=False)
    if proc.returncode != 0:
        raise SystemExit(f"worker failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    start = next(e for e in events if e["event"] == "start")
    done = next(e for e in events if e["event"] == "done")
    tps = done["steady_tokens_per_second"]
    steady_tokens = (n_steps - 1) * batch * seq
    return {"start": start, "done": done, "tokens_per_second": tps, "steps": n_steps, "batch": batch,
            "cpu_seconds_per_1k_tokens": 1000 * done["steady_cpu_seconds"] / steady_tokens,
            "sampled_watts": statistics.fmean(power.samples) if power.samples else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", default="152m,gpt-small", help=f"comma-separated: {', '.join(CONFIGS)}")
    parser.add_argument("--variants", default="", help=f"comma-separated: {', '.join(VARIANTS)} "
                        "(default: all; on CPU eager, compile, fused)")
    parser.add_argument("--steps", type=int, default=0, help="override the steps of every run")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    import torch

    from llmasos.gpus.products import normalize
    from llmasos_worker.config import model_config

    cuda = torch.cuda.is_available()
    device = torch.cuda.get_device_name(0) if cuda else "cpu"
    peak = PEAK_TFLOPS.get(normalize(device)) if cuda else None
    variants = [v for v in (args.variants or ("defaults,eager,fused,compile,compile+fused,cuda_graphs" if cuda
                                               else "eager,compile,fused")).split(",") if v]
    print(f"device: {device}; peak used for MFU: "
          + (f"{peak:g} TFLOP/s dense bf16 (catalog key {normalize(device)})" if peak else
             "none known (MFU not computed)" if cuda else "none (CPU: MFU not computed)"))
    print(f"torch {torch.__version__}; NVML: {'read-only (set calls refused)' if cuda else 'not used on CPU'}; "
          f"{args.repeats} repeat(s), variants run in turn within a repeat")
    figures: dict[str, Any] = {"device": device, "peak_tflops": peak, "runs": {}}
    for name in [c for c in args.configs.split(",") if c]:
        shape = CONFIGS[name]
        seq = shape.overrides.get("seq_len", 128) if cuda else min(shape.overrides.get("seq_len", 128),
                                                                      shape.cpu_seq)
        cfg = model_config(shape.model, {**shape.overrides, "seq_len": seq})
        fpt, n = flops_per_token(cfg, seq)
        print(f"\n{name}: {n / 1e6:.1f} M non-embedding parameters, context {seq}, "
              f"global batch {shape.batch if cuda else shape.cpu_batch}; FLOPs/token = 6N + 12 L d T = {fpt:.3e}")
        results: dict[str, list[dict[str, Any]]] = {v: [] for v in variants
                                                    if v != "cuda_graphs" or (cuda and name == "gpt-small")}
        for r in range(args.repeats):
            order = list(results)
            for v in order[r % len(order):] + order[: r % len(order)]:
                results[v].append(run_once(shape, VARIANTS[v], cuda, args.steps or None, seq))
        for v, runs in results.items():
            best = max(runs, key=lambda x: x["tokens_per_second"])
            tps = statistics.median(x["tokens_per_second"] for x in runs)
            opts = best["start"]["options"]
            line = f"  {v:14s} {tps:10.0f} tokens/s"
            if peak:
                line += f"  MFU {100 * tps * fpt / (peak * 1e12):5.1f}%"
            cpu = statistics.median(x["cpu_seconds_per_1k_tokens"] for x in runs)
            line += f"  CPU {cpu:.3f} s/1k tokens"
            done = best["done"]
            if done.get("gpu_joules"):
                seconds = (best["steps"] - 1) * best["batch"] * seq / best["tokens_per_second"]
                line += (f"  {done['gpu_joules'] / seconds:6.0f} W avg (energy counter)"
                         f"  {1000 * done['joules_per_token']:.3f} mJ/token")
            if best["sampled_watts"] is not None:
                line += f"  {best['sampled_watts']:.0f} W sampled"
            each = ", ".join(f"{x['tokens_per_second']:.0f}" for x in runs)
            line += (f"   [compile={opts['compile']} fused_adamw={opts['fused_adamw']} "
                     f"cuda_graphs={opts['cuda_graphs']}; runs: {each}]")
            print(line)
        figures["runs"][name] = {v: [{k: x[k] for k in ("tokens_per_second", "cpu_seconds_per_1k_tokens",
                                                        "sampled_watts")} | {"done": x["done"]} for x in runs]
                                 for v, runs in results.items()}
        figures["runs"][name]["flops_per_token"] = fpt
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    started = time.perf_counter()
    main()
    print(f"\n({(time.perf_counter() - started) / 60:.1f} min)")
