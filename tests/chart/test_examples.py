"""The numbered examples: each parses with the operator's own spec parser and each taskConfig with the worker's.

(tests/integration/chart/test_chart_release.py also sends every example through the API server's schema and CEL rules
with a server-side dry run.)
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmasos.api.spec import check_builtin_worker, parse_manifest, parse_spec
from llmasos.api.task_config import TASK_CONFIG_KEYS
from llmasos.errors import SpecError
from llmasos_worker.config import ConfigError, TaskConfig
from tests.chart.conftest import REPO

EXAMPLES = sorted((REPO / "examples").glob("[0-9][0-9]-*.yaml"))


def llmjobs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d and d.get("kind") == "LLMJob"]


def test_the_demo_story_is_complete() -> None:
    names = [p.name for p in EXAMPLES]
    assert names[0] == "01-ddp-immediate.yaml"
    assert len(names) >= 7
    jobs = [j for p in EXAMPLES for j in llmjobs(p)]
    specs = [j["spec"] for j in jobs]
    assert any(s.get("carbon", {}).get("policy") == "deadline" and not s["carbon"].get("interruptible") for s in specs)
    assert any(s.get("carbon", {}).get("interruptible") for s in specs)
    assert any(s.get("power", {}).get("policy", "none") != "none" for s in specs)
    strategies = {s["parallelism"]["strategy"] for s in specs}
    assert {"ddp", "tensor", "pipeline", "ray"} <= strategies
    tasks = {s.get("task", "train") for s in specs}
    assert {"train", "inference", "compress"} <= tasks
    names_seen = [(j["metadata"]["namespace"], j["metadata"]["name"]) for j in jobs]
    assert len(set(names_seen)) == len(names_seen), "every example LLMJob has its own name"


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_parses_like_the_operator_does(path: Path) -> None:
    jobs = llmjobs(path)
    assert jobs, f"{path.name} holds no LLMJob"
    for job in jobs:
        assert len(job["metadata"]["name"]) <= 40
        parse_spec(dict(job["spec"]))


# Examples whose taskConfig the worker is known to reject (none: keep it empty).
KNOWN_BAD: set[str] = set()


@pytest.mark.parametrize("path", [
    pytest.param(p, marks=pytest.mark.xfail(strict=True, reason="camelCase taskConfig keys")) if p.name in KNOWN_BAD
    else p for p in EXAMPLES], ids=[p.name for p in EXAMPLES])
def test_example_task_config_is_accepted_by_the_worker(path: Path) -> None:
    for job in llmjobs(path):
        TaskConfig.from_mapping(job["spec"].get("taskConfig") or {})
        check_builtin_worker(parse_spec(dict(job["spec"])))  # what the operator checks when it is applied


@pytest.mark.parametrize(("config", "message"), [
    ({"steps": 5, "batchSize": 8}, "the built-in worker takes no taskConfig key 'batchSize'; did you mean batch_size?"),
    ({"learningRate": 0.1}, "taskConfig key 'learningRate'; did you mean lr?"),
    ({"checkpointEvery": 10}, "did you mean checkpoint_every?"),
    ({"stpes": 10}, "did you mean steps?"),
    ({"zzz": 1}, "taskConfig key 'zzz'; the keys are listed in docs/worker.md"),
])
def test_a_task_config_key_the_worker_does_not_take_is_refused_by_the_operator(
    config: dict[str, Any], message: str
) -> None:
    job = dict(llmjobs(EXAMPLES[0])[0]["spec"], taskConfig=config)
    with pytest.raises(SpecError) as err:
        parse_spec(job)
    assert message in str(err.value)
    assert err.value.field == f"spec.taskConfig.{next(k for k in config if k not in TASK_CONFIG_KEYS)}"
    with pytest.raises(ConfigError):  # the worker itself refuses the same keys
        TaskConfig.from_mapping(config)
    assert parse_spec(dict(job, command=["python", "my_trainer.py"])).task_config == config  # another program


@pytest.mark.parametrize("task", ["inference", "compress"])
def test_an_interruptible_job_whose_task_cannot_checkpoint_is_refused_before_any_pod(task: str) -> None:
    """Each carbon segment would start the work over: the built-in worker checkpoints only train and finetune."""
    carbon = {"policy": "deadline", "maxDelay": "12h", "expectedDuration": "1h", "interruptible": True}
    raw = dict(llmjobs(EXAMPLES[0])[0]["spec"], task=task, carbon=carbon, parallelism={"nodes": 1, "gpusPerNode": 1})
    spec = parse_spec(raw)
    with pytest.raises(SpecError) as err:
        check_builtin_worker(spec)
    assert err.value.field == "spec.carbon.interruptible"
    assert f"the built-in worker's {task} stops at once and starts over when resumed" in str(err.value)
    check_builtin_worker(dataclasses.replace(spec, carbon=dataclasses.replace(spec.carbon, interruptible=False)))
    check_builtin_worker(dataclasses.replace(spec, command=("python", "my_server.py")))  # another program: its own
    check_builtin_worker(parse_spec(dict(raw, task="train")))


@pytest.mark.parametrize(("change", "message"), [
    ({"taskConfig": {"batch_size": "16"}}, "taskConfig.batch_size has the wrong type: '16'"),
    ({"taskConfig": {"lr": 0}}, "lr must be > 0"),
    ({"taskConfig": {"steps": 0}}, "steps must be >= 1, got 0"),
    ({"taskConfig": {"precision": "fp16"}}, "precision must be auto, fp32 or bf16, got 'fp16'"),
    ({"taskConfig": {"batch_size": 10}, "parallelism": {"nodes": 2, "gpusPerNode": 2}},
     "batch_size=10 is not divisible by parallelism.dataParallel=4"),
    ({"taskConfig": {"model": {"n_head": 3, "d_model": 63}},
      "parallelism": {"strategy": "tensor", "nodes": 1, "gpusPerNode": 2, "tensorParallel": 2}},
     "model.n_head=3 is not divisible by parallelism.tensorParallel=2"),
    ({"task": "compress", "parallelism": {"nodes": 2, "gpusPerNode": 1}},
     "task compress runs in one process; set parallelism.nodes 1 and gpusPerNode at most 1"),
    ({"model": {"hfRepo": "org/model"}}, "model.hfRepo is set but the worker never downloads from the hub: "
                                         "mount the model and set model.path"),
])
def test_a_job_the_built_in_worker_would_refuse_is_refused_before_any_pod(change: dict[str, Any],
                                                                         message: str) -> None:
    """The operator runs the worker's own checks when the LLMJob is applied (it used to fail in the pod)."""
    spec = parse_spec(dict(llmjobs(EXAMPLES[0])[0]["spec"], **change))  # the API server accepts it, so does parse
    with pytest.raises(SpecError) as err:
        check_builtin_worker(spec)
    assert f"the built-in worker would refuse this job: {message}" in str(err.value)
    assert err.value.field == "spec.taskConfig"
    check_builtin_worker(dataclasses.replace(spec, command=("python", "my_trainer.py")))  # another program: its own
    manifest = dict(llmjobs(EXAMPLES[0])[0])
    manifest["spec"] = dict(manifest["spec"], **change)
    with pytest.raises(SpecError, match="the built-in worker would refuse this job"):
        parse_manifest(manifest, datetime.now(UTC))  # `llmasos plan -f` refuses it too
