"""Helpers for testing dashboards and alerts against a real Prometheus (Debian package `prometheus`).

Why a real server: a PromQL typo, a wrong label or a vector-matching mistake only shows when Prometheus evaluates the
expression against series shaped like ours; a YAML lint cannot see it. This module starts Prometheus on 127.0.0.1
with a generated config, queries its HTTP API, and runs the processes it scrapes:

* a real node agent (`llmasos node-agent --gpu-backend sim`), started by the test;
* `python -m tests.integration.prom operator --port P --agent-port Q`: an OperatorMetrics instance fed through the
  facade with status.carbon objects built by the real accounting code (until the operator records real values),
  plus a *failing* agent's exposition (a stranded cap, a stuck loop) rendered by the agent's own collector, so the
  power alerts can be shown to fire without breaking a real agent.

tests/integration/test_prometheus_live.py uses the same server against the real operator and node agents on the local
control plane; for it this module also has range queries, label values, a copy of a rule file with every `for:` set
to 0s, and `ElectricityMapsStub` (Electricity Maps for a token whose plan covers some zones only).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.operator_proc import free_port

REPO = Path(__file__).resolve().parents[2]
NEEDS_PROMETHEUS = pytest.mark.skipif(shutil.which("prometheus") is None,
                                      reason="needs the prometheus binary (apt-get install prometheus)")


@contextlib.contextmanager
def refused_port() -> Iterator[int]:
    """A loopback port bound but never listening: connections to it are refused, and no other process can take it
    while the context is open (a port from free_port() is only free until someone else binds it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield int(s.getsockname()[1])


def distinct_free_ports(n: int) -> list[int]:
    """n different free loopback ports: every socket stays bound until all are chosen, so none repeats."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


def wait_until(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.25) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class Process:
    """A child process with its output in a log file; stop() ends this process only (by its own pid)."""

    def __init__(self, cmd: Sequence[str], log: Path, cwd: Path | None = None) -> None:
        self.cmd, self.log_path = list(cmd), log
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "operator")]))
        self._log = log.open("wb")
        self.proc = subprocess.Popen(self.cmd, stdout=self._log, stderr=subprocess.STDOUT, cwd=cwd or log.parent,
                                     env=env)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)
        self._log.close()


class Prometheus:
    """Prometheus on 127.0.0.1 scraping `jobs` ({job: [host:port, ...]}) every second, evaluating `rule_files`."""

    def __init__(self, workdir: Path, jobs: Mapping[str, Sequence[str]], rule_files: Sequence[Path] = ()) -> None:
        self.workdir, self.port = workdir, free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(p) for p in rule_files],
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": list(targets)}]} for job, targets in jobs.items()
            ],
        }
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        self.process: Process | None = None

    @staticmethod
    def binary() -> str | None:
        return shutil.which("prometheus")

    def start(self) -> Prometheus:
        binary = self.binary()
        assert binary, "prometheus is not installed (apt-get install prometheus)"
        self.process = Process(
            [binary, f"--config.file={self.workdir / 'prometheus.yml'}", f"--storage.tsdb.path={self.workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            self.workdir / "prometheus.log", cwd=self.workdir)
        wait_until(self._ready, 60, "Prometheus to become ready")
        return self

    def _ready(self) -> bool:
        assert self.process is not None
        if not self.process.alive():
            raise AssertionError(f"prometheus exited: {self.process.log()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def api(self, path: str, **params: str) -> Any:
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=10) as r:
            body = json.loads(r.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query; the vector's samples ({metric: labels, value: [t, "v"]}); a scalar becomes one sample."""
        data = self.api("query", query=expr)
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        return list(data["result"])

    def query_range(self, expr: str, start: float, end: float, step: float = 1.0) -> list[dict[str, Any]]:
        """Range query (what a Grafana time-series panel sends); each series has `values`: [[t, "v"], ...]."""
        data = self.api("query_range", query=expr, start=f"{start:.3f}", end=f"{end:.3f}", step=f"{step:g}")
        return list(data["result"])

    def label_values(self, label: str, metric: str) -> list[str]:
        """Grafana's `label_values(metric, label)` variable query."""
        return list(self.api(f"label/{label}/values", **{"match[]": metric}))

    def query_error(self, expr: str) -> str | None:
        """None when Prometheus evaluates `expr`; else its error text (a PromQL mistake is a 400 with a message)."""
        try:
            self.query(expr)
        except urllib.error.HTTPError as exc:
            return exc.read().decode(errors="replace")
        return None

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()


def rules_firing_at_once(rules: Path, out: Path) -> Path:
    """A copy of a rule file with every `for:` set to 0s, so Prometheus fires a rule as soon as it matches."""
    out.write_text(re.sub(r"(?m)^(\s+for:) .*$", r"\1 0s", rules.read_text()))
    return out


def range_values(series: Sequence[Mapping[str, Any]]) -> list[float]:
    """The finite values of a range query's result, over all its series."""
    return [v for s in series for _, raw in s["values"] if math.isfinite(v := float(raw))]


def finite_values(samples: Sequence[Mapping[str, Any]]) -> list[float]:
    return [v for s in samples if math.isfinite(v := float(s["value"][1]))]


def label_sets(samples: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> set[tuple[str, ...]]:
    return {tuple(s["metric"].get(k, "") for k in keys) for s in samples}


# ---------------------------------------------------------------------------------------------- sample operator
# Fixed scenario of the sample operator (the test asserts against these names).
STALE_ZONE, FRESH_ZONE = "US-CAL-CISO", "DE"
LATE_JOB, WAITING_JOB = ("ml", "deferred-late"), ("research", "deferred-waiting")
STRANDED_NODE = "n9"


def failing_agent_snapshot(now: float) -> Any:
    """A node whose agent cannot restore GPU 0 (capped, no pod) and whose loop last ran 10 minutes ago."""
    from llmasos.agent.energy import PodRef
    from llmasos.agent.snapshot import GpuStatus, Snapshot

    owner = PodRef("ml", "train-a-w3", "uid-w3", "train-a")
    gpus = (
        GpuStatus(0, "GPU-stranded", "NVIDIA A100-SXM4-80GB", 60.0, 250.0, 400.0, 100.0, 400.0, None, True),
        GpuStatus(1, "GPU-owned", "NVIDIA A100-SXM4-80GB", 300.0, 300.0, 400.0, 100.0, 400.0, owner, True),
    )
    return Snapshot(node=STRANDED_NODE, t=now - 600, mapper="fallback", gpus=gpus)


def run_sample_operator(port: int, agent_port: int, tick_s: float = 0.5) -> None:
    """Record a small fleet through OperatorMetrics, forever (until SIGTERM); one tick = one simulated minute."""
    from llmasos.agent.metrics import build_registry, serve_metrics
    from llmasos.metrics import OperatorMetrics
    from llmasos.planning.accounting.carbon_status import CarbonInputs, build_carbon_status
    from llmasos.planning.accounting.integral import CapRecord, EnergyInterval
    from llmasos.planning.timing.forecast import Forecast

    metrics = OperatorMetrics()
    metrics.serve(port, addr="127.0.0.1")
    snap = failing_agent_snapshot(time.time())
    serve_metrics(build_registry(lambda: snap), agent_port, "127.0.0.1")
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))

    t0 = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=6)
    series = Forecast.from_pairs([(t0 + timedelta(hours=h), 150 + 120 * math.sin(h / 3)) for h in range(36)],
                                 zone=FRESH_ZONE, source="trace")
    # (namespace, job, deferred by, GPUs): energy accrues at 400 W per GPU per simulated minute.
    jobs = [("ml", "train-a", timedelta(hours=3), 8), ("research", "eval-b", timedelta(0), 2)]
    intervals: dict[str, list[EnergyInterval]] = {name: [] for _, name, _, _ in jobs}
    previous: dict[str, dict[str, Any] | None] = {name: None for _, name, _, _ in jobs}
    for uid, phase in (("uid-a", "Running"), ("uid-b", "Running"), ("uid-c", "Deferred"), ("uid-d", "Deferred"),
                       ("uid-e", "Succeeded")):
        metrics.record_phase(uid, phase)
    tick = 0
    while not stop["now"]:
        now = datetime.now(UTC)
        for namespace, name, deferred, gpus in jobs:
            start = t0 + deferred + timedelta(minutes=len(intervals[name]))
            intervals[name].append(EnergyInterval(start, start + timedelta(minutes=1), gpus * 400.0 * 60))
            energy = sum(i.joules for i in intervals[name])
            status = build_carbon_status(CarbonInputs(
                intervals=intervals[name], series=series, submitted_at=t0, pue=1.3, source="trace",
                emission_factor_type="lifecycle", cap_records=[CapRecord(energy, 320.0, 400.0, 1.06)],
                pool_choice=(900.0, 1000.0), price_per_tonne=80.0, currency="EUR"))
            metrics.record_carbon(namespace, previous[name], status)
            previous[name] = status
        metrics.record_deferred(*LATE_JOB, planned_start=now - timedelta(minutes=20),
                                latest_start=now - timedelta(minutes=10), deadline=now + timedelta(hours=1))
        metrics.record_deferred(*WAITING_JOB, planned_start=now + timedelta(hours=2),
                                latest_start=now + timedelta(hours=3), deadline=now + timedelta(hours=6))
        metrics.record_deferral(600.0 * (tick % 7))
        metrics.record_intensities(planned=120.0 + tick % 5, achieved=130.0 + tick % 3, run_now=180.0)
        metrics.record_carbon_data("electricitymaps", FRESH_ZONE, updated_at=now - timedelta(minutes=5),
                                   intensity=series.value_at(now), degraded=False)
        metrics.record_carbon_data("static", STALE_ZONE, updated_at=now - timedelta(hours=4), intensity=250.0,
                                   degraded=True)
        if tick % 3 == 0:
            metrics.record_carbon_error("electricitymaps")
        metrics.record_reconcile(0.01 + 0.001 * (tick % 10))
        if tick % 4 == 0:
            metrics.record_phase(f"uid-started-{tick}", "Running")
        if tick % 4 == 2:
            metrics.record_deadline_warning("DeadlineMissed")
        snap = failing_agent_snapshot(time.time())
        tick += 1
        time.sleep(tick_s)


# ---------------------------------------------------------------------------------------- Electricity Maps stub
def em_time(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def forecast_with_dip(zone: str, dip_in_hours: int, issued: datetime) -> dict[str, Any]:
    """An Electricity Maps forecast body: 48 hourly points from the current hour at 400 g/kWh, with one 2-hour dip
    to 50 g/kWh `dip_in_hours` later (a deadline job waits for it)."""
    base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    points = [{"carbonIntensity": 50 if dip_in_hours <= h < dip_in_hours + 2 else 400,
               "datetime": em_time(base + timedelta(hours=h))} for h in range(48)]
    return {"zone": zone, "forecast": points, "updatedAt": em_time(issued)}


class ElectricityMapsStub:
    """Electricity Maps v3 on 127.0.0.1 for a token whose plan covers only the zones of `forecasts`: it answers
    `carbon-intensity/forecast` for them and 403 for any other zone or endpoint, as the API does outside a plan.
    Only the answers are fixed; the operator's real client (httpx, retries, parsing, cache) talks to it over TCP."""

    def __init__(self, forecasts: Mapping[str, Mapping[str, Any]]) -> None:
        self.forecasts = dict(forecasts)
        self.requests: list[tuple[str, str, int]] = []  # (path, zone, status)
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urllib.parse.urlsplit(self.path)
                zone = urllib.parse.parse_qs(parts.query).get("zone", [""])[0]
                body: Any = owner.forecasts.get(zone) if parts.path == "/v3/carbon-intensity/forecast" else None
                status = 200 if body is not None else 403
                if body is None:
                    body = {"status": "error", "message": f"Zone {zone or '?'} is not included in this plan"}
                owner.requests.append((parts.path, zone, status))
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v3"

    def start(self) -> ElectricityMapsStub:
        self.thread.start()
        return self

    def stop(self) -> None:
        if self.thread.is_alive():
            self.server.shutdown()
        self.server.server_close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.integration.prom")
    sub = parser.add_subparsers(dest="command", required=True)
    op = sub.add_parser("operator", help="serve a sample OperatorMetrics and a failing agent's metrics")
    op.add_argument("--port", type=int, required=True)
    op.add_argument("--agent-port", type=int, required=True)
    args = parser.parse_args(argv)
    run_sample_operator(args.port, args.agent_port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
