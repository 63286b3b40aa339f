"""The Electricity Maps token (from a Secret) never shows up in logs, Events, LLMJob status or any /metrics output.

The operator gets the token the way the chart gives it (a Secret resolved into LLMASOS_ELECTRICITYMAPS_TOKEN), and
the fake Electricity Maps answers 401 with an error body that *echoes the token* (as some APIs do), the worst case
for an error message copied into a condition. Node agents run beside it. Every place a user or a scraper can read
is then searched for the token.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from e2e.localcluster import LocalCluster
from tests.integration.agent_proc import AgentProcess
from tests.integration.kube import AdminApi, delete_namespace, llmjob, llmjob_path, wait_for, wait_phase
from tests.integration.operator_proc import OperatorProcess
from tests.unit.carbon.fake_server import FakeElectricityMaps, Reply

pytestmark = pytest.mark.integration
TOKEN = "em-secret-7d3c0b9a41f2"
AGENT_NS = "llmasos-system"


@pytest.fixture
def em() -> Iterator[FakeElectricityMaps]:
    with FakeElectricityMaps() as server:
        echo = Reply({"error": f"invalid auth-token {TOKEN} for zone"}, 401)
        for path in ("forecast", "latest", "history", "past-range"):
            server.queue(f"carbon-intensity/{path}", echo)
        yield server


def test_token_never_leaks(cluster: LocalCluster, api: AdminApi, crds: None, artifacts: Path,
                           em: FakeElectricityMaps, tmp_path: Path) -> None:
    if api.request("GET", f"/api/v1/namespaces/{AGENT_NS}").status_code == 404:
        api.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": AGENT_NS}})
    secret_name = f"em-token-{datetime.now(UTC).strftime('%H%M%S%f')}"
    api.create(f"/api/v1/namespaces/{AGENT_NS}/secrets", {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": secret_name},
        "data": {"token": base64.b64encode(TOKEN.encode()).decode()}})
    # What the kubelet does for the chart's secretKeyRef: read the Secret into the container's environment.
    token = base64.b64decode(api.get(f"/api/v1/namespaces/{AGENT_NS}/secrets/{secret_name}")["data"]["token"]).decode()
    op = OperatorProcess(cluster, artifacts, "chaos-secrets", {
        "LLMASOS_ELECTRICITYMAPS_TOKEN": token, "LLMASOS_ELECTRICITYMAPS_URL": em.url,
        "LLMASOS_CARBON_CACHE_SECONDS": "1", "LLMASOS_VERBOSE": "1"}).start()
    agents = [AgentProcess(cluster, n, "nvidia-a100-80gb", tmp_path, AGENT_NS).start()
              for n in ("gpu-a100-000", "gpu-a100-001")]
    ns = api.namespace("chaos-secret")
    try:
        deadline = (datetime.now(UTC) + timedelta(seconds=60)).strftime("%Y-%m-%dT%H:%M:%SZ")
        api.create(llmjob_path(ns), llmjob(
            "leaky", placement={"nodePools": ["a100"]}, power={"policy": "fraction", "fraction": 0.8},
            parallelism={"strategy": "ddp", "nodes": 2, "gpusPerNode": 4},
            carbon={"policy": "deadline", "deadline": deadline, "expectedDuration": "20s", "safetyMargin": "5s"},
            annotations={"sim.llmasos.io/duration": "6s"}))
        obj = wait_phase(api, ns, "leaky", "Succeeded", timeout=120)
        assert em.requests, "the operator asked Electricity Maps"
        assert all(r.headers.get("auth-token") == TOKEN for r in em.requests), "the token is sent, in the header"
        degraded = next(c for c in obj["status"]["conditions"] if c["type"] == "CarbonDataDegraded")
        assert "HTTP 401" in degraded["message"], "the failure is reported..."
        wait_for(lambda: all(a.metrics_port for a in agents), timeout=5)

        places = {
            "operator log": op.log_path.read_text(errors="replace"),
            "LLMJob (whole object)": json.dumps(api.get(llmjob_path(ns, "leaky"))),
            "Events (all namespaces)": json.dumps(api.get("/api/v1/events")),
            "operator /metrics": op.metrics(),
            "operator /healthz": httpx.get(f"http://127.0.0.1:{op.health_port}/healthz", timeout=5).text,
            "node reports": json.dumps(api.get(f"/api/v1/namespaces/{AGENT_NS}/configmaps")),
        }
        for agent in agents:
            places[f"agent {agent.node} /metrics"] = httpx.get(
                f"http://127.0.0.1:{agent.metrics_port}/metrics", timeout=5).text
            places[f"agent {agent.node} log"] = agent.log_path.read_text(errors="replace")
        leaks = sorted(where for where, text in places.items() if TOKEN in text)
        assert not leaks, f"the token appears in: {leaks}"
        assert all(text for text in places.values()), "every place was actually read"
    finally:
        try:
            delete_namespace(api, ns, timeout=120)
        finally:
            op.stop()
            for agent in agents:
                agent.stop()
            api.request("DELETE", f"/api/v1/namespaces/{AGENT_NS}/secrets/{secret_name}")
