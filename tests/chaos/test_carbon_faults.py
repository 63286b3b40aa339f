"""Electricity Maps misbehaves (outage, 503 and 429 storms, garbage, null values, slow answers past the timeout):
deferred jobs still start no later than their latest start, and their conditions say what happened.

The API is played by the unit tests' fake server (a real HTTP server on 127.0.0.1). With Electricity Maps as the
only source, every fault leaves the planner without data: the job is Deferred to its latest start, with condition
CarbonDataDegraded=True, reason CarbonSourcesUnavailable and a message naming the fault. With the default chain
the trace source takes over and the condition names both.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from e2e.localcluster import LocalCluster
from tests.chaos.figures import record
from tests.integration.kube import AdminApi, children, delete_namespace, llmjob, llmjob_path, wait_for, wait_phase
from tests.integration.operator_proc import OperatorProcess
from tests.unit.carbon.fake_server import FakeElectricityMaps, Reply

pytestmark = pytest.mark.integration
FORECAST = "carbon-intensity/forecast"
TOKEN = "chaos-token-5f1e9d"
RESYNC_SLACK = timedelta(seconds=8)  # resync interval (5 s) + one pass on a busy machine


def iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def null_forecast() -> dict[str, Any]:
    base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    return {"zone": "US-CAL-CISO", "updatedAt": iso(datetime.now(UTC)),
            "forecast": [{"carbonIntensity": None, "datetime": iso(base + timedelta(hours=h))} for h in range(24)]}


FAULTS: dict[str, tuple[list[Reply], str]] = {
    "outage-503": ([Reply({"error": "upstream down"}, 503)], "HTTP 503"),
    "429-storm": ([Reply({"error": "rate limited"}, 429, {"Retry-After": "1"})], "HTTP 429"),
    "429-long-retry-after": ([Reply({"error": "rate limited"}, 429, {"Retry-After": "3600"})], "rate limited"),
    "garbage": ([Reply(b"<html>502 bad gateway</html>")], "not JSON"),
    "wrong-shape": ([Reply({"zone": "US-CAL-CISO", "forecast": "soon"})], "malformed"),
    "null-values": ([Reply(null_forecast())], "null"),
    "unauthorized": ([Reply({"error": "bad token"}, 401)], "HTTP 401"),
}


@pytest.fixture
def em() -> Iterator[FakeElectricityMaps]:
    with FakeElectricityMaps() as server:
        yield server


def deadline_job(name: str, latest_in: timedelta) -> dict[str, Any]:
    deadline = datetime.now(UTC) + latest_in + timedelta(seconds=25)
    carbon = {"policy": "deadline", "deadline": iso(deadline), "expectedDuration": "20s", "safetyMargin": "5s"}
    return llmjob(name, carbon=carbon, placement={"nodePools": ["l4"]},
                  parallelism={"strategy": "ddp", "nodes": 1, "gpusPerNode": 1},
                  annotations={"sim.llmasos.io/duration": "2s"})


def degraded(api: AdminApi, ns: str, name: str) -> dict[str, Any] | None:
    status = api.get(llmjob_path(ns, name)).get("status", {})
    return next((c for c in status.get("conditions", []) if c["type"] == "CarbonDataDegraded"), None)


def run_fault(cluster: LocalCluster, api: AdminApi, artifacts: Path, em: FakeElectricityMaps, fault: str,
              replies: list[Reply], words: str, sources: str, latest_in: timedelta) -> dict[str, Any]:
    em.queue(FORECAST, *replies)
    op = OperatorProcess(cluster, artifacts, f"chaos-carbon-{fault}", {
        "LLMASOS_ELECTRICITYMAPS_TOKEN": TOKEN, "LLMASOS_ELECTRICITYMAPS_URL": em.url,
        "LLMASOS_CARBON_CACHE_SECONDS": "1", "LLMASOS_CARBON_SOURCES": sources}).start()
    ns = api.namespace("chaos-carbon")
    try:
        api.create(llmjob_path(ns), deadline_job("deferred", latest_in))
        plan = wait_for(lambda: api.get(llmjob_path(ns, "deferred")).get("status", {}).get("plan"), timeout=90,
                        what=f"a plan despite {fault}")
        condition = degraded(api, ns, "deferred")
        assert condition is not None, f"{fault}: no CarbonDataDegraded condition"
        assert condition["status"] == "True", condition
        assert words in condition["message"], f"{fault}: the condition must say what happened: {condition}"
        assert TOKEN not in condition["message"]
        latest = datetime.fromisoformat(plan["latestStart"].replace("Z", "+00:00"))
        wait_for(lambda: children(api, ns, "deferred")[0], timeout=120, what=f"the Job is created despite {fault}")
        created = children(api, ns, "deferred")[0][0]["metadata"]["creationTimestamp"]
        created_at = datetime.fromisoformat(created.replace("Z", "+00:00"))
        late = (created_at - latest).total_seconds()
        assert created_at <= latest + RESYNC_SLACK, f"{fault}: started {late:.0f}s after the latest start"
        wait_phase(api, ns, "deferred", "Succeeded", timeout=60)
        return {"fault": fault, "reason": condition["reason"], "source": plan.get("source"),
                "seconds_after_latest_start": round(late, 1), "requests_to_fake_api": em.hits(FORECAST)}
    finally:
        try:
            delete_namespace(api, ns, timeout=180)
        finally:
            op.stop()
        assert TOKEN not in op.log_path.read_text(errors="replace"), "the token must never be logged"


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_faults_with_electricitymaps_only(cluster: LocalCluster, api: AdminApi, crds: None, artifacts: Path,
                                         em: FakeElectricityMaps, fault: str) -> None:
    replies, words = FAULTS[fault]
    figures = run_fault(cluster, api, artifacts, em, fault, replies, words, "electricitymaps", timedelta(seconds=25))
    assert figures["reason"] == "CarbonSourcesUnavailable"
    record(artifacts, f"carbon-{fault}", figures)


def test_503_storm_falls_back_to_trace_and_says_so(cluster: LocalCluster, api: AdminApi, crds: None,
                                                   artifacts: Path, em: FakeElectricityMaps) -> None:
    figures = run_fault(cluster, api, artifacts, em, "fallback-503", [Reply({"error": "down"}, 503)], "HTTP 503",
                        "electricitymaps,trace,static", timedelta(seconds=25))
    assert figures["reason"] == "CarbonSourceFallback"
    assert figures["source"] == "trace"
    record(artifacts, "carbon-fallback-503", figures)


def test_slow_answers_past_the_timeout(cluster: LocalCluster, api: AdminApi, crds: None, artifacts: Path,
                                       em: FakeElectricityMaps) -> None:
    """Every answer takes longer than the client's 10 s timeout: passes must not hold the job past its latest
    start (each failed fetch costs retries x timeout unless failures are remembered)."""
    figures = run_fault(cluster, api, artifacts, em, "slow", [Reply({"error": "late"}, 503, delay=12)],
                        "timed out", "electricitymaps", timedelta(seconds=45))
    record(artifacts, "carbon-slow", figures)
