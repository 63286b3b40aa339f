"""The carbon AdmissionCheck on the real Kueue controller (`conftest.py`), and the chart's RBAC for it.

- the check holds a Job until its lowest-carbon window (a fake Electricity Maps server with 20-second forecast
  steps), then lets it through;
- with the carbon data down it is released at its latest start, and says so meanwhile;
- bad annotations end in a clear message on the workload and an admitted job, never a stuck queue;
- a RayJob passes Kueue and the check, then the real KubeRay ray-operator creates its RayCluster;
- the chart's templates/kueue/ allow the check what it uses and no more.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from e2e.localcluster import LocalCluster
from e2e.localcluster.ecosystem import Ecosystem
from llmasos.handlers.admission_check import CONTROLLER_NAME
from llmasos.planning.timing import admission_gate as g
from tests.chart.conftest import KUBE_VERSION
from tests.integration.kube import AdminApi, wait_for
from tests.integration.kueue.queues import (
    CLEAN,
    DIRTY,
    FORECAST,
    KUEUE,
    STEP,
    check_state,
    get_job,
    iso,
    job,
    rayjob,
    unsuspended,
    when,
)
from tests.integration.operator_proc import OperatorProcess
from tests.unit.carbon.fake_server import FakeElectricityMaps, Reply

pytestmark = pytest.mark.integration


def test_job_held_by_the_carbon_check_until_its_window(
        api: AdminApi, ns: str, em: FakeElectricityMaps, carbon_operator: OperatorProcess) -> None:
    t = datetime.now(UTC).replace(microsecond=0)
    base = t - timedelta(seconds=10)
    # Dirty until t+30 s, clean for 40 s, dirty after: a 20-second job's window opens at t+30 s.
    series = [DIRTY, DIRTY, CLEAN, CLEAN, *[DIRTY] * 30]
    em.queue(FORECAST, Reply({"zone": "US-CAL-CISO", "updatedAt": iso(t),
                              "forecast": [{"carbonIntensity": v, "datetime": iso(base + i * STEP)}
                                           for i, v in enumerate(series)]}))
    time.sleep(1.5)  # the previous test's answer leaves the operator's 1-second cache
    api.create(f"/apis/batch/v1/namespaces/{ns}/jobs", job(
        "green", "carbon", annotations={"llmasos.io/max-delay": "4m", "llmasos.io/expected-duration": "20s"}))
    held = wait_for(lambda: (c := check_state(api, ns, "green")) and c.get("message") and c, timeout=30,
                    what="the carbon check's verdict")
    assert held["state"] == "Pending", held
    window = base + 2 * STEP
    assert held["message"].startswith(f"waiting for the lowest-carbon window at {iso(window)} in US-CAL-CISO")
    assert "% below starting now" in held["message"]
    assert get_job(api, ns, "green")["spec"]["suspend"] is True
    ready = wait_for(lambda: (c := check_state(api, ns, "green")) and c["state"] == "Ready" and c,
                     timeout=(window - datetime.now(UTC)).total_seconds() + 20, what="check Ready at the window")
    assert datetime.now(UTC) >= window - timedelta(seconds=1), "not released before its window"
    assert ready["message"].startswith("lowest-carbon window open")
    wait_for(lambda: unsuspended(api, ns, "green"), timeout=20, what="Kueue admits the Job once Ready")
    events = api.get(f"/api/v1/namespaces/{ns}/events")["items"]
    assert {g.WAITING, g.WINDOW_OPEN} <= {e["reason"] for e in events}


def test_fail_safe_at_latest_start_when_carbon_data_is_down(
        api: AdminApi, ns: str, em: FakeElectricityMaps, carbon_operator: OperatorProcess) -> None:
    em.queue(FORECAST, Reply({"error": "unavailable"}, 503))
    api.create(f"/apis/batch/v1/namespaces/{ns}/jobs", job(
        "late", "carbon-pjm", annotations={"llmasos.io/max-delay": "40s", "llmasos.io/expected-duration": "20s"}))
    created = when(get_job(api, ns, "late")["metadata"]["creationTimestamp"])
    latest = created + timedelta(seconds=20)
    held = wait_for(lambda: (c := check_state(api, ns, "late")) and c.get("message") and c, timeout=40,
                    what="the carbon check's verdict")
    assert held["state"] == "Pending"
    assert held["message"].startswith("carbon data unavailable (no carbon source answered for US-MIDA-PJM"), held
    assert f"latest start {iso(latest)}" in held["message"]
    wait_for(lambda: (c := check_state(api, ns, "late")) and c["state"] == "Ready", timeout=60,
             what="released at the latest start")
    released = datetime.now(UTC)
    assert latest - timedelta(seconds=1) <= released <= latest + timedelta(seconds=10), (released, latest)
    wait_for(lambda: unsuspended(api, ns, "late"), timeout=20, what="admitted")


@pytest.mark.parametrize(("annotations", "says"), [
    ({"llmasos.io/deadline": "tomorrow"}, "llmasos.io/deadline 'tomorrow' is not an RFC 3339 time"),
    ({"llmasos.io/deadline": "2020-01-01T00:00:00Z"}, "deadline 2020-01-01T00:00:00Z cannot be met"),
])
def test_bad_annotations_leave_a_message_never_a_stuck_queue(
        api: AdminApi, ns: str, carbon_operator: OperatorProcess, annotations: dict[str, str], says: str) -> None:
    api.create(f"/apis/batch/v1/namespaces/{ns}/jobs", job("typo", "carbon", annotations=annotations))
    ready = wait_for(lambda: (c := check_state(api, ns, "typo")) and c["state"] == "Ready" and c, timeout=30,
                     what="the check lets the job through")
    assert says in ready["message"], ready
    wait_for(lambda: unsuspended(api, ns, "typo"), timeout=20, what="admitted")


def test_rayjob_is_gated_by_kueue_and_the_check_then_run_by_kuberay(
        api: AdminApi, ns: str, carbon_operator: OperatorProcess) -> None:
    """A RayJob: Kueue's webhook suspends it, the carbon check reads the RayJob's own annotations (a deadline that
    cannot be met: let through at once), Kueue admits it and the real ray-operator creates its RayCluster on the
    assigned flavour's nodes."""
    rays = f"/apis/ray.io/v1/namespaces/{ns}"
    api.create(f"{rays}/rayjobs", rayjob("ray", "carbon", {"llmasos.io/deadline": "2020-01-01T00:00:00Z"}))
    ready = wait_for(lambda: (c := check_state(api, ns, "ray")) and c["state"] == "Ready" and c, timeout=40,
                     what="the check decides on the RayJob")
    assert "deadline 2020-01-01T00:00:00Z cannot be met" in ready["message"]
    wait_for(lambda: not api.get(f"{rays}/rayjobs/ray")["spec"].get("suspend"), timeout=30,
             what="Kueue unsuspends the admitted RayJob")
    cluster = wait_for(lambda: api.get(f"{rays}/rayclusters")["items"], timeout=60,
                       what="ray-operator creates the RayCluster")
    assert cluster[0]["metadata"]["ownerReferences"][0]["kind"] == "RayJob"
    pods = wait_for(lambda: api.get(f"/api/v1/namespaces/{ns}/pods?labelSelector=ray.io/node-type")["items"],
                    timeout=60, what="the RayCluster's pods")
    gpu_pods = [p for p in pods if p["metadata"]["labels"].get("ray.io/node-type") == "worker"]
    assert all(p["spec"].get("nodeSelector", {}).get("llmasos.io/pool") == "l4" for p in gpu_pods), gpu_pods


# ------------------------------------------------------------------------- the chart's RBAC for the check
CHART_SA = "system:serviceaccount:llmasos-kueue-rbac:llmasos-operator"
CHECK_NEEDS = [("get", "workloads.kueue.x-k8s.io"), ("list", "workloads.kueue.x-k8s.io"),
               ("watch", "workloads.kueue.x-k8s.io"), ("patch", "workloads.kueue.x-k8s.io", "--subresource=status"),
               ("watch", "admissionchecks.kueue.x-k8s.io"),
               ("patch", "admissionchecks.kueue.x-k8s.io", "--subresource=status"),
               ("get", "resourceflavors.kueue.x-k8s.io"), ("get", "jobs.batch"), ("get", "rayjobs.ray.io"),
               ("create", "events")]
CHECK_MUST_NOT = [("update", "workloads.kueue.x-k8s.io"), ("patch", "workloads.kueue.x-k8s.io"),
                  ("delete", "workloads.kueue.x-k8s.io"), ("create", "workloads.kueue.x-k8s.io"),
                  ("patch", "admissionchecks.kueue.x-k8s.io"), ("patch", "clusterqueues.kueue.x-k8s.io"),
                  ("patch", "jobs.batch"), ("get", "secrets")]


@pytest.fixture(scope="module")
def check_rbac(cluster: LocalCluster, kueue: Ecosystem) -> Iterator[None]:
    """The chart's templates/kueue/ (AdmissionCheck, ClusterRole, binding), rendered by helm and applied."""
    rendered = subprocess.run(
        [cluster.binary("helm"), "template", "llmasos", str(Path(__file__).resolve().parents[3] / "charts/llmasos"),
         "--namespace", "llmasos-kueue-rbac", "--kube-version", KUBE_VERSION,
         "--set", "kueue.admissionCheck.enabled=true", "--set", "kueue.admissionCheck.name=llmasos-carbon-rbac",
         "--show-only", "templates/kueue/admissioncheck.yaml", "--show-only", "templates/kueue/rbac.yaml"],
        check=True, capture_output=True, text=True).stdout
    cluster.kubectl("apply", "-f", "-", input=rendered)
    yield
    cluster.kubectl("delete", "-f", "-", "--ignore-not-found", input=rendered, check=False)


def can_i(cluster: LocalCluster, verb: str, resource: str, *extra: str) -> bool:
    result = cluster.kubectl("auth", "can-i", verb, resource, f"--as={CHART_SA}", "--all-namespaces", *extra,
                             check=False)
    assert result.stdout.strip() in ("yes", "no"), result.stdout + result.stderr
    return result.stdout.strip() == "yes"


def test_chart_rbac_for_the_check_allows_what_it_uses_and_no_more(
        cluster: LocalCluster, api: AdminApi, check_rbac: None) -> None:
    assert [n for n in CHECK_NEEDS if not can_i(cluster, *n)] == []
    assert [n for n in CHECK_MUST_NOT if can_i(cluster, *n)] == []
    check = api.get(f"{KUEUE}/admissionchecks/llmasos-carbon-rbac")
    assert check["spec"]["controllerName"] == CONTROLLER_NAME
