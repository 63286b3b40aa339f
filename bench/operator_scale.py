"""Operator scale benchmark: N LLMJobs (2 workers each) against ~100 fake GPU nodes, versus the client floor.

Prints: time until every child Job exists (operator) vs. creating the same Jobs and Services directly with a client
(floor), per-LLMJob latency from create to child Job (p50/p99), reconcile-pass latency (p50/p99, from the
operator's histogram), operator peak RSS and CPU seconds, and API requests per LLMJob counted in the API server's
audit log for the operator's own identity. Asserts nothing.

Two ways to hand the operator its N LLMJobs (`--mode`, default both, one after the other on the same cluster):
- `stream`: the client creates them while the operator runs; timed from the first LLMJob create, so the time
  includes the API server's work for the client's own N creates. The bound no operator can beat is printed with it:
  (the same N LLMJob creates with no operator running + the floor) / the floor.
- `backlog`: the N LLMJobs exist before the operator starts (an upgrade, a restart, a queue filled overnight); timed
  from the operator's process start (its start-up and first listing included) until every child Job exists: the
  operator's own work against the floor's, like for like.

Usage: .venv/bin/python -m bench.operator_scale [--jobs 500] [--nodes 100] [--mode both|stream|backlog]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from bench.cluster_start import scaled_pools
from e2e.localcluster import ClusterPaths, LocalCluster
from e2e.localcluster.cluster import REPO
from llmasos.api.spec import parse_spec
from llmasos.cluster.builders import Owner, build_job, build_service
from tests.integration.operator_proc import OperatorProcess

CONCURRENCY = 20


def client(cluster: LocalCluster, stem: str = "bench") -> httpx.AsyncClient:
    pki = cluster.paths.pki
    tls = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    tls.load_cert_chain(str(pki / f"{stem}.crt"), str(pki / f"{stem}.key"))
    return httpx.AsyncClient(base_url=cluster.paths.server, verify=tls, timeout=60,
                             limits=httpx.Limits(max_connections=CONCURRENCY))


def llmjob(name: str) -> dict[str, Any]:
    return {"apiVersion": "llmasos.io/v1alpha1", "kind": "LLMJob",
            "metadata": {"name": name, "annotations": {"sim.llmasos.io/duration": "20s"}},
            "spec": {"model": {"builtin": "gpt-tiny"}, "parallelism": {"strategy": "ddp", "nodes": 2,
                                                                        "gpusPerNode": 1}}}


async def gather_limited(coros: list[Any]) -> list[Any]:
    sem = asyncio.Semaphore(CONCURRENCY)

    async def one(c: Any) -> Any:
        async with sem:
            return await c

    return await asyncio.gather(*(one(c) for c in coros))


async def make_namespace(http: httpx.AsyncClient, ns: str) -> None:
    r = await http.post("/api/v1/namespaces", json={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    assert r.status_code in (201, 409), r.text


async def floor(cluster: LocalCluster, n: int) -> float:
    """Create n Jobs + n Services, as the operator would render them, straight from a client."""
    ns = "bench-floor"
    async with client(cluster) as http:
        await make_namespace(http, ns)
        spec = parse_spec(llmjob("x")["spec"])
        bodies = []
        for i in range(n):
            owner = Owner(f"f{i:04d}", ns, f"uid-{i}")
            job, svc = build_job(owner, spec, 0, "a100", "img"), build_service(owner, spec)
            for obj in (job, svc):
                obj["metadata"].pop("ownerReferences")
            bodies.append((job, svc))
        t0 = time.monotonic()

        async def create(job: dict[str, Any], svc: dict[str, Any]) -> None:
            r1 = await http.post(f"/apis/batch/v1/namespaces/{ns}/jobs", json=job)
            r2 = await http.post(f"/api/v1/namespaces/{ns}/services", json=svc)
            if r1.status_code != 201 or r2.status_code != 201:
                raise RuntimeError(f"floor create failed: {r1.text} {r2.text}")

        await gather_limited([create(j, s) for j, s in bodies])
        elapsed = time.monotonic() - t0
        # The floor's objects are gone before the operator starts: their deletion (1,000 pods garbage-collected)
        # would otherwise load the control plane, and the operator's Job watch, during the measured run.
        await delete_namespace(http, ns)
    return elapsed


async def delete_namespace(http: httpx.AsyncClient, ns: str) -> None:
    """Delete and wait until it is gone (its pods garbage-collected), so it does not load the next measurement."""
    await http.delete(f"/api/v1/namespaces/{ns}")
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if (await http.get(f"/api/v1/namespaces/{ns}")).status_code == 404:
            return
        await asyncio.sleep(2)


async def operator_run(cluster: LocalCluster, n: int, op: OperatorProcess, mode: str) -> dict[str, Any]:
    """Stream: start the operator, then create the LLMJobs (t0 = first create). Backlog: create them, then start the
    operator (t0 = its process start). Either way, until every child Job exists and then every LLMJob Succeeded."""
    ns = f"bench-{mode}"
    seen: dict[str, float] = {}
    created: dict[str, float] = {}
    all_seen = asyncio.Event()
    async with client(cluster) as http:
        await make_namespace(http, ns)
        if mode == "stream":
            op.start()

        async def watch_jobs() -> None:
            # A watch the API server ends (or an ERROR event) is opened again without a resourceVersion: the new
            # watch lists every Job as ADDED, and a Job seen before keeps its first time.
            params = {"watch": "1", "labelSelector": "llmasos.io/llmjob"}
            while not all_seen.is_set():
                try:
                    async with http.stream("GET", f"/apis/batch/v1/namespaces/{ns}/jobs", params=params,
                                           timeout=None) as r:
                        async for line in r.aiter_lines():
                            ev = json.loads(line) if line else {}
                            if ev.get("type") not in ("ADDED", "MODIFIED"):
                                continue
                            owner = (ev["object"]["metadata"].get("labels") or {}).get("llmasos.io/llmjob")
                            if owner:
                                seen.setdefault(owner, time.monotonic())
                            if len(seen) >= n:
                                all_seen.set()
                except httpx.HTTPError as exc:
                    print(f"  (job watch ended: {exc!r}; watching again)", file=sys.stderr)
                await asyncio.sleep(0.1)

        watcher = asyncio.create_task(watch_jobs())
        await asyncio.sleep(1)

        async def create(name: str) -> None:
            r = await http.post(f"/apis/llmasos.io/v1alpha1/namespaces/{ns}/llmjobs", json=llmjob(name))
            assert r.status_code == 201, r.text
            created[name] = time.monotonic()

        t_create = time.monotonic()
        await gather_limited([create(f"j{i:04d}") for i in range(n)])
        created_all = time.monotonic() - t_create
        if mode == "stream":
            t0 = t_create
        else:
            await asyncio.sleep(5)  # the API server settles after the creates
            t0 = time.monotonic()
            op.start(wait_healthy=False)
            await asyncio.to_thread(op.wait_healthy)
            healthy = time.monotonic() - t0
        try:
            await asyncio.wait_for(all_seen.wait(), timeout=900)
        except TimeoutError:
            raise RuntimeError(f"only {len(seen)} of {n} child Jobs appeared within 900 s") from None
        all_jobs = max(seen.values()) - t0
        watcher.cancel()
        latencies = sorted(seen[k] - (created[k] if mode == "stream" else t0) for k in created)

        done_t0 = time.monotonic()
        while True:
            r = await http.get(f"/apis/llmasos.io/v1alpha1/namespaces/{ns}/llmjobs")
            phases = [i.get("status", {}).get("phase") for i in r.json()["items"]]
            if sum(p == "Succeeded" for p in phases) == n or time.monotonic() - done_t0 > 600:
                break
            await asyncio.sleep(2)
        all_done = time.monotonic() - t0
    return {"created_all": created_all, "all_jobs": all_jobs, "latencies": latencies, "all_done": all_done,
            "succeeded": sum(p == "Succeeded" for p in phases),
            "healthy": healthy if mode == "backlog" else None}


async def llmjob_creates_alone(cluster: LocalCluster, n: int) -> float:
    """The client's N LLMJob creates with no operator running (part of the stream mode's bound)."""
    ns = "bench-creates"
    async with client(cluster) as http:
        await make_namespace(http, ns)
        t0 = time.monotonic()

        async def create(name: str) -> None:
            r = await http.post(f"/apis/llmasos.io/v1alpha1/namespaces/{ns}/llmjobs", json=llmjob(name))
            assert r.status_code == 201, r.text

        await gather_limited([create(f"c{i:04d}") for i in range(n)])
        elapsed = time.monotonic() - t0
        await delete_namespace(http, ns)
    return elapsed


async def clear_namespace(cluster: LocalCluster, ns: str) -> None:
    async with client(cluster) as http:
        await delete_namespace(http, ns)


def quantile_from_histogram(text: str, name: str, q: float) -> float:
    buckets = []
    for line in text.splitlines():
        if line.startswith(f"{name}_bucket"):
            le = line.split('le="')[1].split('"')[0]
            buckets.append((float("inf") if le == "+Inf" else float(le), float(line.rsplit(" ", 1)[1])))
    total = buckets[-1][1]
    for le, count in buckets:
        if count >= q * total:
            return le
    return float("inf")


def proc_stats(pid: int) -> tuple[float, float]:
    status = Path(f"/proc/{pid}/status").read_text()
    hwm = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")) / 1024
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return hwm, cpu


def audit_requests(cluster: LocalCluster, user: str) -> tuple[int, dict[str, int]]:
    by_verb: dict[str, int] = {}
    total = 0
    for line in (cluster.paths.logs / "audit.log").read_text().splitlines():
        ev = json.loads(line)
        if ev.get("user", {}).get("username") != user or ev.get("stage") != "ResponseComplete":
            continue
        ref = ev.get('objectRef', {})
        key = f"{ev['verb']} {ref.get('resource', '?')}" + (f"/{ref['subresource']}" if ref.get('subresource') else '')
        by_verb[key] = by_verb.get(key, 0) + 1
        total += 1
    return total, dict(sorted(by_verb.items(), key=lambda kv: -kv[1]))


def start_bench_cluster(nodes: int, timeout: float = 120) -> LocalCluster:
    """A fresh local control plane with `nodes` fake 8-GPU nodes (room for the 2-worker gangs), the API-server
    audit log on (for requests per LLMJob) and the LLMJob CRD established."""
    os.environ["LLMASOS_AUDIT"] = "1"
    pools = scaled_pools(nodes)
    doc = yaml.safe_load(pools.read_text())
    for pool in doc["pools"]:
        pool["gpusPerNode"] = 8
    pools.write_text(yaml.safe_dump(doc))
    cluster = LocalCluster(ClusterPaths(pools_file=pools))
    cluster.down()
    cluster.up(timeout=timeout)
    cluster.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
    cluster.kubectl("wait", "--for=condition=Established", "crd/llmjobs.llmasos.io")
    return cluster


def measure(cluster: LocalCluster, n: int, mode: str, floor_s: float, out: Path) -> None:
    op = OperatorProcess(cluster, out, f"operator-scale-{mode}", {"LLMASOS_RESYNC_SECONDS": "30"},
                         kubeconfig=cluster.paths.root / "operator.kubeconfig")
    before, before_by_verb = audit_requests(cluster, "llmasos-operator-dev")
    if os.environ.get("LLMASOS_PROFILE"):
        import subprocess
        import threading

        def profile() -> None:  # once the operator process exists
            while op.proc is None:
                time.sleep(0.05)
            py_spy = str(Path(sys.executable).parent / "py-spy")
            subprocess.Popen([py_spy, "record", "-o", str(out / f"operator-profile-{mode}.txt"), "-f", "raw",
                              "-d", os.environ["LLMASOS_PROFILE"], "-p", str(op.proc.pid)])

        threading.Thread(target=profile, daemon=True).start()
    try:
        res = asyncio.run(operator_run(cluster, n, op, mode))
        assert op.proc is not None
        hwm, cpu = proc_stats(op.proc.pid)
        metrics = op.metrics()
    finally:
        op.stop()
    total, after_by_verb = audit_requests(cluster, "llmasos-operator-dev")
    by_verb = {k: v - before_by_verb.get(k, 0) for k, v in after_by_verb.items() if v - before_by_verb.get(k, 0)}
    by_verb = dict(sorted(by_verb.items(), key=lambda kv: -kv[1]))
    lat = res["latencies"]
    if mode == "stream":
        print(f"stream: {n} LLMJobs created by the client in {res['created_all']:.1f}s while the operator ran; "
              f"every child Job existed {res['all_jobs']:.1f}s after the first create "
              f"({res['all_jobs'] / floor_s:.2f}x the floor)")
        print(f"  create->child Job latency p50 {statistics.median(lat) * 1000:.0f} ms, "
              f"p99 {lat[int(0.99 * (len(lat) - 1))] * 1000:.0f} ms")
    else:
        print(f"backlog: {n} LLMJobs waiting (created in {res['created_all']:.1f}s); from the operator's process "
              f"start, healthy after {res['healthy']:.1f}s, every child Job existed after {res['all_jobs']:.1f}s "
              f"({res['all_jobs'] / floor_s:.2f}x the floor)")
        print(f"  operator start->child Job p50 {statistics.median(lat) * 1000:.0f} ms, "
              f"p99 {lat[int(0.99 * (len(lat) - 1))] * 1000:.0f} ms")
    print(f"  reconcile pass p50 <= {quantile_from_histogram(metrics, 'llmasos_reconcile_duration_seconds', 0.5)}s,"
          f" p99 <= {quantile_from_histogram(metrics, 'llmasos_reconcile_duration_seconds', 0.99)}s "
          f"(histogram bucket bounds)")
    print(f"  {res['succeeded']}/{n} Succeeded after {res['all_done']:.1f}s")
    print(f"  operator peak RSS {hwm:.0f} MiB, CPU {cpu:.1f}s")
    print(f"  API requests by the operator: {total - before} = {(total - before) / n:.1f} per LLMJob")
    for key, count in list(by_verb.items())[:8]:
        print(f"    {count:6d}  {key}")
    asyncio.run(clear_namespace(cluster, f"bench-{mode}"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--mode", choices=["both", "stream", "backlog"], default="both")
    args = parser.parse_args()
    cluster = start_bench_cluster(args.nodes)
    try:
        floor_s = asyncio.run(floor(cluster, args.jobs))
        print(f"floor: {args.jobs} Jobs + {args.jobs} Services created directly in {floor_s:.1f}s "
              f"(concurrency {CONCURRENCY})")
        out = REPO / "bench" / "out"
        out.mkdir(exist_ok=True)
        if args.mode in ("both", "stream"):
            alone = asyncio.run(llmjob_creates_alone(cluster, args.jobs))
            print(f"bound for stream: {args.jobs} LLMJob creates with no operator {alone:.1f}s; "
                  f"(that + floor) / floor = {(alone + floor_s) / floor_s:.2f}x")
            time.sleep(5)
            measure(cluster, args.jobs, "stream", floor_s, out)
        if args.mode in ("both", "backlog"):
            time.sleep(5)
            measure(cluster, args.jobs, "backlog", floor_s, out)
    finally:
        cluster.down()


if __name__ == "__main__":
    main()
