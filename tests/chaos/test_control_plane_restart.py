"""kube-apiserver and etcd restart mid-run (etcd keeps its data); the operator recovers with no manual step.

While jobs run, one control-plane component is stopped and started again. The same operator process must come
through it: every job that existed finishes, a job created after the restart is picked up (its watches were
re-established, not only the resync timer), no child is duplicated and no phase goes backwards.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from e2e.localcluster import LocalCluster
from tests.chaos.conftest import ExtraNodes
from tests.chaos.figures import record
from tests.chaos.test_operator_sigkill import POOL, job_manifest, names_in
from tests.chaos.watch import PhaseRecorder
from tests.integration.kube import AdminApi, delete_namespace, llmjob_path, wait_for
from tests.integration.operator_proc import OperatorProcess

pytestmark = pytest.mark.integration

def run_restart(cluster: LocalCluster, api: AdminApi, artifacts: Path, extra_nodes: ExtraNodes,
                components: tuple[str, ...], jobs: int, label: str) -> None:
    extra_nodes.add(POOL, count=max(2, jobs // 8 + 1), gpus=8)
    ns = api.namespace(f"chaos-{label}")
    op = OperatorProcess(cluster, artifacts, f"chaos-restart-{label}").start()
    expected = [f"j{i:03d}" for i in range(jobs)]
    downtime: dict[str, list[float]] = {}  # every restart of each component, in order

    def phases() -> dict[str, str]:
        return {o["metadata"]["name"]: (o.get("status") or {}).get("phase", "")
                for o in api.get(llmjob_path(ns))["items"]}

    try:
        with PhaseRecorder(api, ns) as recorder:
            for i, name in enumerate(expected):
                api.create(llmjob_path(ns), job_manifest(name, False, f"{4 + i % 5}s"))
            wait_for(lambda: any(p == "Running" for p in phases().values()), timeout=60, what="some job running")
            for component in components:
                t = time.monotonic()
                cluster.restart(component)
                downtime.setdefault(component, []).append(round(time.monotonic() - t, 2))
                assert op.proc is not None
                assert op.proc.poll() is None, f"the operator exited when {component} restarted:\n{op.log_tail()}"
            late = "after-restart"
            api.create(llmjob_path(ns), job_manifest(late, False, "2s"))
            expected.append(late)
            t = time.monotonic()
            wait_for(lambda: len(phases()) == len(expected) and all(p == "Succeeded" for p in phases().values()),
                     timeout=180, interval=1, what=f"every job Succeeded after restarting {components}")
            recovery = time.monotonic() - t
            assert op.proc.poll() is None, "the same operator process did the work"
            time.sleep(2)
            regressions = recorder.regressions()
        assert names_in(api, f"/apis/batch/v1/namespaces/{ns}/jobs") == sorted(f"{n}-a0" for n in expected)
        assert names_in(api, f"/api/v1/namespaces/{ns}/services") == sorted(expected)
        record(artifacts, f"restart-{label}", {"jobs": len(expected), "restart_seconds": downtime,
                                               "late_job_and_rest_done_seconds": round(recovery, 1),
                                               "watch_reconnects": recorder.reconnects,
                                               "jobs_whose_phase_went_backwards": len(regressions)})
        # Status writes carry a resourceVersion precondition: a pass that read a stale copy after the restart
        # gets a 409 instead of writing an older phase (before that fix, 2 of 3 runs with 12 jobs regressed).
        assert not regressions, f"a phase went backwards: {regressions}"
    finally:
        if op.proc is None or op.proc.poll() is not None:
            op = OperatorProcess(cluster, artifacts, f"chaos-restart-{label}-cleanup").start()
        try:
            delete_namespace(api, ns, timeout=120)
        finally:
            op.stop()


def test_apiserver_restart_mid_run(cluster: LocalCluster, api: AdminApi, crds: None, artifacts: Path,
                                   extra_nodes: ExtraNodes) -> None:
    run_restart(cluster, api, artifacts, extra_nodes, ("kube-apiserver",), jobs=12, label="apiserver")


def test_etcd_restart_mid_run(cluster: LocalCluster, api: AdminApi, crds: None, artifacts: Path,
                              extra_nodes: ExtraNodes) -> None:
    run_restart(cluster, api, artifacts, extra_nodes, ("etcd",), jobs=12, label="etcd")


@pytest.mark.heavy
def test_apiserver_and_etcd_restarts_under_load(cluster: LocalCluster, api: AdminApi, crds: None, artifacts: Path,
                                                extra_nodes: ExtraNodes) -> None:
    run_restart(cluster, api, artifacts, extra_nodes, ("kube-apiserver", "etcd", "kube-apiserver", "etcd"),
                jobs=100, label="both-100")
