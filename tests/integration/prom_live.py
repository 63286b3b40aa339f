"""The live Prometheus scenario's shapes and helpers (tests/integration/test_prometheus_live.py): what its one
module-scoped run records (`Live`), the jobs it creates, how it waits for status.carbon and for Prometheus, and the
checks its dashboard expectations are built from. Kept apart so that the test module holds the scenario and its
assertions only."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.integration.kube import AdminApi, llmjob, llmjob_path
from tests.integration.operator_proc import OperatorProcess
from tests.integration.prom import ElectricityMapsStub, Prometheus, finite_values, range_values


@dataclass
class Live:
    prom: Prometheus
    operator: OperatorProcess
    em: ElectricityMapsStub
    api: AdminApi
    start: float
    train_ns: str
    plan_ns: str
    killed_instance: str
    while_capped: dict[str, Any] = field(default_factory=dict)
    while_down: dict[str, Any] = field(default_factory=dict)
    after_restart: dict[str, Any] = field(default_factory=dict)
    carbon: dict[str, dict[str, Any]] = field(default_factory=dict)

    def firing(self) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
        alerts = self.prom.api("alerts")["alerts"]
        return {(a["labels"]["alertname"], tuple(sorted(a["labels"].items()))) for a in alerts
                if a["state"] == "firing"}

    def firing_names(self) -> set[str]:
        return {name for name, _ in self.firing()}


def deadline_job(name: str, runs: str = "10s", **carbon: Any) -> dict[str, Any]:
    return llmjob(name, carbon={"policy": "deadline", "maxDelay": "30h", "expectedDuration": "2h", **carbon},
                  placement={"nodePools": ["a100"]}, parallelism={"strategy": "ddp", "nodes": 1, "gpusPerNode": 1},
                  annotations={"sim.llmasos.io/duration": runs})


def carbon_final(api: AdminApi, ns: str, name: str) -> dict[str, Any] | None:
    """status.carbon once the job finished and the operator's ledger holds the latest report of each of its pods."""
    status = api.get(llmjob_path(ns, name)).get("status", {})
    carbon, pods = status.get("carbon"), status.get("power", {}).get("pods", [])
    if status.get("phase") != "Succeeded" or not carbon or not pods:
        return None
    readings = carbon.get("ledger", {}).get("readings", {})
    return carbon if all(readings.get(p["pod"], [None, None])[1] == p["energyJoules"] for p in pods) else None


def instant(live: Live, expr: str) -> list[float]:
    return finite_values(live.prom.query(expr))


def delete_namespaces(api: AdminApi, namespaces: list[str]) -> None:
    """Delete the namespaces and give the operator time to release its LLMJobs (kopf's finalizer) before it stops;
    a second call does nothing."""
    pending = [ns for ns in namespaces if api.request("GET", f"/api/v1/namespaces/{ns}").status_code == 200
               and not api.get(f"/api/v1/namespaces/{ns}").get("metadata", {}).get("deletionTimestamp")]
    for ns in pending:
        api.delete(f"/api/v1/namespaces/{ns}")
    settle(lambda: all(not api.request("GET", llmjob_path(ns)).json().get("items") for ns in pending), 60)


def settle(check: Callable[[], bool], timeout: float) -> None:
    """Give Prometheus time to evaluate (rules every 1 s) without failing here: the tests assert the outcome, so
    one wrong rule fails its own test instead of every test of the module."""
    end = time.monotonic() + timeout
    while time.monotonic() < end and not check():
        time.sleep(0.25)


def instant_sum(prom: Prometheus, expr: str) -> float:
    return sum(finite_values(prom.query(expr)))


def values_of(result: list[dict[str, Any]]) -> list[float]:
    return range_values(result) if result and "values" in result[0] else finite_values(result)


def positive(result: list[dict[str, Any]], live: Live) -> bool:
    return max(values_of(result)) > 0


def by_llmjob(result: list[dict[str, Any]], live: Live) -> bool:
    got = {(s["metric"]["namespace"], s["metric"]["llmjob"]): float(s["value"][1]) for s in result}
    return all(got.get(key, 0) > 0 for key in ((live.train_ns, "train"), (live.plan_ns, "eval")))


def by_namespace(result: list[dict[str, Any]], live: Live) -> bool:
    got = {s["metric"].get("namespace"): max(values_of([s])) for s in result}
    return got.get(live.train_ns, 0) > 0 and got.get(live.plan_ns, 0) > 0


def equals(n: float) -> Callable[[list[dict[str, Any]], Live], bool]:
    return lambda result, live: values_of(result) == [n]
