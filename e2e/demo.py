"""`make demo`: the whole LLMasOS story on the local cluster, with no manual step.

1. bring up the local cluster: a real control plane, kwok GPU pools (fake nodes, simulated pods) and one real node
   (kubelet, containerd, CNI, CoreDNS, a fake-GPU device plugin) on this machine;
2. `helm upgrade --install` the chart from the images `make images` built (e2e/realchart.py): the operator
   Deployment (2 replicas, kopf peering) and the agent DaemonSet run as containers on the real node, exactly as the
   chart defines them; the kwok GPU nodes, which have no kubelet to run a DaemonSet pod, get one simulated agent pod
   each on the real node (e2e/kwokagents.py);
3. apply the examples: the DDP and the interruptible job in their real-node variants (examples/real-node/), whose
   workers train gpt-tiny for real in pods; the others (examples/02, 03, 05, 06, 07) on the kwok GPU pools, where
   kwok marks each pod done after its sim.llmasos.io/duration. The screen says which job runs where;
4. suspend the interruptible job while it trains (real SIGTERM from the kubelet, a checkpoint on a local
   PersistentVolume) and resume it: rank 0 continues from the step it saved;
5. finish with each job's outcome (the real workers' loss from their logs) and the sustainability report.

Carbon data: the embedded trace source (real 2020-2021 grid series shipped in the package) with a pinned clock
offset that puts "now" a few minutes before a steep drop in the l4 pool's grid intensity, and a perfect forecast,
so the deadline jobs' deferrals play out in minutes instead of hours.

    python -m e2e.demo [--timeout 900]
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from e2e import realchart
from e2e.demo_real import Interruption, loss_line, rank0_events, rank0_pod
from e2e.kwokagents import start_kwok_agents
from e2e.localcluster import LocalCluster
from llmasos.api.phase import TERMINAL

REPO = Path(__file__).resolve().parents[1]
RELEASE, NAMESPACE, DEMO_NS = "llmasos", "llmasos-system", "ml"
DEFERRED_POOL_ZONE = "US-CAL-CISO"  # the l4 pool's llmasos.io/carbon-zone (e2e/node-pools.yaml)
LEAD = timedelta(minutes=3)  # how long before the intensity drop "now" lands
REAL_EXAMPLES = ("real-node/01-ddp.yaml", "real-node/04-interruptible.yaml")
KWOK_EXAMPLES = ("02-deadline-deferred.yaml", "03-power-capped.yaml", "05-tensor-pipeline.yaml",
                 "06-ray-inference.yaml", "07-compression.yaml")
INTERRUPTIBLE = "gpt-tiny-interruptible"
CHECKPOINT_CLAIM = "checkpoints"  # examples/real-node/04-interruptible.yaml mounts it at realchart.CHECKPOINTS
REAL, KWOK = "real node", "kwok"


def say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def note(text: str) -> None:
    print(f"   {text}", flush=True)


def clock_text(seconds: float) -> str:
    return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"


# ---------------------------------------------------------------------------------------------- carbon clock
def demo_trace_offset(zone: str = DEFERRED_POOL_ZONE, now: datetime | None = None) -> tuple[str, dict[str, Any]]:
    """A trace offset (setting traceOffset) that maps now to LEAD before the steepest hour-to-hour drop of 2020."""
    from llmasos.carbon.trace import load_shipped_series

    series = load_shipped_series(zone)
    points = [p for p in series.points if p.start.year == 2020 and p.start.month >= 2]
    best = max(
        (pair for pair in itertools.pairwise(points) if pair[0].intensity > 0),
        key=lambda pair: (pair[0].intensity - pair[1].intensity) / pair[0].intensity,
    )
    before, after = best
    now = now or datetime.now(UTC)
    offset = (after.start - LEAD) - now
    seconds = int(offset.total_seconds())
    text = f"-{-seconds}s" if seconds < 0 else f"{seconds}s"
    return text, {"zone": zone, "trace_now": now + timedelta(seconds=seconds), "drop_at": after.start,
                  "from": before.intensity, "to": after.intensity}


# ------------------------------------------------------------------------------------------------- cluster
def fresh_namespace(cluster: LocalCluster) -> None:
    """A second run starts from nothing: the demo namespace, its jobs and the checkpoint volume of the last run."""
    if cluster.kubectl("get", "namespace", DEMO_NS, check=False).returncode == 0:
        note(f"deleting namespace {DEMO_NS} left by an earlier run")
        cluster.kubectl("delete", "llmjobs", "--all", "-n", DEMO_NS, "--wait=true", "--timeout=120s", check=False)
        cluster.kubectl("delete", "namespace", DEMO_NS, "--wait=true", "--timeout=180s", check=False)
    path, docs = realchart.local_volume_docs(cluster, DEMO_NS, CHECKPOINT_CLAIM)
    cluster.kubectl("delete", "pv", docs[0]["metadata"]["name"], "--ignore-not-found", check=False)
    shutil.rmtree(path, ignore_errors=True)


def chart_extra(offset: str) -> dict[str, Any]:
    """The demo's values on top of realchart's: the pinned trace clock and a perfect forecast."""
    return {"carbon": {"sources": ["trace", "static"], "trace": {"offset": offset, "forecastError": 0}}}


def example_docs(names: tuple[str, ...]) -> list[dict[str, Any]]:
    """The LLMJobs of these example files (their Namespace documents left out: the demo creates `ml` first)."""
    return [d for name in names for d in yaml.safe_load_all((REPO / "examples" / name).read_text())
            if d and d["kind"] != "Namespace"]


def placement_line(cluster: LocalCluster) -> str:
    pods = json.loads(cluster.kubectl("get", "pods", "-n", NAMESPACE, "-o", "json").stdout)["items"]
    counts: dict[str, int] = {}
    for pod in pods:
        component = pod["metadata"].get("labels", {}).get("app.kubernetes.io/component", "?")
        counts[component] = counts.get(component, 0) + 1
    return ", ".join(f"{n} {c}" for c, n in sorted(counts.items()))


# ------------------------------------------------------------------------------------------------- watching
def llmjobs(cluster: LocalCluster) -> list[dict[str, Any]]:
    out = cluster.kubectl("get", "llmjobs", "-n", DEMO_NS, "-o", "json", check=False)
    return list(json.loads(out.stdout)["items"]) if out.returncode == 0 else []


def where(job: dict[str, Any]) -> str:
    pools = (job.get("spec") or {}).get("placement", {}).get("nodePools") or []
    return REAL if pools == ["real"] else KWOK


def show_table(jobs: list[dict[str, Any]]) -> str:
    """kubectl's columns that matter here, plus WHERE: the real node (real pods) or kwok (simulated pods)."""
    rows = [("NAME", "WHERE", "PHASE", "POOL", "WORKERS", "START")]
    for job in sorted(jobs, key=lambda j: (where(j), j["metadata"]["name"])):
        status = job.get("status") or {}
        rows.append((job["metadata"]["name"], where(job), status.get("phase", ""), status.get("pool", ""),
                     (status.get("workers") or {}).get("summary", ""), status.get("scheduledStart", "")))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "".join("   " + "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() + "\n"
                   for r in rows)


def state_of(job: dict[str, Any]) -> tuple[str, ...]:
    status = job.get("status") or {}
    return (job["metadata"]["name"], status.get("phase", ""), (status.get("workers") or {}).get("summary", ""),
            status.get("pool", ""), status.get("scheduledStart", ""))


def narrate(jobs: list[dict[str, Any]], told: set[str]) -> None:
    for job in jobs:
        name, status = job["metadata"]["name"], job.get("status") or {}
        phase, plan = status.get("phase", ""), status.get("plan") or {}
        key = f"{name}:{phase}"
        if key in told:
            continue
        told.add(key)
        if phase == "Deferred" and plan:
            note(f"{name} ({where(job)}) is Deferred until {plan.get('startAt')} on {status.get('pool')} "
                 f"({plan.get('zone')}): {plan.get('expectedIntensity')} instead of {plan.get('runNowIntensity')} "
                 f"gCO2e/kWh now, expected saving {plan.get('expectedSavingsPercent')}%")
        elif phase == "Running" and where(job) == REAL:
            note(f"{name}: Running on the real node: its workers are pods of the worker image, training for real")
        elif phase in ("Running", "Succeeded", "Failed", "Suspended"):
            note(f"{name}: {phase} on pool {status.get('pool', '?')} ({where(job)})")


def watch(cluster: LocalCluster, interruption: Interruption, timeout: float) -> list[dict[str, Any]]:
    """Print the table when it changes, drive the interruptible job's suspension; stop when all are done."""
    end, last, told = time.monotonic() + timeout, "", set[str]()
    jobs: list[dict[str, Any]] = []
    while time.monotonic() < end:
        jobs = llmjobs(cluster)
        state = repr(sorted(state_of(j) for j in jobs))
        if state != last:
            print(f"\n[{datetime.now().strftime('%H:%M:%S')}] LLMJobs in namespace {DEMO_NS}\n{show_table(jobs)}",
                  end="", flush=True)
            last = state
        narrate(jobs, told)
        phases = {j["metadata"]["name"]: (j.get("status") or {}).get("phase", "") for j in jobs}
        interruption.advance(phases.get(INTERRUPTIBLE, ""))
        if jobs and all(p in TERMINAL for p in phases.values()) and interruption.done:
            return jobs
        time.sleep(2)
    say(f"timed out after {timeout:.0f}s; jobs still going are left running")
    return jobs


def summary(cluster: LocalCluster, jobs: list[dict[str, Any]]) -> None:
    say("outcome")
    for job in sorted(jobs, key=lambda j: (where(j), j["metadata"]["name"])):
        status = job.get("status") or {}
        carbon, plan = status.get("carbon") or {}, status.get("plan") or {}
        extra = []
        if plan.get("zone"):
            extra.append(f"planned on {plan['zone']}")
        if carbon.get("energyKWh") is not None:
            extra.append(f"{carbon['energyKWh']} kWh, {carbon.get('gCO2e')} gCO2e")
        if status.get("power"):
            limits = sorted({p.get("limitWatts") for p in status["power"].get("pods", [])} - {None})
            if limits:
                extra.append(f"GPU limit {limits} W")
        note(f"{job['metadata']['name']:24s} {where(job):9s} {status.get('phase', ''):10s} "
             f"{status.get('pool', ''):5s} " + "; ".join(extra))
        if where(job) == REAL:
            pod = rank0_pod(cluster, DEMO_NS, job["metadata"]["name"], running=False)
            events = rank0_events(cluster, DEMO_NS, pod) if pod else []
            done = next((e for e in events if e["event"] == "done"), None)
            trained = loss_line(events)
            if trained:
                note(f"{'':24s} rank 0 ({pod}): {trained}"
                     + (f", {done['tokens_per_second']:.0f} tokens/s" if done else ""))


def report(cluster: LocalCluster, out_dir: Path) -> None:
    from llmasos.cli import build_parser

    subcommands = next((a.choices for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)), {})
    if "report" not in subcommands:
        say("sustainability report: `llmasos report` does not exist yet in this version; skipped "
            "(the per-job figures above come from LLMJob.status)")
        return
    path = out_dir / "sustainability-report"
    result = subprocess.run([sys.executable, "-m", "llmasos.cli", "report", "--kubeconfig",
                             str(cluster.paths.kubeconfig), "--namespace", DEMO_NS, "--out", str(path)],
                            capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        say(f"`llmasos report` failed (exit {result.returncode}):\n{result.stderr[-2000:]}")
        return
    print(result.stdout, end="")
    say(f"sustainability report: {path}")


# --------------------------------------------------------------------------------------------------- story
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m e2e.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--timeout", type=float, default=900, help="seconds to watch the jobs (default 900)")
    parser.add_argument("--suspend-at", type=int, default=300,
                        help="suspend the interruptible job once its rank 0 passed this step (default 300)")
    args = parser.parse_args(argv)
    began = time.monotonic()

    cluster = LocalCluster()
    if not cluster.paths.real_node:
        raise SystemExit("the demo runs its training jobs on the real node: unset LLMASOS_REAL_NODE=0")
    try:
        images = realchart.built_images()
    except RuntimeError as exc:
        raise SystemExit(str(exc)) from None
    say("local cluster: control plane, kwok GPU pools, and one real node (kubelet, containerd, CNI, CoreDNS)")
    t0 = time.monotonic()
    cluster.up()
    note(f"ready in {time.monotonic() - t0:.1f}s; export KUBECONFIG={cluster.paths.kubeconfig}")
    print(cluster.kubectl("get", "nodes", "-L", "llmasos.io/pool,nvidia.com/gpu.product,llmasos.io/carbon-zone")
          .stdout, end="")
    fresh_namespace(cluster)

    work = cluster.paths.root / "demo"
    work.mkdir(parents=True, exist_ok=True)
    offset, info = demo_trace_offset()
    say("carbon data: the embedded trace source with a clock offset, so deferrals play out in minutes")
    note(f"traceOffset {offset}: now is {info['trace_now']:%Y-%m-%d %H:%M} UTC on the {info['zone']} trace, "
         f"{int(LEAD.total_seconds() // 60)} min before its intensity drops {info['from']:.0f} -> {info['to']:.0f} "
         "gCO2e/kWh; forecastError 0 (perfect forecast)")

    say(f"helm upgrade --install {RELEASE} charts/llmasos -n {NAMESPACE} (values: {work / 'values.yaml'})")
    note(f"images {images['operator'].ref} and {images['worker'].ref}, imported into the real node's containerd, "
         "never pulled")
    t0 = time.monotonic()
    try:
        realchart.install(cluster, RELEASE, NAMESPACE, work / "values.yaml", chart_extra(offset), images)
    except RuntimeError as exc:
        raise SystemExit(str(exc)) from None
    note(f"installed and every pod Ready in {time.monotonic() - t0:.0f}s: {placement_line(cluster)} (containers "
         f"on {cluster.node.n.name}; non-root, read-only root filesystem, probes as the chart defines them)")
    print(cluster.kubectl("get", "pods", "-n", NAMESPACE, "-o", "wide").stdout, end="")

    say("simulated agents for the kwok GPU nodes (no kubelet there to run the DaemonSet): one pod each, on the "
        f"real node, as the chart's ServiceAccount {RELEASE}-agent")
    t0 = time.monotonic()
    try:
        nodes = start_kwok_agents(cluster, images["operator"].ref, NAMESPACE, f"{RELEASE}-agent")
    except RuntimeError as exc:
        raise SystemExit(str(exc)) from None
    note(f"{len(nodes)} agent pods reporting in {time.monotonic() - t0:.0f}s: "
         + ", ".join(f"{n} ({g} x {p})" for n, p, g in nodes))

    say("kubectl apply: on the REAL node " + ", ".join(f"examples/{n}" for n in REAL_EXAMPLES)
        + "; on the KWOK pools " + ", ".join(f"examples/{n}" for n in KWOK_EXAMPLES))
    cluster.kubectl("create", "namespace", DEMO_NS, check=False)
    realchart.ensure_local_volume(cluster, DEMO_NS, CHECKPOINT_CLAIM)
    note(f"claim {CHECKPOINT_CLAIM} in {DEMO_NS}: a local PersistentVolume on {cluster.node.n.name} (the interruptible "
         "job's checkpoints outlive its pods there)")
    docs = example_docs(REAL_EXAMPLES) + example_docs(KWOK_EXAMPLES)
    print(cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs)).stdout, end="")

    def patch(suspend: bool) -> None:
        cluster.kubectl("patch", "llmjob", INTERRUPTIBLE, "-n", DEMO_NS, "--type", "merge",
                        "-p", json.dumps({"spec": {"suspend": suspend}}))

    interruption = Interruption(cluster, DEMO_NS, INTERRUPTIBLE, patch, say, note, at_step=args.suspend_at)
    jobs = watch(cluster, interruption, args.timeout)
    if interruption.follower is not None:
        interruption.follower.close()
    summary(cluster, jobs)
    report(cluster, work)
    say(f"done in {clock_text(time.monotonic() - began)}. The cluster is still up: explore with kubectl, stop it "
        "with `make cluster-down`")
    note(f"export KUBECONFIG={cluster.paths.kubeconfig}; kubectl logs -n {NAMESPACE} deploy/{RELEASE}-operator; "
         f"kubectl describe llmjob -n {DEMO_NS} {INTERRUPTIBLE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
