"""The product for real on the real node: the chart's operator Deployment (2 replicas, peering) and node-agent
DaemonSet run as containers from the locally built images, and LLMJobs train inside pods.

- A DDP job of two workers rendezvouses through its headless Service's name (CoreDNS) with gloo, its loss falls,
  and the agent attributes energy to both pods through the kubelet's PodResources API, so status.carbon fills;
  status.carbon.tokens is exactly the count in the workers' own result.json (from their progress endpoints and final
  termination messages, through the agent's node report), and joulesPerToken is that energy over those tokens.
- `spec.suspend: true` makes the kubelet send SIGTERM; the workers checkpoint to a local PersistentVolume on the
  node, and the resumed workers continue from that step; the job's tokens add up over both runs.
- An inference job of two data-parallel pods: status.carbon.tokens is the job's new tokens (both replicas'), not
  one replica's, and status.progress counts them of the prompts x max_new_tokens it planned.
- A worker that cannot start says why in the LLMJob's WorkersReady condition.

No host process stands in for the operator or the agent here: the only operator running is the chart's.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from e2e.localcluster import LocalCluster
from e2e.realchart import CHECKPOINTS, helm, install
from tests.integration.kube import AdminApi, llmjob_path, wait_for
from tests.integration.realnode import wait_resumed

pytestmark = pytest.mark.integration
RELEASE, SYSTEM_NS = "llmasos-real", "llmasos-real"
# status.carbon.energyKWh is rounded to 1e-6 kWh (1.8 J either way); joulesPerToken is not, so their ratio can
# differ by up to that over the tokens (0.25 % for a 48-token job of 0.0004 kWh).
KWH_ROUNDING_J = 0.5e-6 * 3.6e6
JOBS_NS = f"real-jobs-{uuid.uuid4().hex[:6]}"
SUSPEND_STEPS = 2000  # 20 s or more here: still training when the suspend, sent at step 20, reaches the workers


@pytest.fixture(scope="module")
def chart(cluster: LocalCluster, crds: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    try:
        install(cluster, RELEASE, SYSTEM_NS, tmp_path_factory.mktemp("chart") / "values.yaml")
    except RuntimeError as exc:  # images not built (make test builds them), or helm failed: say which
        pytest.fail(str(exc))
    cluster.kubectl("create", "namespace", JOBS_NS)
    yield RELEASE
    cluster.kubectl("delete", "namespace", JOBS_NS, "--wait=false", check=False)
    helm(cluster, "uninstall", RELEASE, "--namespace", SYSTEM_NS, "--wait", "--timeout=120s")
    cluster.kubectl("delete", "namespace", SYSTEM_NS, "--wait=false", check=False)


def pods_of(cluster: LocalCluster, ns: str, selector: str) -> list[dict[str, Any]]:
    out = cluster.kubectl("get", "pods", "-n", ns, "-l", selector, "-o", "json").stdout
    items: list[dict[str, Any]] = json.loads(out)["items"]
    return items


def worker_events(cluster: LocalCluster, ns: str, pod: str, previous: bool = False) -> list[dict[str, Any]]:
    args = ["logs", "-n", ns, pod, *(["--previous"] if previous else [])]
    out = cluster.kubectl(*args, check=False).stdout
    events = []
    for line in out.splitlines():
        if line.startswith("{"):
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return events


def llmjob_doc(name: str, **spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "task": "train", "model": {"builtin": "gpt-tiny"},
        "parallelism": {"strategy": "ddp", "nodes": 2, "gpusPerNode": 1},
        "resources": {"cpu": "250m", "memory": "2Gi"},
        "placement": {"nodePools": ["real"]}, "carbon": {"policy": "immediate"},
        "taskConfig": {"steps": 60, "batch_size": 8, "log_every": 5, "seed": 1},
        "backoffLimit": 1,
    }
    base.update(spec)
    return {"apiVersion": "llmasos.io/v1alpha1", "kind": "LLMJob", "metadata": {"name": name, "namespace": JOBS_NS},
            "spec": base}


def apply(cluster: LocalCluster, doc: dict[str, Any]) -> None:
    cluster.kubectl("apply", "-f", "-", input=json.dumps(doc))


# ------------------------------------------------------------------------------------------------------ tests
def test_chart_runs_operator_and_agent_as_containers_on_the_real_node(cluster: LocalCluster, chart: str) -> None:
    operators = pods_of(cluster, SYSTEM_NS, "app.kubernetes.io/component=operator")
    agents = pods_of(cluster, SYSTEM_NS, "app.kubernetes.io/component=agent")
    assert len(operators) == 2
    assert len(agents) == 1
    for pod in operators + agents:
        assert pod["spec"]["nodeName"] == cluster.node.n.name
        assert all(c["ready"] for c in pod["status"]["containerStatuses"]), pod["status"]
        container = pod["spec"]["containers"][0]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    logs = [cluster.kubectl("logs", "-n", SYSTEM_NS, p["metadata"]["name"]).stdout for p in operators + agents]
    assert all(logs), "kubectl logs shows every operator and agent container"


def test_ddp_job_trains_in_pods_and_gets_its_carbon_and_tokens(
        cluster: LocalCluster, chart: str, api: AdminApi) -> None:
    local_checkpoint_volume(cluster, "ddp-out")  # where rank 0 writes result.json (its output directory)
    apply(cluster, llmjob_doc("ddp", volumes=[{"name": "out", "persistentVolumeClaim": {"claimName": "ddp-out"}}],
                              volumeMounts=[{"name": "out", "mountPath": CHECKPOINTS}]))
    job = wait_for(lambda: (o := api.get(llmjob_path(JOBS_NS, "ddp"))).get("status", {}).get("phase")
                   in ("Succeeded", "Failed") and o, timeout=420, what="the DDP job to succeed")
    assert job["status"]["phase"] == "Succeeded", json.dumps(job["status"], indent=1)
    pods = pods_of(cluster, JOBS_NS, "llmasos.io/llmjob=ddp")
    assert len(pods) == 2
    assert {p["spec"]["nodeName"] for p in pods} == {cluster.node.n.name}
    rank0 = next(p for p in pods if p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"] == "0")
    events = worker_events(cluster, JOBS_NS, rank0["metadata"]["name"])
    start = next(e for e in events if e["event"] == "start")
    assert start["world_size"] == 2
    losses = [e["loss"] for e in events if e["event"] == "step"]
    assert len(losses) >= 10, losses
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3, losses
    carbon = wait_for(lambda: (api.get(llmjob_path(JOBS_NS, "ddp"))["status"].get("carbon") or {}).get("energyKWh"),
                      timeout=120, what="status.carbon from the agent's energy")
    assert float(carbon) > 0

    # Tokens: the workers' own count (rank 0's result.json on the volume, and its `done` log line) is the job's.
    result = json.loads((volume_dir(cluster, "ddp-out") / "result.json").read_text())
    done = next(e for e in events if e["event"] == "done")
    assert result["tokens"] == done["tokens"] > 0, (result, done)
    assert (result["steps"], result["resumed_from"]) == (60, 0), result
    carbon = carbon_with_tokens(api, "ddp", result["tokens"])
    assert carbon["joulesPerToken"] == pytest.approx(carbon["energyKWh"] * 3.6e6 / carbon["tokens"], rel=1e-3,
                                                     abs=KWH_ROUNDING_J / carbon["tokens"])
    # The steps, too: all 60 of the 60 planned, in status.progress and in kubectl's Progress column.
    progress = wait_for(lambda: (p := api.get(llmjob_path(JOBS_NS, "ddp"))["status"].get("progress")) and
                        p["step"] == 60 and p, timeout=60, what="status.progress at step 60")
    assert progress == {"step": 60, "plannedSteps": 60, "percent": 100, "display": "60/60 (100%)"}
    table = cluster.kubectl("get", "llmjob", "-n", JOBS_NS, "ddp").stdout
    header, row = table.splitlines()[:2]
    assert row[header.index("PROGRESS"):].startswith("60/60 (100%)"), table


def test_inference_in_two_pods_counts_the_jobs_tokens(cluster: LocalCluster, chart: str, api: AdminApi) -> None:
    prompts = ["The grid is cleanest when", "A carbon-aware scheduler", "Energy per token", "Wind at night"]
    apply(cluster, llmjob_doc("infer", task="inference",
                              taskConfig={"prompts": prompts, "max_new_tokens": 12, "seed": 1}))
    job = wait_for(lambda: (o := api.get(llmjob_path(JOBS_NS, "infer"))).get("status", {}).get("phase")
                   in ("Succeeded", "Failed") and o, timeout=300, what="the inference job to succeed")
    assert job["status"]["phase"] == "Succeeded", json.dumps(job["status"], indent=1)
    pods = pods_of(cluster, JOBS_NS, "llmasos.io/llmjob=infer")
    assert len(pods) == 2
    rank0 = next(p for p in pods if p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"] == "0")
    done = next(e for e in worker_events(cluster, JOBS_NS, rank0["metadata"]["name"]) if e["event"] == "done")
    assert done["new_tokens"] == len(prompts) * 12, done
    # Each pod generated half of it; the job's count is the sum over both replicas, which each pod exports.
    carbon = carbon_with_tokens(api, "infer", done["new_tokens"])
    assert carbon["joulesPerToken"] == pytest.approx(carbon["energyKWh"] * 3.6e6 / carbon["tokens"], rel=1e-3,
                                                     abs=KWH_ROUNDING_J / carbon["tokens"])
    n, progress = len(prompts) * 12, api.get(llmjob_path(JOBS_NS, "infer"))["status"].get("progress")
    assert progress == {"step": n, "plannedSteps": n, "percent": 100, "display": f"{n}/{n} (100%)"}, progress


def test_a_job_too_slow_for_its_deadline_is_told_before_the_deadline(
        cluster: LocalCluster, chart: str, api: AdminApi) -> None:
    """60,000 steps (over 10 minutes on this machine; 4,000 took 52 s) due 3 minutes after apply: the workers' own
    pace says it ends late, so DeadlineAtRisk is ProjectedLate, with status.progress's estimated end after the
    deadline, before the deadline. Also the mid-run reading: the workers' step, from their /metrics."""
    deadline = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=3)
    apply(cluster, llmjob_doc("slow", carbon={"policy": "immediate", "deadline": deadline.isoformat()},
                              taskConfig={"steps": 60000, "batch_size": 8, "log_every": 500, "seed": 1}))

    seen: dict[str, Any] = {}

    def projected_late() -> dict[str, Any] | None:
        seen.update(status=api.get(llmjob_path(JOBS_NS, "slow")).get("status", {}))
        risk = next((c for c in seen["status"].get("conditions", []) if c["type"] == "DeadlineAtRisk"), None)
        return dict(seen["status"]) if risk is not None and risk["reason"] == "ProjectedLate" else None

    try:
        status = wait_for(projected_late, timeout=150, interval=2.0, what="DeadlineAtRisk=ProjectedLate")
    except AssertionError:
        shown = {k: v for k, v in seen.get("status", {}).items() if k not in ("carbon", "plan")}
        raise AssertionError(f"no ProjectedLate before the deadline {deadline}: {json.dumps(shown)}") from None
    assert datetime.now(UTC) < deadline, "told before the deadline"
    risk = next(c for c in status["conditions"] if c["type"] == "DeadlineAtRisk")
    progress = status["progress"]
    assert (risk["status"], status["phase"], progress["plannedSteps"]) == ("True", "Running", 60000), status
    assert datetime.fromisoformat(progress["estimatedEnd"]) > deadline, progress
    assert f"finishes around {progress['estimatedEnd']}" in risk["message"], risk
    warned = cluster.kubectl("get", "events", "-n", JOBS_NS, "--field-selector",
                             "involvedObject.name=slow,reason=ProjectedLate", "-o", "json").stdout
    assert [e["type"] for e in json.loads(warned)["items"]] == ["Warning"]
    cluster.kubectl("delete", "llmjob", "-n", JOBS_NS, "slow", "--wait=false")


def test_a_worker_that_cannot_start_says_why(cluster: LocalCluster, chart: str, api: AdminApi) -> None:
    apply(cluster, llmjob_doc("no-image", image="localhost/llmasos/not-built:1"))
    def not_ready() -> dict[str, Any] | None:
        conditions = api.get(llmjob_path(JOBS_NS, "no-image")).get("status", {}).get("conditions", [])
        return next((c for c in conditions if c["type"] == "WorkersReady" and c["status"] == "False"), None)

    condition = wait_for(not_ready, timeout=120, what="WorkersReady=False with the kubelet's reason")
    assert condition["reason"] in ("ErrImagePull", "ImagePullBackOff"), condition
    assert "spec.image" in condition["message"]
    cluster.kubectl("delete", "llmjob", "-n", JOBS_NS, "no-image", "--wait=false")


def local_checkpoint_volume(cluster: LocalCluster, name: str) -> None:
    """A local PersistentVolume on the real node (a directory under its node directory) and its claim: the
    checkpoints outlive the worker pods, as on a real cluster's storage."""
    path = volume_dir(cluster, name)
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o777)  # local volumes get no fsGroup ownership change; the workers run as uid 1000
    pv = {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": f"{JOBS_NS}-{name}"},
          "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                   "persistentVolumeReclaimPolicy": "Delete", "storageClassName": "llmasos-local",
                   "local": {"path": str(path)},
                   "claimRef": {"namespace": JOBS_NS, "name": name},
                   "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                       {"key": "kubernetes.io/hostname", "operator": "In", "values": [cluster.node.n.name]}]}]}}}}
    pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name, "namespace": JOBS_NS},
           "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "llmasos-local",
                    "volumeName": f"{JOBS_NS}-{name}", "resources": {"requests": {"storage": "1Gi"}}}}
    apply(cluster, pv)
    apply(cluster, pvc)


def volume_dir(cluster: LocalCluster, name: str) -> Path:
    return cluster.node.n.root / "volumes" / f"{JOBS_NS}-{name}"


def carbon_with_tokens(api: AdminApi, name: str, tokens: int, timeout: float = 120) -> dict[str, Any]:
    """status.carbon once its tokens equal `tokens` (node reports arrive every few seconds, and the operator's final
    write can follow the job's end); fails showing the last status.carbon seen."""
    seen: dict[str, Any] = {}

    def matches() -> dict[str, Any] | None:
        seen.clear()
        seen.update(api.get(llmjob_path(JOBS_NS, name))["status"].get("carbon") or {})
        return dict(seen) if seen.get("tokens") == tokens and seen.get("joulesPerToken") else None

    try:
        return dict(wait_for(matches, timeout=timeout, interval=1.0, what=f"status.carbon.tokens == {tokens}"))
    except AssertionError:
        shown = {k: v for k, v in seen.items() if k != "ledger"}
        raise AssertionError(f"status.carbon.tokens never reached the workers' {tokens}: {shown}") from None


def rank0_pod(cluster: LocalCluster, job: str) -> str:
    def find() -> str:
        for p in pods_of(cluster, JOBS_NS, f"llmasos.io/llmjob={job}"):
            index = p["metadata"]["annotations"].get("batch.kubernetes.io/job-completion-index")
            if index == "0" and p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp"):
                return str(p["metadata"]["name"])
        return ""
    return str(wait_for(find, timeout=240, what=f"a running rank-0 pod of {job}"))


def test_suspend_sends_sigterm_and_the_workers_resume_from_their_checkpoint(
        cluster: LocalCluster, chart: str, api: AdminApi) -> None:
    local_checkpoint_volume(cluster, "ckpt")
    doc = llmjob_doc("suspend", taskConfig={"steps": SUSPEND_STEPS, "batch_size": 8, "log_every": 5, "seed": 2,
                                            "checkpoint_every": 1000, "stop_check_seconds": 0.5},
                     volumes=[{"name": "ckpt", "persistentVolumeClaim": {"claimName": "ckpt"}}],
                     volumeMounts=[{"name": "ckpt", "mountPath": CHECKPOINTS}])
    apply(cluster, doc)
    first = rank0_pod(cluster, "suspend")
    # Follow the first rank 0's log: its pod is deleted once it exits, and with it what kubectl logs could show.
    follow = subprocess.Popen([cluster.binary("kubectl"), f"--kubeconfig={cluster.paths.kubeconfig}", "logs",
                               "-f", "-n", JOBS_NS, first], stdout=subprocess.PIPE, text=True)
    wait_for(lambda: any(e["event"] == "step" and e["step"] >= 20
                                     for e in worker_events(cluster, JOBS_NS, first)), timeout=240, what="20 steps")
    api.request("PATCH", llmjob_path(JOBS_NS, "suspend"), {"spec": {"suspend": True}},
                content_type="application/merge-patch+json")
    out, _ = follow.communicate(timeout=150)
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    suspended = next(e for e in events if e["event"] == "suspended")
    assert suspended["checkpoint"], suspended  # written within the grace period, to the volume
    assert suspended["checkpoint_seconds"] < 120
    wait_for(lambda: api.get(llmjob_path(JOBS_NS, "suspend"))["status"].get("phase")
             == "Suspended", timeout=60, what="phase Suspended")
    api.request("PATCH", llmjob_path(JOBS_NS, "suspend"), {"spec": {"suspend": False}},
                content_type="application/merge-patch+json")
    second = rank0_pod(cluster, "suspend")
    assert second != first
    wait_resumed(lambda: worker_events(cluster, JOBS_NS, second), suspended, start_timeout=180)

    # Tokens add up over the two runs (the resumed workers count on from the suspended step; result.json, its own).
    job = wait_for(lambda: (o := api.get(llmjob_path(JOBS_NS, "suspend"))).get("status", {}).get("phase")
                   in ("Succeeded", "Failed") and o, timeout=300, what="the resumed job to finish")
    assert job["status"]["phase"] == "Succeeded", job["status"]
    result = json.loads((volume_dir(cluster, "ckpt") / "result.json").read_text())
    assert (result["steps"], result["resumed_from"]) == (SUSPEND_STEPS, suspended["step"]), result
    per_step = result["tokens"] // (SUSPEND_STEPS - suspended["step"])
    assert result["tokens"] == (SUSPEND_STEPS - suspended["step"]) * per_step, result
    carbon = carbon_with_tokens(api, "suspend", SUSPEND_STEPS * per_step)
    assert carbon["joulesPerToken"] == pytest.approx(carbon["energyKWh"] * 3.6e6 / carbon["tokens"], rel=1e-3,
                                                     abs=KWH_ROUNDING_J / carbon["tokens"])
    progress = wait_for(lambda: (p := api.get(llmjob_path(JOBS_NS, "suspend"))["status"].get("progress")) and
                        p["step"] == SUSPEND_STEPS and p, timeout=60, what="status.progress at the last step")
    assert progress["display"] == f"{SUSPEND_STEPS}/{SUSPEND_STEPS} (100%)", progress  # across the two runs
    cluster.kubectl("delete", "llmjob", "-n", JOBS_NS, "suspend", "--wait=false")


def condition_of(api: AdminApi, name: str, kind: str) -> dict[str, Any] | None:
    conditions = api.get(llmjob_path(JOBS_NS, name)).get("status", {}).get("conditions", [])
    return next((c for c in conditions if c["type"] == kind), None)


def test_a_crash_loop_and_a_missing_volume_say_why_and_what_to_fix(
        cluster: LocalCluster, chart: str, api: AdminApi) -> None:
    """A worker that exits 3 at every attempt: the group restarts per backoffLimit, then the job fails, and its
    conditions carry the container's reason, the exit code, its last log line and what to fix. A worker whose
    ConfigMap volume does not exist waits in ContainerCreating: WorkersReady carries the kubelet's FailedMount."""
    crash = "echo 'loading /data/train.bin'; echo 'FileNotFoundError: /data/train.bin' >&2; exit 3"
    apply(cluster, llmjob_doc("crash", command=["sh", "-c", crash], backoffLimit=1))
    apply(cluster, llmjob_doc("no-volume", volumes=[{"name": "cfg", "configMap": {"name": "not-created"}}],
                              volumeMounts=[{"name": "cfg", "mountPath": "/etc/llm"}]))
    job = wait_for(lambda: (o := api.get(llmjob_path(JOBS_NS, "crash"))).get("status", {}).get("phase")
                   in ("Succeeded", "Failed") and o, timeout=180, what="the crashing job to fail")
    status = job["status"]
    assert status["phase"] == "Failed", status
    assert status["attempt"] == 1, "backoffLimit 1: the whole group ran twice"
    failed = next(c for c in status["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "WorkerFailed"
    assert "exit code 3" in failed["message"], failed
    assert "FileNotFoundError: /data/train.bin" in failed["message"], failed  # the log's tail
    assert "after 2 attempt(s)" in failed["message"], failed
    workers = next(c for c in status["conditions"] if c["type"] == "WorkersReady")
    assert (workers["status"], workers["reason"]) == ("False", "Error"), workers
    assert "exit code 3" in workers["message"], workers
    assert "To fix:" in workers["message"], workers

    # Until the GPUs of the module's earlier jobs are free, its pods may first be WorkersUnschedulable (also right).
    mount = wait_for(lambda: (c := condition_of(api, "no-volume", "WorkersReady")) and c["reason"] == "FailedMount"
                     and c, timeout=180, what="WorkersReady=False with the kubelet's FailedMount")
    assert mount["status"] == "False", mount
    assert 'configmap "not-created" not found' in mount["message"], mount
    assert "spec.volumes" in mount["message"], mount
    cluster.kubectl("delete", "llmjob", "-n", JOBS_NS, "crash", "no-volume", "--wait=false")


def checkpoint_steps(cluster: LocalCluster, volume: str) -> list[int]:
    """Steps of the complete checkpoints on the local volume (a step directory is renamed into place only after
    every rank wrote its shard)."""
    root = volume_dir(cluster, volume)
    return sorted(int(p.name.split("-")[1]) for p in root.rglob("step-*") if p.is_dir() and p.name[5:].isdigit())


def crictl(cluster: LocalCluster, *args: str) -> str:
    node = cluster.node.n
    result = subprocess.run([str(node.node_bin / "crictl"), f"--runtime-endpoint=unix://{node.containerd_socket}",
                             "--timeout=30s", *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_a_killed_worker_container_restarts_the_group_from_the_last_complete_checkpoint(
        cluster: LocalCluster, chart: str, api: AdminApi) -> None:
    """SIGKILL of one worker's container (crictl stop, no grace) mid-run: that pod fails with 137, the whole group
    restarts as attempt 1 (backoffLimit 1), and its ranks resume from the last checkpoint complete at the kill."""
    local_checkpoint_volume(cluster, "gang")
    doc = llmjob_doc("gang", taskConfig={"steps": 60, "batch_size": 8, "log_every": 5, "seed": 3,
                                         "checkpoint_every": 10, "keep_checkpoints": 3},
                     volumes=[{"name": "gang", "persistentVolumeClaim": {"claimName": "gang"}}],
                     volumeMounts=[{"name": "gang", "mountPath": CHECKPOINTS}])
    apply(cluster, doc)
    first = rank0_pod(cluster, "gang")
    wait_for(lambda: any(e["event"] == "step" and e["step"] >= 25 for e in worker_events(cluster, JOBS_NS, first)),
             timeout=240, what="25 steps")
    victim = next(p for p in pods_of(cluster, JOBS_NS, "llmasos.io/llmjob=gang,llmasos.io/attempt=0")
                  if p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"] == "1")
    container = victim["status"]["containerStatuses"][0]["containerID"].split("://", 1)[1]
    crictl(cluster, "stop", "--timeout=0", container)
    wait_for(lambda: api.get(llmjob_path(JOBS_NS, "gang")).get("status", {}).get("attempt") == 1, timeout=120,
             what="attempt 1 of the whole group")
    # Attempt 0 has failed (every pod stopped) and attempt 1's ranks are still starting: nothing writes now.
    complete_at_kill = checkpoint_steps(cluster, "gang")
    assert complete_at_kill, "checkpoints every 10 steps: two were complete at step 25"
    assert complete_at_kill[-1] >= 20, complete_at_kill
    out = cluster.kubectl("get", "events", "-n", JOBS_NS, "-o", "json",
                          "--field-selector=involvedObject.name=gang,reason=WorkerFailed").stdout
    restarts = [e["message"] for e in json.loads(out)["items"]]
    assert any("exit code 137" in m and "attempt 1 of 1" in m for m in restarts), restarts
    second = rank0_pod(cluster, "gang")
    assert second != first
    start = wait_for(lambda: [e for e in worker_events(cluster, JOBS_NS, second) if e["event"] == "start"],
                     timeout=180, what="the restarted rank 0's start")[0]
    assert start["resumed_from"] == complete_at_kill[-1], (start, complete_at_kill)
    job = wait_for(lambda: (o := api.get(llmjob_path(JOBS_NS, "gang"))).get("status", {}).get("phase")
                   in ("Succeeded", "Failed") and o, timeout=300, what="the restarted group to finish")
    assert job["status"]["phase"] == "Succeeded", job["status"]
    assert {p["metadata"]["labels"]["llmasos.io/attempt"]
            for p in pods_of(cluster, JOBS_NS, "llmasos.io/llmjob=gang")} == {"1"}, "attempt 0's pods are gone"
    cluster.kubectl("delete", "llmjob", "-n", JOBS_NS, "gang", "--wait=false")
