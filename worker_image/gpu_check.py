"""GPU check: DDP training on every local GPU through ``llmasos-worker``, with NVML energy and joules per token.

Why a script and not a test: CI has no GPU. Run it on a GPU machine (or inside the worker image on a GPU node)::

    python worker_image/gpu_check.py                      # gpt-small, all visible GPUs, 200 steps
    python worker_image/gpu_check.py --d-model 1024 --layers 12 --heads 16 --seq 512 --batch 64 --steps 100

It checks that the GPU path is the one taken (nccl, bf16 autocast), that NVML energy is visible to the worker's
own /metrics endpoint while it trains, and prints tokens/s and joules per token over the steady part of the run
(first step excluded; energy from NVML's cumulative counter of the GPUs this process may use).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="gpt-small")
    parser.add_argument("--d-model", type=int, default=0)
    parser.add_argument("--layers", type=int, default=0)
    parser.add_argument("--heads", type=int, default=0)
    parser.add_argument("--seq", type=int, default=0)
    parser.add_argument("--batch", type=int, default=32, help="global batch in sequences")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--gpus", type=int, default=0, help="ranks on this node (default: all visible GPUs)")
    args = parser.parse_args()

    import torch

    if not torch.cuda.is_available():
        print("no CUDA device visible: nothing to check", file=sys.stderr)
        return 1
    gpus = args.gpus or torch.cuda.device_count()
    overrides = {k: v for k, v in {"d_model": args.d_model, "n_layer": args.layers, "n_head": args.heads,
                                   "seq_len": args.seq}.items() if v}
    if args.d_model:
        overrides["d_ff"] = 4 * args.d_model
    port = free_port()
    out = tempfile.mkdtemp(prefix="llmasos-gpu-check-")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMASOS_", "RANK", "LOCAL_RANK"))}
    env.update({
        "LLMASOS_TASK": "train", "LLMASOS_STRATEGY": "ddp", "NNODES": "1", "NPROC_PER_NODE": str(gpus),
        "WORLD_SIZE": str(gpus), "LLMASOS_DATA_PARALLEL": str(gpus), "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(free_port()), "LLMASOS_MODEL_BUILTIN": args.model, "LLMASOS_PROGRESS_PORT": str(port),
        "LLMASOS_PROGRESS_BIND": "127.0.0.1",
        "LLMASOS_TASK_CONFIG": json.dumps({"steps": args.steps, "batch_size": args.batch, "log_every": 20,
                                           "lr": 1e-3, "model": overrides, "output_dir": out}),
    })
    seen: dict[str, float] = {}
    stop = threading.Event()

    def scrape() -> None:
        while not stop.wait(0.5):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1) as r:
                    text = r.read().decode()
            except OSError:
                continue
            for line in text.splitlines():
                m = re.match(r'^llmasos_worker_gpu_energy_joules_total\{.*gpu="([^"]+)"\} (\S+)$', line)
                if m:
                    seen[m.group(1)] = float(m.group(2))

    thread = threading.Thread(target=scrape, daemon=True)
    thread.start()
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "llmasos_worker"], env=env, capture_output=True, text=True,
                          check=False)
    wall = time.perf_counter() - t0
    stop.set()
    if proc.returncode != 0:
        print(proc.stderr[-4000:], file=sys.stderr)
        return proc.returncode
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    start = next(e for e in events if e["event"] == "start")
    done = next(e for e in events if e["event"] == "done")
    print(f"devices: {gpus} x {torch.cuda.get_device_name(0)}; model {args.model} {overrides or ''}, "
          f"{start['parameters'] / 1e6:.1f} M parameters; bf16 autocast: {start['bf16']}; device {start['device']}")
    print(f"steps {args.steps}, global batch {args.batch}, wall {wall:.1f} s, final loss {done['final_loss']:.3f}")
    print(f"steady throughput     {done['steady_tokens_per_second']:.0f} tokens/s")
    if "joules_per_token" in done:
        print(f"GPU energy (steady)   {done['gpu_joules']:.1f} J  ->  {done['joules_per_token'] * 1e3:.3f} mJ/token")
    else:
        print("GPU energy            not available (pynvml missing or energy counter unsupported)")
    print(f"/metrics energy series seen while training: {sorted(seen) or 'none'}")
    print(json.dumps({"gpus": gpus, "device": torch.cuda.get_device_name(0), "overrides": overrides,
                      "steady_tokens_per_second": done["steady_tokens_per_second"],
                      "joules_per_token": done.get("joules_per_token"), "gpu_joules": done.get("gpu_joules"),
                      "bf16": start["bf16"], "metrics_energy_series": sorted(seen)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
