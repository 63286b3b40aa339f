"""Benchmark: the product on the local cluster's real node. Prints figures; asserts nothing.

1. **Tokens/s of the same DDP job in pods vs as bare processes.** One LLMJob (gpt-tiny, DDP, 2 workers of 1 rank
   each) runs in the chart's worker pods on the real node (containerd + runc, pod network, CoreDNS rendezvous); the
   same job runs as two bare `python -m llmasos_worker` processes on the host (NNODES=2, one rank each, rendezvous on
   127.0.0.1), with the same worker environment contract, model, steps, batch, seed and thread count
   (OMP_NUM_THREADS). The figure is rank 0's steady tokens/s (its "done" event: from the end of the first step to the
   end of the last). As in bench/worker_ddp.py, the two variants run in turn within each repeat (order alternated),
   the ratio is paired within a repeat, and the median over repeats is printed with its range (target >= 0.95x).
   The bare processes use the host's virtualenv, the pods the worker image: the torch versions are printed.
   Bare processes run twice per repeat: in the host's root cgroup (as anyone would start them), and in a cpu cgroup
   beside the node's `kubepods` with the same cpu.shares (NodeCpuCgroup says why: on this shared machine the local
   node's whole cgroup root weighs as one host process, so under other tenants' load the pods get less CPU than two
   bare processes, which says nothing about containers). The second ratio is the like-for-like one.
2. **Pod start latency**: from the LLMJob's create call returning until every worker pod is Running (polled every
   0.1 s), per repeat; the first repeat may include containerd's first start of the worker image.
3. **Where the CPU went**: for each variant, the CPU cores used by the workers, the kubelet, containerd (with its
   shims and runc), the chart's operator and agent, the control plane and the rest, and the machine's total
   (bench/cpu_census.py): on a small machine the pods' missing CPU time shows up there.
4. **Operator and agent resident memory as containers**: for each chart container, the sum of VmRSS of the
   processes in its cgroup (read on the host from the node's cgroup v1 memory hierarchy), and the cgroup's own
   total_rss and usage_in_bytes; before the first job and after the last.

    LLMASOS_CACHE_DIR=... .venv/bin/python -m bench.real_node [--repeats 4] [--steps 400] [--no-one-pod] [--json F]

It uses the cluster of LLMASOS_CLUSTER_DIR / LLMASOS_CLUSTER_PORT_OFFSET (started if not running, left as found),
and installs the chart from the images `make images` built (release llmasos-bench; uninstalled at the end).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench import cpu_census
from bench.worker_ddp import free_port
from e2e.localcluster import LocalCluster
from e2e.realchart import helm, install
from llmasos.api.phase import TERMINAL

RELEASE = SYSTEM_NS = "llmasos-bench"
CGROUP_MEMORY = Path("/sys/fs/cgroup/memory")
CGROUP_CPU = Path("/sys/fs/cgroup/cpu")


# ------------------------------------------------------------------------------------------------ the job
def task_config(args: argparse.Namespace) -> dict[str, Any]:
    return {"steps": args.steps, "batch_size": args.batch, "log_every": 50, "seed": 1, "lr": 1e-3}


def llmjob(name: str, ns: str, args: argparse.Namespace, nodes: int = 2) -> dict[str, Any]:
    return {"apiVersion": "llmasos.io/v1alpha1", "kind": "LLMJob", "metadata": {"name": name, "namespace": ns},
            "spec": {"task": "train", "model": {"builtin": args.model},
                     "parallelism": {"strategy": "ddp", "nodes": nodes, "gpusPerNode": 2 // nodes},
                     "resources": {"cpu": args.cpu, "memory": "2Gi"},
                     "env": [{"name": "OMP_NUM_THREADS", "value": str(args.threads)}],
                     "placement": {"nodePools": ["real"]}, "carbon": {"policy": "immediate"},
                     "taskConfig": task_config(args), "backoffLimit": 0}}


def pods(cluster: LocalCluster, ns: str, job: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = cluster.get_json(
        f"/api/v1/namespaces/{ns}/pods?labelSelector=llmasos.io/llmjob%3D{job}")["items"]
    return items


def done_event(text: str) -> dict[str, Any] | None:
    for line in text.splitlines():
        if line.startswith("{") and '"event": "done"' in line:
            event: dict[str, Any] = json.loads(line)
            return event
    return None


def tokens_per_cpu_second(done: dict[str, Any], args: argparse.Namespace) -> float:
    """Global tokens of the steady steps per CPU-second of rank 0's process: what other tenants disturb least (they
    take wall-clock time, not the CPU time a step needs)."""
    seq = float(done["tokens"]) / args.steps / args.batch  # tokens = steps x batch x sequence length
    return float((args.steps - 1) * args.batch * seq / float(done["steady_cpu_seconds"]))


def run_in_pods(cluster: LocalCluster, ns: str, args: argparse.Namespace, r: int, nodes: int = 2) -> dict[str, float]:
    """`nodes` 2: one rank per pod, gloo over the pod network; 1: both ranks in one pod, gloo over its loopback."""
    name = f"ddp-{r}-{nodes}pod"
    cluster.kubectl("apply", "-f", "-", input=json.dumps(llmjob(name, ns, args, nodes)))
    created = time.monotonic()
    running_after = None
    deadline = created + args.timeout
    while time.monotonic() < deadline:
        current = pods(cluster, ns, name)
        if running_after is None and len(current) == nodes and all(p["status"].get("phase") == "Running"
                                                               for p in current):
            running_after = time.monotonic() - created
        phase = cluster.get_json(f"/apis/llmasos.io/v1alpha1/namespaces/{ns}/llmjobs/{name}").get(
            "status", {}).get("phase")
        if phase in TERMINAL:
            break
        time.sleep(0.1 if running_after is None else 1.0)
    else:
        raise SystemExit(f"LLMJob {name} did not finish in {args.timeout}s")
    if phase != "Succeeded":
        status = cluster.kubectl("get", "llmjob", "-n", ns, name, "-o", "yaml").stdout
        raise SystemExit(f"LLMJob {name} {phase}: {status}")
    rank0 = next(p for p in pods(cluster, ns, name)
                 if p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"] == "0")
    done = done_event(cluster.kubectl("logs", "-n", ns, rank0["metadata"]["name"]).stdout)
    if done is None:
        raise SystemExit(f"no done event in the log of {rank0['metadata']['name']}")
    cluster.kubectl("delete", "llmjob", "-n", ns, name, "--wait=true", "--timeout=120s", check=False)
    return {"tokens_per_second": float(done["steady_tokens_per_second"]),
            "tokens_per_cpu_second": tokens_per_cpu_second(done, args),
            "start_latency_s": running_after if running_after is not None else float("nan")}


class NodeCpuCgroup:
    """A cpu cgroup beside the node's `kubepods` under the node's cgroup root, with kubepods' cpu.shares: bare
    processes started in it get the CPU weight the pods get. The local node's cgroup root is one entry at the host's
    top level (cpu.shares 1024), so under other tenants' load all its pods together weigh as much as one host
    process, while two bare processes in the host's root cgroup weigh as two. Removed by `close()`."""

    def __init__(self, cluster: LocalCluster) -> None:
        root = CGROUP_CPU / cluster.node.n.cgroup_root.lstrip("/")
        self.path = root / "bench-bare"
        self.path.mkdir(exist_ok=True)
        (self.path / "cpu.shares").write_text((root / "kubepods" / "cpu.shares").read_text())

    def enter(self) -> None:
        """Called in the child before exec."""
        (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.path.rmdir()


def run_bare(args: argparse.Namespace, cgroup: NodeCpuCgroup | None = None) -> dict[str, float]:
    """The same job as two bare worker processes on the host: one per "node", one rank each (in `cgroup`, if
    given)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("LLMASOS_", "RANK", "LOCAL_RANK", "NODE_RANK"))}
    base.update({"LLMASOS_JOB_NAME": "bare", "LLMASOS_NAMESPACE": "bench", "LLMASOS_TASK": "train",
                 "LLMASOS_STRATEGY": "ddp", "NNODES": "2", "NPROC_PER_NODE": "1", "WORLD_SIZE": "2",
                 "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()), "LLMASOS_DATA_PARALLEL": "2",
                 "LLMASOS_MODEL_BUILTIN": args.model, "LLMASOS_PROGRESS_BIND": "127.0.0.1",
                 "LLMASOS_TASK_CONFIG": json.dumps(task_config(args), sort_keys=True),
                 "OMP_NUM_THREADS": str(args.threads), "HOME": tempfile.gettempdir()})
    procs = [subprocess.Popen([sys.executable, "-m", "llmasos_worker"],
                              env={**base, "NODE_RANK": str(rank), "LLMASOS_PROGRESS_PORT": str(free_port())},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              preexec_fn=cgroup.enter if cgroup else None) for rank in (0, 1)]
    outs = [p.communicate(timeout=args.timeout) for p in procs]
    if any(p.returncode for p in procs):
        raise SystemExit(f"bare worker failed: {outs[0][1][-2000:]}{outs[1][1][-2000:]}")
    done = done_event(outs[0][0])
    if done is None:
        raise SystemExit("no done event from the bare rank 0")
    return {"tokens_per_second": float(done["steady_tokens_per_second"]),
            "tokens_per_cpu_second": tokens_per_cpu_second(done, args)}


# ---------------------------------------------------------------------------------------------- memory
def container_memory(cluster: LocalCluster, pod: dict[str, Any], container: str) -> dict[str, float]:
    """MiB: VmRSS summed over the container's processes, and its memory cgroup's total_rss and usage_in_bytes."""
    status = next(s for s in pod["status"]["containerStatuses"] if s["name"] == container)
    cid = status["containerID"].split("://", 1)[1]
    root = CGROUP_MEMORY / cluster.node.n.cgroup_root.lstrip("/")
    found = [d for d in root.rglob(cid) if d.is_dir() and f"pod{pod['metadata']['uid']}" in str(d)]
    if not found:
        raise SystemExit(f"no memory cgroup of container {cid[:12]} under {root}")
    cg = found[0]
    rss_kib = 0
    for pid in (cg / "cgroup.procs").read_text().split():
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss_kib += int(line.split()[1])
        except OSError:
            continue
    stat = dict(line.split() for line in (cg / "memory.stat").read_text().splitlines())
    return {"vmrss_mib": rss_kib / 1024, "cgroup_total_rss_mib": int(stat["total_rss"]) / 2**20,
            "cgroup_usage_mib": int((cg / "memory.usage_in_bytes").read_text()) / 2**20}


def chart_memory(cluster: LocalCluster) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    listed = cluster.get_json(f"/api/v1/namespaces/{SYSTEM_NS}/pods")["items"]
    for pod in sorted(listed, key=lambda p: p["metadata"]["name"]):
        component = pod["metadata"]["labels"].get("app.kubernetes.io/component", "?")
        for c in pod["spec"]["containers"]:
            out[f"{component} {pod['metadata']['name']}/{c['name']}"] = container_memory(cluster, pod, c["name"])
    return out


def print_memory(label: str, mem: dict[str, dict[str, float]]) -> None:
    print(f"resident memory as containers, {label} (MiB: VmRSS of its processes / cgroup total_rss / "
          "cgroup usage incl. page cache):")
    for name, m in mem.items():
        print(f"  {name:58s} {m['vmrss_mib']:6.1f} / {m['cgroup_total_rss_mib']:6.1f} / {m['cgroup_usage_mib']:6.1f}")


# ------------------------------------------------------------------------------------------------- main
def torch_versions(images: dict[str, Any]) -> tuple[str, str]:
    import torch

    return str(torch.__version__), str(images["worker"].ref)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="gpt-tiny")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=8, help="global batch in sequences")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of each rank, in pods and bare")
    parser.add_argument("--cpu", default="500m", help="CPU request of each worker pod (no CPU limit is set)")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--no-one-pod", dest="one_pod", action="store_false",
                        help="leave out the diagnostic variant: both ranks in one pod (no pod network)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    cluster = LocalCluster()
    was_running = cluster.is_healthy()
    cluster.up()
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(Path(__file__).parents[1] / "crds"))
    ns = f"bench-{uuid.uuid4().hex[:6]}"
    with tempfile.TemporaryDirectory() as tmp:
        images = install(cluster, RELEASE, SYSTEM_NS, Path(tmp) / "values.yaml")
    cluster.kubectl("create", "namespace", ns)
    cgroup = NodeCpuCgroup(cluster)
    try:
        time.sleep(5)  # let the freshly started operators settle (peering, first list) before measuring
        mem_before = chart_memory(cluster)
        host_torch, worker_ref = torch_versions(images)
        load_before = os.getloadavg()
        cpu: dict[str, list[float]] = {"pods": [], "bare": [], "node-bare": []}
        pod_tps: list[float] = []
        bare_tps: list[float] = []
        node_bare_tps: list[float] = []
        one_pod_tps: list[float] = []
        latency: list[float] = []
        census: dict[str, list[dict[str, float]]] = {}
        started = time.perf_counter()
        for r in range(args.repeats):
            names = ["pods", "bare", "node-bare"] + (["one-pod"] if args.one_pod else [])
            for variant in names[r % len(names):] + names[: r % len(names)]:
                before = cpu_census.take(time.monotonic())
                if variant == "node-bare":
                    res = run_bare(args, cgroup)
                    node_bare_tps.append(res["tokens_per_second"])
                    cpu[variant].append(res["tokens_per_cpu_second"])
                elif variant == "one-pod":
                    one_pod_tps.append(run_in_pods(cluster, ns, args, r, nodes=1)["tokens_per_second"])
                elif variant == "pods":
                    res = run_in_pods(cluster, ns, args, r)
                    pod_tps.append(res["tokens_per_second"])
                    cpu[variant].append(res["tokens_per_cpu_second"])
                    latency.append(res["start_latency_s"])
                else:
                    res = run_bare(args)
                    bare_tps.append(res["tokens_per_second"])
                    cpu[variant].append(res["tokens_per_cpu_second"])
                census.setdefault(variant, []).append(cpu_census.used(before, cpu_census.take(time.monotonic())))
            one = f", one pod {one_pod_tps[-1]:.0f} tok/s" if one_pod_tps else ""
            print(f"repeat {r}: pods {pod_tps[-1]:.0f} tok/s, bare {bare_tps[-1]:.0f} tok/s, bare in the node's "
                  f"cgroup {node_bare_tps[-1]:.0f} tok/s{one}; ratios {pod_tps[-1] / bare_tps[-1]:.3f} and "
                  f"{pod_tps[-1] / node_bare_tps[-1]:.3f}, pod start {latency[-1]:.2f} s, "
                  f"load {os.getloadavg()[0]:.1f}",
                  flush=True)
        minutes = (time.perf_counter() - started) / 60
        load_after = os.getloadavg()
        mem_after = chart_memory(cluster)
    finally:
        cgroup.close()
        cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)
        helm(cluster, "uninstall", RELEASE, "--namespace", SYSTEM_NS, "--wait", "--timeout=120s")
        cluster.kubectl("delete", "namespace", SYSTEM_NS, "--wait=false", check=False)
        if not was_running:
            cluster.down()

    ratios = [p / b for p, b in zip(pod_tps, bare_tps, strict=True)]
    print(f"\nmodel {args.model}, DDP 2 workers x 1 rank, OMP_NUM_THREADS={args.threads}, global batch {args.batch}, "
          f"{args.steps} steps, {args.repeats} repeats in {minutes:.1f} min; load average {load_before[0]:.1f} "
          f"before, {load_after[0]:.1f} after")
    print(f"torch: host virtualenv {host_torch}; pods: the image {worker_ref}")
    print("rank 0's steady tokens/s:")
    print(f"  pods  median {statistics.median(pod_tps):8.0f}   runs: {', '.join(f'{v:.0f}' for v in pod_tps)}")
    print(f"  bare  median {statistics.median(bare_tps):8.0f}   runs: {', '.join(f'{v:.0f}' for v in bare_tps)}")
    print(f"  bare in the node's cgroup  median {statistics.median(node_bare_tps):8.0f}   runs: "
          f"{', '.join(f'{v:.0f}' for v in node_bare_tps)}")
    print(f"  pods / bare, paired per repeat: median {statistics.median(ratios):.3f}x, range {min(ratios):.3f} .. "
          f"{max(ratios):.3f}, best-vs-best {max(pod_tps) / max(bare_tps):.3f}x   (target >= 0.95)")
    node_ratios = [p / b for p, b in zip(pod_tps, node_bare_tps, strict=True)]
    print(f"  pods / bare in the node's cgroup (same CPU weight), paired: median {statistics.median(node_ratios):.3f}x,"
          f" range {min(node_ratios):.3f} .. {max(node_ratios):.3f}, best-vs-best "
          f"{max(pod_tps) / max(node_bare_tps):.3f}x   (target >= 0.95)")
    if one_pod_tps:
        one_ratios = [p / b for p, b in zip(one_pod_tps, bare_tps, strict=True)]
        print(f"  one pod, both ranks (gloo over the pod's loopback, no pod network): median "
              f"{statistics.median(one_pod_tps):.0f}   runs: {', '.join(f'{v:.0f}' for v in one_pod_tps)}")
        print(f"  one pod / bare, paired per repeat: median {statistics.median(one_ratios):.3f}x, range "
              f"{min(one_ratios):.3f} .. {max(one_ratios):.3f}")
    cpu_ratios = [p / b for p, b in zip(cpu["pods"], cpu["node-bare"], strict=True)]
    print("rank 0's tokens per CPU-second of its process (steady steps):")
    for name, values in cpu.items():
        print(f"  {name:10s} median {statistics.median(values):8.0f}   runs: {', '.join(f'{v:.0f}' for v in values)}")
    print(f"  pods / bare in the node's cgroup, paired: median {statistics.median(cpu_ratios):.3f}x, range "
          f"{min(cpu_ratios):.3f} .. {max(cpu_ratios):.3f}")
    print("CPU cores in use while each variant ran (median over repeats; the whole variant, start to clean-up; the"
          " workers themselves have ended by the second reading, so only `machine` includes them):")
    groups = [g for g in next(iter(census.values()))[0] if g != "workers"]
    print(f"  {'variant':10s} " + " ".join(f"{g[:22]:>22s}" for g in groups))
    for variant, readings in census.items():
        print(f"  {variant:10s} " + " ".join(f"{statistics.median(c[g] for c in readings):22.2f}" for g in groups))
    print(f"pod start latency (LLMJob created -> both workers Running): median {statistics.median(latency):.2f} s, "
          f"runs: {', '.join(f'{v:.2f}' for v in latency)}")
    print_memory("before the first job", mem_before)
    print_memory("after the last job", mem_after)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "args": vars(args) | {"json": str(args.json)}, "pods_tokens_per_second": pod_tps,
            "bare_tokens_per_second": bare_tps, "node_cgroup_bare_tokens_per_second": node_bare_tps,
            "one_pod_tokens_per_second": one_pod_tps, "ratios": ratios, "tokens_per_cpu_second": cpu,
            "start_latency_s": latency, "cpu_cores_by_group": census,
            "memory_before": mem_before, "memory_after": mem_after, "host_torch": host_torch,
            "worker_image": worker_ref, "load_before": load_before, "load_after": load_after}, indent=2))


if __name__ == "__main__":
    main()
