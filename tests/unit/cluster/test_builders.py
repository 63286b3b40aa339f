"""The Job and Service renderers: torchrun env, GPUs, affinity, gang policy, Ray layout, security defaults."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from llmasos.api.worker_contract import WorkerEnv
from llmasos.cluster.builders import Owner, build_job, build_service
from tests.unit.builders import make_spec

OWNER = Owner("gpt", "ml", "uid-1", (("sim.llmasos.io/duration", "5s"), ("other/anno", "x")))


def _env(job: dict[str, Any]) -> dict[str, Any]:
    container = job["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_indexed_job_shape_and_gang_policy() -> None:
    job = build_job(OWNER, make_spec(nodes=3, gpus=4), 1, "a100", "img:1")
    spec = job["spec"]
    assert job["metadata"]["name"] == "gpt-a1"
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 3, 3)
    assert spec["backoffLimit"] == 0
    rules = spec["podFailurePolicy"]["rules"]
    assert rules[0]["action"] == "Ignore"
    assert rules[1]["onExitCodes"]["values"] == [75], "a checkpointed, suspended worker is not a failure"
    assert rules[2] == {"action": "FailJob", "onExitCodes": {"containerName": "worker", "operator": "NotIn",
                                                             "values": [0]}}
    assert job["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert job["metadata"]["ownerReferences"][0]["controller"] is True


def test_torchrun_environment_round_trips_through_the_worker_contract() -> None:
    job = build_job(OWNER, make_spec(nodes=2, gpus=4, strategy="hybrid", tensorParallel=2, pipelineParallel=2),
                    0, "h100", "img:1")
    env = _env(job)
    assert env["MASTER_ADDR"] == "gpt-a0-0.gpt.ml.svc"
    assert env["WORLD_SIZE"] == "8"
    assert env["LLMASOS_DATA_PARALLEL"] == "2"
    assert env["NODE_RANK"] == {"fieldRef": {
        "fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}}
    plain = {k: v for k, v in env.items() if isinstance(v, str)}
    parsed = WorkerEnv.from_env({**plain, "NODE_RANK": "1"})
    assert (parsed.nnodes, parsed.nproc_per_node, parsed.tensor_parallel, parsed.pipeline_parallel) == (2, 4, 2, 2)
    assert parsed.node_rank == 1


def test_gpus_affinity_and_annotations() -> None:
    job = build_job(OWNER, make_spec(nodes=1, gpus=2), 0, "l4", "img:1")
    pod = job["spec"]["template"]
    container = pod["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "2"
    terms = pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert terms["nodeSelectorTerms"][0]["matchExpressions"][0] == {"key": "llmasos.io/pool", "operator": "In",
                                                                   "values": ["l4"]}
    assert pod["metadata"]["annotations"] == {"sim.llmasos.io/duration": "5s",
                                              "llmasos.io/power": '{"maxSlowdown": 1.1, "policy": "none"}'}
    assert pod["metadata"]["labels"]["llmasos.io/llmjob"] == "gpt"


def test_power_policy_travels_to_the_pod_for_the_node_agent() -> None:
    from llmasos.agent.pods import node_pod_from_object

    spec = make_spec(power={"policy": "fraction", "fraction": 0.8})
    pod = build_job(OWNER, spec, 0, "a100", "i")["spec"]["template"]
    view = node_pod_from_object({"metadata": {"name": "p", "namespace": "ml", **pod["metadata"]}, "spec": pod["spec"]})
    assert view.power == spec.power
    assert view.gpu_request == 4
    assert view.llmjob == "gpt"


def test_worker_pods_are_locked_down() -> None:
    pod = build_job(OWNER, make_spec(), 0, "a100", "img:1")["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    sc = pod["containers"][0]["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["readOnlyRootFilesystem"] is True


def test_worker_gets_the_cpu_request_it_divides_among_its_ranks_threads() -> None:
    """The worker sizes its thread pools from the pod's CPU request (docs/worker.md, "CPU threads")."""
    job = build_job(OWNER, make_spec(nodes=1, gpus=8, resources={"cpu": "6500m"}), 0, "h100", "img:1")
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert _env(job)["LLMASOS_CPU_REQUEST"] == "6500m" == container["resources"]["requests"]["cpu"]
    parsed = WorkerEnv.from_env({k: v for k, v in _env(job).items() if isinstance(v, str)})
    assert parsed.cpu_request_cores == 6.5
    assert _env(build_job(OWNER, make_spec(nodes=1), 0, "a100", "i"))["LLMASOS_CPU_REQUEST"] == "2"  # the default


def test_cpu_only_job_requests_no_gpu() -> None:
    container = build_job(OWNER, make_spec(nodes=1, gpus=0), 0, "a100", "i")["spec"]["template"]["spec"][
        "containers"][0]
    assert "nvidia.com/gpu" not in container["resources"]["limits"]


def test_max_runtime_and_suspend() -> None:
    spec = make_spec(maxRuntime="90m")
    assert spec.max_runtime == timedelta(minutes=90)
    job = build_job(OWNER, spec, 0, "a100", "i", suspend=True)
    assert job["spec"]["activeDeadlineSeconds"] == 5400
    assert job["spec"]["suspend"] is True


def test_user_command_env_and_volumes_are_kept() -> None:
    spec = make_spec(command=["python", "train.py"], args=["--x"], env=[{"name": "A", "value": "1"}],
                     volumes=[{"name": "data", "emptyDir": {}}], volumeMounts=[{"name": "data", "mountPath": "/d"}])
    pod = build_job(OWNER, spec, 0, "a100", "i")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["command"] == ["python", "train.py"]
    assert container["args"] == ["--x"]
    assert {"name": "A", "value": "1"} in container["env"]
    assert {"name": "data", "emptyDir": {}} in pod["volumes"]
    assert {"name": "data", "mountPath": "/d"} in container["volumeMounts"]


def test_ray_job_has_success_policy_head_script_and_ray_ports() -> None:
    spec = make_spec(nodes=3, gpus=1, strategy="ray", task="inference")
    job = build_job(OWNER, spec, 0, "a100", "i")
    assert job["spec"]["successPolicy"] == {"rules": [{"succeededIndexes": "0"}]}
    script = job["spec"]["template"]["spec"]["containers"][0]["command"][-1]
    assert "ray start --head" in script
    assert "gpt-a0-0.gpt.ml.svc:6379" in script
    svc = build_service(OWNER, spec)
    assert {p["port"] for p in svc["spec"]["ports"]} >= {6379, 8265, 10001}
    assert svc["spec"]["clusterIP"] == "None"
    assert svc["spec"]["publishNotReadyAddresses"] is True


def test_checkpoint_dir_only_where_the_job_mounts_a_volume() -> None:
    mounted = make_spec(volumes=[{"name": "ckpt", "persistentVolumeClaim": {"claimName": "ckpt"}}],
                        volumeMounts=[{"name": "ckpt", "mountPath": "/checkpoints"}])
    assert _env(build_job(OWNER, mounted, 0, "a100", "img:1", checkpoint_dir="/checkpoints/run"))[
        "LLMASOS_CHECKPOINT_DIR"] == "/checkpoints/run"
    # Nothing mounted there: the read-only root filesystem could not take a checkpoint, so none is asked for.
    bare = _env(build_job(OWNER, make_spec(), 0, "a100", "img:1", checkpoint_dir="/checkpoints"))
    assert bare.get("LLMASOS_CHECKPOINT_DIR", "") == ""
    assert _env(build_job(OWNER, make_spec(), 0, "a100", "img:1", checkpoint_dir="/tmp/ckpt"))[
        "LLMASOS_CHECKPOINT_DIR"] == "/tmp/ckpt"


def test_queued_job_carries_the_queue_label_starts_suspended_and_leaves_the_flavour_to_kueue() -> None:
    """spec.queueName: Kueue admits the Job (it unsuspends it) and picks the flavour among the allowed pools."""
    from llmasos.cluster.observe import observe_job

    job = build_job(OWNER, make_spec(nodes=1, gpus=2, queueName="gpu"), 0, "l4", "img:1", suspend=False)
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "gpu"
    assert job["spec"]["suspend"] is True
    assert "affinity" not in job["spec"]["template"]["spec"], "any pool: the ClusterQueue's flavours decide"
    assert observe_job(job).pool == ""
    allowed = build_job(OWNER, make_spec(nodes=1, gpus=2, queueName="gpu", placement={"nodePools": ["l4", "a100"]}),
                        0, "l4", "img:1")
    affinity = allowed["spec"]["template"]["spec"]["affinity"]["nodeAffinity"]
    terms = affinity["requiredDuringSchedulingIgnoredDuringExecution"]
    assert terms["nodeSelectorTerms"][0]["matchExpressions"][0]["values"] == ["l4", "a100"]
    assert observe_job(allowed).pool == "", "two allowed pools name no one pool"
    allowed["spec"]["template"]["spec"]["nodeSelector"] = {"llmasos.io/pool": "a100"}  # what Kueue adds on admission
    assert observe_job(allowed).pool == "a100"
    plain = build_job(OWNER, make_spec(nodes=1, gpus=2), 0, "l4", "img:1")
    assert "kueue.x-k8s.io/queue-name" not in plain["metadata"]["labels"]
    assert plain["spec"]["suspend"] is False
