"""The RayJob rendering of a `strategy: ray` LLMJob: head and workers from parallelism, the driver as entrypoint,
shutdownAfterJobFinishes, suspend, the Indexed Job's pod template minus what KubeRay owns."""

from __future__ import annotations

from llmasos.api import constants as c
from llmasos.cluster.builders import Owner
from llmasos.cluster.rayjob import KUEUE_QUEUE_LABEL, build_rayjob, entrypoint
from tests.unit.builders import make_spec

OWNER = Owner("ray1", "ml", "uid-1")


def test_head_and_workers_from_parallelism() -> None:
    job = build_rayjob(OWNER, make_spec(nodes=3, gpus=2, strategy="ray"), 0, "a100", "img:1")
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    spec = job["spec"]
    assert spec["shutdownAfterJobFinishes"] is True
    assert spec["suspend"] is False
    head = spec["rayClusterSpec"]["headGroupSpec"]
    [workers] = spec["rayClusterSpec"]["workerGroupSpecs"]
    assert workers["replicas"] == workers["minReplicas"] == workers["maxReplicas"] == 2
    assert head["rayStartParams"]["num-gpus"] == workers["rayStartParams"]["num-gpus"] == "2"
    for group in (head, workers):
        pod = group["template"]["spec"]
        [container] = pod["containers"]
        assert "command" not in container, "KubeRay runs ray start"
        assert "restartPolicy" not in pod
        assert "subdomain" not in pod
        assert container["image"] == "img:1"
        assert container["resources"]["limits"][c.GPU_RESOURCE] == "2"
        terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
        assert terms[0]["matchExpressions"][0]["values"] == ["a100"]
    assert job["metadata"]["ownerReferences"][0]["uid"] == "uid-1"


def test_single_node_has_no_worker_group_and_suspend_and_queue() -> None:
    job = build_rayjob(OWNER, make_spec(nodes=1, gpus=1, strategy="ray"), 2, "l4", "img", suspend=True,
                       queue_name="gpu")
    assert job["spec"]["rayClusterSpec"]["workerGroupSpecs"] == []
    assert job["spec"]["suspend"] is True
    assert job["metadata"]["labels"][KUEUE_QUEUE_LABEL] == "gpu"
    assert job["metadata"]["labels"][c.LABEL_ATTEMPT] == "2"


def test_entrypoint_is_the_driver_command() -> None:
    assert entrypoint(make_spec(strategy="ray")) == "llmasos-worker"
    spec = make_spec(strategy="ray", command=["python", "train.py"], args=["--lr", "3e-4 x"])
    assert entrypoint(spec) == "python train.py --lr '3e-4 x'"
