"""The operator is SIGKILLed every few seconds while a batch of LLMJobs is being reconciled.

In the end every job reaches its expected terminal phase (some are scripted to fail), each LLMJob has exactly one
child Job (attempt 0) and one Service, and no job's phase ever went backwards (a watch records every phase change
from outside the operator). The fast variant (30 jobs, 4 kills) runs in `make test`; the heavy one (200 jobs,
killed every 2-5 s until all are finished) in `make chaos`.
"""

from __future__ import annotations

import contextlib
import json
import random
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from e2e.localcluster import LocalCluster
from tests.chaos.conftest import ExtraNodes
from tests.chaos.figures import record
from tests.chaos.watch import TERMINAL, PhaseRecorder
from tests.integration.kube import AdminApi, delete_namespace, llmjob, llmjob_path, wait_for
from tests.integration.operator_proc import OperatorProcess

pytestmark = pytest.mark.integration
POOL = "chaos"


def job_manifest(name: str, fail: bool, duration: str) -> dict[str, Any]:
    annotations = {"sim.llmasos.io/duration": duration}
    if fail:
        annotations.update({"sim.llmasos.io/outcome": "Failed", "sim.llmasos.io/exit-code": "3"})
    return llmjob(name, annotations=annotations, backoffLimit=0, placement={"nodePools": [POOL]},
                  parallelism={"strategy": "ddp", "nodes": 1, "gpusPerNode": 1})


def names_in(api: AdminApi, path: str) -> list[str]:
    return sorted(o["metadata"]["name"] for o in api.get(path)["items"])


def run_sigkill_chaos(cluster: LocalCluster, api: AdminApi, artifacts: Path, extra_nodes: ExtraNodes, *,
                      jobs: int, min_kills: int, max_kills: int, label: str) -> None:
    rng = random.Random(jobs)
    extra_nodes.add(POOL, count=max(2, jobs // 8 + 1), gpus=8)
    ns = api.namespace(f"chaos-kill{jobs}")
    expected = {f"j{i:03d}": ("Failed" if i % 10 == 7 else "Succeeded") for i in range(jobs)}
    name = f"chaos-sigkill-{label}"
    op = OperatorProcess(cluster, artifacts, name).start()
    kills, restart_seconds = 0, []
    started = time.monotonic()

    def phases() -> dict[str, str]:
        return {o["metadata"]["name"]: (o.get("status") or {}).get("phase", "")
                for o in api.get(llmjob_path(ns))["items"]}

    try:
        with PhaseRecorder(api, ns) as recorder:
            for i, (job, outcome) in enumerate(expected.items()):
                api.create(llmjob_path(ns), job_manifest(job, outcome == "Failed", f"{2 + i % 4}s"))
                if i % 50 == 49 and kills < max_kills:  # kills while jobs are still being created, too
                    op.kill()
                    kills += 1
                    t = time.monotonic()
                    op = OperatorProcess(cluster, artifacts, name).start()
                    restart_seconds.append(time.monotonic() - t)
            while kills < max_kills:
                time.sleep(rng.uniform(2.0, 5.0))
                done = sum(1 for p in phases().values() if p in TERMINAL)
                if kills >= min_kills and done == jobs:
                    break
                op.kill()
                kills += 1
                t = time.monotonic()
                op = OperatorProcess(cluster, artifacts, name).start()
                restart_seconds.append(time.monotonic() - t)
            wait_for(lambda: all(p in TERMINAL for p in phases().values()) and len(phases()) == jobs,
                     timeout=120 + jobs, interval=1, what=f"all {jobs} LLMJobs terminal after {kills} kills")
            finished = time.monotonic() - started
            time.sleep(3)  # late watch events: a regression right after the end must be seen too
            regressions = recorder.regressions()
            sequences = recorder.snapshot()
            reconnects = recorder.reconnects

        final = phases()
        wrong = {n: (final.get(n), want) for n, want in expected.items() if final.get(n) != want}
        assert not wrong, f"jobs in the wrong terminal phase (got, want): {wrong}"
        assert not regressions, f"phase went backwards: {regressions}"
        assert names_in(api, f"/apis/batch/v1/namespaces/{ns}/jobs") == sorted(f"{n}-a0" for n in expected), \
            "exactly one child Job (attempt 0) per LLMJob"
        services = names_in(api, f"/api/v1/namespaces/{ns}/services")
        assert set(services) <= set(expected), "no Service that belongs to no LLMJob"
        # A SIGKILL between the Job's and the Service's create can leave a job that then finishes before the next
        # operator runs with no Service (see test_service_exists_before_its_job): tolerated only for finished jobs.
        missing_services = sorted(set(expected) - set(services))
        pods = api.get(f"/api/v1/namespaces/{ns}/pods")["items"]
        per_job: dict[str, int] = {}
        for p in pods:
            owner = p["metadata"].get("labels", {}).get("llmasos.io/llmjob", "")
            per_job[owner] = per_job.get(owner, 0) + 1
        assert all(per_job.get(n) == 1 for n in expected), f"one pod per single-node job: {per_job}"
        events = api.get(f"/api/v1/namespaces/{ns}/events")["items"]
        completed = [e for e in events if e.get("reason") in ("JobCompleted", "WorkerFailed")]
        record(artifacts, f"sigkill-{label}", {
            "jobs": jobs, "kills": kills, "seconds_to_all_terminal": round(finished, 1),
            "operator_restart_to_healthy_seconds_max": round(max(restart_seconds, default=0), 2),
            "watch_reconnects": reconnects, "finished_jobs_missing_their_service": len(missing_services),
            "terminal_events": len(completed),
            "terminal_events_counted_more_than_once": sum(e.get("count", 1) - 1 for e in completed),
            "max_phase_changes_per_job": max((len(s) for s in sequences.values()), default=0),
        })
    finally:
        try:
            delete_namespace(api, ns, timeout=180)
        finally:
            op.stop()


def test_sigkill_storm_fast(cluster: LocalCluster, api: AdminApi, crds: None, artifacts: Path,
                            extra_nodes: ExtraNodes) -> None:
    run_sigkill_chaos(cluster, api, artifacts, extra_nodes, jobs=30, min_kills=4, max_kills=6, label="fast")


@pytest.mark.heavy
def test_sigkill_storm_200_jobs(cluster: LocalCluster, api: AdminApi, crds: None, artifacts: Path,
                                extra_nodes: ExtraNodes) -> None:
    run_sigkill_chaos(cluster, api, artifacts, extra_nodes, jobs=200, min_kills=10, max_kills=40, label="200")


class CreationOrder:
    """Watches Jobs and Services of a namespace and keeps the etcd revision at which each was first seen."""

    def __init__(self, api: AdminApi, ns: str) -> None:
        self.api, self.ns = api, ns
        self.first_rv: dict[tuple[str, str], int] = {}
        paths = (("Job", f"/apis/batch/v1/namespaces/{ns}/jobs"), ("Service", f"/api/v1/namespaces/{ns}/services"))
        self.threads = [threading.Thread(target=self._watch, args=p, daemon=True) for p in paths]
        self.ready = threading.Barrier(3)

    def _watch(self, kind: str, path: str) -> None:
        params = {"watch": "1", "resourceVersion": "0", "timeoutSeconds": "120"}
        # The stream ends with the test (namespace deleted, server closed it): nothing more to record then.
        with contextlib.suppress(httpx.HTTPError):
            self._stream(kind, path, params)

    def _stream(self, kind: str, path: str, params: dict[str, str]) -> None:
        with self.api.http.stream("GET", path, params=params, timeout=httpx.Timeout(10, read=130)) as r:
            self.ready.wait()
            for line in r.iter_lines():
                if not line:
                    continue
                obj = json.loads(line).get("object", {})
                meta = obj.get("metadata", {})
                owner = meta.get("labels", {}).get("llmasos.io/llmjob")
                if owner and (kind, owner) not in self.first_rv:
                    self.first_rv[(kind, owner)] = int(meta["resourceVersion"])

    def start(self) -> None:
        for t in self.threads:
            t.start()
        self.ready.wait()


def test_service_exists_before_its_job(cluster: LocalCluster, api: AdminApi, crds: None, artifacts: Path,
                                       extra_nodes: ExtraNodes) -> None:
    """The invariant that makes a SIGKILL harmless: a child Job is only ever created after its Service exists."""
    extra_nodes.add(POOL, count=3, gpus=8)
    ns = api.namespace("chaos-order")
    order = CreationOrder(api, ns)
    order.start()
    op = OperatorProcess(cluster, artifacts, "chaos-order").start()
    names = [f"o{i:02d}" for i in range(20)]
    try:
        for n in names:
            api.create(llmjob_path(ns), job_manifest(n, False, "2s"))
        wait_for(lambda: all(("Job", n) in order.first_rv and ("Service", n) in order.first_rv for n in names),
                 timeout=90, what="every Job and Service seen")
        job_first = sorted(n for n in names if order.first_rv[("Job", n)] < order.first_rv[("Service", n)])
        assert not job_first, f"Job created before its Service for {len(job_first)}/{len(names)}: {job_first}"
    finally:
        try:
            delete_namespace(api, ns, timeout=180)
        finally:
            op.stop()
