"""Benchmark: the carbon AdmissionCheck's cost per Kueue workload, at 500 workloads.

The controller (handlers/admission_check.py) is run in-process against a counting fake API server and a 48 h
hourly forecast from the shipped traces: each workload is reviewed once as Kueue hands it over (quota reserved, the
check Pending), as a burst of `--workloads` (500) on `--flavours` (3) flavours. Figures:

- the check's added admission latency: wall time of one review (annotations, zone, forecast, plan, status write)
  with a zero-latency API, i.e. the controller's own cost per workload (p50, p99) and for the whole burst;
- API requests per workload, by verb (the status write; the job's GET; the Event; the flavour and node lookups, cached
  for 60 s).

The real-cluster latency adds these requests' round trips (a few ms each on the local control plane). Prints figures;
asserts nothing. Usage:

    .venv/bin/python -m bench.admission_check [--workloads 500] [--flavours 3]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))

from llmasos.carbon.fallback import Sourced
from llmasos.cluster.kube import Credentials, KubeClient
from llmasos.handlers.admission_check import CONTROLLER_NAME, CarbonCheck
from llmasos.handlers.context import OperatorContext
from llmasos.metrics import OperatorMetrics
from llmasos.planning.timing.forecast import Forecast
from llmasos.settings import Settings

NOW = datetime(2026, 5, 1, 0, 0, tzinfo=UTC)
ZONES = ("DE", "SE", "US-CAL-CISO", "FR", "PL", "GB")


class CountingKube:
    def __init__(self, flavours: int) -> None:
        self.calls: collections.Counter[str] = collections.Counter()
        self.flavours = flavours

    async def get_or_none(self, res: Any, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        self.calls[f"GET {res.plural}"] += 1
        if res.plural == "jobs":
            return {"metadata": {"name": name, "creationTimestamp": "2026-05-01T00:00:00Z",
                                 "annotations": {"llmasos.io/max-delay": "12h", "llmasos.io/expected-duration": "2h"}}}
        if res.plural == "resourceflavors":
            return {"spec": {"nodeLabels": {"llmasos.io/pool": name}}}
        return None

    async def list(self, res: Any, namespace: str | None = None, label_selector: str | None = None,
                   field_selector: str | None = None) -> list[dict[str, Any]]:
        self.calls[f"LIST {res.plural}"] += 1
        pool = (label_selector or "").split("=")[-1]
        zone = ZONES[int(pool.removeprefix("pool")) % len(ZONES)]
        return [{"metadata": {"labels": {"llmasos.io/pool": pool, "llmasos.io/carbon-zone": zone}}}]

    async def create(self, res: Any, body: Any, namespace: str | None = None) -> dict[str, Any]:
        self.calls[f"POST {res.plural}"] += 1
        return {}

    async def request(self, method: str, path: str, body: Any = None, params: dict[str, str] | None = None,
                      content_type: str = "application/json") -> dict[str, Any]:
        self.calls[f"{method} {path.rsplit('/', 3)[-3]}/status"] += 1
        return {}


class TraceForecasts:
    """48 h hourly forecasts per zone (a day-shaped curve, different per zone), as the fallback chain returns them."""

    def __init__(self) -> None:
        self.cache: dict[str, Forecast] = {}

    async def forecast(self, zone: str) -> Sourced[Forecast]:
        if zone not in self.cache:
            shift = ZONES.index(zone) * 3
            pairs = [(NOW + timedelta(hours=h), 200 + 150 * (((h + shift) % 24) < 8) + 3 * ((h * 7) % 11))
                     for h in range(48)]
            self.cache[zone] = Forecast.from_pairs(pairs, timedelta(hours=1), zone=zone, source="bench")
        return Sourced(self.cache[zone], "bench", False)

    async def aclose(self) -> None:
        return None


def workload(i: int, flavours: int) -> dict[str, Any]:
    return {"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "Workload",
            "metadata": {"name": f"job-w{i}", "namespace": "bench", "uid": f"u{i}",
                         "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": f"w{i}",
                                              "controller": True}]},
            "status": {"conditions": [{"type": "QuotaReserved", "status": "True"}],
                       "admission": {"clusterQueue": "green", "podSetAssignments": [
                           {"name": "main", "flavors": {"nvidia.com/gpu": f"pool{i % flavours}"}}]},
                       "admissionChecks": [{"name": "carbon", "state": "Pending", "message": ""}]}}


async def run(n: int, flavours: int) -> None:
    ctx = OperatorContext(settings=Settings(), kube=KubeClient(Credentials(server="https://127.0.0.1:1")),
                          metrics=OperatorMetrics(), clock=lambda: NOW)
    kube = CountingKube(flavours)
    ctx.kube, ctx.carbon = kube, TraceForecasts()  # type: ignore[assignment]
    check = CarbonCheck(ctx)
    check.controller["carbon"] = CONTROLLER_NAME
    import logging

    log = logging.getLogger("bench")
    log.setLevel(logging.WARNING)
    times = []
    t_all = time.perf_counter()
    for i in range(n):
        t0 = time.perf_counter()
        await check.review(workload(i, flavours), log)
        times.append(time.perf_counter() - t0)
    total = time.perf_counter() - t_all
    await ctx.events.flush()
    await check.close()
    times.sort()
    print(f"{n} workloads on {flavours} flavours: {total:.2f} s for the burst, "
          f"review p50 {1000 * statistics.median(times):.2f} ms, p99 {1000 * times[int(0.99 * (n - 1))]:.2f} ms")
    print(f"API requests per workload: {sum(kube.calls.values()) / n:.2f} "
          f"({', '.join(f'{k} {v / n:.3f}' for k, v in sorted(kube.calls.items()))})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", type=int, default=500)
    parser.add_argument("--flavours", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(run(args.workloads, args.flavours))


if __name__ == "__main__":
    main()
