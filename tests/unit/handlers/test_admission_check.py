"""The carbon AdmissionCheck controller against a fake API: which workloads it touches, where the zone comes from,
what it writes (a server-side apply of its own status entry) and that it looks again at the window."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from llmasos.carbon.fallback import Sourced
from llmasos.errors import CarbonSourceError
from llmasos.handlers.admission_check import CONTROLLER_NAME, FIELD_MANAGER, CarbonCheck
from llmasos.planning.timing.forecast import Forecast
from tests.unit.handlers.contexts import context

NOW = datetime(2026, 5, 1, 0, 0, tzinfo=UTC)
LOG = logging.getLogger("test")


class FakeKube:
    """GET by path, label-selected node lists, and every PATCH recorded."""

    def __init__(self, objects: dict[str, dict[str, Any]], nodes: list[dict[str, Any]]) -> None:
        self.objects, self.nodes = objects, nodes
        self.patches: list[tuple[str, Any, dict[str, str] | None, str]] = []

    async def get_or_none(self, res: Any, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        return self.objects.get(res.path(namespace, name))

    async def list(self, res: Any, namespace: str | None = None, label_selector: str | None = None,
                   field_selector: str | None = None) -> list[dict[str, Any]]:
        want = dict(kv.split("=") for kv in (label_selector or "").split(",") if kv)
        return [n for n in self.nodes if want.items() <= n["metadata"]["labels"].items()]

    async def request(self, method: str, path: str, body: Any = None, params: dict[str, str] | None = None,
                      content_type: str = "application/json") -> dict[str, Any]:
        self.patches.append((path, body, params, content_type))
        return {}


class FakeCarbon:
    def __init__(self, forecast: Forecast | None) -> None:
        self.forecast_value, self.zones = forecast, []  # type: ignore[var-annotated]

    async def forecast(self, location: str) -> Sourced[Forecast]:
        self.zones.append(location)
        if self.forecast_value is None:
            raise CarbonSourceError("HTTP 503", "electricitymaps")
        return Sourced(self.forecast_value, "test", False)


def forecast() -> Forecast:
    values = [500, 500, 500, 100, 100, *[500] * 19]
    return Forecast.from_pairs([(NOW + timedelta(hours=i), v) for i, v in enumerate(values)], timedelta(hours=1),
                               zone="DE", source="test")


def workload(check_state: str = "Pending", reserved: bool = True) -> dict[str, Any]:
    return {
        "apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "Workload",
        "metadata": {"name": "job-eval-1", "namespace": "ml", "uid": "w1",
                     "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "eval",
                                          "controller": True}]},
        "status": {"conditions": [{"type": "QuotaReserved", "status": "True" if reserved else "False"}],
                   "admission": {"clusterQueue": "green", "podSetAssignments": [{"name": "main",
                                                                                 "flavors": {"nvidia.com/gpu": "l4"}}]},
                   "admissionChecks": [{"name": "carbon", "state": check_state, "message": ""},
                                       {"name": "other", "state": "Pending", "message": ""}]},
    }


OBJECTS = {
    "/apis/batch/v1/namespaces/ml/jobs/eval": {"metadata": {
        "name": "eval", "creationTimestamp": "2026-05-01T00:00:00Z",
        "annotations": {"llmasos.io/max-delay": "12h", "llmasos.io/expected-duration": "1h"}}},
    "/apis/kueue.x-k8s.io/v1beta2/resourceflavors/l4": {"spec": {"nodeLabels": {"llmasos.io/pool": "l4"}}},
    "/apis/kueue.x-k8s.io/v1beta2/admissionchecks/other": {"spec": {"controllerName": "kueue.x-k8s.io/other"}},
}
NODES = [{"metadata": {"labels": {"llmasos.io/pool": "a100", "llmasos.io/carbon-zone": "US"}}},
         {"metadata": {"labels": {"llmasos.io/pool": "l4", "llmasos.io/carbon-zone": "DE"}}}]


def controller(fc: Forecast | None) -> tuple[CarbonCheck, FakeKube, FakeCarbon]:
    ctx = context()
    kube, carbon = FakeKube(dict(OBJECTS), NODES), FakeCarbon(fc)
    ctx.kube, ctx.carbon, ctx.clock = kube, carbon, lambda: NOW  # type: ignore[assignment]
    check = CarbonCheck(ctx)
    check.controller["carbon"] = CONTROLLER_NAME
    return check, kube, carbon


def test_holds_with_its_own_entry_and_looks_again_at_the_window() -> None:
    async def run() -> None:
        check, kube, carbon = controller(forecast())
        await check.review(workload(), LOG)
        assert carbon.zones == ["DE"], "the zone of the nodes the assigned flavour selects"
        [(path, body, params, ctype)] = kube.patches
        assert path == "/apis/kueue.x-k8s.io/v1beta2/namespaces/ml/workloads/job-eval-1/status"
        assert ctype == "application/apply-patch+yaml"
        assert params == {"fieldManager": FIELD_MANAGER, "force": "true"}
        [entry] = body["status"]["admissionChecks"]
        assert (entry["name"], entry["state"]) == ("carbon", "Pending"), "only its own check, never 'other'"
        assert entry["message"].startswith("waiting for the lowest-carbon window at 2026-05-01T03:00:00Z in DE")
        assert "w1" in check.rechecks
        sample = check.ctx.metrics.registry.get_sample_value
        assert sample("llmasos_admission_check_decisions_total",
                      {"state": "Pending", "reason": "WaitingForLowCarbonWindow"}) == 1
        await check.close()

    asyncio.run(run())


def test_ready_and_no_data_paths() -> None:
    async def run() -> None:
        check, kube, _ = controller(None)
        await check.review(workload(), LOG)
        entry = kube.patches[0][1]["status"]["admissionChecks"][0]
        assert entry["state"] == "Pending"
        assert entry["message"].startswith("carbon data unavailable (no carbon source answered for DE")
        await check.close()

    asyncio.run(run())


@pytest.mark.parametrize("wl", [workload(check_state="Ready"), workload(reserved=False)])
def test_leaves_alone_what_is_not_waiting_on_it(wl: dict[str, Any]) -> None:
    async def run() -> None:
        check, kube, carbon = controller(forecast())
        await check.review(wl, LOG)
        assert not kube.patches
        assert not carbon.zones

    asyncio.run(run())


def test_activates_its_admission_checks_only() -> None:
    async def run() -> None:
        check, kube, _ = controller(forecast())
        await check.check_changed({"metadata": {"name": "mine", "generation": 2},
                                   "spec": {"controllerName": CONTROLLER_NAME}}, deleted=False)
        await check.check_changed({"metadata": {"name": "theirs"}, "spec": {"controllerName": "x"}}, deleted=False)
        [(path, body, _, _)] = kube.patches
        assert path == "/apis/kueue.x-k8s.io/v1beta2/admissionchecks/mine/status"
        [cond] = body["status"]["conditions"]
        assert (cond["type"], cond["status"], cond["observedGeneration"]) == ("Active", "True", 2)

    asyncio.run(run())
