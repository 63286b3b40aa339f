"""`llmasos node-agent`: wires a GPU backend, a pod source, the mapper and the state file into the control loop.

`register(subparsers)` adds the command to the `llmasos` CLI; the Kubernetes pod source and report sink are passed
in as factories by the caller (the CLI owns the cluster client), so this module never imports one. Without them,
`--pods-file` and `--report-file` run the agent against plain files (development, tests on fake nodes).
SIGTERM and SIGINT end the loop; leaving it, by any path, restores every GPU's default limit. At start the agent makes
the capabilities it needs effective and logs what is missing (`privileges`); in the chart it runs as uid 65532 under
the image's `python-agent` interpreter, which carries them as file capabilities.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import signal
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from llmasos.agent.backend import GpuBackend
from llmasos.agent.clock import SystemClock
from llmasos.agent.controller import AgentSettings, PowerAgent
from llmasos.agent.leader import LeaderSource
from llmasos.agent.mapping import make_mapper
from llmasos.agent.metrics import build_registry, serve_metrics
from llmasos.agent.podresources import DEFAULT_SOCKET
from llmasos.agent.pods import NodePodView, PodLister, PodsFile, ReportSink
from llmasos.agent.power_policy import SearchSettings
from llmasos.agent.privileges import check_privileges
from llmasos.agent.progress import DEFAULT_PROGRESS_METRICS, HttpProgressReader, ProgressReader, WorkerCountsOverlay
from llmasos.agent.state import StateStore
from llmasos.errors import ConfigError
from llmasos.gpus.products import product

log = logging.getLogger("llmasos.agent")
PodListerFactory = Callable[[str], PodLister]
ReportSinkFactory = Callable[[str], ReportSink]
LeaderSourceFactory = Callable[[], LeaderSource]


class FileReportSink:
    """Writes the node report object as JSON to a file (atomically): the development stand-in for the API."""

    def __init__(self, path: Path) -> None:
        self._path = path

    def publish(self, body: Mapping[str, object]) -> None:
        tmp = self._path.with_suffix(".tmp")
        tmp.write_text(json.dumps(body, indent=1, sort_keys=True))
        os.replace(tmp, self._path)


def _number(text: str, *, above: float | None = None, at_least: float | None = None, what: str = "seconds") -> float:
    """An argparse type: a finite number > `above` or >= `at_least`; a one-line usage error (exit 2) otherwise."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or (above is not None and value <= above) or (
            at_least is not None and value < at_least):
        bound = f"> {above:g}" if above is not None else f">= {at_least:g}"
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of {what} {bound}")
    return value


def _positive_seconds(text: str) -> float:
    return _number(text, above=0)


def _seconds_or_zero(text: str) -> float:
    return _number(text, at_least=0)


def _tokens(text: str) -> float:
    return _number(text, at_least=0, what="tokens")


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (0-65535; 0 does not serve)")
    return int(text)


def _gpu_count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a GPU count >= 1")
    return int(text)


def _catalog_product(text: str) -> str:
    try:
        product(text)
    except KeyError as exc:
        raise argparse.ArgumentTypeError(str(exc.args[0])) from None
    return text


def register(
    subparsers: Any,
    *,
    pod_lister_factory: PodListerFactory | None = None,
    report_sink_factory: ReportSinkFactory | None = None,
    leader_source_factory: LeaderSourceFactory | None = None,
) -> argparse.ArgumentParser:
    """Add `node-agent` to an argparse subparsers object; sets `func` to the runner (call `args.func(args)`)."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "node-agent", help="run the GPU node agent (DaemonSet)",
        description="Run on every GPU node (the chart's DaemonSet does): maps pods to GPUs, applies the power caps "
        "of their LLMJobs, meters energy and writes a node report the operator reads. The chart sets every flag; "
        "run it by hand only for development (--gpu-backend sim with --pods-file and --report-file needs no "
        "cluster and no GPU).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--node-name", default=os.environ.get("NODE_NAME", ""),
                   help="this node's name; the default comes from $NODE_NAME")
    p.add_argument("--gpu-backend", choices=("nvml", "sim"), default="nvml",
                   help="nvml: the node's NVIDIA GPUs; sim: simulated GPUs from measured power curves (no GPU needed)")
    p.add_argument("--metrics-port", type=_port, default=9400, help="Prometheus /metrics port (0: do not serve)")
    p.add_argument("--metrics-addr", default="0.0.0.0", help="address the /metrics server listens on")
    p.add_argument("--state-file", type=Path, default=Path("/var/lib/llmasos-agent/state.json"),
                   help="where the agent keeps the GPUs' default limits and its energy counters across restarts")
    p.add_argument("--interval", type=_positive_seconds, default=5.0, help="seconds between control passes")
    p.add_argument("--report-interval", type=_positive_seconds, default=60.0, help="seconds between node report writes")
    p.add_argument("--search-window", type=_positive_seconds, default=SearchSettings.window_s,
                   help="energyOptimal: seconds each power limit is measured (the baseline twice as long)")
    p.add_argument("--search-warmup", type=_seconds_or_zero, default=SearchSettings.warmup_s,
                   help="energyOptimal: seconds discarded after each limit change before measuring")
    p.add_argument("--gpu-mapping", choices=("auto", "podresources", "fallback"), default="auto",
                   help="how pods are matched to GPUs: the kubelet's PodResources API, or the fallback from the "
                   "pods' GPU requests; auto uses PodResources when its socket exists")
    p.add_argument("--pod-resources-socket", type=Path, default=DEFAULT_SOCKET,
                   help="the kubelet's PodResources socket")
    p.add_argument("--progress-metrics", default=",".join(DEFAULT_PROGRESS_METRICS),
                   help="comma-separated worker metrics read from each worker's /metrics as its progress")
    p.add_argument("--pods-file", type=Path, help="read the node's pods from this JSON file instead of the API")
    p.add_argument("--report-file", type=Path, help="write the node report to this file instead of the API")
    p.add_argument("--sim-product", type=_catalog_product, default="nvidia-a100-80gb",
                   help="sim backend: GPU product (node label value)")
    p.add_argument("--sim-gpus", type=_gpu_count, default=8, help="sim backend: GPUs on this node")
    p.add_argument("--sim-seed", type=int, default=0, help="sim backend: seed of the power noise")
    p.add_argument("--sim-workload", default="", help="sim backend: force this workload curve on every pod")
    p.add_argument("--sim-tokens-per-step", type=_tokens, default=0.0,
                   help="sim backend: the simulated workers also export tokens, this many per step (0: steps only)")
    p.add_argument("--sim-worker-metrics", action="store_true",
                   help="sim backend: the pods run real workers (a node without GPUs): their tokens and steps come "
                   "from their own /metrics, the simulated GPUs' work still drives the energyOptimal search")
    p.add_argument("--sim-no-energy-counter", action="store_true",
                   help="sim backend: GPUs without an energy counter (the agent integrates power samples instead)")
    p.add_argument("--sim-counter-reset-s", type=_positive_seconds, default=None,
                   help="sim backend: reset the energy counter every this many seconds (a driver reload)")
    p.add_argument(
        "--sim-hardware-file", type=Path, default=None, help="sim backend: keep GPU limits here across agent restarts"
    )
    p.add_argument("--log-level", type=str.upper, choices=("DEBUG", "INFO", "WARNING", "ERROR"), default="INFO",
                   help="how much to log")

    def run(args: argparse.Namespace) -> int:
        try:
            return run_from_args(args, pod_lister_factory, report_sink_factory, leader_source_factory)
        except ConfigError as exc:  # a missing node name or pod source: one line, exit 2, as every command
            print(f"error: {exc}", file=sys.stderr)
            return 2

    p.set_defaults(func=run)
    return p


def build_agent(
    args: argparse.Namespace,
    pods: PodLister,
    sink: ReportSink | None,
    leaders: LeaderSource | None = None,
) -> PowerAgent:
    """Everything but the loop: backend, progress source, mapper, state store (no signals, no threads)."""
    clock = SystemClock()
    on_assign = None
    backend: GpuBackend
    progress: ProgressReader
    if args.gpu_backend == "sim":
        from llmasos.agent.sim import SimBackend, SimProgressReader

        sim = SimBackend(
            args.sim_product,
            args.sim_gpus,
            clock,
            seed=args.sim_seed,
            node_name=args.node_name,
            has_energy_counter=not args.sim_no_energy_counter,
            counter_reset_every_s=args.sim_counter_reset_s,
            hardware_file=args.sim_hardware_file,
        )
        metrics = tuple(args.progress_metrics.split(","))
        simulated = SimProgressReader(sim, args.sim_tokens_per_step, metrics)
        backend, progress = sim, WorkerCountsOverlay(simulated, HttpProgressReader(metrics)) \
            if args.sim_worker_metrics else simulated

        def on_assign(assignment: Mapping[str, tuple[int, ...]], live: Mapping[str, NodePodView]) -> None:
            busy = {i: args.sim_workload or sim.workload_for(uid) for uid, gpus in assignment.items() for i in gpus}
            for i in range(sim.device_count()):
                sim.set_workload(i, busy.get(i))
    else:
        from llmasos.agent.nvml import NvmlBackend

        backend, progress = NvmlBackend(), HttpProgressReader(args.progress_metrics.split(","))
    search = SearchSettings(window_s=args.search_window, warmup_s=args.search_warmup)
    settings = AgentSettings(node_name=args.node_name, interval_s=args.interval,
                             report_interval_s=args.report_interval, search=search)  # fmt: skip
    return PowerAgent(
        settings=settings,
        backend=backend,
        pods=pods,
        mapper=make_mapper(args.gpu_mapping, args.pod_resources_socket),
        progress=progress,
        store=StateStore(args.state_file),
        clock=clock,
        report_sink=sink,
        on_assign=on_assign,
        leaders=leaders,
    )


def run_loop(agent: PowerAgent, stop: threading.Event, interval_s: float) -> None:
    """start(), passes every `interval_s` until `stop`, then shutdown() on every exit path (errors included)."""
    agent.start()
    try:
        while not stop.is_set():
            agent.tick()
            stop.wait(interval_s)
    finally:
        agent.shutdown()


def run_from_args(
    args: argparse.Namespace,
    pod_lister_factory: PodListerFactory | None = None,
    report_sink_factory: ReportSinkFactory | None = None,
    leader_source_factory: LeaderSourceFactory | None = None,
) -> int:
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.node_name:
        raise ConfigError("node-agent needs --node-name (or $NODE_NAME from the downward API)")
    if args.pods_file is not None:
        pods: PodLister = PodsFile(args.pods_file)
    elif pod_lister_factory is not None:
        pods = pod_lister_factory(args.node_name)
    else:
        raise ConfigError("node-agent needs a pod source: --pods-file, or the Kubernetes adapter from the CLI")
    sink: ReportSink | None = None
    if args.report_file is not None:
        sink = FileReportSink(args.report_file)
    elif report_sink_factory is not None:
        sink = report_sink_factory(args.node_name)
    # Before anything opens the socket or the state file, and before any thread that needs them starts (capabilities
    # are per thread; the API pod lister's watch thread, started with it above, needs none).
    try:
        check_privileges(args.gpu_backend, args.state_file.parent,
                         None if args.gpu_mapping == "fallback" else args.pod_resources_socket)
    except Exception as exc:  # a diagnosis only: an odd /proc or libc must not stop metering (logged, not hidden)
        log.warning("could not check the agent's capabilities (%s: %s); power limits may fail with EPERM",
                    type(exc).__name__, exc)
    # Followers of multi-node jobs find their leader through the API; a pods file has no other nodes to follow.
    leaders = leader_source_factory() if leader_source_factory is not None and args.pods_file is None else None
    agent = build_agent(args, pods, sink, leaders)
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("signal %d: restoring default power limits and exiting", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server = None
    if args.metrics_port:
        server, _ = serve_metrics(build_registry(lambda: agent.snapshot), args.metrics_port, args.metrics_addr)
    log.info("node agent on %s: backend %s, mapping %s", args.node_name, args.gpu_backend, args.gpu_mapping)
    try:
        run_loop(agent, stop, args.interval)
    finally:
        if server is not None:
            server.shutdown()
    return 0

