"""Carbon-aware timing in the operator: Deferred with a plan, re-planning on a newer forecast, and a job that
starts by its latest start even when every carbon source is down.

The Electricity Maps API is played by a real HTTP server on 127.0.0.1 serving the API's response shapes.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from e2e.localcluster import LocalCluster
from tests.integration.kube import (
    AdminApi,
    children,
    delete_namespace,
    llmjob,
    llmjob_path,
    wait_for,
    wait_phase,
)
from tests.integration.operator_proc import OperatorProcess
from tests.unit.carbon.fake_server import FakeElectricityMaps, Reply, forecast_body

pytestmark = pytest.mark.integration
FORECAST = "carbon-intensity/forecast"
TOKEN = "test-token-a1b2c3"


def iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def forecast_with_dip(zone: str, dip_in_hours: int, issued: datetime) -> dict[str, Any]:
    """48 hourly points from the current hour at 400 g/kWh, with one 2-hour dip to 50 g/kWh `dip_in_hours` later."""
    base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    points = []
    for h in range(48):
        value = 50 if dip_in_hours <= h < dip_in_hours + 2 else 400
        points.append({"carbonIntensity": value, "datetime": iso(base + timedelta(hours=h))})
    return {"zone": zone, "forecast": points, "updatedAt": iso(issued)}


@pytest.fixture
def em() -> Iterator[FakeElectricityMaps]:
    with FakeElectricityMaps() as server:
        yield server


def operator_with(cluster: LocalCluster, artifacts: Path, name: str, env: dict[str, str]) -> OperatorProcess:
    return OperatorProcess(cluster, artifacts, name, {"LLMASOS_ELECTRICITYMAPS_TOKEN": TOKEN,
                                                      "LLMASOS_CARBON_CACHE_SECONDS": "1", **env}).start()


def deadline_job(name: str, **carbon: Any) -> dict[str, Any]:
    spec = {"policy": "deadline", "maxDelay": "30h", "expectedDuration": "2h", **carbon}
    return llmjob(name, carbon=spec, placement={"nodePools": ["l4"]},
                  parallelism={"strategy": "ddp", "nodes": 1, "gpusPerNode": 1})


def test_deferred_job_has_a_plan_no_children_and_replans_on_newer_forecast(
        cluster: LocalCluster, api: AdminApi, crds: None, artifacts: Path, em: FakeElectricityMaps) -> None:
    now = datetime.now(UTC)
    em.queue(FORECAST, Reply(forecast_with_dip("US-CAL-CISO", 6, now - timedelta(minutes=30))))
    op = operator_with(cluster, artifacts, "carbon-replan", {"LLMASOS_ELECTRICITYMAPS_URL": em.url})
    ns = api.namespace("carbon")
    try:
        api.create(llmjob_path(ns), deadline_job("nightly"))
        obj = wait_phase(api, ns, "nightly", "Deferred")
        plan = obj["status"]["plan"]
        start = datetime.fromisoformat(plan["startAt"].replace("Z", "+00:00"))
        expected = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=6)
        assert start == expected, "starts at the forecast dip"
        assert plan["source"] == "electricitymaps"
        assert plan["zone"] == "US-CAL-CISO"
        assert plan["expectedIntensity"] == 50
        assert plan["runNowIntensity"] == 400
        assert plan["expectedSavingsPercent"] == pytest.approx(87.5, abs=0.1)
        assert plan["forecastIssuedAt"]
        assert obj["status"]["pool"] == "l4"
        assert obj["status"]["scheduledStart"] == plan["startAt"]
        assert children(api, ns, "nightly") == ([], [], [])
        deferred = next(c for c in obj["status"]["conditions"] if c["type"] == "Deferred")
        assert deferred["status"] == "True"
        # Events are posted in the background, after the status write: wait for it.
        wait_for(lambda: any(e["reason"] == "Deferred" and "expected to save 88%" in e["message"]
                             for e in api.get(f"/api/v1/namespaces/{ns}/events")["items"]),
                 timeout=10, what="the Deferred event")
        assert em.requests[0].headers["auth-token"] == TOKEN

        # A newer forecast moves the dip 3 hours later: the plan follows.
        em.queue(FORECAST, Reply(forecast_with_dip("US-CAL-CISO", 9, datetime.now(UTC))))
        moved = expected + timedelta(hours=3)

        def replanned() -> bool:
            p = api.get(llmjob_path(ns, "nightly"))["status"]["plan"]
            return bool(datetime.fromisoformat(p["startAt"].replace("Z", "+00:00")) == moved)

        wait_for(replanned, timeout=30, what="re-plan on the newer forecast")
        assert children(api, ns, "nightly") == ([], [], [])
    finally:
        delete_namespace(api, ns)
        op.stop()
    logs = op.log_path.read_text()
    assert TOKEN not in logs, "the token must never be logged"


def test_job_starts_by_latest_start_when_every_source_is_down(
        cluster: LocalCluster, api: AdminApi, crds: None, artifacts: Path) -> None:
    op = operator_with(cluster, artifacts, "carbon-outage", {
        "LLMASOS_ELECTRICITYMAPS_URL": "http://127.0.0.1:9/v3",  # discard port: connection refused
        "LLMASOS_CARBON_SOURCES": "electricitymaps"})
    ns = api.namespace("outage")
    try:
        deadline = datetime.now(UTC) + timedelta(seconds=75)
        api.create(llmjob_path(ns), deadline_job("urgent", maxDelay=None, deadline=iso(deadline).replace(".000", ""),
                                                 expectedDuration="40s", safetyMargin="5s"))
        obj = wait_for(lambda: api.get(llmjob_path(ns, "urgent")).get("status", {}).get("plan"), timeout=60,
                       what="a plan despite the outage")
        status = api.get(llmjob_path(ns, "urgent"))["status"]
        degraded = next(c for c in status["conditions"] if c["type"] == "CarbonDataDegraded")
        assert degraded["status"] == "True", status
        assert degraded["reason"] == "CarbonSourcesUnavailable"
        latest = datetime.fromisoformat(obj["latestStart"].replace("Z", "+00:00"))
        assert latest <= deadline - timedelta(seconds=45)
        wait_for(lambda: children(api, ns, "urgent")[0], timeout=60, what="the Job is created")
        created = children(api, ns, "urgent")[0][0]["metadata"]["creationTimestamp"]
        created_at = datetime.fromisoformat(created.replace("Z", "+00:00"))
        assert created_at <= latest + timedelta(seconds=6), "started no later than the latest start (+ resync)"
        wait_phase(api, ns, "urgent", "Succeeded", timeout=60)
    finally:
        delete_namespace(api, ns)
        op.stop()


def test_a_deferred_job_starts_at_its_planned_start_not_at_the_next_resync(
        cluster: LocalCluster, api: AdminApi, crds: None, artifacts: Path, em: FakeElectricityMaps) -> None:
    """Dirty for the next 30 s, then clean: a 20 s job is Deferred until the clean stretch and started then, to
    within a few seconds, though this operator resyncs only every 2 minutes and nothing else happens to the job
    (its pass is due by the clock, handlers/wakeups.py)."""
    t = datetime.now(UTC).replace(microsecond=0)
    em.queue(FORECAST, Reply(forecast_body("US-CAL-CISO", t - timedelta(seconds=10), timedelta(seconds=20),
                                           [400, 400], t - timedelta(minutes=5), tail=30, tail_value=50)))
    op = operator_with(cluster, artifacts, "deferred-start", {"LLMASOS_ELECTRICITYMAPS_URL": em.url,
                                                             "LLMASOS_RESYNC_SECONDS": "120"})
    ns = api.namespace("start")
    try:
        api.create(llmjob_path(ns), deadline_job("dip", maxDelay="10m", expectedDuration="20s", safetyMargin="0s"))
        held = wait_phase(api, ns, "dip", "Deferred")
        start = datetime.fromisoformat(held["status"]["scheduledStart"].replace("Z", "+00:00"))
        assert start == t + timedelta(seconds=30), held["status"]["plan"]
        assert children(api, ns, "dip")[0] == []
        wait_for(lambda: children(api, ns, "dip")[0], timeout=(start - datetime.now(UTC)).total_seconds() + 20,
                 what="the Job created at the planned start")
        created = children(api, ns, "dip")[0][0]["metadata"]["creationTimestamp"]
        created_at = datetime.fromisoformat(created.replace("Z", "+00:00"))
        assert start <= created_at <= start + timedelta(seconds=4), f"created at {created_at}, planned {start}"
    finally:
        delete_namespace(api, ns)
        op.stop()


def test_a_job_still_running_at_its_deadline_is_told_so_and_then_how_late(
        cluster: LocalCluster, api: AdminApi, crds: None, artifacts: Path) -> None:
    """Planned in time (a 10 s run, due in 25 s), but it runs 40 s: DeadlineMissed within seconds of the deadline,
    with a Warning Event, though this operator resyncs only every 2 minutes and nothing else happens to the job
    then (its pass is due by the clock, handlers/wakeups.py); once it succeeds, how late."""
    op = operator_with(cluster, artifacts, "deadline-overrun", {
        "LLMASOS_ELECTRICITYMAPS_URL": "http://127.0.0.1:9/v3", "LLMASOS_CARBON_SOURCES": "electricitymaps",
        "LLMASOS_RESYNC_SECONDS": "120"})
    ns = api.namespace("overrun")
    try:
        deadline = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=25)
        job = deadline_job("overrun", maxDelay=None, deadline=iso(deadline).replace(".000", ""),
                           expectedDuration="10s", safetyMargin="0s")
        job["metadata"]["annotations"] = {"sim.llmasos.io/duration": "40s"}
        api.create(llmjob_path(ns), job)
        wait_phase(api, ns, "overrun", "Running", timeout=40)

        def risk() -> dict[str, Any] | None:
            conditions = api.get(llmjob_path(ns, "overrun")).get("status", {}).get("conditions", [])
            return next((c for c in conditions if c["type"] == "DeadlineAtRisk"), None)

        assert risk() is None, "planned to finish in time"
        missed = wait_for(lambda: (r := risk()) and r["reason"] == "DeadlineMissed" and r, timeout=40,
                          what="DeadlineMissed while it still runs")
        assert datetime.now(UTC) >= deadline
        told = datetime.fromisoformat(missed["lastTransitionTime"].replace("Z", "+00:00"))
        assert told <= deadline + timedelta(seconds=4), f"told at {told}, deadline {deadline}"
        assert missed["status"] == "True"
        assert missed["message"] == f"not finished by its deadline {iso(deadline).replace('.000', '')}"
        assert api.get(llmjob_path(ns, "overrun"))["status"]["phase"] == "Running"
        wait_for(lambda: any(e["reason"] == "DeadlineMissed" and e["type"] == "Warning"
                             for e in api.get(f"/api/v1/namespaces/{ns}/events")["items"]),
                 timeout=15, what="the Warning Event")
        done = wait_phase(api, ns, "overrun", "Succeeded", timeout=60)
        settled = next(c for c in done["status"]["conditions"] if c["type"] == "DeadlineAtRisk")
        assert (settled["status"], settled["reason"]) == ("True", "DeadlineMissed")
        assert settled["message"].startswith("finished at ")
        assert "s after its deadline" in settled["message"]
    finally:
        delete_namespace(api, ns)
        op.stop()
