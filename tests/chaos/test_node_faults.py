"""Node-level faults: the node agent SIGKILLed while GPUs are capped, and a node deleted while its pods run.

Agents are real `llmasos node-agent` processes with simulated GPUs whose power limits live in a hardware file that
outlives the agent (as a real GPU's limit outlives a crashed agent); the agent's state file is what lets a
restarted agent know which caps it set.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.localcluster import LocalCluster
from tests.chaos.conftest import ExtraNodes
from tests.integration.agent_proc import AgentProcess
from tests.integration.kube import AdminApi, children, delete_namespace, llmjob, llmjob_path, wait_for, wait_phase
from tests.integration.operator_proc import OperatorProcess

pytestmark = pytest.mark.integration
NODES = ("gpu-a100-000", "gpu-a100-001")
DEFAULT_MW, CAPPED_MW = 400_000, 320_000
AGENT_NS = "llmasos-system"


@pytest.fixture
def agents(cluster: LocalCluster, api: AdminApi, tmp_path: Path) -> Iterator[dict[str, AgentProcess]]:
    if api.request("GET", f"/api/v1/namespaces/{AGENT_NS}").status_code == 404:
        api.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": AGENT_NS}})
    procs = {n: AgentProcess(cluster, n, "nvidia-a100-80gb", tmp_path, AGENT_NS).start() for n in NODES}
    yield procs
    for p in procs.values():
        p.stop()


@pytest.fixture
def operator(cluster: LocalCluster, crds: None, artifacts: Path) -> Iterator[OperatorProcess]:
    proc = OperatorProcess(cluster, artifacts, "chaos-node-faults").start()
    yield proc
    proc.stop()


def capped(agent: AgentProcess) -> dict[str, int]:
    return {uuid: mw for uuid, mw in agent.limits_mw().items() if mw != DEFAULT_MW}


def all_restored(agents: dict[str, AgentProcess]) -> bool:
    return all(a.limits_mw() and set(a.limits_mw().values()) == {DEFAULT_MW} for a in agents.values())


def test_agent_sigkill_loop_while_capped_keeps_exactly_the_jobs_caps(
        api: AdminApi, operator: OperatorProcess, agents: dict[str, AgentProcess]) -> None:
    """Three SIGKILL + restart cycles while the job runs: each restarted agent (state file) still caps exactly the
    job's 4 GPUs per node at 320 W, never more; killed once more and restarted after the job ended, it restores all.
    """
    ns = api.namespace("chaos-agent")
    try:
        api.create(llmjob_path(ns), llmjob("capped", placement={"nodePools": ["a100"]},
                                           parallelism={"strategy": "ddp", "nodes": 2, "gpusPerNode": 4},
                                           power={"policy": "fraction", "fraction": 0.8},
                                           annotations={"sim.llmasos.io/duration": "40s"}))

        def four_capped_each() -> bool:
            return all(len(capped(a)) == 4 and set(capped(a).values()) == {CAPPED_MW} for a in agents.values())

        wait_for(four_capped_each, timeout=60, what="4 GPUs per node capped at 320 W")
        first = {n: set(capped(a)) for n, a in agents.items()}
        for _ in range(3):
            for agent in agents.values():
                agent.kill()
            assert {n: set(capped(a)) for n, a in agents.items()} == first, "a SIGKILL leaves the caps as they were"
            for agent in agents.values():
                agent.start()
            wait_for(four_capped_each, timeout=30, what="caps held after the restart")
            assert {n: set(capped(a)) for n, a in agents.items()} == first, "the same GPUs, no others"
        for agent in agents.values():
            agent.kill()
        wait_phase(api, ns, "capped", "Succeeded", timeout=90)
        assert not all_restored(agents), "nothing restores caps while no agent runs"
        for agent in agents.values():
            agent.start()
        wait_for(lambda: all_restored(agents), timeout=30, what="caps of the finished job restored at start-up")
    finally:
        delete_namespace(api, ns, timeout=120)


def test_node_deleted_under_a_pool_only_job_says_so(api: AdminApi, operator: OperatorProcess,
                                                    extra_nodes: ExtraNodes) -> None:
    """A job restricted to one pool whose only node is deleted is not lost: it turns Pending with
    Scheduled=False/UnknownNodePool (a clear reason), and continues when the node is back."""
    extra_nodes.add("ephemeral", 1, gpus=8)
    ns = api.namespace("chaos-nodedel")
    try:
        api.create(llmjob_path(ns), llmjob("victim", backoffLimit=1, placement={"nodePools": ["ephemeral"]},
                                           parallelism={"strategy": "ddp", "nodes": 1, "gpusPerNode": 1},
                                           annotations={"sim.llmasos.io/duration": "25s"}))
        wait_phase(api, ns, "victim", "Running", timeout=60)
        extra_nodes.delete("gpu-ephemeral-000")

        def scheduled_false() -> dict[str, object] | None:
            conds = api.get(llmjob_path(ns, "victim")).get("status", {}).get("conditions", [])
            return next((c for c in conds if c["type"] == "Scheduled" and c["status"] == "False"), None)

        condition = wait_for(scheduled_false, timeout=30, what="Scheduled=False after the node was deleted")
        assert condition["reason"] == "UnknownNodePool"
        assert "ephemeral" in str(condition["message"])
        extra_nodes.add("ephemeral", 1, gpus=8)
        wait_phase(api, ns, "victim", "Succeeded", timeout=150)
        assert len(children(api, ns, "victim")[0]) == 1
    finally:
        delete_namespace(api, ns, timeout=120)


def test_node_deleted_job_is_rerun_elsewhere_or_fails_clearly(api: AdminApi, operator: OperatorProcess,
                                                              extra_nodes: ExtraNodes) -> None:
    extra_nodes.add("ephemeral", 1, gpus=8)
    ns = api.namespace("chaos-replace")
    try:
        api.create(llmjob_path(ns), llmjob("victim", backoffLimit=1,
                                           placement={"nodePools": ["ephemeral", "l4"], "preferEfficient": False},
                                           parallelism={"strategy": "ddp", "nodes": 1, "gpusPerNode": 1},
                                           annotations={"sim.llmasos.io/duration": "300s"}))
        obj = wait_phase(api, ns, "victim", "Running", timeout=60)
        assert obj["status"]["pool"] == "ephemeral"
        extra_nodes.delete("gpu-ephemeral-000")

        def consistent() -> bool:
            """status.pool must name the pool the current child Job's pods can run on."""
            status = api.get(llmjob_path(ns, "victim")).get("status", {})
            jobs = children(api, ns, "victim")[0]
            current = [j for j in jobs if j["metadata"]["name"] == status.get("children", {}).get("job")]
            if status.get("phase") in ("Succeeded", "Failed") or not current:
                return True
            terms = current[0]["spec"]["template"]["spec"]["affinity"]["nodeAffinity"][
                "requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
            return status.get("pool") in str(terms)

        def outcome() -> str:
            assert consistent(), "status.pool names a pool the child Job cannot run on"
            status = api.get(llmjob_path(ns, "victim")).get("status", {})
            if status.get("phase") == "Failed":
                failed = next(c for c in status["conditions"] if c["type"] == "Failed")
                assert "ephemeral" in failed["message"] or "node" in failed["message"].lower(), failed
                return "failed clearly"
            rerun = status.get("phase") == "Running" and int(status.get("attempt", 0) or 0) >= 1
            return "rerun on another pool" if rerun else ""

        wait_for(outcome, timeout=150, interval=1,
                 what="a new attempt running on a surviving pool, or Failed with a reason naming the lost node/pool")
    finally:
        delete_namespace(api, ns, timeout=120)


@pytest.mark.heavy
def test_namespace_of_a_pod_on_a_deleted_node_goes_at_the_first_look(api: AdminApi, extra_nodes: ExtraNodes) -> None:
    """The flake of the test above in a full `make chaos`: its namespace was deleted while the lost attempt's pod,
    bound to the deleted node, still existed (only PodGC removes it, 40-80 s after the node went). The namespace
    controller deletes pods first, saw that running pod (120 s grace) and looked again 61 s later, then 61 s after
    that: when PodGC came after the second look, the namespace took ~130 s, past the test's 120 s.
    delete_namespace now waits for PodGC before the DELETE, so the namespace goes at the controller's first look
    (~5 s). Without that wait this fails every time: the DELETE comes before PodGC, so >= 61 s."""
    pool = f"orphan{uuid.uuid4().hex[:6]}"  # a node name never used before: PodGC's quarantine is keyed by name
    node = extra_nodes.add(pool, 1, gpus=1)[0]
    ns = api.namespace("chaos-orphan")
    try:
        api.create(f"/api/v1/namespaces/{ns}/pods", {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "lost", "annotations": {"sim.llmasos.io/duration": "600s"}},
            "spec": {"nodeName": node, "restartPolicy": "Never", "terminationGracePeriodSeconds": 120,
                     "containers": [{"name": "worker", "image": "llmasos/worker:test"}]}})
        wait_for(lambda: api.get(f"/api/v1/namespaces/{ns}/pods/lost").get("status", {}).get("phase") == "Running",
                 timeout=30, what="the pod Running on its node")
        extra_nodes.delete(node)
        seconds = delete_namespace(api, ns, timeout=180)
    finally:
        api.delete(f"/api/v1/namespaces/{ns}")
    assert seconds < 45, f"namespace {ns} took {seconds:.0f} s after its DELETE: a pod on a deleted node was left " \
                         "for the namespace controller's 61 s re-check"
