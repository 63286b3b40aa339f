"""A burst of deadline jobs that all prefer the same clean window, on one small pool of the local control plane.

Planned alone, each job would take the cleanest step of the forecast and the pool would be asked for twice the GPUs
it has. Planned as a pool (planning/timing/fleet_gate.py through handlers/fleet.py), the jobs share the clean
hours: at no instant do their plans ask for more GPUs than the pool holds, no worker pod waits for GPUs, every job
ends by its deadline, and a job the pool plan moved says so in an Event.

Time is real and short: the Electricity Maps server (a real HTTP server on 127.0.0.1) serves a forecast with
20-second steps and a 40-second dip, the jobs expect to run 20 s, and kwok ends their pods after 10 s.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from e2e.localcluster import LocalCluster
from tests.integration.kube import AdminApi, delete_namespace, llmjob, llmjob_path, wait_for
from tests.integration.operator_proc import OperatorProcess
from tests.unit.carbon.fake_server import FakeElectricityMaps, Reply

pytestmark = pytest.mark.integration
FORECAST = "carbon-intensity/forecast"
STEP = timedelta(seconds=20)
POOL, POOL_GPUS, JOB_GPUS, JOBS = "h100", 16, 8, 4
MAX_DELAY = timedelta(seconds=170)


def iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture
def em() -> Iterator[FakeElectricityMaps]:
    with FakeElectricityMaps() as server:
        yield server


def forecast(base: datetime) -> dict[str, Any]:
    """Dirty (400) except steps 3 and 4 (50): room for two 8-GPU jobs per step on a 16-GPU pool."""
    points = [{"carbonIntensity": 50 if i in (3, 4) else 400, "datetime": iso(base + i * STEP)} for i in range(30)]
    return {"zone": "SE", "forecast": points, "updatedAt": iso(base)}


def herd_job(name: str) -> dict[str, Any]:
    carbon = {"policy": "deadline", "maxDelay": f"{int(MAX_DELAY.total_seconds())}s", "expectedDuration": "20s",
              "safetyMargin": "0s"}
    return llmjob(name, carbon=carbon, placement={"nodePools": [POOL]}, annotations={"sim.llmasos.io/duration": "10s"},
                  parallelism={"strategy": "ddp", "nodes": 1, "gpusPerNode": JOB_GPUS})


def peak_planned_gpus(plans: list[dict[str, Any]]) -> int:
    edges = sorted([(when(s["start"]), JOB_GPUS) for p in plans for s in p["segments"]]
                   + [(when(s["end"]), -JOB_GPUS) for p in plans for s in p["segments"]])
    peak = used = 0
    for _, delta in edges:  # ends sort before starts at the same instant (negative delta first)
        used += delta
        peak = max(peak, used)
    return peak


def unschedulable_pods(api: AdminApi, ns: str) -> list[str]:
    pods = api.get(f"/api/v1/namespaces/{ns}/pods")["items"]
    return [p["metadata"]["name"] for p in pods
            if any(c.get("type") == "PodScheduled" and c.get("status") == "False"
                   for c in (p.get("status") or {}).get("conditions") or [])]


def test_a_herd_of_deadline_jobs_shares_the_clean_hours_without_over_subscribing_the_pool(
        cluster: LocalCluster, api: AdminApi, crds: None, artifacts: Path, em: FakeElectricityMaps) -> None:
    base = datetime.now(UTC).replace(microsecond=0)
    em.queue(FORECAST, Reply(forecast(base)))
    op = OperatorProcess(cluster, artifacts, "fleet-herd", {
        "LLMASOS_ELECTRICITYMAPS_TOKEN": "t", "LLMASOS_ELECTRICITYMAPS_URL": em.url,
        "LLMASOS_CARBON_SOURCES": "electricitymaps", "LLMASOS_CARBON_CACHE_SECONDS": "1",
        "LLMASOS_RESYNC_SECONDS": "1"}).start()
    ns = api.namespace("fleet")
    names = [f"herd-{i}" for i in range(JOBS)]
    try:
        for name in names:
            api.create(llmjob_path(ns, ""), herd_job(name))

        def planned() -> list[dict[str, Any]]:
            jobs = [api.get(llmjob_path(ns, n)) for n in names]
            return [j["status"]["plan"] for j in jobs if (j.get("status") or {}).get("plan")]

        wait_for(lambda: len(planned()) == JOBS, timeout=30, what="a plan for every job")
        dip = (base + 3 * STEP, base + 5 * STEP)
        # The pool plan settles within a few passes of the burst: two jobs per clean step, never more than the pool.
        plans = wait_for(lambda: (p := planned()) and peak_planned_gpus(p) <= POOL_GPUS and p, timeout=20,
                         what=f"plans within the pool: {planned()}")
        assert all(dip[0] <= when(p["startAt"]) and when(p["endAt"]) <= dip[1] for p in plans), plans

        waiting: set[str] = set()
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            waiting.update(unschedulable_pods(api, ns))
            phases = [(api.get(llmjob_path(ns, n)).get("status") or {}).get("phase") for n in names]
            if all(p == "Succeeded" for p in phases):
                break
            time.sleep(0.5)
        jobs = [api.get(llmjob_path(ns, n)) for n in names]
        assert [j["status"]["phase"] for j in jobs] == ["Succeeded"] * JOBS
        assert waiting == set(), "no worker pod waited for GPUs the pool does not have"
        for j in jobs:
            done = max(when(c["lastTransitionTime"]) for c in j["status"]["conditions"] if c["type"] == "Succeeded")
            created = when(j["metadata"]["creationTimestamp"])
            assert done <= created + MAX_DELAY, f"{j['metadata']['name']} ended after its deadline"
        events = api.get(f"/api/v1/namespaces/{ns}/events")["items"]
        assert any(e["reason"] == "Deferred" and "moved" in e["message"] for e in events), \
            [e["message"] for e in events if e["reason"] == "Deferred"]
    finally:
        delete_namespace(api, ns)
        op.stop()
