"""Load under faults: N LLMJobs across M fake GPU nodes, optionally with the operator SIGKILLed every K seconds.

Starts its own local control plane (LLMASOS_CLUSTER_DIR / LLMASOS_CLUSTER_PORT_OFFSET are honoured; an existing
cluster there is stopped first) with M nodes and the API server's audit log on, runs one operator process with its
own identity, creates N single-worker LLMJobs from a client and prints: operator peak RSS (sampled every second,
across restarts), API requests by the operator (total, per LLMJob, per second while jobs were in flight, by verb),
create -> child Job latency (p50/p99), reconcile-pass latency (histogram bounds), the time until all N finished, and
whether anything was dropped or duplicated (every LLMJob terminal, exactly one child Job and one Service each).
Figures also go to bench/out/chaos_load.json. Asserts nothing.

Usage: .venv/bin/python -m bench.chaos_load [--jobs 2000] [--nodes 300] [--kill-every 0] [--timeout 1800]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time
from typing import Any

from bench.operator_scale import (
    audit_requests,
    client,
    gather_limited,
    make_namespace,
    proc_stats,
    quantile_from_histogram,
    start_bench_cluster,
)
from e2e.localcluster import LocalCluster
from e2e.localcluster.cluster import REPO
from llmasos.api.phase import TERMINAL
from tests.integration.operator_proc import OperatorProcess

NS = "chaos-load"
USER = "llmasos-operator-dev"


def llmjob(name: str, i: int) -> dict[str, Any]:
    return {"apiVersion": "llmasos.io/v1alpha1", "kind": "LLMJob",
            "metadata": {"name": name, "annotations": {"sim.llmasos.io/duration": f"{10 + i % 20}s"}},
            "spec": {"model": {"builtin": "gpt-tiny"}, "backoffLimit": 0,
                     "parallelism": {"strategy": "ddp", "nodes": 1, "gpusPerNode": 1}}}


class Operator:
    """One logical operator: restarted after each SIGKILL; RSS peaks and CPU summed over its processes."""

    def __init__(self, cluster: LocalCluster, out: Any) -> None:
        self.cluster, self.out = cluster, out
        self.peak_rss, self.cpu, self.kills, self._last_cpu = 0.0, 0.0, 0, 0.0
        self.proc = self._start()

    def _start(self) -> OperatorProcess:
        return OperatorProcess(self.cluster, self.out, "chaos-load", {"LLMASOS_RESYNC_SECONDS": "30"},
                               kubeconfig=self.cluster.paths.root / "operator.kubeconfig").start()

    def sample(self) -> None:
        if self.proc.proc is not None and self.proc.proc.poll() is None:
            hwm, cpu = proc_stats(self.proc.proc.pid)
            self.peak_rss, self._last_cpu = max(self.peak_rss, hwm), cpu

    def kill_and_restart(self) -> None:
        self.sample()
        self.cpu += self._last_cpu
        self._last_cpu = 0.0
        self.proc.kill()
        self.kills += 1
        self.proc = self._start()

    def stop(self) -> str:
        self.sample()
        self.cpu += self._last_cpu
        metrics = self.proc.metrics()
        self.proc.stop()
        return metrics


async def run(cluster: LocalCluster, args: argparse.Namespace, op: Operator) -> dict[str, Any]:
    seen: dict[str, float] = {}
    created: dict[str, float] = {}
    rng = random.Random(0)
    async with client(cluster) as http:
        await make_namespace(http, NS)

        async def watch_jobs() -> None:
            params = {"watch": "1", "labelSelector": "llmasos.io/llmjob"}
            async with http.stream("GET", f"/apis/batch/v1/namespaces/{NS}/jobs", params=params, timeout=None) as r:
                async for line in r.aiter_lines():
                    if line:
                        owner = json.loads(line)["object"]["metadata"]["labels"]["llmasos.io/llmjob"]
                        seen.setdefault(owner, time.monotonic())

        async def sampler() -> None:
            next_kill = time.monotonic() + args.kill_every * rng.uniform(0.5, 1.5) if args.kill_every else None
            while True:
                op.sample()
                if next_kill and time.monotonic() >= next_kill:
                    await asyncio.to_thread(op.kill_and_restart)
                    next_kill = time.monotonic() + args.kill_every * rng.uniform(0.5, 1.5)
                await asyncio.sleep(1)

        watcher, sampling = asyncio.create_task(watch_jobs()), asyncio.create_task(sampler())
        await asyncio.sleep(1)
        t0 = time.monotonic()

        async def create(name: str, i: int) -> None:
            r = await http.post(f"/apis/llmasos.io/v1alpha1/namespaces/{NS}/llmjobs", json=llmjob(name, i))
            assert r.status_code == 201, r.text
            created[name] = time.monotonic()

        await gather_limited([create(f"j{i:05d}", i) for i in range(args.jobs)])
        created_all = time.monotonic() - t0
        phases: list[str] = []
        while time.monotonic() - t0 < args.timeout:
            r = await http.get(f"/apis/llmasos.io/v1alpha1/namespaces/{NS}/llmjobs")
            phases = [str(i.get("status", {}).get("phase", "")) for i in r.json()["items"]]
            if sum(p in TERMINAL for p in phases) == args.jobs:
                break
            await asyncio.sleep(5)
        all_done = time.monotonic() - t0
        sampling.cancel()
        watcher.cancel()
        jobs = (await http.get(f"/apis/batch/v1/namespaces/{NS}/jobs")).json()["items"]
        services = (await http.get(f"/api/v1/namespaces/{NS}/services")).json()["items"]
    owners = [j["metadata"]["labels"].get("llmasos.io/llmjob") for j in jobs]
    latencies = sorted(seen[k] - created[k] for k in created if k in seen)
    return {"created_all_s": round(created_all, 1), "all_terminal_s": round(all_done, 1),
            "succeeded": phases.count("Succeeded"), "failed": phases.count("Failed"),
            "not_terminal": sum(p not in TERMINAL for p in phases),
            "child_jobs": len(jobs), "llmjobs_with_more_than_one_job": len(owners) - len(set(owners)),
            "llmjobs_without_a_job": args.jobs - len(set(owners)), "services": len(services),
            "latency_p50_s": round(statistics.median(latencies), 2) if latencies else None,
            "latency_p99_s": round(latencies[int(0.99 * (len(latencies) - 1))], 2) if latencies else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--nodes", type=int, default=300)
    parser.add_argument("--kill-every", type=float, default=0.0, help="SIGKILL the operator about every N s (0: no)")
    parser.add_argument("--timeout", type=float, default=1800)
    args = parser.parse_args()
    cluster = start_bench_cluster(args.nodes, timeout=300)
    out = REPO / "bench" / "out"
    out.mkdir(exist_ok=True)
    try:
        before, before_by_verb = audit_requests(cluster, USER)
        op = Operator(cluster, out)
        t0 = time.monotonic()
        res = asyncio.run(run(cluster, args, op))
        elapsed = time.monotonic() - t0
        metrics = op.stop()
        total, after_by_verb = audit_requests(cluster, USER)
        by_verb = {k: v - before_by_verb.get(k, 0) for k, v in after_by_verb.items() if v - before_by_verb.get(k, 0)}
        requests = total - before
        figures = {
            "jobs": args.jobs, "nodes": args.nodes, "operator_kills": op.kills, **res,
            "operator_peak_rss_mib": round(op.peak_rss), "operator_cpu_s": round(op.cpu, 1),
            "api_requests": requests, "api_requests_per_llmjob": round(requests / args.jobs, 1),
            "api_requests_per_second": round(requests / elapsed, 1),
            "api_requests_by_verb": dict(sorted(by_verb.items(), key=lambda kv: -kv[1])[:10]),
            "reconcile_p50_le_s": quantile_from_histogram(metrics, "llmasos_reconcile_duration_seconds", 0.5),
            "reconcile_p99_le_s": quantile_from_histogram(metrics, "llmasos_reconcile_duration_seconds", 0.99),
        }
        (out / "chaos_load.json").write_text(json.dumps(figures, indent=2) + "\n")
        print(json.dumps(figures, indent=2))
    finally:
        cluster.down()


if __name__ == "__main__":
    main()
