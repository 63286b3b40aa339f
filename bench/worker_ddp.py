"""Benchmark: the worker's DDP training loop against a minimal plain-torch DDP loop, and the cost of reporting.

Why: the worker adds a launcher, deterministic batches, a periodic SIGTERM agreement, a global loss, progress
bookkeeping and checkpoint plumbing around torch's DDP. This measures what that costs in tokens/s on the same model,
batch, optimizer, precision and ranks (target: worker >= 0.97x plain), and what the progress/energy endpoint costs
while a scraper polls it far more often than any agent would (target: < 1%). Prints figures; asserts nothing.

    .venv/bin/python bench/worker_ddp.py                        # gpt-tiny, 2 ranks, CPU (gloo) or GPU (nccl)
    .venv/bin/python bench/worker_ddp.py --model gpt-small --steps 40 --json bench/out/worker_ddp.json
    .venv/bin/python bench/worker_ddp.py --cpus 2              # the worker told its pod's CPU request, as in a pod

The plain loop is this file run with ``--plain-rank`` under the same RANK/WORLD_SIZE environment: nanoGPT-style
random batches from the same corpus, DDP, AdamW (the worker's settings: weight decay 0), loss.backward(), step, a
``loss.item()`` every 10 steps; nothing else. Both report steady throughput: tokens from the end of the first step
to the end of the last, and the CPU time rank 0's process spent over the same steps.

Noise: on a shared machine other tenants slow whichever run they overlap. So the variants run in turn within
each repeat (order rotated between repeats), ratios are paired within a repeat, and every ratio is given as the
median over repeats with its quartiles and range, plus best-vs-best (interference only ever slows a run, so the
fastest run of each variant is the least disturbed). Both wall-clock and CPU-time ratios are printed; the load
average before and after says how quiet the machine was.

CPU-seconds per token (issue #24): rank 0's CPU time over the steady steps divided by the tokens of those steps,
for each variant, and worker / plain. The plain loop keeps torch's own thread defaults on GPU (every core) and
sets cores / ranks on CPU, as the tutorial loop would; the worker sizes its threads itself (docs/worker.md, "CPU
threads"), from ``--cpus`` when given (passed as ``LLMASOS_CPU_REQUEST``, as the operator does) and the thread plan
it applied is printed. The bench drops an inherited OMP_NUM_THREADS for both loops unless ``--keep-omp``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

SEQ = {"gpt-tiny": 64, "gpt-small": 128}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


KEEP_OMP = False  # --keep-omp


def base_env(nproc: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMASOS_", "RANK", "LOCAL_RANK"))
           and (KEEP_OMP or k != "OMP_NUM_THREADS")}
    env.update({"NNODES": "1", "NPROC_PER_NODE": str(nproc), "WORLD_SIZE": str(nproc), "MASTER_ADDR": "127.0.0.1",
                "MASTER_PORT": str(free_port())})
    return env


def run_worker(args: argparse.Namespace, progress_port: int, scrape_hz: float) -> dict[str, Any]:
    env = base_env(args.nproc)
    env.update({
        "LLMASOS_TASK": "train", "LLMASOS_STRATEGY": "ddp", "LLMASOS_DATA_PARALLEL": str(args.nproc),
        "LLMASOS_MODEL_BUILTIN": args.model, "LLMASOS_PROGRESS_PORT": str(progress_port),
        "LLMASOS_PROGRESS_BIND": "127.0.0.1", "LLMASOS_CPU_REQUEST": args.cpus,
        "LLMASOS_TASK_CONFIG": json.dumps({"steps": args.steps, "batch_size": args.batch, "log_every": 10,
                                           "lr": 1e-3}),
    })
    scrapes = [0]
    stop = threading.Event()

    def scraper() -> None:
        while not stop.wait(1.0 / scrape_hz):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{progress_port}/metrics", timeout=1) as r:
                    r.read()
                scrapes[0] += 1
            except OSError:
                pass

    thread = threading.Thread(target=scraper, daemon=True) if progress_port and scrape_hz else None
    if thread:
        thread.start()
    proc = subprocess.run([sys.executable, "-m", "llmasos_worker"], env=env, capture_output=True, text=True,
                          check=False)
    stop.set()
    if proc.returncode != 0:
        raise SystemExit(f"worker failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    done = next(json.loads(line) for line in proc.stdout.splitlines() if '"event": "done"' in line)
    start = next(json.loads(line) for line in proc.stdout.splitlines() if '"event": "start"' in line)
    return {"tokens_per_second": done["steady_tokens_per_second"], "cpu_seconds": done["steady_cpu_seconds"],
            "scrapes": scrapes[0], "threads": start.get("threads")}


def run_plain(args: argparse.Namespace) -> dict[str, Any]:
    env = base_env(args.nproc)
    cmd = [sys.executable, __file__, "--plain-rank", "--model", args.model, "--steps", str(args.steps),
           "--batch", str(args.batch), "--nproc", str(args.nproc)]
    procs = [subprocess.Popen(cmd, env={**env, "RANK": str(r), "LOCAL_RANK": str(r),
                                        "LOCAL_WORLD_SIZE": str(args.nproc)},
                              stdout=subprocess.PIPE, text=True) for r in range(args.nproc)]
    outs = [p.communicate()[0] for p in procs]
    if any(p.returncode for p in procs):
        raise SystemExit("plain DDP run failed")
    return dict(json.loads(outs[0].strip().splitlines()[-1]))


def plain_rank(args: argparse.Namespace) -> None:
    """A minimal DDP training loop, as one would write it from the torch tutorial."""
    import torch
    import torch.distributed as dist
    import torch.nn.functional as F
    from torch.nn.parallel import DistributedDataParallel as DDP

    from llmasos_worker.config import PRESETS
    from llmasos_worker.corpus import CORPUS
    from llmasos_worker.model import GPT

    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    cuda = torch.cuda.is_available()
    device = torch.device("cuda", rank % max(1, torch.cuda.device_count())) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    else:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    dist.init_process_group("nccl" if cuda else "gloo")
    cfg = PRESETS[args.model]
    torch.manual_seed(0)
    model = DDP(GPT(cfg).to(device), device_ids=[device.index] if cuda else None)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)  # the worker's default weight decay
    data = torch.tensor(list(CORPUS.encode()), dtype=torch.long)
    per_rank, seq = args.batch // world, cfg.seq_len
    start = cpu_start = 0.0
    for step in range(args.steps):
        ix = torch.randint(len(data) - seq - 1, (per_rank,))
        x = torch.stack([data[i : i + seq] for i in ix]).to(device)
        y = torch.stack([data[i + 1 : i + 1 + seq] for i in ix]).to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            loss = F.cross_entropy(model(x).flatten(0, 1).float(), y.flatten())
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
        opt.zero_grad(set_to_none=True)
        if step % 10 == 9 or step == args.steps - 1:
            loss.item()  # the usual periodic log line
        if step == 0:
            if cuda:
                torch.cuda.synchronize()
            start, cpu_start = time.perf_counter(), time.process_time()
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    if rank == 0:
        print(json.dumps({"tokens_per_second": (args.steps - 1) * args.batch * seq / elapsed, "cpu_seconds": cpu,
                          "threads": {"intra_op": torch.get_num_threads(),
                                      "inter_op": torch.get_num_interop_threads()}}))
    dist.destroy_process_group()


def update_cost_ns(calls: int = 200_000) -> float:
    from llmasos_worker.progress import Progress

    progress = Progress()
    t0 = time.perf_counter()
    for i in range(calls):
        progress.update(i, i * 1024, 1.0)
    return (time.perf_counter() - t0) / calls * 1e9


def scrape_cost_us(requests: int = 300) -> float:
    """CPU microseconds per GET /metrics, client and server together (an upper bound on the worker's share)."""
    from llmasos_worker.progress import NoEnergy, Progress, ProgressServer

    progress = Progress()
    progress.update(10, 10_240, 2.0)
    server = ProgressServer(progress, NoEnergy(), {"job": "bench", "namespace": "default"}, "127.0.0.1", 0).start()
    try:
        url = f"http://127.0.0.1:{server.port}/metrics"
        t0 = time.process_time()
        for _ in range(requests):
            with urllib.request.urlopen(url, timeout=2) as r:
                r.read()
        return (time.process_time() - t0) / requests * 1e6
    finally:
        server.stop()


AGENT_POLL_SECONDS = 5.0  # the node agent's polling period (docs/power.md)


def spread(values: list[float]) -> dict[str, float]:
    """Median, quartiles and range of per-repeat figures."""
    ordered = sorted(values)
    q1, _, q3 = statistics.quantiles(ordered, n=4, method="inclusive") if len(ordered) > 1 else ordered * 3
    return {"median": statistics.median(ordered), "q1": q1, "q3": q3, "min": ordered[0], "max": ordered[-1]}


def ratio_line(label: str, per_repeat: list[float], best: float, unit: str = "x", target: str = "") -> str:
    s = spread(per_repeat)
    if unit == "%":
        return (f"  {label:44s} {100 * s['median']:+7.2f}%  IQR {100 * s['q1']:+.2f} .. {100 * s['q3']:+.2f}%  "
                f"range {100 * s['min']:+.1f} .. {100 * s['max']:+.1f}%  best-vs-best {100 * best:+.2f}%{target}")
    return (f"  {label:44s} {s['median']:7.3f}x  IQR {s['q1']:.3f} .. {s['q3']:.3f}  "
            f"range {s['min']:.3f} .. {s['max']:.3f}  best-vs-best {best:.3f}x{target}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="gpt-tiny", choices=sorted(SEQ))
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=8, help="global batch in sequences")
    parser.add_argument("--repeats", type=int, default=12)
    parser.add_argument("--scrape-hz", type=float, default=2.0,
                        help="scrapes of /metrics per second (the node agent polls every 5 s)")
    parser.add_argument("--cpus", default="", help="the pod's CPU request passed to the worker (e.g. 2 or 500m); "
                        "default: none, the worker divides the CPUs it may use")
    parser.add_argument("--keep-omp", action="store_true", help="keep an inherited OMP_NUM_THREADS")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--plain-rank", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    global KEEP_OMP
    KEEP_OMP = args.keep_omp
    if args.plain_rank:
        plain_rank(args)
        return
    variants = {
        "plain": lambda: run_plain(args),
        "worker": lambda: run_worker(args, 0, 0),
        "worker+progress": lambda: run_worker(args, free_port(), args.scrape_hz),
    }
    rows: dict[str, list[float]] = {name: [] for name in variants}
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    scrapes = 0
    threads: dict[str, Any] = {}
    names = list(variants)
    load_before = os.getloadavg()
    started = time.perf_counter()
    for r in range(args.repeats):
        # Rotated order within each repeat, and ratios taken within a repeat: drift on a shared machine
        # (other tenants, thermal) then hits every variant alike instead of biasing one.
        for name in names[r % 3:] + names[: r % 3]:
            res = variants[name]()
            rows[name].append(res["tokens_per_second"])
            cpu[name].append(res["cpu_seconds"])
            scrapes += res.get("scrapes", 0)
            threads[name] = res.get("threads")
    load_after = os.getloadavg()
    wall_minutes = (time.perf_counter() - started) / 60
    med = {k: statistics.median(v) for k, v in rows.items()}
    vs_plain = [w / p for w, p in zip(rows["worker"], rows["plain"], strict=True)]
    overhead = [1 - wp / w for wp, w in zip(rows["worker+progress"], rows["worker"], strict=True)]
    # Same tokens in every run, so tokens per CPU-second compare as inverse CPU time (rank 0's process).
    cpu_vs_plain = [p / w for w, p in zip(cpu["worker"], cpu["plain"], strict=True)]
    cpu_overhead = [wp / w - 1 for wp, w in zip(cpu["worker+progress"], cpu["worker"], strict=True)]
    best_wall = max(rows["worker"]) / max(rows["plain"])
    best_cpu = min(cpu["plain"]) / min(cpu["worker"])
    best_overhead = 1 - max(rows["worker+progress"]) / max(rows["worker"])
    best_cpu_overhead = min(cpu["worker+progress"]) / min(cpu["worker"]) - 1
    step_ns = args.batch * SEQ[args.model] / med["worker"] * 1e9
    update_ns = update_cost_ns()
    scrape_us = scrape_cost_us()
    step_cpu_s = statistics.median(cpu["worker"]) / (args.steps - 1)
    steady_tokens = (args.steps - 1) * args.batch * SEQ[args.model]
    cpu_per_token = {k: [c / steady_tokens for c in v] for k, v in cpu.items()}
    # worker / plain CPU-seconds per token: lower is better (the inverse of tokens per CPU-second, paired per repeat)
    cpu_token_ratio = [w / p for w, p in zip(cpu["worker"], cpu["plain"], strict=True)]
    figures = {
        "model": args.model, "nproc": args.nproc, "steps": args.steps, "global_batch": args.batch,
        "repeats": args.repeats, "load_average_before": load_before, "load_average_after": load_after,
        "runs": rows, "median_tokens_per_second": med,
        "worker_vs_plain_per_repeat": vs_plain, "worker_vs_plain": spread(vs_plain),
        "worker_vs_plain_best": best_wall,
        "progress_overhead_per_repeat": overhead, "progress_overhead": spread(overhead),
        "progress_overhead_best": best_overhead,
        "cpu_seconds_rank0": cpu, "cpu_worker_vs_plain_per_repeat": cpu_vs_plain,
        "cpu_worker_vs_plain": spread(cpu_vs_plain), "cpu_worker_vs_plain_best": best_cpu,
        "cpu_progress_overhead_per_repeat": cpu_overhead, "cpu_progress_overhead": spread(cpu_overhead),
        "cpu_progress_overhead_best": best_cpu_overhead,
        "cpu_seconds_per_token": cpu_per_token, "cpu_seconds_per_token_worker_vs_plain": spread(cpu_token_ratio),
        "threads": threads, "cpu_request": args.cpus,
        "progress_scrapes": scrapes, "scrape_hz": args.scrape_hz, "progress_update_ns": update_ns,
        "progress_update_share_of_step": update_ns / step_ns,
        "scrape_cpu_us": scrape_us,
        "scrape_share_at_agent_poll": scrape_us * 1e-6 / AGENT_POLL_SECONDS / (step_cpu_s / step_ns * 1e9),
    }
    print(f"model {args.model}, {args.nproc} ranks, global batch {args.batch} x {SEQ[args.model]} tokens, "
          f"{args.steps} steps, {args.repeats} repeats in {wall_minutes:.1f} min; load average "
          f"{load_before[0]:.1f} before, {load_after[0]:.1f} after")
    print("wall-clock tokens/s (steady steps):")
    for name, values in rows.items():
        print(f"  {name:16s} median {med[name]:8.0f}   runs: {', '.join(f'{v:.0f}' for v in values)}")
    print("CPU seconds of rank 0 over the same steps (what other tenants disturb least):")
    for name, values in cpu.items():
        print(f"  {name:16s} median {statistics.median(values):8.3f}   runs: {', '.join(f'{v:.3f}' for v in values)}")
    print(f"CPU-seconds per 1000 tokens of rank 0 (steady steps; {steady_tokens} tokens per run):")
    for name, values in cpu_per_token.items():
        print(f"  {name:16s} median {1000 * statistics.median(values):8.4f}   threads: {threads.get(name)}")
    s_ratio = spread(cpu_token_ratio)
    print(f"  worker / plain CPU-seconds per token: median {s_ratio['median']:.3f}x (IQR {s_ratio['q1']:.3f} .. "
          f"{s_ratio['q3']:.3f}); as tokens per CPU-second: {1 / s_ratio['median']:.3f}x (target >= 0.97)")
    print("ratios, paired within each repeat (median, quartiles, range over repeats; and best run vs best run):")
    print(ratio_line("worker / plain, wall-clock tokens/s", vs_plain, best_wall, target="   (target >= 0.97)"))
    print(ratio_line("worker / plain, tokens per CPU-second", cpu_vs_plain, best_cpu, target="   (target >= 0.97)"))
    print(ratio_line(f"progress endpoint at {args.scrape_hz:g} Hz, wall-clock cost", overhead, best_overhead, "%",
                     "   (target < 1%)"))
    print(ratio_line("progress endpoint, extra CPU time", cpu_overhead, best_cpu_overhead, "%", "   (target < 1%)"))
    print(f"  ({scrapes} scrapes in all)")
    print(f"  progress.update per step      {update_ns:.0f} ns = {100 * figures['progress_update_share_of_step']:.4f}% "
          "of a step")
    print(f"  one /metrics scrape           {scrape_us:.0f} us CPU (client + server) = "
          f"{100 * figures['scrape_share_at_agent_poll']:.4f}% of rank 0's CPU at the agent's 5 s polling")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
