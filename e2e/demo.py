"""`make demo`: the whole LLMasOS story on the local control plane, with no manual step.

1. bring up the local control plane (real etcd/kube-apiserver/controller-manager/scheduler, kwok GPU nodes);
2. `helm upgrade --install` the chart with ci/local-values.yaml: CRDs, ServiceAccounts, RBAC, peering object (there
   is no container runtime, so no Deployment/DaemonSet);
3. start the operator and one node agent per fake GPU node as local processes, each authenticated with a
   TokenRequest token of the chart's ServiceAccount (so the chart's RBAC is what they run with);
4. apply examples/*.yaml and show `kubectl get llmjobs` as they progress; the interruptible job is suspended and
   resumed on screen;
5. finish with the sustainability report's path (when `llmasos report` exists).

Carbon data: the embedded trace source (real 2020-2021 grid series shipped in the package) with a pinned clock
offset that puts "now" a few minutes before a steep drop in the l4 pool's grid intensity, and a perfect forecast,
so the deadline jobs' deferrals play out in minutes instead of hours.

    python -m e2e.demo [--timeout 900] [--keep-running]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from e2e.localcluster import LocalCluster

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "charts" / "llmasos"
RELEASE, NAMESPACE, DEMO_NS = "llmasos", "llmasos-system", "ml"
DEFERRED_POOL_ZONE = "US-CAL-CISO"  # the l4 pool's llmasos.io/carbon-zone (e2e/node-pools.yaml)
LEAD = timedelta(minutes=3)  # how long before the intensity drop "now" lands
INTERRUPTIBLE = "gpt-small-interruptible"
TERMINAL = ("Succeeded", "Failed")


def say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def note(text: str) -> None:
    print(f"   {text}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
def helm(cluster: LocalCluster, *args: str) -> str:
    result = subprocess.run([cluster.binary("helm"), f"--kubeconfig={cluster.paths.kubeconfig}", *args],
                            capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise SystemExit(f"helm {' '.join(args[:2])} failed:\n{result.stderr}")
    return result.stdout


def token_kubeconfig(cluster: LocalCluster, service_account: str, path: Path) -> Path:
    token = cluster.kubectl("create", "token", service_account, "-n", NAMESPACE, "--duration=24h").stdout.strip()
    doc = {
        "apiVersion": "v1", "kind": "Config", "current-context": "sa",
        "clusters": [{"name": "local", "cluster": {"server": cluster.paths.server,
                                                  "certificate-authority": str(cluster.paths.pki / "ca.crt")}}],
        "users": [{"name": service_account, "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "local", "user": service_account}}],
    }
    path.write_text(yaml.safe_dump(doc))
    path.chmod(0o600)
    return path


def gpu_nodes(cluster: LocalCluster) -> list[tuple[str, str, int]]:
    nodes = json.loads(cluster.kubectl("get", "nodes", "-l", "nvidia.com/gpu.product", "-o", "json").stdout)
    out = []
    for n in nodes["items"]:
        labels = n["metadata"]["labels"]
        gpus = int(labels.get("nvidia.com/gpu.count", 8))
        out.append((n["metadata"]["name"], labels["nvidia.com/gpu.product"], gpus))
    return sorted(out)


# ----------------------------------------------------------------------------------------------- processes
class Processes:
    """Child processes in their own sessions, stopped with SIGTERM (the agents restore power limits on it)."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        log = open(self.log_dir / f"{name}.log", "wb")  # noqa: SIM115 - the child owns it
        self.procs[name] = subprocess.Popen(argv, env={**os.environ, **env, "PYTHONUNBUFFERED": "1"}, stdout=log,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            start_new_session=True, cwd=REPO)
        log.close()

    def check(self) -> None:
        for name, p in self.procs.items():
            if p.poll() is not None:
                tail = (self.log_dir / f"{name}.log").read_text(errors="replace")[-2000:]
                raise SystemExit(f"{name} exited with {p.returncode}; last log lines:\n{tail}")

    def stop_all(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs.values():
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=10)


@contextmanager
def running(log_dir: Path) -> Iterator[Processes]:
    procs = Processes(log_dir)
    try:
        yield procs
    finally:
        procs.stop_all()


# ------------------------------------------------------------------------------------------------- watching
def llmjobs(cluster: LocalCluster) -> list[dict[str, Any]]:
    out = cluster.kubectl("get", "llmjobs", "-n", DEMO_NS, "-o", "json", check=False)
    return list(json.loads(out.stdout)["items"]) if out.returncode == 0 else []


def show_table(cluster: LocalCluster) -> str:
    return cluster.kubectl("get", "llmjobs", "-n", DEMO_NS, check=False).stdout


def state_of(job: dict[str, Any]) -> tuple[str, ...]:
    status = job.get("status") or {}
    return (job["metadata"]["name"], status.get("phase", ""), (status.get("workers") or {}).get("summary", ""),
            status.get("pool", ""), status.get("scheduledStart", ""), str((status.get("carbon") or {}).get("gCO2e")))


def narrate(jobs: list[dict[str, Any]], told: set[str]) -> None:
    for job in jobs:
        name, status = job["metadata"]["name"], job.get("status") or {}
        phase, plan = status.get("phase", ""), status.get("plan") or {}
        key = f"{name}:{phase}"
        if key in told:
            continue
        told.add(key)
        if phase == "Deferred" and plan:
            note(f"{name} is Deferred until {plan.get('startAt')} on {status.get('pool')} ({plan.get('zone')}): "
                 f"{plan.get('expectedIntensity')} instead of {plan.get('runNowIntensity')} gCO2e/kWh now, "
                 f"expected saving {plan.get('expectedSavingsPercent')}%")
        elif phase in ("Running", "Succeeded", "Failed", "Suspended"):
            note(f"{name}: {phase} on pool {status.get('pool', '?')}")


def patch_suspend(cluster: LocalCluster, suspend: bool) -> None:
    cluster.kubectl("patch", "llmjob", INTERRUPTIBLE, "-n", DEMO_NS, "--type", "merge",
                    "-p", json.dumps({"spec": {"suspend": suspend}}))


def watch(cluster: LocalCluster, procs: Processes, timeout: float) -> list[dict[str, Any]]:
    """Print the table when it changes; suspend and resume the interruptible job once; stop when all are done."""
    end, last, told = time.monotonic() + timeout, "", set[str]()
    suspended_at: float | None = None
    resumed = False
    jobs: list[dict[str, Any]] = []
    while time.monotonic() < end:
        procs.check()
        jobs = llmjobs(cluster)
        state = repr(sorted(state_of(j) for j in jobs))  # reprint only when something but the age changed
        if state != last:
            print(f"\n[{datetime.now().strftime('%H:%M:%S')}] kubectl get llmjobs -n {DEMO_NS}\n"
                  f"{show_table(cluster)}", end="", flush=True)
            last = state
        narrate(jobs, told)
        phases = {j["metadata"]["name"]: (j.get("status") or {}).get("phase", "") for j in jobs}
        if phases.get(INTERRUPTIBLE) == "Running" and suspended_at is None:
            say(f"suspending {INTERRUPTIBLE} (what the operator does between the segments of an interruptible "
                "plan; the trace's segments are hours apart, so the demo shows it by hand)")
            patch_suspend(cluster, True)
            suspended_at = time.monotonic()
        elif suspended_at and not resumed and phases.get(INTERRUPTIBLE) == "Suspended" and \
                time.monotonic() - suspended_at > 15:
            say(f"resuming {INTERRUPTIBLE}: the same Job continues, workers restart from their checkpoint")
            patch_suspend(cluster, False)
            resumed = True
        if jobs and all(p in TERMINAL for p in phases.values()) and (resumed or INTERRUPTIBLE not in phases):
            return jobs
        time.sleep(3)
    say(f"timed out after {timeout:.0f}s; jobs still going are left running")
    return jobs


def summary(jobs: list[dict[str, Any]]) -> None:
    say("outcome")
    for job in sorted(jobs, key=lambda j: j["metadata"]["name"]):
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
        note(f"{job['metadata']['name']:26s} {status.get('phase', ''):10s} {status.get('pool', ''):5s} "
             + "; ".join(extra))


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
    parser.add_argument("--keep-running", action="store_true", help="keep operator and agents running until Ctrl-C")
    args = parser.parse_args(argv)

    cluster = LocalCluster()
    say("local control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok GPU nodes)")
    t0 = time.monotonic()
    cluster.up()
    note(f"ready in {time.monotonic() - t0:.1f}s; export KUBECONFIG={cluster.paths.kubeconfig}")
    print(cluster.kubectl("get", "nodes", "-L", "llmasos.io/pool,nvidia.com/gpu.product,llmasos.io/carbon-zone")
          .stdout, end="")

    say(f"helm upgrade --install {RELEASE} charts/llmasos -n {NAMESPACE} -f charts/llmasos/ci/local-values.yaml")
    helm(cluster, "upgrade", "--install", RELEASE, str(CHART), "--namespace", NAMESPACE, "--create-namespace",
         "-f", str(CHART / "ci" / "local-values.yaml"), "--wait=false")
    cluster.kubectl("wait", "--for=condition=Established", "crd/llmjobs.llmasos.io", "--timeout=60s")
    note("CRDs, ServiceAccounts llmasos-operator and llmasos-agent, their ClusterRoles/Roles, ClusterKopfPeering")
    note("(no container runtime here: the operator and agents run as local processes with those accounts' tokens)")

    work = cluster.paths.root / "demo"
    work.mkdir(parents=True, exist_ok=True)
    offset, info = demo_trace_offset()
    say("carbon data: the embedded trace source with a clock offset, so deferrals play out in minutes")
    note(f"traceOffset {offset}: now is {info['trace_now']:%Y-%m-%d %H:%M} UTC on the {info['zone']} trace, "
         f"{int(LEAD.total_seconds() // 60)} min before its intensity drops {info['from']:.0f} -> {info['to']:.0f} "
         "gCO2e/kWh; forecastError 0 (perfect forecast)")

    operator_kc = token_kubeconfig(cluster, "llmasos-operator", work / "operator.kubeconfig")
    agent_kc = token_kubeconfig(cluster, "llmasos-agent", work / "agent.kubeconfig")
    with running(work) as procs:
        say("operator: llmasos operator, as system:serviceaccount:llmasos-system:llmasos-operator")
        metrics, health = free_port(), free_port()
        procs.start("operator", [sys.executable, "-m", "llmasos.cli", "operator"], {
            "KUBECONFIG": str(operator_kc), "LLMASOS_PEERING_NAME": RELEASE, "LLMASOS_TRACE_OFFSET": offset,
            "LLMASOS_FORECAST_ERROR": "0", "LLMASOS_CARBON_SOURCES": "trace,static", "LLMASOS_RESYNC_SECONDS": "5",
            "LLMASOS_METRICS_PORT": str(metrics),
            "LLMASOS_HEALTH_PORT": str(health)})
        note(f"metrics http://127.0.0.1:{metrics}/metrics, log {work / 'operator.log'}")
        nodes = gpu_nodes(cluster)
        say(f"node agents: one per fake GPU node ({len(nodes)}), simulated GPUs, as "
            "system:serviceaccount:llmasos-system:llmasos-agent")
        for node, product, gpus in nodes:
            procs.start(f"agent-{node}", [
                sys.executable, "-m", "llmasos.cli", "node-agent", "--node-name", node, "--gpu-backend", "sim",
                "--sim-product", product, "--sim-gpus", str(gpus), "--sim-hardware-file", str(work / f"hw-{node}.json"),
                "--state-file", str(work / f"state-{node}.json"), "--gpu-mapping", "fallback", "--interval", "1",
                "--report-interval", "5", "--metrics-port", "0"], {"KUBECONFIG": str(agent_kc),
                                                                   "POD_NAMESPACE": NAMESPACE})
            note(f"{node}: {gpus} x {product}")
        time.sleep(3)
        procs.check()

        say("kubectl apply -f examples/")
        print(cluster.kubectl("apply", "-f", str(REPO / "examples")).stdout, end="")
        jobs = watch(cluster, procs, args.timeout)
        summary(jobs)
        report(cluster, work)
        if args.keep_running:
            say("operator and agents keep running; Ctrl-C stops them")
            try:
                while True:
                    procs.check()
                    time.sleep(5)
            except KeyboardInterrupt:
                pass
    say("done. The control plane is still up: explore with kubectl, stop it with `make cluster-down`")
    note(f"export KUBECONFIG={cluster.paths.kubeconfig}; kubectl describe llmjob -n {DEMO_NS} gpt-tiny-deadline")
    return 0


if __name__ == "__main__":
    sys.exit(main())
